"""The model's code for MLflow's "models from code": MLflow runs this file to get the model.

Why a file rather than the object: a ``python_model`` object is pickled with CloudPickle, which
MLflow warns against (unpickling runs arbitrary code, and breaks across Python/library
versions); a file is stored as source. The threshold and batch size travel in the logged
``model_config``, read by ``ReDSM5Model.load_context``.
"""

import mlflow

from mental_health_hpo.evaluation.mlflow_model import ReDSM5Model

mlflow.models.set_model(ReDSM5Model())
