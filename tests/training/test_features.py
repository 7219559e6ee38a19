"""Features: windows, span targets past the first window, merging, cache, batching, padding."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from transformers import AutoTokenizer

from mental_health_hpo.constants import CRITERIA
from mental_health_hpo.model import IGNORE_INDEX
from mental_health_hpo.model.span_heads import MASKED_LOGIT
from mental_health_hpo.training.batching import DynamicPaddingCollator, LengthGroupedSampler
from mental_health_hpo.training.features import (
    FeatureCache,
    WindowFeatures,
    build_features,
    char_span_to_tokens,
)
from mental_health_hpo.training.windows import (
    DecodedWindows,
    decode_window_outputs,
    merge_window_predictions,
)

MAX_LENGTH, STRIDE = 64, 16
EVIDENCE = "I cannot sleep at night anymore."
FILLER = " ".join(f"Today I walked to the store number {i}." for i in range(30))
LONG_POST = f"{FILLER} {EVIDENCE} The end."
SHORT_POST = "Nothing is fun anymore. The bus was late."


def model_input(posts: dict[str, tuple[str, dict[str, str | None]]]) -> pd.DataFrame:
    """Data-contract rows; a criterion mapped to None is a positive without an aligned span."""
    rows = []
    for post_id, (text, evidence) in posts.items():
        for criterion in CRITERIA:
            positive = criterion in evidence
            sentence = evidence.get(criterion)
            start = text.index(sentence) if sentence else -1
            end = start + len(sentence) if sentence else -1
            rows.append(
                {
                    "post_id": post_id,
                    "text": text,
                    "criterion": criterion,
                    "label": int(positive),
                    "evidence_start": start,
                    "evidence_end": end,
                    "evidence_spans": [[start, end]] if sentence else [],
                    "alignment": "exact" if sentence else ("unaligned" if positive else "none"),
                }
            )
    return pd.DataFrame(rows)


TABLE = model_input(
    {
        "long": (LONG_POST, {"SLEEP_ISSUES": EVIDENCE}),
        "short": (SHORT_POST, {"ANHEDONIA": "Nothing is fun anymore.", "FATIGUE": None}),
    }
)


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir: Path) -> Any:
    return AutoTokenizer.from_pretrained(str(tiny_model_dir))


@pytest.fixture(scope="module", params=["binary_pairs", "multi_label"])
def features(request: pytest.FixtureRequest, tokenizer: Any) -> WindowFeatures:
    return build_features(
        TABLE, tokenizer, input_format=request.param, max_length=MAX_LENGTH, stride=STRIDE
    )


def label_column(features: WindowFeatures, criterion: str) -> int:
    return 0 if features.input_format == "binary_pairs" else CRITERIA.index(criterion)


def windows_of(features: WindowFeatures, post_id: str, criterion: str) -> list[int]:
    return [
        w
        for w in range(len(features))
        if features.window_post_ids[w] == post_id and criterion in features.window_criteria(w)
    ]


def test_long_post_evidence_lands_in_a_later_window(features: WindowFeatures) -> None:
    windows = windows_of(features, "long", "SLEEP_ISSUES")
    assert len(windows) > 2, "the long post must need several windows"
    column = label_column(features, "SLEEP_ISSUES")
    holding = [w for w in windows if features.start_positions[w, column] > 0]
    assert holding and holding[0] != windows[0]
    for w in windows:
        assert len(features.input_ids[w]) <= MAX_LENGTH
        if w not in holding:
            assert features.start_positions[w, column] == 0  # the null position
    window = holding[0]
    offsets = features.offsets[window]
    start, end = features.start_positions[window, column], features.end_positions[window, column]
    assert LONG_POST[offsets[start, 0] : offsets[end, 1]] == EVIDENCE
    sentence = features.sentence_targets[window, column] - 1
    assert sentence >= 0
    assert sentence + features.window_first_sentence[window] == 30  # after 30 filler sentences
    assert set(np.flatnonzero(features.sentence_ids[window] == sentence)) >= set(
        range(start, end + 1)
    )


def test_pairs_put_the_criterion_first_and_the_post_second(
    features: WindowFeatures, tokenizer: Any
) -> None:
    window = windows_of(features, "short", "ANHEDONIA")[0]
    context = features.context_mask[window]
    assert not context[0]
    assert (features.sentence_ids[window] >= 0).tolist() == context.tolist()
    post_tokens = tokenizer.decode(features.input_ids[window][context])
    assert post_tokens.startswith("nothing is fun")
    if features.input_format == "binary_pairs":
        assert features.labels.shape[1] == 1
        first = tokenizer.decode(features.input_ids[window][1 : np.flatnonzero(context)[0] - 1])
        assert first.startswith("the person has lost interest")
    else:
        assert features.labels.shape[1] == len(CRITERIA)


def test_unaligned_positive_is_ignored_not_taught_as_no_evidence(features: WindowFeatures) -> None:
    window = windows_of(features, "short", "FATIGUE")[0]
    column = label_column(features, "FATIGUE")
    assert features.labels[window, column] == 1
    assert features.start_positions[window, column] == IGNORE_INDEX
    assert features.sentence_targets[window, column] == IGNORE_INDEX


def oracle_outputs(batch: dict[str, torch.Tensor], head: str) -> dict[str, torch.Tensor]:
    """Logits that put all mass on the gold targets (null when the span is elsewhere)."""
    size, length = batch["input_ids"].shape
    labels = batch["labels"].shape[1]
    starts = batch["start_positions"].clamp(min=0)
    ends = batch["end_positions"].clamp(min=0)
    outputs = {"criteria_logits": (batch["labels"] * 8 - 4)}
    if head == "sentence_reranker":
        count = int(batch["sentence_ids"].max()) + 1
        logits = torch.full((size, labels, 1 + count), -5.0)
        logits.scatter_(2, batch["sentence_targets"].clamp(min=0).unsqueeze(-1), 5.0)
        outputs["sentence_logits"] = logits
        return outputs
    start = torch.full((size, labels, length), MASKED_LOGIT)
    end = torch.full((size, labels, length), MASKED_LOGIT)
    context = batch["context_mask"].unsqueeze(1).expand(size, labels, length)
    start[context] = -5.0
    end[context] = -5.0
    start[..., 0], end[..., 0] = 0.0, 0.0
    start.scatter_(2, starts.unsqueeze(-1), 5.0)
    end.scatter_(2, ends.unsqueeze(-1), 5.0)
    outputs["start_logits"], outputs["end_logits"] = start, end
    return outputs


@pytest.mark.parametrize("head", ["start_end_linear", "sentence_reranker"])
def test_merging_windows_returns_the_char_span_past_the_first_window(
    features: WindowFeatures, tokenizer: Any, head: str
) -> None:
    collate = DynamicPaddingCollator(tokenizer.pad_token_id)
    sampler = LengthGroupedSampler(features.lengths, batch_size=4, shuffle=False)
    decoded = []
    for indices in sampler:
        batch = collate([features[i] for i in indices])
        decoded.append(decode_window_outputs(oracle_outputs(batch, head), batch, 64))
    merged = merge_window_predictions(features, DecodedWindows.concat(decoded))
    assert len(merged) == len(TABLE)
    row = merged.set_index(["post_id", "criterion"]).loc[("long", "SLEEP_ISSUES")]
    assert row["prob"] > 0.9 and row["pred_label"] == 1
    assert row["pred_text"] == EVIDENCE
    assert (row["pred_start"], row["pred_end"]) == tuple(row["gold_spans"][0])
    negatives = merged[(merged["label"] == 0)]
    assert (negatives["pred_start"] == -1).all() and (negatives["pred_text"] == "").all()
    assert (negatives["prob"] < 0.1).all()


def test_merge_takes_max_probability_and_best_margin(features: WindowFeatures) -> None:
    windows = windows_of(features, "long", "SLEEP_ISSUES")
    column = label_column(features, "SLEEP_ISSUES")
    count, labels = len(windows), features.num_labels
    probs = np.full((count, labels), 0.1)
    probs[1, column] = 0.7
    span_start = np.full((count, labels), 1)
    span_end = np.full((count, labels), 2)
    span_score = np.zeros((count, labels))
    span_score[0, column] = 3.0  # higher span score, but its null score is higher still
    span_score[-1, column] = 1.0
    null_score = np.full((count, labels), 0.5)
    null_score[0, column] = 10.0
    decoded = DecodedWindows(
        np.asarray(windows), probs, span_start, span_end, span_score, null_score
    )
    merged = merge_window_predictions(features, decoded).set_index(["post_id", "criterion"])
    row = merged.loc[("long", "SLEEP_ISSUES")]
    assert row["prob"] == pytest.approx(0.7)
    last = features.offsets[windows[-1]]
    assert (row["pred_start"], row["pred_end"]) == (last[1, 0], last[2, 1])
    assert row["span_margin"] == pytest.approx(0.5)
    gated = merge_window_predictions(features, decoded, threshold=0.9, gate_span_on_label=True)
    assert (
        gated.set_index(["post_id", "criterion"]).loc[("long", "SLEEP_ISSUES")]["pred_start"] == -1
    )


def test_char_span_to_tokens_needs_the_whole_span_inside() -> None:
    offsets = np.array([[-1, -1], [0, 2], [3, 7], [8, 10], [-1, -1]])
    context = np.array([False, True, True, True, False])
    assert char_span_to_tokens(offsets, context, 3, 10) == (2, 3)
    assert char_span_to_tokens(offsets, context, 4, 6) == (2, 2)
    assert char_span_to_tokens(offsets, context, 5, 12) is None
    assert char_span_to_tokens(offsets, context, -1, -1) is None


def test_stride_without_room_names_the_field(tokenizer: Any) -> None:
    with pytest.raises(ValueError, match="stride"):
        build_features(TABLE, tokenizer, input_format="binary_pairs", max_length=32, stride=16)


def test_feature_cache_reuses_in_memory_and_on_disk(tokenizer: Any, tmp_path: Path) -> None:
    cache = FeatureCache(tmp_path)
    kwargs: dict[str, Any] = {"input_format": "multi_label", "max_length": 48, "stride": 8}
    first = cache.get(TABLE, tokenizer, **kwargs)
    assert cache.get(TABLE, tokenizer, **kwargs) is first
    assert (cache.misses, cache.hits) == (1, 1)
    fresh = FeatureCache(tmp_path)
    from_disk = fresh.get(TABLE, tokenizer, **kwargs)
    assert (fresh.misses, fresh.hits) == (0, 1)
    assert all(
        np.array_equal(a, b) for a, b in zip(first.input_ids, from_disk.input_ids, strict=True)
    )
    fresh.get(TABLE, tokenizer, **{**kwargs, "max_length": 56})
    fresh.get(TABLE.assign(label=1 - TABLE["label"]), tokenizer, **kwargs)
    assert fresh.misses == 2


def test_length_grouped_sampler_is_deterministic_complete_and_resumable() -> None:
    lengths = [int(x) for x in np.random.default_rng(0).integers(5, 500, size=103)]
    sampler = LengthGroupedSampler(lengths, batch_size=8, seed=7, epoch=2, group_factor=4)
    plan = list(sampler)
    assert len(plan) == len(sampler) == 13
    assert sorted(i for batch in plan for i in batch) == list(range(103))
    assert plan == LengthGroupedSampler(lengths, 8, seed=7, epoch=2, group_factor=4).batches()
    assert plan != LengthGroupedSampler(lengths, 8, seed=7, epoch=3, group_factor=4).batches()
    spread = np.mean([np.ptp([lengths[i] for i in batch]) for batch in plan])
    assert spread < np.ptp(lengths) / 2  # grouped: similar lengths share a batch

    interrupted = LengthGroupedSampler(lengths, 8, seed=7, epoch=2, group_factor=4)
    iterator = iter(interrupted)
    done = [next(iterator) for _ in range(5)]
    state = interrupted.state_dict()
    assert state == {"seed": 7, "epoch": 2, "position": 5}
    resumed = LengthGroupedSampler(lengths, 8, seed=0, group_factor=4)
    resumed.load_state_dict(state)
    assert done + list(resumed) == plan
    assert list(LengthGroupedSampler(lengths, 8, 7, 2, group_factor=4, start_batch=12)) == plan[12:]


def test_collator_pads_to_the_longest_in_the_batch(
    features: WindowFeatures, tokenizer: Any
) -> None:
    order = np.argsort(features.lengths)
    short = [features[int(i)] for i in order[:2]]
    batch = DynamicPaddingCollator(tokenizer.pad_token_id)(short)
    longest = max(len(item["input_ids"]) for item in short)
    assert batch["input_ids"].shape == (2, longest)
    assert longest < MAX_LENGTH
    assert batch["attention_mask"].sum(dim=1).tolist() == [len(i["input_ids"]) for i in short]
    assert batch["context_mask"].dtype == torch.bool
    assert (batch["sentence_ids"][batch["attention_mask"] == 0] == -1).all()
    assert batch["labels"].dtype == torch.float32
    assert batch["start_positions"].shape == (2, features.num_labels)


def test_sentence_evidence_targets_mark_the_gold_sentence_in_every_window(
    features: WindowFeatures,
) -> None:
    """The long post's evidence is sentence 30; an unaligned positive is unknown, not 'none'."""
    pairs = features.pairs.set_index(["post_id", "criterion"])
    assert pairs.loc[("long", "SLEEP_ISSUES"), "gold_sentences"] == [30]
    assert pairs.loc[("short", "ANHEDONIA"), "gold_sentences"] == [0]
    assert pairs.loc[("short", "FATIGUE"), "gold_sentences"] == []
    seen_gold = 0
    for window in range(len(features)):
        target = features.sentence_evidence[window]
        criteria = features.window_criteria(window)
        local_count = int(features.sentence_ids[window].max()) + 1
        assert target.shape == (len(criteria), local_count)
        post_id, first = features.window_post_ids[window], features.window_first_sentence[window]
        for row, criterion in enumerate(criteria):
            if (post_id, criterion) == ("short", "FATIGUE"):
                assert (target[row] == -1).all()  # unaligned positive: ignored
                continue
            gold = pairs.loc[(post_id, criterion), "gold_sentences"]
            expected = [int(first + s in gold) for s in range(local_count)]
            assert target[row].tolist() == expected
            seen_gold += sum(expected)
    assert seen_gold >= 2


