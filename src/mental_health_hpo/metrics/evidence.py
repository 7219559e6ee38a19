"""Evidence-binding metrics over (post, criterion) pairs, SQuAD v2 style; never NaN.

Which pairs count:

- ``exact_match``, ``f1`` (token F1) and ``char_f1``: pairs with at least one gold span; the
  best score over the gold spans is taken; a "no evidence" prediction scores 0.
- ``null_span_accuracy``: pairs without a gold span; 1 when the prediction is "no evidence".
- An empty group gives 0.0 (and ``n_with_evidence`` / ``n_without_evidence`` say it was empty).

Callers decide which pairs have no gold span: ``summary.validation_metrics`` drops positive
pairs whose evidence could not be aligned (``alignment == "unaligned"``) from both groups.
Text normalisation for EM and token F1 is SQuAD's: lower case, drop punctuation and the
articles a/an/the, collapse white space.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Sequence

Span = tuple[int, int]

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCTUATION = frozenset(string.punctuation)


def normalize_answer(text: str) -> str:
    """SQuAD normalisation: lower, no punctuation, no articles, single spaces."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(prediction: str, gold: str) -> float:
    """1.0 when the normalised texts are equal."""
    return float(normalize_answer(prediction) == normalize_answer(gold))


def token_f1(prediction: str, gold: str) -> float:
    """SQuAD token F1 of normalised texts; 1.0 when both are empty, 0.0 when one is."""
    predicted, expected = normalize_answer(prediction).split(), normalize_answer(gold).split()
    if not predicted or not expected:
        return float(predicted == expected)
    common = sum((Counter(predicted) & Counter(expected)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(predicted), common / len(expected)
    return 2 * precision * recall / (precision + recall)


def char_f1(prediction: Span | None, gold: Span) -> float:
    """F1 of the character offsets covered by two [start, end) spans; 0.0 for no prediction."""
    if prediction is None or prediction[1] <= prediction[0] or gold[1] <= gold[0]:
        return 0.0
    overlap = max(0, min(prediction[1], gold[1]) - max(prediction[0], gold[0]))
    if overlap == 0:
        return 0.0
    precision = overlap / (prediction[1] - prediction[0])
    recall = overlap / (gold[1] - gold[0])
    return 2 * precision * recall / (precision + recall)


def _as_span(span: Sequence[int] | None) -> Span | None:
    if span is None or len(span) != 2 or int(span[0]) < 0 or int(span[1]) <= int(span[0]):
        return None
    return (int(span[0]), int(span[1]))


def evidence_metrics(
    gold_spans: Sequence[Sequence[Sequence[int]]],
    predicted_spans: Sequence[Sequence[int] | None],
    texts: Sequence[str],
) -> dict[str, float]:
    """``exact_match``, ``f1``, ``char_f1``, ``null_span_accuracy``, the two group sizes and
    ``share_without_evidence`` (the share of pairs an "always none" head gets right).

    ``gold_spans[i]``: the gold [start, end) spans of pair i (empty: no evidence);
    ``predicted_spans[i]``: [start, end), or None / (-1, -1) for "no evidence";
    ``texts[i]``: the post the offsets point into.
    """
    if not len(gold_spans) == len(predicted_spans) == len(texts):
        raise ValueError("gold_spans, predicted_spans and texts must have the same length")
    ems: list[float] = []
    f1s: list[float] = []
    char_f1s: list[float] = []
    nulls: list[float] = []
    for golds_raw, predicted_raw, text in zip(gold_spans, predicted_spans, texts, strict=True):
        golds = [g for g in (_as_span(s) for s in golds_raw) if g is not None]
        predicted = _as_span(predicted_raw)
        if not golds:
            nulls.append(float(predicted is None))
            continue
        if predicted is None:
            ems.append(0.0)
            f1s.append(0.0)
            char_f1s.append(0.0)
            continue
        predicted_text = text[predicted[0] : predicted[1]]
        ems.append(max(exact_match(predicted_text, text[s:e]) for s, e in golds))
        f1s.append(max(token_f1(predicted_text, text[s:e]) for s, e in golds))
        char_f1s.append(max(char_f1(predicted, gold) for gold in golds))
    return {
        "exact_match": _mean(ems),
        "f1": _mean(f1s),
        "char_f1": _mean(char_f1s),
        "null_span_accuracy": _mean(nulls),
        "n_with_evidence": float(len(ems)),
        "n_without_evidence": float(len(nulls)),
        # What "always none" scores on every pair: null_span_accuracy 1.0 is no achievement.
        "share_without_evidence": len(nulls) / (len(ems) + len(nulls)) if ems or nulls else 0.0,
    }


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0
