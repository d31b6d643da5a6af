"""The one step runner: run a step and decide what its outcome means for the message.

Every transport (HTTP push, SQS, local threads, inline) calls ``run`` and maps the verdict.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass
from typing import Any

from django.db import InterfaceError, OperationalError

from container_manager.engine import steps
from container_manager.executors.exceptions import ExecutorError

logger = logging.getLogger(__name__)


class Verdict(enum.StrEnum):
    """What the transport does with the message."""

    #: The step ran (or had nothing to do): acknowledge the message.
    DONE = "done"
    #: A transient failure: deliver the message again later.
    RETRY = "retry"
    #: Another delivery cannot help (unknown step, permanent error): drop it, the reason logged.
    DROP = "drop"


@dataclass(frozen=True)
class StepOutcome:
    """A step's verdict, the step's own answer (``result``) or why it failed (``reason``)."""

    verdict: Verdict
    result: str = ""
    reason: str = ""

    @property
    def done(self) -> bool:
        """True when the message may be acknowledged (done or dropped)."""
        return self.verdict != Verdict.RETRY


def known(step: str) -> bool:
    """True for a registered step name or ``"sweep"``."""
    return step == "sweep" or step in steps.STEPS


def run(step: str, job_id: Any) -> StepOutcome:
    """Run ``step`` for ``job_id`` and classify what happened; never raises.

    Transient failures (a retryable executor error, the database away, an
    unexpected exception, logged with its traceback) ask for a retry; only a
    lost or refused connection counts as the database being away: a broken
    constraint or bad SQL is a bug and is logged with its traceback;
    permanent ones (unknown step, a non-retryable executor error) are
    dropped with the reason logged: the row is unchanged and the sweep looks again.

    >>> run("no-such-step", "1").verdict
    <Verdict.DROP: 'drop'>
    """
    if not known(step):
        reason = f"unknown step {step!r}; known: {', '.join(sorted(steps.STEPS))}"
        logger.error("step %s for job %s dropped: %s", step, job_id, reason)
        return StepOutcome(Verdict.DROP, reason=reason)
    try:
        result = steps.run_step(step, job_id)
    except ExecutorError as exc:
        if exc.retryable:
            logger.warning("step %s for job %s: platform busy, retry: %s", step, job_id, exc)
            return StepOutcome(Verdict.RETRY, reason=f"platform unavailable, retry: {exc}")
        logger.error("step %s for job %s dropped: platform error: %s", step, job_id, exc)
        return StepOutcome(Verdict.DROP, result="executor-error", reason=str(exc))
    except (OperationalError, InterfaceError) as exc:
        logger.warning("step %s for job %s: database unavailable: %s", step, job_id, exc)
        return StepOutcome(Verdict.RETRY, reason="database unavailable, retry")
    except Exception as exc:  # noqa: BLE001 - a message is a hint: log, retry, the sweep backs it
        logger.exception("step %s for job %s raised", step, job_id)
        return StepOutcome(Verdict.RETRY, reason=f"{type(exc).__name__}: {exc}")
    return StepOutcome(Verdict.DONE, result=result)
