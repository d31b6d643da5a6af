"""A bounded schemathesis run over the served ``cm/api/openapi.json``, offline through WSGI.

Positive and negative cases for every operation: no 5xx, nothing that contradicts the schema,
and schema-valid submits reach the success path (201) and store their row.
"""

from collections import Counter

import pytest

schemathesis = pytest.importorskip("schemathesis")

from django.core.signals import request_finished, request_started  # noqa: E402
from django.core.wsgi import get_wsgi_application  # noqa: E402
from django.db import close_old_connections  # noqa: E402
from hypothesis import HealthCheck, given  # noqa: E402
from hypothesis import settings as hypothesis_settings  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.generation import GenerationMode  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from container_manager.models import ContainerJob  # noqa: E402

pytestmark = pytest.mark.django_db

TOKEN = "fuzz-token"
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
MAX_EXAMPLES = 60


@pytest.fixture
def schema(settings, recording, mock_host):
    settings.CONTAINER_MANAGER = {**settings.CONTAINER_MANAGER, "API_TOKENS": [TOKEN]}
    settings.ALLOWED_HOSTS = ["*"]
    # As Django's test client does: the test's transaction outlives each request.
    for signal in (request_started, request_finished):
        signal.disconnect(close_old_connections)
    yield schemathesis.openapi.from_wsgi("/cm/api/openapi.json", get_wsgi_application())
    for signal in (request_started, request_finished):
        signal.connect(close_old_connections)


def fuzz(operation, mode, statuses):
    """Run ``MAX_EXAMPLES`` cases of ``mode`` against ``operation``, all checks applied."""

    @hypothesis_settings(
        max_examples=MAX_EXAMPLES,
        database=None,
        deadline=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case):
        headers = {"Authorization": f"Bearer {TOKEN}"}
        response = case.call(headers=headers)
        case.validate_response(response, checks=CHECKS, headers=headers)
        statuses[response.status_code] += 1

    run()


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_every_operation_survives_the_fuzzer(schema, mode):
    seen = {}
    for result in schema.get_all_operations():
        operation = result.ok()
        statuses = Counter()
        fuzz(operation, mode, statuses)
        seen[operation.label] = statuses
    assert all(code < 500 for statuses in seen.values() for code in statuses), seen
    assert {
        "GET /workflows/", "POST /workflows/", "GET /workflows/{workflow_id}/",
        "POST /workflows/{workflow_id}/cancel/",
    } <= set(seen)  # fmt: skip
    if mode is GenerationMode.POSITIVE:
        assert seen["POST /jobs/"][201] > 0, seen
        assert ContainerJob.objects.count() >= seen["POST /jobs/"][201]
        assert seen["GET /jobs/"][200] > 0, seen
