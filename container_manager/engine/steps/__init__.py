"""The steps a message may name, and ``run_step``: launch, resume, check, harvest, cancel, notify.

Each step reloads its job's row and is safe to run twice; the sweep is ``engine.sweep``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from container_manager.engine import delivery
from container_manager.engine.steps.cancel import cancel
from container_manager.engine.steps.check import check
from container_manager.engine.steps.common import (
    build_launch_request,
    result_fields,
    retry_delay,
    unreachable_delay,
)
from container_manager.engine.steps.harvest import final_reason, harvest
from container_manager.engine.steps.launch import launch, resume
from container_manager.engine.sweep import sweep
from container_manager.telemetry import counters
from container_manager.telemetry import logging as telemetry_logging

__all__ = [
    "STEPS",
    "build_launch_request",
    "cancel",
    "check",
    "final_reason",
    "harvest",
    "launch",
    "register_step",
    "resume",
    "result_fields",
    "retry_delay",
    "run_step",
    "sweep",
    "unreachable_delay",
]


#: The steps a message may name: ``name -> function(job_id) -> outcome text``. ``start`` is
#: ``launch`` as a hand-over sends it (``transitions.hand_over``), for transports that rank steps.
STEPS: dict[str, Callable[[Any], str]] = {
    "launch": launch,
    "start": launch,
    "resume": resume,
    "check": check,
    "harvest": harvest,
    "cancel": cancel,
    "notify": delivery.notify,
}


def register_step(name: str, function: Callable[[Any], str]) -> None:
    """Add a step that messages may name (e.g. ``notify``); it must be idempotent like these."""
    if name == "sweep":
        raise ValueError("'sweep' is the sweep's name, not a step's")
    STEPS[name] = function


def run_step(step: str, job_id: Any) -> str:
    """Run a step by name (``"sweep"`` ignores ``job_id``); ``KeyError`` for an unknown one.

    Exceptions propagate; ``container_manager.engine.runner.run`` decides what they mean.
    """
    if step == "sweep":
        return str(sweep())
    with telemetry_logging.step_context(step, job_id):
        return counters.observed(step, STEPS[step], job_id)
