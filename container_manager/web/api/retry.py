"""The JSON API's retry of a job: ``POST api/jobs/<id>/retry/`` runs it again as a new job.

The rules are ``engine.retry.retry_job``'s; this module maps them to HTTP answers.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.http import HttpRequest, JsonResponse

from container_manager.engine.retry import retry_job
from container_manager.web import quotas
from container_manager.web.api.jobs import _job_json, _job_or_none, _not_found, _require, api_view
from container_manager.web.auth import ApiCaller
from container_manager.web.errors import error


@api_view("POST")
def job_retry_view(request: HttpRequest, caller: ApiCaller, job_id: str) -> JsonResponse:
    """Retry a failed, timed-out or cancelled job: 201 with the job that re-runs it.

    Needs the ``add`` permission on container jobs. The new job is the caller's; the jobs
    cancelled because of this one come back with it (``engine.retry``). A job the caller may
    not see answers 404 like an unknown id; one that cannot be retried (still live, completed,
    already retried, a child of an array) a 409 naming the field. A user's token is held to
    its quotas (429).
    """
    _require(caller, "add")
    job = _job_or_none(caller, job_id, attempts=False)
    if job is None:
        return _not_found(job_id)
    try:
        new = retry_job(job, caller.user, limited=quotas.applies(caller))
    except ValidationError as exc:
        return error(409, "; ".join(exc.messages), fields=exc.message_dict)
    return JsonResponse(_job_json(request, _job_or_none(caller, str(new.pk))), status=201)
