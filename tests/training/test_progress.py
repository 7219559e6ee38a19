"""The per-epoch log line, its ETA after a resume, the resume message and bar-safe logging."""

from __future__ import annotations

import io
import json
import logging

import pytest

from mental_health_hpo.training import progress as progress_module
from mental_health_hpo.training.progress import (
    EpochReporter,
    clean_bars,
    format_duration,
    resume_message,
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_format_duration() -> None:
    assert [format_duration(s) for s in (0, 42.4, 75.2, 3725)] == ["0s", "42s", "1m15s", "1h02m05s"]


def test_one_line_per_epoch_with_metrics_elapsed_and_eta(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    reporter = EpochReporter(trial=2, epochs=4, clock=clock)
    caplog.set_level(logging.INFO, logger=progress_module.__name__)
    clock.now += 30
    line = reporter.epoch_end(0, {"val_f1_macro": 0.5, "train_loss": 0.25})
    assert line.eta_s == pytest.approx(90)
    assert caplog.messages == [
        "trial 2 epoch 1/4 train_loss=0.2500 val_f1_macro=0.5000 elapsed 30s eta 1m30s"
    ]
    record = caplog.records[0]
    assert record.progress["kind"] == "epoch" and record.progress["metrics"]["val_f1_macro"] == 0.5
    json.dumps(record.progress)  # the JSON-lines log can hold it


def test_the_line_names_a_fixed_handful_whatever_the_metrics(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """~100 metrics made ~150 wrapped lines per epoch off a terminal: the line shows the
    objective first, then the losses and headline metrics, and the JSON log gets them all."""
    headline = {
        "train_loss": 0.25,
        "val_loss": 0.5,
        "val_f1_macro": 0.125,
        "val_sentence_evidence_f1_macro": 0.375,
        "val_evidence_f1": 0.0625,  # the objective of this study
    }
    many = {**headline, **{f"val_f1_CRITERION_{i}": i / 100 for i in range(100)}}
    caplog.set_level(logging.INFO, logger=progress_module.__name__)
    lines = []
    for metrics in (headline, many):
        reporter = EpochReporter(trial=7, epochs=2, objective="val_evidence_f1", clock=FakeClock())
        lines.append(reporter.epoch_end(0, metrics))
    assert (
        caplog.messages[0]
        == caplog.messages[1]
        == (
            "trial 7 epoch 1/2 val_evidence_f1=0.0625 train_loss=0.2500 val_loss=0.5000 "
            "val_f1_macro=0.1250 val_sentence_evidence_f1_macro=0.3750 elapsed 0s eta 0s"
        )
    )
    assert caplog.records[1].progress["metrics"] == many  # the full set, for study.jsonl
    assert caplog.records[1].progress["objective"] == "val_evidence_f1"
    assert lines[1].shown() == lines[0].shown()


def test_eta_after_a_resume_counts_only_epochs_run_here() -> None:
    clock = FakeClock()
    reporter = EpochReporter(trial="0003", epochs=5, first_epoch=3, clock=clock)
    clock.now += 10
    line = reporter.epoch_end(3, {})
    # one epoch ran in this process, in 10 s; one is left: 10 s, not 10 s / 4 epochs
    assert line.eta_s == pytest.approx(10) and line.epoch == 4
    clock.now += 10
    assert reporter.epoch_end(4, {}).eta_s == 0


def test_resume_message() -> None:
    assert resume_message(2, 1, "experiments/study_a/trial_0002/checkpoints/ckpt-e0000") == (
        "resuming trial 2 from epoch 1 (checkpoint experiments/study_a/trial_0002/checkpoints/"
        "ckpt-e0000)"
    )


def test_clean_bars_routes_records_through_tqdm_write_mode(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    target = logging.getLogger("test_clean_bars")
    target.propagate = False
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    target.addHandler(handler)
    writes: list[str] = []

    class Recorder:
        def __init__(self, file: object = None) -> None:
            pass

        def __enter__(self) -> None:
            writes.append("cleared")

        def __exit__(self, *exc: object) -> None:
            writes.append("redrawn")

    monkeypatch.setattr(progress_module, "is_interactive", lambda: True)
    monkeypatch.setattr(progress_module.tqdm, "external_write_mode", Recorder)
    try:
        with clean_bars(target):
            target.warning("between the bars")
        assert writes == ["cleared", "redrawn"]
        assert stream.getvalue() == "between the bars\n"
        assert target.handlers == [handler]
    finally:
        target.removeHandler(handler)


def test_clean_bars_is_a_no_op_off_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    target = logging.getLogger("test_clean_bars_off")
    handler = logging.NullHandler()
    target.addHandler(handler)
    monkeypatch.setattr(progress_module, "is_interactive", lambda: False)
    with clean_bars(target):
        assert target.handlers == [handler]
    target.removeHandler(handler)
