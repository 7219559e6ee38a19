"""The study runner with the ops wiring: logs per study and trial, the hub-auth pause.

Expected: a hub 401 inside a trial pauses the study (the trial is not failed), it resumes the
same trial once the gate opens, and every warning lands in the study's and the trial's JSONL.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from optuna.trial import TrialState

from mental_health_hpo.hpo.runner import TrialContext
from mental_health_hpo.hpo.setup import StudySetup
from mental_health_hpo.ops import HubAuthGate

PARAMS = {
    "study": {"name": "gated", "storage": "sqlite:///optuna.db", "n_trials": 2},
    "search_space": {"x": {"type": "float", "low": 0.0, "high": 1.0}},
}


class HubRefusedError(Exception):
    """Shaped like huggingface_hub's HfHubHTTPError: ``.response.status_code``."""

    def __init__(self) -> None:
        super().__init__(
            "401 Client Error: Unauthorized for url hf_AbCdEfGhIjKlMnOpQrStUvWxYz012345"
        )
        self.response = type("Response", (), {"status_code": 401})()


def test_auth_error_pauses_and_resumes_the_same_trial(tmp_path: Path) -> None:
    setup = StudySetup.from_params(PARAMS, tmp_path)  # as a worker builds it
    study = setup.open({}, tmp_path)
    answers = iter([True, False, True, True, True])  # closed once, after the 401
    sleeps: list[float] = []
    gate = HubAuthGate(lambda: next(answers, True), recheck_interval_s=5, sleep=sleeps.append)
    calls: list[int] = []

    def objective(context: TrialContext) -> float:
        calls.append(context.trial.number)
        logging.getLogger("mental_health_hpo.tests.gated").warning("epoch slow")
        if len(calls) == 1:
            raise HubRefusedError()
        return context.sampled["x"]

    study_dir = setup.study_dir
    setup.runner(study, objective, gate=gate).run()

    assert calls == [0, 0, 1]  # trial 0 resumed, not replaced
    assert [t.state for t in study.trials] == [TrialState.COMPLETE, TrialState.COMPLETE]
    assert sleeps == [5]
    trial_log = study_dir / "trial_0000" / "logs" / "trial.jsonl"
    lines = [json.loads(x) for x in trial_log.read_text().splitlines()]
    assert all(r["study_id"] == "gated" and r["trial_id"] == "trial_0000" for r in lines)
    assert "hf_AbCd" not in trial_log.read_text()
    assert (study_dir / "logs" / "study.jsonl").exists()


def test_a_refusal_while_the_token_is_accepted_is_not_waited_on(tmp_path: Path) -> None:
    """A gated repository whose terms were not accepted answers 403 to a valid token: the gate
    finds the token fine, so the study stops with the error instead of re-running the trial."""
    params = {**PARAMS, "study": {"name": "terms", "storage": "sqlite:///optuna.db", "n_trials": 2}}
    setup = StudySetup.from_params(params, tmp_path)  # as a worker builds it
    study = setup.open({}, tmp_path)
    gate = HubAuthGate(lambda: True, sleep=lambda s: pytest.fail("paused"))
    calls: list[int] = []

    def objective(context: TrialContext) -> float:
        calls.append(context.trial.number)
        raise HubRefusedError()

    with pytest.raises(HubRefusedError):
        setup.runner(study, objective, gate=gate).run()
    assert calls == [0]
