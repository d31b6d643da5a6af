"""Lambda entry points of the functions project: the scheduled sweep and the SQS step consumer.

zappa_settings.json names them in ``events``; Django is set up once per container, at first use.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

logger = logging.getLogger(__name__)

_setup_lock = threading.Lock()
_setup_done = False


def sweep(event: dict[str, Any] | None = None, context: Any = None) -> dict[str, int]:
    """The scheduled event: send every step that is due again; returns counts per kind."""
    _setup()
    from django.db import close_old_connections

    from container_manager.engine import steps

    close_old_connections()
    try:
        return steps.sweep()
    except TypeError as exc:
        # zappa retries a function that raised TypeError with fewer arguments: never let one out.
        raise RuntimeError(f"sweep failed: {exc}") from exc
    finally:
        close_old_connections()


def sqs_batch(event: dict[str, Any], context: Any = None) -> dict[str, list[dict[str, str]]]:
    """Run the step of each SQS record; the records that failed are reported for redelivery.

    A record that cannot be read (not JSON, unknown step, no job id) or whose
    step raised is listed in ``batchItemFailures``; the others are deleted by
    Lambda. The event source mapping needs ``ReportBatchItemFailures`` on.
    The same queue carries ECS task state changes from an EventBridge rule:
    those records harvest the job whose task stopped (``container_manager.events.ecs``).
    """
    _setup()
    failures = []
    for record in event.get("Records") or []:
        message_id = record.get("messageId", "")
        run = _run_task_event if _is_platform_event(record.get("body")) else _run_record
        if not run(record):
            failures.append({"itemIdentifier": message_id})
    return {"batchItemFailures": failures}


def _run_record(record: dict[str, Any]) -> bool:
    from django.db import close_old_connections

    from container_manager.dispatch.sqs import decode_message
    from container_manager.engine import runner

    message_id = record.get("messageId", "?")
    try:
        step, job_id = decode_message(record.get("body"))
        if step == "sweep" or not runner.known(step):
            raise ValueError(f"unknown step {step!r}")
    except ValueError as exc:
        logger.error("SQS message %s rejected: %s", message_id, exc)
        return False
    close_old_connections()
    try:
        outcome = runner.run(step, job_id)
    finally:
        close_old_connections()
    logger.info("%s of job %s (SQS message %s): %s", step, job_id, message_id, outcome)
    return outcome.done


def _is_platform_event(body: Any) -> bool:
    """An EventBridge event (step messages never carry ``detail-type``)."""
    return isinstance(body, str) and '"detail-type"' in body


def _run_task_event(record: dict[str, Any]) -> bool:
    from django.db import close_old_connections

    from container_manager.events import ecs

    message_id = record.get("messageId", "?")
    try:
        event = ecs.from_body(record.get("body"))
        if event is None:
            raise ValueError("not an ECS Task State Change event")
    except ValueError as exc:
        logger.error("SQS message %s rejected: %s", message_id, exc)
        return False
    close_old_connections()
    try:
        outcome = ecs.handle(event)
    except Exception:  # noqa: BLE001 - one failed event must not fail the rest of the batch
        logger.exception("ECS event for %s (SQS message %s) raised", event.task_arn, message_id)
        return False
    finally:
        close_old_connections()
    logger.info("ECS event for task %s v%s: %s", event.task_arn, event.version, outcome)
    return outcome.done


def _setup() -> None:
    """``django.setup()`` the first time a function runs in this container, unless done already."""
    global _setup_done
    with _setup_lock:
        if _setup_done:
            return
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "functions.settings")
        import django
        from django.apps import apps

        if not apps.ready:  # zappa's web handler or a test runner may have set Django up
            django.setup()
        _setup_done = True
