"""Report figures: confusion matrices, PR curves and evidence-span examples.

Matplotlib figures and an HTML string are returned, never written: the Kedro catalog (and so
MLflow) decides where they go. Figures are built with ``matplotlib.figure.Figure`` rather than
pyplot: no GUI backend, no global figure registry to leak into (headless and thread-safe).
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from mental_health_hpo.constants import CRITERIA
from mental_health_hpo.metrics import average_precision


def confusion_matrices_figure(
    per_criterion: Sequence[Mapping[str, Any]], title: str = ""
) -> Figure:
    """A 3x3 grid, one 2x2 confusion matrix ``[[tn, fp], [fn, tp]]`` per criterion."""
    columns = 3
    rows = max(1, math.ceil(len(per_criterion) / columns))
    figure = Figure(figsize=(3.2 * columns, 3.0 * rows))
    axes = figure.subplots(rows, columns, squeeze=False)
    for index, ax in enumerate(axes.flat):
        if index >= len(per_criterion):
            ax.axis("off")
            continue
        entry = per_criterion[index]
        matrix = np.asarray(entry["confusion_matrix"], dtype=float)
        ax.imshow(matrix, cmap="Blues", vmin=0, vmax=max(1.0, float(matrix.max())))
        for (i, j), value in np.ndenumerate(matrix):
            ax.text(j, i, f"{int(value)}", ha="center", va="center", fontsize=11)
        ax.set_xticks([0, 1], ["pred 0", "pred 1"])
        ax.set_yticks([0, 1], ["gold 0", "gold 1"])
        ax.set_title(f"{entry['id']}\nF1 {float(entry['f1']):.3f}", fontsize=9)
    figure.suptitle(title or "Confusion matrix per criterion")
    figure.tight_layout()
    return figure


def pr_curve(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Recall and precision at each distinct score threshold (descending), starting at (0, 1)."""
    y = np.asarray(labels, dtype=np.int64)
    s = np.asarray(scores, dtype=np.float64)
    positives = int(y.sum())
    if positives == 0 or len(y) == 0:
        return np.array([0.0]), np.array([1.0])
    order = np.argsort(-s, kind="mergesort")
    y, s = y[order], s[order]
    last_of_tie = np.r_[np.flatnonzero(np.diff(s) != 0), len(s) - 1]
    tps = np.cumsum(y)[last_of_tie]
    precision = tps / (last_of_tie + 1)
    recall = tps / positives
    return np.r_[0.0, recall], np.r_[1.0, precision]


def pr_curves_figure(merged: pd.DataFrame, title: str = "") -> Figure:
    """Precision-recall curve per criterion (average precision in the legend)."""
    figure = Figure(figsize=(7.0, 5.5))
    ax = figure.subplots()
    for criterion in CRITERIA:
        rows = merged[merged["criterion"] == criterion]
        if rows.empty:
            continue
        labels = rows["label"].to_numpy()
        probs = rows["prob"].to_numpy()
        if int(labels.sum()) == 0:
            ax.plot([], [], label=f"{criterion} (no positives)")
            continue
        recall, precision = pr_curve(labels, probs)
        ap = average_precision(labels, probs)
        ax.step(recall, precision, where="post", label=f"{criterion} (AP {ap:.3f})")
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_xlim(0.0, 1.0)
    ax.set_ylim(0.0, 1.05)
    ax.set_title(title or "Precision-recall per criterion")
    ax.legend(fontsize=7, loc="lower left")
    figure.tight_layout()
    return figure


def _highlight(text: str, start: int, end: int, css: str) -> str:
    if start < 0 or end <= start:
        return html.escape(text)
    return (
        html.escape(text[:start])
        + f'<mark class="{css}">'
        + html.escape(text[start:end])
        + "</mark>"
        + html.escape(text[end:])
    )


def select_span_examples(merged: pd.DataFrame, n: int = 10) -> pd.DataFrame:
    """Up to ``n`` pairs worth reading: gold-evidence pairs first, then predicted-evidence ones.

    Deterministic (sorted by post and criterion), so reruns show the same examples.
    """
    has_gold = merged["gold_spans"].map(len) > 0
    has_pred = merged["pred_start"].astype(int) >= 0
    ordered = merged.assign(_rank=np.where(has_gold, 0, np.where(has_pred, 1, 2)))
    ordered = ordered[ordered["_rank"] < 2].sort_values(["_rank", "post_id", "criterion"])
    return ordered.drop(columns="_rank").head(max(0, n))


def span_examples_html(merged: pd.DataFrame, n: int = 10, title: str = "") -> str:
    """A small HTML page: post text with the gold (green) and predicted (orange) spans marked."""
    rows = []
    for row in select_span_examples(merged, n).itertuples(index=False):
        text = str(row.text)
        gold = list(row.gold_spans)
        gold_start, gold_end = (int(gold[0][0]), int(gold[0][1])) if gold else (-1, -1)
        pred_start, pred_end = int(row.pred_start), int(row.pred_end)
        rows.append(
            "<tr>"
            f"<td>{html.escape(str(row.post_id))}</td>"
            f"<td>{html.escape(str(row.criterion))}</td>"
            f"<td>{int(row.label)}</td>"
            f"<td>{float(row.prob):.3f}</td>"
            f"<td>{_highlight(text, gold_start, gold_end, 'gold')}</td>"
            f"<td>{_highlight(text, pred_start, pred_end, 'pred')}</td>"
            "</tr>"
        )
    body = (
        "\n".join(rows) or '<tr><td colspan="6">no pair with gold or predicted evidence</td></tr>'
    )
    heading = html.escape(title or "Evidence-span examples")
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8">'
        f"<title>{heading}</title>"
        "<style>body{font-family:sans-serif}td{vertical-align:top;padding:4px;"
        "border-bottom:1px solid #ddd}mark.gold{background:#b7e4b0}"
        "mark.pred{background:#ffd59e}</style></head><body>"
        f"<h2>{heading}</h2>"
        '<p><mark class="gold">gold evidence</mark> <mark class="pred">predicted evidence</mark>'
        "</p><table><tr><th>post</th><th>criterion</th><th>label</th><th>prob</th>"
        "<th>gold</th><th>prediction</th></tr>\n"
        f"{body}\n</table></body></html>\n"
    )
