"""The best model as an MLflow pyfunc model that loads on another machine and predicts.

This is the one module of ``evaluation`` that imports mlflow (the rest stays framework-free).

The model carries everything it needs as artifacts, so ``mlflow.pyfunc.load_model`` needs no
access to the experiments folder, the original encoder path or the hub:

- ``weights``: the verified ``model.safetensors`` of the checkpoint (encoder + heads);
- ``encoder``: the encoder's ``config.json`` and tokenizer files (the encoder is rebuilt from its
  config, then the checkpoint's weights are loaded over it, so the encoder weights are not
  stored twice);
- ``model_config``: the trial's ``ModelConfig.public_dict()`` as JSON.

The model is logged "from code" (``pyfunc_code.py``, MLflow's recommended way, no CloudPickle),
with its signature and an input example, which MLflow validates by loading the logged model and
predicting once. The package's own code travels with the model (``code_paths``).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow.models import ModelSignature
from mlflow.pyfunc import PythonModel, PythonModelContext
from mlflow.types import ColSpec, Schema

import mental_health_hpo
from mental_health_hpo.constants import CRITERIA
from mental_health_hpo.model import DualAgentModel, LoadedEncoder, ModelConfig, build_model

INPUT_COLUMNS = ("post_id", "text")
OUTPUT_COLUMNS = (
    "post_id",
    "criterion",
    "prob",
    "label",
    "evidence_start",
    "evidence_end",
    "evidence_text",
)
SIGNATURE = ModelSignature(
    inputs=Schema([ColSpec("string", "post_id"), ColSpec("string", "text")]),
    outputs=Schema(
        [
            ColSpec("string", "post_id"),
            ColSpec("string", "criterion"),
            ColSpec("double", "prob"),
            ColSpec("long", "label"),
            ColSpec("long", "evidence_start"),
            ColSpec("long", "evidence_end"),
            ColSpec("string", "evidence_text"),
        ]
    ),
)

#: One post, stored with the model (MLflow shows it and checks the model serves it).
INPUT_EXAMPLE = pd.DataFrame(
    {"post_id": ["example"], "text": ["I can't sleep at night and I feel tired all day long."]}
)


def pairs_frame(posts: pd.DataFrame) -> pd.DataFrame:
    """Posts -> one row per (post, criterion) with empty gold columns, as the trainer expects."""
    missing = [c for c in INPUT_COLUMNS if c not in posts.columns]
    if missing:
        raise ValueError(f"input lacks columns {missing}; expected {list(INPUT_COLUMNS)}")
    unique = posts[list(INPUT_COLUMNS)].astype(str).drop_duplicates("post_id")
    rows = [
        {
            "post_id": post_id,
            "text": text,
            "criterion": criterion,
            "label": 0,
            "evidence_start": -1,
            "evidence_end": -1,
        }
        for post_id, text in zip(unique["post_id"], unique["text"], strict=True)
        for criterion in CRITERIA
    ]
    columns = ["post_id", "text", "criterion", "label", "evidence_start", "evidence_end"]
    return pd.DataFrame(rows, columns=columns)


class ReDSM5Model(PythonModel):  # type: ignore[misc]
    """Criteria probabilities, labels and evidence spans for raw posts."""

    def __init__(self, threshold: float = 0.5, batch_size: int = 32) -> None:
        self.threshold = threshold
        self.batch_size = batch_size
        self._model: DualAgentModel | None = None
        self._config: ModelConfig | None = None

    def load_context(self, context: PythonModelContext) -> None:
        """Rebuild the model from the artifacts alone (no hub, no original paths)."""
        from safetensors.torch import load_file
        from transformers import AutoConfig, AutoModel, AutoTokenizer

        options = context.model_config or {}
        self.threshold = float(options.get("threshold", self.threshold))
        self.batch_size = int(options.get("batch_size", self.batch_size))

        encoder_dir = str(context.artifacts["encoder"])
        params = json.loads(Path(context.artifacts["model_config"]).read_text(encoding="utf-8"))
        config = ModelConfig.from_params({**params, "encoder": encoder_dir, "revision": None})
        encoder = AutoModel.from_config(AutoConfig.from_pretrained(encoder_dir))
        tokenizer = AutoTokenizer.from_pretrained(encoder_dir, use_fast=True)
        model = build_model(
            config,
            encoder=LoadedEncoder(encoder, tokenizer, encoder_dir, "local"),
            for_inference=True,
        )
        model.load_state_dict(load_file(str(context.artifacts["weights"])))
        model.eval()
        self._model, self._config = model, config

    def predict(
        self,
        context: PythonModelContext | None,
        model_input: pd.DataFrame,
        params: dict[str, Any] | None = None,
    ) -> pd.DataFrame:
        """``DataFrame[post_id, text]`` -> one row per (post, criterion), see ``OUTPUT_COLUMNS``."""
        from mental_health_hpo.training.inference import predict

        if self._model is None or self._config is None:
            raise RuntimeError("ReDSM5Model.predict before load_context")
        threshold = float((params or {}).get("threshold", self.threshold))
        merged = predict(
            self._config,
            self._model.state_dict(),
            pairs_frame(model_input),
            batch_size=self.batch_size,
            threshold=threshold,
            model=self._model,
        )
        out = pd.DataFrame(
            {
                "post_id": merged["post_id"].astype(str),
                "criterion": merged["criterion"].astype(str),
                "prob": merged["prob"].astype(float),
                "label": merged["pred_label"].astype("int64"),
                "evidence_start": merged["pred_start"].astype("int64"),
                "evidence_end": merged["pred_end"].astype("int64"),
                "evidence_text": merged["pred_text"].astype(str),
            }
        )
        return out.reset_index(drop=True)


def export_artifacts(
    model: DualAgentModel, weights_file: str | Path, directory: str | Path
) -> dict[str, str]:
    """Write the encoder config + tokenizer and the model config; return the artifacts map."""
    directory = Path(directory)
    encoder_dir = directory / "encoder"
    encoder_dir.mkdir(parents=True, exist_ok=True)
    encoder: Any = model.encoder  # a transformers PreTrainedModel
    encoder.config.save_pretrained(str(encoder_dir))
    model.tokenizer.save_pretrained(str(encoder_dir))
    config_file = directory / "model_config.json"
    config_file.write_text(json.dumps(model.config.public_dict(), indent=2, default=str))
    return {
        "weights": str(weights_file),
        "encoder": str(encoder_dir),
        "model_config": str(config_file),
    }


def pip_requirements() -> list[str]:
    """Pinned runtime requirements (given explicitly: inferring them loads the model again)."""
    from importlib.metadata import PackageNotFoundError, version

    names = ("torch", "transformers", "tokenizers", "safetensors", "pandas", "numpy", "pydantic")
    pins = []
    for name in names:
        try:
            pins.append(f"{name}=={version(name)}")
        except PackageNotFoundError:  # pragma: no cover - all are dependencies
            pins.append(name)
    return [f"mlflow=={mlflow.__version__}", *pins]


def log_model(
    model: DualAgentModel,
    weights_file: str | Path,
    *,
    name: str = "model",
    threshold: float = 0.5,
    batch_size: int = 32,
) -> Any:
    """Log the model to the active MLflow run; returns mlflow's ``ModelInfo``."""
    with tempfile.TemporaryDirectory(prefix="redsm5-model-") as tmp:
        artifacts = export_artifacts(model, weights_file, tmp)
        return mlflow.pyfunc.log_model(
            name=name,
            python_model=str(Path(__file__).with_name("pyfunc_code.py")),
            model_config={"threshold": threshold, "batch_size": batch_size},
            artifacts=artifacts,
            signature=SIGNATURE,
            input_example=INPUT_EXAMPLE,
            pip_requirements=pip_requirements(),
            code_paths=[str(Path(mental_health_hpo.__file__).parent)],
        )
