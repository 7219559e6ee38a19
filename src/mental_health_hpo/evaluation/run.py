"""Evaluate one verified checkpoint on one split: the single code path of pipeline and CLI.

The weights go through ``load_checkpoint_ref`` (SHA-256 and architecture checked before they
are deserialized), then through ``training.inference.predict`` and ``metrics.validation_metrics``,
the same functions ``training.inference.evaluate`` chains; so a report's numbers equal evaluating
the checkpoint by hand. This module is the evaluate side: it may read the test split, and it does
not go through the training split guard.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from mental_health_hpo.checkpointing import (
    CheckpointError,
    CheckpointRef,
    architecture_signature,
    load_checkpoint_ref,
)
from mental_health_hpo.data.splits import require_rows
from mental_health_hpo.metrics import flatten_metrics, validation_metrics
from mental_health_hpo.metrics.thresholds import (
    EVIDENCE_THRESHOLDS,
    ChosenThreshold,
    choose_evidence_threshold,
    with_evidence_threshold,
)
from mental_health_hpo.model import DualAgentModel, ModelConfig, build_model
from mental_health_hpo.ops.locations import Location
from mental_health_hpo.training.inference import predict
from mental_health_hpo.workspace import storage_at
from mental_health_hpo.workspace.layout import WEIGHTS_FILE


@dataclass
class CheckpointEvaluation:
    """Metrics (nested, as ``validation_metrics`` returns them) and predictions of a checkpoint."""

    ref: CheckpointRef
    metrics: dict[str, Any]
    merged: pd.DataFrame = field(repr=False)
    model: DualAgentModel | None = field(default=None, repr=False)
    #: The sentence-evidence threshold chosen on validation (None: the fixed default was used).
    evidence_threshold: ChosenThreshold | None = None

    def flat(self, prefix: str = "test_") -> dict[str, float]:
        """``test_f1_macro``, ``test_exact_match``, ... (``metrics.flatten_metrics``)."""
        return flatten_metrics(self.metrics, prefix=prefix)

    @property
    def weights_file(self) -> Location:
        """The verified ``model.safetensors`` of the checkpoint (a file, or a bucket key)."""
        return self.ref.checkpoints_dir / self.ref.record.files[WEIGHTS_FILE].path

    @contextlib.contextmanager
    def weights_on_disk(self) -> Iterator[Path]:
        """The weights as a local file (what MLflow logs): the file itself, or, for a
        checkpoint in a bucket, a temporary download of it, removed afterwards."""
        weights = self.weights_file
        if isinstance(weights, Path):
            yield weights
            return
        key = self.ref.record.files[WEIGHTS_FILE].path
        with tempfile.TemporaryDirectory(prefix="redsm5-weights-") as tmp:
            target = Path(tmp) / WEIGHTS_FILE
            with storage_at(self.ref.checkpoints_dir).open(key) as source, target.open("wb") as out:
                shutil.copyfileobj(source, out, 16 * 2**20)
            yield target

    @property
    def weights_sha256(self) -> str:
        return self.ref.record.files[WEIGHTS_FILE].sha256


def model_config_of(trial_record: Mapping[str, Any]) -> ModelConfig:
    """The trial's model config (``trial.json["config"]["model"]``, a ``public_dict``)."""
    params = dict(trial_record.get("config", {}).get("model", {}) or {})
    if not params:
        raise ValueError("trial.json holds no config.model: cannot rebuild the model")
    return ModelConfig.from_params(params)


def model_signature(model: DualAgentModel) -> dict[str, Any]:
    """The architecture signature the trainer writes into checkpoints (head types included)."""
    head_types = {key: str(value) for key, value in model.head_types().items()}
    return architecture_signature(model, head_types)


def evaluate_checkpoint(
    model_config: ModelConfig,
    checkpoint_ref: CheckpointRef,
    frame: pd.DataFrame,
    *,
    threshold: float = 0.5,
    batch_size: int = 32,
    device: str | None = None,
    model: DualAgentModel | None = None,
    validation: pd.DataFrame | None = None,
    evidence_thresholds: Sequence[float] = EVIDENCE_THRESHOLDS,
) -> CheckpointEvaluation:
    """Verify and load ``checkpoint_ref``, predict ``frame`` and score the predictions.

    ``model``: an already built model of ``model_config`` to reuse (co-best checkpoints of one
    trial share an architecture, so the encoder is loaded once).
    ``validation``: when given, the sentence-evidence threshold is chosen on it (from
    ``evidence_thresholds``, as the TF-IDF baseline's is) before ``frame`` is scored once with
    it; without it the evidence threshold stays 0.5.
    """
    net = model if model is not None else build_model(model_config, for_inference=True)
    loaded = load_checkpoint_ref(checkpoint_ref, model_signature(net))

    def predicted(split: pd.DataFrame) -> pd.DataFrame:
        return predict(
            model_config,
            loaded.weights,
            split,
            batch_size=batch_size,
            device=device,
            threshold=threshold,
            model=net,
        )

    chosen = None
    if validation is not None:
        chosen = choose_evidence_threshold(predicted(validation), evidence_thresholds)
    merged = predicted(frame)
    if chosen is not None:
        merged = with_evidence_threshold(merged, chosen.value)
    metrics = validation_metrics(merged, threshold=threshold)
    return CheckpointEvaluation(
        ref=checkpoint_ref, metrics=metrics, merged=merged, model=net, evidence_threshold=chosen
    )


