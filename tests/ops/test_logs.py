"""Structured logs: JSON lines with context, per study and per trial, masked; critical to stdout."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from mental_health_hpo.ops.logs import (
    CriticalToStdoutHandler,
    JsonFormatter,
    attach_jsonl_file,
    current_context,
    detach_handler,
    log_context,
    set_context,
    study_logging,
    trial_logging,
)

log = logging.getLogger("mental_health_hpo.tests.ops")


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(autouse=True)
def _propagating() -> Iterator[None]:
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.INFO)
    yield
    root.setLevel(level)


def test_context_nests_and_restores() -> None:
    with log_context(study_id="s"):
        with log_context(trial_id="t"):
            set_context(epoch=2, step=40)
            assert current_context() == {"study_id": "s", "trial_id": "t", "epoch": 2, "step": 40}
        assert current_context() == {"study_id": "s"}
    assert current_context() == {}


def test_study_and_trial_files_get_warnings_with_context(tmp_path: Path) -> None:
    study_dir = tmp_path / "study_x"
    with study_logging(study_dir, "x") as study_file:
        log.warning("before any trial")
        for number in (0, 1):
            trial_id = f"trial_{number:04d}"
            logs = study_dir / trial_id / "logs"
            with trial_logging(logs, "x", trial_id) as trial_file:
                log.info("info is not a warning")
                set_context(epoch=1, step=10 * (number + 1))
                log.warning("slow epoch", extra={"seconds": 12.5})
                try:
                    raise ValueError("boom hf_AbCdEfGhIjKlMnOpQrStUvWxYz012345")
                except ValueError:
                    log.error("trial failed", exc_info=True)
            records = _lines(trial_file)
            assert [r["message"] for r in records] == ["slow epoch", "trial failed"]
            first = records[0]
            assert first["study_id"] == "x" and first["trial_id"] == trial_id
            assert first["epoch"] == 1 and first["step"] == 10 * (number + 1)
            assert first["level"] == "WARNING"
            assert first["component"] == "mental_health_hpo.tests.ops"
            assert first["extra"] == {"seconds": 12.5}
            assert first["timestamp"].endswith("+00:00")
            assert "ValueError" in records[1]["exception"]
            assert "hf_AbCd" not in trial_file.read_text()
    study = _lines(study_file)
    assert [r["trial_id"] for r in study] == [None] + ["trial_0000"] * 2 + ["trial_0001"] * 2
    ours = [h for h in logging.getLogger().handlers if isinstance(h.formatter, JsonFormatter)]
    assert ours == []  # detached on exit


def test_trial_file_only_takes_its_own_trial(tmp_path: Path) -> None:
    handler = attach_jsonl_file(tmp_path / "t1.jsonl", trial_id="trial_0001")
    try:
        with log_context(trial_id="trial_0002"):
            log.warning("other trial")
        with log_context(trial_id="trial_0001"):
            log.warning("mine")
        log.warning("background thread, no trial")
    finally:
        detach_handler(handler)
    assert [r["message"] for r in _lines(tmp_path / "t1.jsonl")] == [
        "mine",
        "background thread, no trial",
    ]


def test_json_formatter_masks_even_without_the_filter() -> None:
    record = logging.LogRecord(
        "c", logging.WARNING, __file__, 1, "to %s", ("jane@example.org",), None
    )
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "to ***"


def test_critical_goes_to_stdout_at_once(capsys: pytest.CaptureFixture[str]) -> None:
    handler = CriticalToStdoutHandler()
    logger = logging.getLogger("mental_health_hpo.tests.critical")
    logger.addHandler(handler)
    # Only this handler: a Kedro session run earlier in the process may have left a console
    # handler on the root logger that prints every level to stdout.
    logger.propagate = False
    try:
        logger.error("not critical")
        logger.critical("disk full")
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
    out = capsys.readouterr().out
    assert "disk full" in out and "not critical" not in out


def test_project_logging_yml_configures(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """conf/logging.yml passes Kedro's validation as is, and the hook adds masking and context."""
    import yaml

    from mental_health_hpo.ops.logs import install_project_logging

    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    monkeypatch.delenv("KEDRO_LOGGING_MODULE_ALLOWLIST", raising=False)
    from kedro.framework.project import LOGGING

    config = yaml.safe_load(
        (Path(__file__).resolve().parents[2] / "conf" / "logging.yml").read_text()
    )
    try:
        LOGGING.configure(config)
        install_project_logging()
        install_project_logging()  # idempotent
        names = [type(h).__name__ for h in root.handlers]
        assert names.count("CriticalToStdoutHandler") == 1 and "RichHandler" in names
        rich = next(h for h in root.handlers if type(h).__name__ == "RichHandler")
        assert {type(f).__name__ for f in rich.filters} >= {"MaskingFilter", "ContextFilter"}
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
