"""The sentence-evidence head learns a planted pattern, and "always none" cannot pass.

Tiny data: every post is filler plus exactly one evidence sentence (one of three criteria,
fixed wording per criterion) at a random position; the tiny random BERT must find which
sentence it is and for which criterion. Scored on held-out posts against "always none".
"""

from __future__ import annotations

import random
from pathlib import Path

import pandas as pd
import pytest

from mental_health_hpo.constants import CRITERIA
from mental_health_hpo.metrics import sentence_evidence_metrics, validation_metrics
from mental_health_hpo.model import ModelConfig
from mental_health_hpo.training import TrainerConfig, train
from mental_health_hpo.training.features import FeatureCache
from mental_health_hpo.training.inference import predict_features

_PLANTED = {
    "SLEEP_ISSUES": "I lie awake until dawn every night.",
    "FATIGUE": "I am exhausted and have no energy at all.",
    "WORTHLESSNESS": "I feel worthless and blame myself for everything.",
}
_FILLER = (
    "Work was busy this week.",
    "My cat sat on the keyboard again.",
    "The weather turned cold yesterday.",
    "I watched a film with a friend.",
    "The bus was late this morning.",
    "We cooked pasta for dinner.",
    "My phone screen cracked.",
    "The shop closed early today.",
)


def planted_table(n_posts: int, seed: int, split: str) -> pd.DataFrame:
    """Nine rows per post; the one positive criterion's span is its planted sentence."""
    rng = random.Random(seed)
    rows = []
    for index in range(n_posts):
        criterion = rng.choice(sorted(_PLANTED))
        sentences = rng.sample(_FILLER, 3)
        sentences.insert(rng.randint(0, 3), _PLANTED[criterion])
        text = " ".join(sentences)
        start = text.index(_PLANTED[criterion])
        end = start + len(_PLANTED[criterion])
        for name in CRITERIA:
            positive = name == criterion
            rows.append(
                {
                    "post_id": f"{split}_{index}",
                    "text": text,
                    "criterion": name,
                    "label": int(positive),
                    "evidence_start": start if positive else -1,
                    "evidence_end": end if positive else -1,
                    "evidence_spans": [[start, end]] if positive else [],
                    "alignment": "exact" if positive else "none",
                    "split": split,
                }
            )
    return pd.DataFrame(rows)


@pytest.mark.slow
def test_sentence_evidence_head_learns_a_planted_sentence(tiny_model_dir: Path) -> None:
    config = ModelConfig(
        encoder=str(tiny_model_dir),
        input_format="multi_label",
        max_length=64,
        stride=16,
        span_head="sentence_evidence",
        criteria_loss_weight=0.2,
        dropout=0.0,
    )
    trainer = TrainerConfig(
        epochs=12, batch_size=8, lr=2e-3, head_lr=5e-3, warmup_ratio=0.0, progress_bar=False
    )
    train_df = planted_table(48, seed=1, split="train")
    validation_df = planted_table(12, seed=2, split="validation")
    cache = FeatureCache()
    result = train(config, trainer, train_df, validation_df, feature_cache=cache)
    assert result.model is not None

    held_out = planted_table(24, seed=3, split="validation")
    features = cache.get_for_config(held_out, result.model.tokenizer, config)
    merged, _ = predict_features(
        result.model, features, batch_size=16, device=result.model.pos_weight.device
    )
    learned = validation_metrics(merged)["sentence_evidence"]
    always_none = sentence_evidence_metrics(
        list(merged["gold_sentences"]),
        [[] for _ in range(len(merged))],
        list(merged["criterion"]),
        list(merged["label"]),
    )
    assert always_none["f1_macro"] == 0.0
    assert learned["n_evidence_sentences"] == 24  # one gold sentence per held-out post
    assert learned["f1_macro"] >= 0.8, learned
    assert learned["f1_macro"] >= always_none["f1_macro"] + 0.8
