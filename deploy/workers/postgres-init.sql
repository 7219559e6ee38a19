-- Run once by the postgres image on an empty volume: MLflow's own database beside Optuna's.
CREATE DATABASE mlflow OWNER hpo;
