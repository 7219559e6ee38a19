"""Tokenized, windowed features from a ``model_input`` table, for either input format.

- ``binary_pairs``: one example per (post, criterion): [CLS] criterion description [SEP] post
  [SEP] (``truncation="only_second"``), one label, one span.
- ``multi_label``: one example per post: [CLS] post [SEP], nine labels, one span per criterion.

Each example becomes one or more windows (the tokenizer's overflow with ``stride``). Per window
and label the span target is the token span of the primary evidence when it lies wholly inside
the window, else the null position 0; positive pairs whose evidence could not be aligned get
``IGNORE_INDEX`` (no span loss).

Sentence-level evidence (the default formulation, as ReDSM5 annotates it): each pair's gold
spans become the post sentences they cover (``data.alignment.sentences_covered``), and each
window gets a (labels, window sentences) 0/1 target of "this sentence is evidence for this
criterion"; a positive pair whose evidence could not be aligned gets ``IGNORE_INDEX`` for every
sentence (unknown, never guessed as "none"). ``FeatureCache`` tokenizes once per
tokenizer/settings/data.

One job a module, lowest first (each imports only those above it in this list):

- :mod:`.window_features`: ``WindowFeatures``, the arrays every later stage reads;
- :mod:`.gold_table`: the gold pairs of a table (also read by the baselines);
- :mod:`.token_spans`: char spans <-> window tokens, each token's sentence;
- :mod:`.targets`: the span and sentence targets of one window;
- :mod:`.tokenization`: ``build_features``, a table into windows;
- :mod:`.cache`: ``FeatureCache`` and its content fingerprints.

Decoding and merging predictions (``training.windows``) sit above this package: they read
``WindowFeatures``, and nothing here imports them (an import-linter contract).
"""

from mental_health_hpo.training.features.cache import (
    FeatureCache,
    table_fingerprint,
    tokenizer_fingerprint,
)
from mental_health_hpo.training.features.gold_table import REQUIRED_COLUMNS, gold_evidence_table
from mental_health_hpo.training.features.token_spans import char_span_to_tokens, token_sentence_ids
from mental_health_hpo.training.features.tokenization import build_features
from mental_health_hpo.training.features.window_features import FEATURES_VERSION, WindowFeatures

__all__ = [
    "FEATURES_VERSION",
    "REQUIRED_COLUMNS",
    "FeatureCache",
    "WindowFeatures",
    "build_features",
    "char_span_to_tokens",
    "gold_evidence_table",
    "table_fingerprint",
    "token_sentence_ids",
    "tokenizer_fingerprint",
]
