"""TF-IDF baselines on the model's own split: what a model must beat to be worth its compute.

Why: a report that shows only the model cannot tell a working model from a broken one (an
evidence head that always says "none" scores ``null_span_accuracy`` 1.0; a criteria head that
says "positive" everywhere has recall 1.0). Each baseline is fitted on the train split, its one
hyper-parameter (and, for evidence, the decision threshold) chosen on validation, and scored on
test once, exactly like the model:

- criteria: TF-IDF of the post (word 1-2 grams) + one-vs-rest logistic regression with balanced
  class weights (the authors' TF-IDF + linear SVM baseline, with probabilities);
- sentence evidence: TF-IDF of each post sentence + one balanced logistic regression per
  criterion on the sentences the gold (aligned through ``data.alignment``) marks as evidence.

Both read the gold through ``training.features.gold_evidence_table``, the function the model's
features use, and are scored by the same metric functions. Framework-free (scikit-learn only).

Example:
    >>> result = fit_baselines(train, validation, test)  # doctest: +SKIP
    >>> result.metrics["sentence_evidence"]["f1_macro"]  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from mental_health_hpo.constants import CRITERIA
from mental_health_hpo.metrics import criteria_metrics, sentence_evidence_metrics
from mental_health_hpo.metrics.thresholds import EVIDENCE_THRESHOLDS, best_on_grid
from mental_health_hpo.training.features import gold_evidence_table

logger = logging.getLogger(__name__)

CRITERIA_METHOD = "tfidf_1-2gram+one_vs_rest_logistic_regression(class_weight=balanced)"
EVIDENCE_METHOD = "tfidf_1-2gram_sentences+per_criterion_logistic_regression(class_weight=balanced)"


@dataclass(frozen=True)
class BaselineConfig:
    """The validation grid of the baselines (small: they must cost seconds, not minutes).

    Attributes:
        c_grid: inverse regularisation strengths tried on validation.
        evidence_thresholds: sentence decision thresholds tried on validation (by default the
            grid the model's evidence threshold is chosen from too).
        criteria_threshold: the criteria decision threshold (the model's, for a fair match).
        max_features: TF-IDF vocabulary cap.
    """

    c_grid: tuple[float, ...] = (0.1, 1.0, 10.0)
    evidence_thresholds: tuple[float, ...] = EVIDENCE_THRESHOLDS
    criteria_threshold: float = 0.5
    max_features: int = 20000

    def __post_init__(self) -> None:
        if not self.c_grid or any(c <= 0 for c in self.c_grid):
            raise ValueError("baselines.c_grid: needs at least one value, all > 0")
        if not self.evidence_thresholds or any(not 0 < t < 1 for t in self.evidence_thresholds):
            raise ValueError("baselines.evidence_thresholds: values must lie in (0, 1)")


@dataclass
class BaselineResult:
    """Test metrics (``validation_metrics`` layout, no span part) and how they were chosen."""

    metrics: dict[str, Any]
    selected: dict[str, float]
    splits: dict[str, dict[str, Any]]
    methods: dict[str, str] = field(
        default_factory=lambda: {"criteria": CRITERIA_METHOD, "sentence_evidence": EVIDENCE_METHOD}
    )


def split_ids(frame: pd.DataFrame) -> dict[str, Any]:
    """Post count and SHA-256 of the sorted post ids: equal digests mean the same split."""
    ids = sorted(set(frame["post_id"].astype(str)))
    return {
        "n_posts": len(ids),
        "post_ids_sha256": hashlib.sha256("\n".join(ids).encode()).hexdigest(),
    }


def fit_baselines(
    train: pd.DataFrame,
    validation: pd.DataFrame,
    test: pd.DataFrame,
    config: BaselineConfig | None = None,
) -> BaselineResult:
    """Fit on ``train``, choose on ``validation``, score ``test`` once (``model_input`` tables)."""
    options = config or BaselineConfig()
    for name, frame in (("train", train), ("validation", validation), ("test", test)):
        if frame.empty:
            raise ValueError(f"baselines: the {name} split is empty; nothing to fit or score")
    with warnings.catch_warnings():
        # Tiny splits have criteria without a positive: a constant column is expected there.
        warnings.simplefilter("ignore", category=UserWarning)
        criteria, c_criteria = _criteria_baseline(train, validation, test, options)
        evidence, c_evidence, threshold = _evidence_baseline(train, validation, test, options)
    return BaselineResult(
        metrics={"criteria": criteria, "sentence_evidence": evidence},
        selected={
            "criteria_C": c_criteria,
            "evidence_C": c_evidence,
            "evidence_threshold": threshold,
        },
        splits={
            name: split_ids(f)
            for name, f in (("train", train), ("validation", validation), ("test", test))
        },
    )


# --------------------------------------------------------------------------- criteria


def _post_table(frame: pd.DataFrame) -> tuple[list[str], list[str], np.ndarray]:
    """Post ids, texts and the (posts, 9) label matrix of a long ``model_input`` table."""
    pivot = frame.pivot_table(index="post_id", columns="criterion", values="label", aggfunc="max")
    pivot = pivot.reindex(columns=list(CRITERIA)).fillna(0).astype(int)
    texts = frame.drop_duplicates("post_id").set_index("post_id")["text"].astype(str)
    ids = [str(i) for i in pivot.index]
    return ids, [texts[i] for i in pivot.index], pivot.to_numpy()


def _vectorizer(options: BaselineConfig) -> TfidfVectorizer:
    return TfidfVectorizer(
        ngram_range=(1, 2), min_df=1, sublinear_tf=True, max_features=options.max_features
    )


def _fit_columns(x: Any, y: np.ndarray, c: float) -> list[LogisticRegression | float]:
    """One balanced logistic regression per label column; a constant column is its constant."""
    models: list[LogisticRegression | float] = []
    for column in range(y.shape[1]):
        target = y[:, column]
        if target.min() == target.max():
            models.append(float(target[0]) if len(target) else 0.0)
            continue
        model = LogisticRegression(C=c, class_weight="balanced", max_iter=2000)
        models.append(model.fit(x, target))
    return models


def _predict_columns(models: Sequence[LogisticRegression | float], x: Any) -> np.ndarray:
    columns = [
        np.full(x.shape[0], m) if isinstance(m, float) else m.predict_proba(x)[:, 1] for m in models
    ]
    return np.stack(columns, axis=1) if columns else np.zeros((x.shape[0], 0))


def _criteria_scores(
    frame: pd.DataFrame, ids: list[str], probs: np.ndarray, threshold: float
) -> dict[str, Any]:
    """``criteria_metrics`` of post-level probabilities, on the rows of ``frame``."""
    row_of = {post_id: i for i, post_id in enumerate(ids)}
    column_of = {name: j for j, name in enumerate(CRITERIA)}
    values = [
        probs[row_of[str(p)], column_of[str(c)]]
        for p, c in zip(frame["post_id"], frame["criterion"], strict=True)
    ]
    return criteria_metrics(frame["label"], values, frame["criterion"], threshold)


def _criteria_baseline(
    train: pd.DataFrame, validation: pd.DataFrame, test: pd.DataFrame, options: BaselineConfig
) -> tuple[dict[str, Any], float]:
    _, train_texts, train_y = _post_table(train)
    val_ids, val_texts, _ = _post_table(validation)
    test_ids, test_texts, _ = _post_table(test)
    vectorizer = _vectorizer(options).fit(train_texts)
    x_train, x_val = vectorizer.transform(train_texts), vectorizer.transform(val_texts)
    best: tuple[float, float, list[Any]] | None = None
    for c in options.c_grid:
        models = _fit_columns(x_train, train_y, c)
        score = _criteria_scores(
            validation, val_ids, _predict_columns(models, x_val), options.criteria_threshold
        )["f1_macro"]
        if best is None or score > best[0]:
            best = (score, c, models)
    assert best is not None
    _, c, models = best
    probs = _predict_columns(models, vectorizer.transform(test_texts))
    return _criteria_scores(test, test_ids, probs, options.criteria_threshold), c


# --------------------------------------------------------------------------- evidence


@dataclass
class _Sentences:
    """Every post sentence of a split, its gold per criterion and the pairs to score."""

    texts: list[str]
    keys: list[tuple[str, int]]  # (post_id, sentence index)
    gold: np.ndarray  # (sentences, 9) 1 evidence, 0 not, -1 unknown
    pairs: pd.DataFrame


def _sentences(frame: pd.DataFrame) -> _Sentences:
    pairs, texts, spans = gold_evidence_table(frame)
    gold_of = {
        (row.post_id, row.criterion): (
            None if int(row.label) == 1 and not row.gold_sentences else set(row.gold_sentences)
        )
        for row in pairs.itertuples(index=False)
    }
    sentence_texts, keys, gold = [], [], []
    for post_id in dict.fromkeys(pairs["post_id"]):
        for index, (start, end) in enumerate(spans[post_id]):
            sentence_texts.append(texts[post_id][start:end])
            keys.append((post_id, index))
            row = []
            for criterion in CRITERIA:
                marked = gold_of.get((post_id, criterion), set())
                row.append(-1 if marked is None else int(index in marked))
            gold.append(row)
    matrix = np.asarray(gold, dtype=np.int64).reshape(len(keys), len(CRITERIA))
    return _Sentences(sentence_texts, keys, matrix, pairs)


def _sentence_scores(data: _Sentences, probs: np.ndarray, threshold: float) -> dict[str, Any]:
    predicted: dict[tuple[str, str], list[int]] = {}
    for (post_id, index), row in zip(data.keys, probs, strict=True):
        for j, criterion in enumerate(CRITERIA):
            if row[j] >= threshold:
                predicted.setdefault((post_id, criterion), []).append(index)
    pairs = data.pairs
    return sentence_evidence_metrics(
        list(pairs["gold_sentences"]),
        [
            predicted.get((p, c), [])
            for p, c in zip(pairs["post_id"], pairs["criterion"], strict=True)
        ],
        list(pairs["criterion"]),
        list(pairs["label"]),
    )


def _fit_evidence(x: Any, gold: np.ndarray, c: float) -> list[LogisticRegression | float]:
    models: list[LogisticRegression | float] = []
    for column in range(gold.shape[1]):
        known = gold[:, column] >= 0
        target = gold[known, column]
        if not len(target) or target.min() == target.max():
            models.append(float(target[0]) if len(target) else 0.0)
            continue
        model = LogisticRegression(C=c, class_weight="balanced", max_iter=2000)
        models.append(model.fit(x[np.flatnonzero(known)], target))
    return models


def _evidence_baseline(
    train: pd.DataFrame, validation: pd.DataFrame, test: pd.DataFrame, options: BaselineConfig
) -> tuple[dict[str, Any], float, float]:
    train_s, val_s, test_s = _sentences(train), _sentences(validation), _sentences(test)
    vectorizer = _vectorizer(options).fit(train_s.texts)
    x_train, x_val = vectorizer.transform(train_s.texts), vectorizer.transform(val_s.texts)
    best: tuple[float, float, float, list[Any]] | None = None
    for c in options.c_grid:
        models = _fit_evidence(x_train, train_s.gold, c)
        probs = _predict_columns(models, x_val)
        grid = options.evidence_thresholds
        score_at = {t: _sentence_scores(val_s, probs, t)["f1_macro"] for t in grid}
        threshold, score = best_on_grid(score_at, grid)  # the model's rule: ties to 0.5
        if best is None or score > best[0]:
            best = (score, c, threshold, models)
    assert best is not None
    _, c, threshold, models = best
    probs = _predict_columns(models, vectorizer.transform(test_s.texts))
    return _sentence_scores(test_s, probs, threshold), c, threshold
