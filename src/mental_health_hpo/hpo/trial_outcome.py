"""How one call of the objective ended: an Optuna state to ``tell``, or no outcome at all.

Apart from the study loop (:mod:`.runner`) because it is the one place that decides what a
trial's ending *means*: completed (a timed-out trial with a full epoch too), pruned, failed
(recorded, the study goes on; a trial timed out before its first epoch too), or not an
outcome (a lost lease, an interrupt, a full disk, a refused hub), where the trial stays RUNNING
and resumes later. The loop only acts on that decision: tell, release, stop.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from optuna.trial import TrialState

from mental_health_hpo.checkpointing import InsufficientDiskSpaceError
from mental_health_hpo.hpo.trial_context import LeaseLost, Objective, TrialContext, TrialStopped
from mental_health_hpo.ops import HubAuthGate, is_auth_error, mask_secrets
from mental_health_hpo.workspace import TrialTakenOverError

logger = logging.getLogger(__name__)

#: The trial folder's final state for each Optuna state; any other is "failed".
FOLDER_STATE = {TrialState.COMPLETE: "completed", TrialState.PRUNED: "pruned"}


@dataclass(frozen=True)
class TrialOutcome:
    """What to tell the study: the state, its value, the ``end_reason`` and a failure's error."""

    state: TrialState
    value: float | None
    reason: str
    error: str | None = None


def call_objective(
    objective: Objective, context: TrialContext, auth_gate: HubAuthGate | None
) -> TrialOutcome:
    """Call ``objective`` once; its outcome, or raise when the trial must stay RUNNING.

    Raised through: a lost lease, an interrupt, a full disk (``storage_exhausted``) and, with
    ``auth_gate``, a hub authentication error. Any other exception is a failed trial, its
    message masked of secrets.
    """
    try:
        value = float(objective(context))
        return TrialOutcome(TrialState.COMPLETE, value, "completed")
    except TrialStopped as stopped:
        logger.info("Trial %d stopped: %s", context.trial.number, stopped.reason)
        context.trial.set_user_attr("stopped", stopped.reason)
        if context.timed_out:
            # Out of time is no verdict on the configuration: with a full epoch its best value
            # counts (COMPLETE, eligible to be best); without one there is no value, and FAIL
            # keeps the samplers from reading the slowness as a bad score (they rank PRUNED).
            if stopped.value is not None:
                return TrialOutcome(TrialState.COMPLETE, stopped.value, stopped.reason)
            return TrialOutcome(TrialState.FAIL, None, stopped.reason, stopped.reason)
        return TrialOutcome(TrialState.PRUNED, stopped.value, stopped.reason)
    except (LeaseLost, KeyboardInterrupt, SystemExit):
        raise  # not an outcome: the trial stays RUNNING
    except Exception as error:
        if storage_exhausted(error):
            raise
        if _caused_by(error, TrialTakenOverError):
            # A save refused: another worker commits to this trial now. Its outcome is theirs.
            logger.warning("Trial %d: %s: %s", context.trial.number, type(error).__name__, error)
            raise LeaseLost(
                f"trial {context.trial.number} was taken over by another worker"
            ) from error
        if auth_gate is not None and is_auth_error(error):
            raise  # not a failure: the trial stays RUNNING and resumes once the gate opens
        message = mask_secrets(f"{type(error).__name__}: {error}")
        logger.error("Trial %d failed: %s", context.trial.number, message, exc_info=True)
        return TrialOutcome(TrialState.FAIL, None, f"failed: {message}"[:500], message)


def storage_exhausted(error: BaseException) -> bool:
    """A full disk, raised directly or as the cause of a checkpoint error."""
    return _caused_by(error, InsufficientDiskSpaceError)


def _caused_by(error: BaseException, kind: type[BaseException]) -> bool:
    """``error`` is a ``kind``, or was raised from one (a background save's error, re-raised)."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, kind):
            return True
        seen = seen.__cause__ or seen.__context__
    return False