def evaluate_checkpoints(
    model_config: ModelConfig,
    refs: list[CheckpointRef],
    frame: pd.DataFrame,
    **kwargs: Any,
) -> list[CheckpointEvaluation]:
    """``evaluate_checkpoint`` of each ref, building the model once.

    An empty ``frame`` is refused here, before the encoder loads: feature building indexes
    the first window and would fail with an IndexError that names no split.
    """
    require_rows(frame, "the split to evaluate")
    model = kwargs.pop("model", None) or build_model(model_config, for_inference=True)
    return [evaluate_checkpoint(model_config, ref, frame, model=model, **kwargs) for ref in refs]


@dataclass(frozen=True)
class SkippedCheckpoint:
    """A checkpoint evaluate tried and could not use (failed its SHA-256 or architecture check)."""

    checkpoint_id: str
    path: str
    reason: str

    def to_json(self) -> dict[str, str]:
        return {"checkpoint_id": self.checkpoint_id, "path": self.path, "reason": self.reason}


class NoValidCheckpointError(RuntimeError):
    """Every candidate checkpoint failed verification; the message lists what was tried."""


def evaluate_with_fallback(
    model_config: ModelConfig,
    best: list[CheckpointRef],
    fallbacks: list[CheckpointRef],
    frame: pd.DataFrame,
    **kwargs: Any,
) -> tuple[list[CheckpointEvaluation], list[SkippedCheckpoint]]:
    """Every valid best / co-best checkpoint; when none is valid, the first valid fallback.

    ``fallbacks`` are the trial's other retained checkpoints, best first by the metric, so a
    corrupt best never stops the evaluation while a checkpoint of the trial still verifies.
    """
    model = kwargs.pop("model", None) or build_model(model_config, for_inference=True)
    evaluations: list[CheckpointEvaluation] = []
    skipped: list[SkippedCheckpoint] = []

    def attempt(ref: CheckpointRef) -> bool:
        try:
            evaluations.append(evaluate_checkpoint(model_config, ref, frame, model=model, **kwargs))
        except CheckpointError as error:
            skipped.append(SkippedCheckpoint(ref.record.id, str(ref.path), str(error)))
            return False
        return True

    for ref in best:
        attempt(ref)
    if not evaluations:
        next((ref for ref in fallbacks if attempt(ref)), None)
    if not evaluations:
        tried = "; ".join(f"{s.checkpoint_id} ({s.path}): {s.reason}" for s in skipped)
        raise NoValidCheckpointError(
            f"no checkpoint of the best trial verifies; tried {tried or 'nothing'}. Fix: rerun "
            f"`kedro run --pipelines hpo` to retrain the trial, or evaluate another study "
            f"(--params evaluate.study_name=NAME)"
        )
    return evaluations, skipped


def metrics_table(metrics: Mapping[str, Any], title: str = "") -> str:
    """A plain-text table of the headline and per-criterion metrics (the CLI's output)."""
    criteria = metrics.get("criteria", {})
    evidence = metrics.get("evidence", {})
    lines = [title] if title else []
    headline = ["accuracy", "f1_macro", "f1_micro", "precision_macro", "recall_macro"]
    headline += ["macro_pr_auc"]
    lines.append("criteria matching")
    lines += [f"  {name:<20}{float(criteria.get(name, 0.0)):>10.4f}" for name in headline]
    for name in ("all_negative_accuracy", "prevalence"):  # what accuracy is read against
        if name in criteria:
            lines.append(f"  {name:<20}{float(criteria[name]):>10.4f}")
    sentences = metrics.get("sentence_evidence", {})
    if sentences:
        lines.append("evidence binding, sentence level")
        for name in ("f1_macro", "precision_macro", "recall_macro", "f1_micro"):
            lines.append(f"  {name:<20}{float(sentences.get(name, 0.0)):>10.4f}")
        unaligned = int(sentences.get("n_unaligned_positive_pairs", 0))
        lines.append(f"  {'unaligned positives':<20}{unaligned:>10d}  (left out, not guessed)")
    lines.append("evidence binding, spans")
    for name in ("exact_match", "f1", "char_f1", "null_span_accuracy", "share_without_evidence"):
        if name in evidence or name != "share_without_evidence":
            lines.append(f"  {name:<20}{float(evidence.get(name, 0.0)):>10.4f}")
    lines.append("")
    lines.append(
        f"  {'criterion':<20}{'f1':>8}{'prec':>8}{'recall':>8}{'pr_auc':>8}{'support':>9}"
        f"  [[tn, fp], [fn, tp]]"
    )
    for name, values in criteria.get("per_criterion", {}).items():
        lines.append(
            f"  {name:<20}{values['f1']:>8.4f}{values['precision']:>8.4f}"
            f"{values['recall']:>8.4f}{values['pr_auc']:>8.4f}{values['support']:>9d}"
            f"  {json.dumps(values['confusion'])}"
        )
    return "\n".join(lines)
