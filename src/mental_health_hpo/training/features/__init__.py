"""Tokenized, windowed features from a ``model_input`` table, for either input format.

How a table becomes windows (``binary_pairs`` or ``multi_label``, overflow with ``stride``, the
span targets) is told in :mod:`.tokenization`.

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