def test_span_predictions_map_to_sentences_and_sentence_probs_take_the_window_max(
    features: WindowFeatures,
) -> None:
    count, labels = len(features), features.num_labels
    decoded = DecodedWindows(
        np.arange(count),
        np.full((count, labels), 0.9),
        np.full((count, labels), -1),
        np.full((count, labels), -1),
        np.zeros((count, labels)),
        np.zeros((count, labels)),
    )
    merged = merge_window_predictions(features, decoded)
    assert all(p == [] for p in merged["pred_sentences"])  # a span head that found nothing

    probs = []
    for window in range(count):
        local = int(features.sentence_ids[window].max()) + 1
        values = np.full((labels, local), 0.1)
        first = features.window_first_sentence[window]
        if features.window_post_ids[window] == "long" and first <= 30 < first + local:
            rows = [
                i for i, c in enumerate(features.window_criteria(window)) if c == "SLEEP_ISSUES"
            ]
            values[rows, 30 - first] = 0.8 if window % 2 else 0.6
        probs.append(values)
    decoded.sentence_probs = probs
    merged = merge_window_predictions(features, decoded).set_index(["post_id", "criterion"])
    row = merged.loc[("long", "SLEEP_ISSUES")]
    assert row["pred_sentences"] == [30]
    assert max(row["sentence_probs"]) in (0.6, 0.8)
    assert merged.loc[("short", "ANHEDONIA"), "pred_sentences"] == []


def test_an_empty_split_names_the_setting_to_fix(tokenizer: Any) -> None:
    with pytest.raises(ValueError, match=r"data_ingest\.splits"):
        build_features(
            TABLE.iloc[0:0], tokenizer, input_format="multi_label", max_length=64, stride=16
        )
