"""Operations: secret masking, structured JSON-lines logs, hub authentication.

Framework-free (no kedro, no mlflow): the Kedro shell and the study runner call into it.
"""

from mental_health_hpo.ops.hub_auth import (
    HubAuthError,
    HubAuthGate,
    check_hub_token,
    hub_offline,
    is_auth_error,
    needs_hub,
)
from mental_health_hpo.ops.logs import (
    ContextFilter,
    CriticalToStdoutHandler,
    JsonFormatter,
    attach_jsonl_file,
    current_context,
    detach_handler,
    log_context,
    set_context,
    study_logging,
    trial_logging,
)
from mental_health_hpo.ops.masking import (
    MaskingFilter,
    is_secret_name,
    mask_named,
    mask_obj,
    mask_secrets,
)

__all__ = [
    "ContextFilter",
    "CriticalToStdoutHandler",
    "HubAuthError",
    "HubAuthGate",
    "JsonFormatter",
    "MaskingFilter",
    "attach_jsonl_file",
    "check_hub_token",
    "current_context",
    "detach_handler",
    "hub_offline",
    "is_auth_error",
    "is_secret_name",
    "log_context",
    "mask_named",
    "mask_obj",
    "mask_secrets",
    "needs_hub",
    "set_context",
    "study_logging",
    "trial_logging",
]
