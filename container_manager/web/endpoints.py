"""HTTPS push targets: ``POST steps/<step>/``, ``POST sweep/`` and ``POST events/cloudrun/``.

2xx when the step is done or there was nothing to do; 5xx only when a retry can help.
"""

from __future__ import annotations

import json
import logging
import uuid

from django.db import DatabaseError, InterfaceError, OperationalError
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from container_manager.engine import runner, steps
from container_manager.web.auth import AuthError, authenticate_push, forget_expired_signatures
from container_manager.web.errors import error as _error

logger = logging.getLogger(__name__)

#: Errors worth a retry of the push: the database or the platform was away for a moment.
TRANSIENT_ERRORS = (OperationalError, InterfaceError)


@csrf_exempt
@require_POST
def step_view(request: HttpRequest, step: str) -> JsonResponse:
    """Run one step for the job named in the JSON body ``{"job_id": "..."}``."""
    if step == "sweep" or not runner.known(step):
        return _error(404, f"unknown step {step!r}; known: {', '.join(sorted(steps.STEPS))}")
    try:
        pusher = authenticate_push(request)
    except AuthError as exc:
        return _refused(request, exc)
    job_id = _job_id(request.body)
    if job_id is None:
        return _error(400, 'body must be JSON {"job_id": "<uuid>"}')
    outcome = runner.run(step, job_id)
    if outcome.verdict == runner.Verdict.RETRY:
        return _error(503, outcome.reason)
    if outcome.verdict == runner.Verdict.DROP:
        # A retry of this push cannot help; the row is unchanged and the sweep looks again.
        return JsonResponse({"step": step, "job_id": job_id, "result": outcome.result})
    pusher.accepted()
    return JsonResponse({"step": step, "job_id": job_id, "result": outcome.result})


@csrf_exempt
@require_POST
def sweep_view(request: HttpRequest) -> JsonResponse:
    """Run the sweep (Cloud Scheduler's target) and forget expired push signatures."""
    try:
        pusher = authenticate_push(request)
    except AuthError as exc:
        return _refused(request, exc)
    try:
        sent = steps.sweep()
        forgotten = forget_expired_signatures()
    except (DatabaseError, *TRANSIENT_ERRORS) as exc:
        logger.warning("sweep: database unavailable: %s", exc)
        return _error(503, "database unavailable, retry")
    pusher.accepted()
    return JsonResponse({"sent": sent, "signatures_forgotten": forgotten})


@csrf_exempt
@require_POST
def cloudrun_event_view(request: HttpRequest) -> JsonResponse:
    """Harvest the job whose Cloud Run execution the pushed completion log entry names.

    The body is a Pub/Sub push envelope (``container_manager.events.cloudrun``); entries
    about anything else are acknowledged and ignored.
    """
    from container_manager.events import cloudrun

    try:
        pusher = authenticate_push(request)
    except AuthError as exc:
        return _refused(request, exc)
    try:
        ended = cloudrun.parse_push(request.body)
    except ValueError as exc:
        return _error(400, str(exc))
    if ended is None:
        return JsonResponse({"result": "ignored"})
    try:
        outcome = cloudrun.handle(ended)
    except DatabaseError as exc:
        logger.warning("Cloud Run event for %s: database unavailable: %s", ended.execution, exc)
        return _error(503, "database unavailable, retry")
    if outcome.verdict == runner.Verdict.RETRY:
        return _error(503, outcome.reason)
    pusher.accepted()
    return JsonResponse({"execution": ended.execution, "result": outcome.result})


def _job_id(body: bytes) -> str | None:
    try:
        payload = json.loads(body or b"null")
        return str(uuid.UUID(str(payload["job_id"])))
    except (ValueError, TypeError, KeyError):
        return None


def _refused(request: HttpRequest, exc: AuthError) -> JsonResponse:
    logger.warning("refused %s %s: %s", request.method, request.path, exc.reason)
    return _error(exc.status, exc.reason)
