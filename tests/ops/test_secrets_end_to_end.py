"""Masking end to end: secrets planted in a config, an error and a tracking URL reach no output.

A tiny two-trial study runs through a real KedroSession on the tiny BERT. Planted:
- config: every secret kind inside ``hpo.base.model.revision`` (a free string, unused for a local
  encoder), so it flows to kedro-mlflow's params, the trial's MLflow params and trial.json;
- error: trial 0 raises an exception whose message holds every secret kind (as a hub or MLflow
  client would) after warning about an "unreachable" tracking URL with a password.
Then every file under the project (experiments/, data/, the MLflow and Optuna sqlite databases,
JSON-lines logs) and the captured stdout/stderr are searched for the raw secrets.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from conftest import run_pipeline

pytestmark = [
    pytest.mark.slow,
]

HF_TOKEN = "hf_PlantedPlantedPlanted0123456789"
BEARER = "PlantedBearerTok3nValue9x"
PASSWORD = "s3cretPassw0rdPlanted"
EMAIL = "planted.person@example.org"
OPAQUE_KEY = "AKIAxY7abcD9eFgH1jKlMnOpQrStUvWx9z"
TRACKING_URL = f"http://mlflow-user:{PASSWORD}@127.0.0.1:9/"
SECRETS = (HF_TOKEN, BEARER, PASSWORD, EMAIL, OPAQUE_KEY)
PLANTED = f"main {HF_TOKEN} Bearer {BEARER} {TRACKING_URL} {EMAIL} {OPAQUE_KEY}"


def _leaks(root: Path) -> list[str]:
    found = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        data = path.read_bytes()
        found += [f"{path.relative_to(root)}: {s}" for s in SECRETS if s.encode() in data]
    return found


def test_no_secret_reaches_any_output(
    kedro_project: Path,
    tiny_model_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    from mental_health_hpo.hpo import objective as objective_module

    original = objective_module.TrainingObjective.__call__

    def leaky(self: object, context: object) -> float:
        if context.trial.number == 0:  # type: ignore[attr-defined]
            logging.getLogger("mental_health_hpo.tests.leaky").warning(
                "MLflow unreachable at %s; token %s", TRACKING_URL, HF_TOKEN
            )
            raise RuntimeError(
                f"upload failed for {TRACKING_URL}: Authorization: Bearer {BEARER}, "
                f"token={HF_TOKEN}, user {EMAIL}, key {OPAQUE_KEY}"
            )
        return original(self, context)  # type: ignore[arg-type]

    monkeypatch.setattr(objective_module.TrainingObjective, "__call__", leaky)
    params = {
        "data_ingest": {"source": {"synthetic": {"n_posts": 40}}},
        "hpo": {
            "study": {"n_trials": 2, "pruner": "none", "name": "secrets", "sampler": "random"},
            "base": {
                "model": {"encoder": str(tiny_model_dir), "revision": PLANTED},
                "trainer": {"epochs": 1, "batch_size": 8},
            },
        },
    }
    run_pipeline(kedro_project, "hpo", params)

    study_dir = kedro_project / "experiments" / "study_secrets"
    assert (study_dir / "trial_0000" / "trial.json").exists()  # the study did run
    assert (kedro_project / "mlflow.db").exists()
    # The structured logs exist and hold the (masked) warning and error of trial 0.
    trial_log = study_dir / "trial_0000" / "logs" / "trial.jsonl"
    assert trial_log.exists() and "***" in trial_log.read_text()
    assert (study_dir / "logs" / "study.jsonl").exists()

    captured = capfd.readouterr()
    leaks = _leaks(kedro_project)
    leaks += [f"stdout: {s}" for s in SECRETS if s in captured.out]
    leaks += [f"stderr: {s}" for s in SECRETS if s in captured.err]
    assert leaks == []
