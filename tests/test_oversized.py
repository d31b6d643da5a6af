"""Every URL of the app answers a body over the limit with a JSON 413, and every error is bounded.

The URLs come from the URL resolver, so an endpoint added later is covered without a new test.
"""

import json

import pytest
from django.test import Client
from django.urls import URLPattern, reverse

from container_manager import urls
from container_manager.models import ContainerJob
from container_manager.web import errors

pytestmark = pytest.mark.django_db

SEVEN_MB = b"{" + b" " * (7 * 1024 * 1024) + b"}"
TOKEN = "oversized-token"
SAMPLE = "00000000-0000-0000-0000-000000000001"


def every_url():
    """A concrete path for every pattern of ``container_manager.urls``, its arguments filled."""
    for pattern in urls.urlpatterns:
        assert isinstance(pattern, URLPattern), "an include() would need walking too"
        names = pattern.pattern.regex.groupindex
        yield reverse(f"container_manager:{pattern.name}", kwargs=dict.fromkeys(names, SAMPLE))


@pytest.mark.parametrize("url", list(every_url()))
@pytest.mark.parametrize("content_type", ["application/json", "application/x-www-form-urlencoded"])
def test_a_7_mb_post_gets_a_json_413_naming_the_limit(settings, url, content_type):
    settings.CONTAINER_MANAGER = {"API_TOKENS": [TOKEN]}
    client = Client(enforce_csrf_checks=True)
    response = client.post(
        url, SEVEN_MB, content_type=content_type, headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert response.status_code == 413, (url, response.status_code, response.content[:200])
    assert response["Content-Type"] == "application/json"
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    assert response.json()["limit_bytes"] == limit and str(limit) in response.json()["error"]


def test_every_url_is_covered():
    covered = list(every_url())
    assert "/cm/events/cloudrun/" in covered and "/cm/metrics/" in covered
    assert len(covered) == len(urls.urlpatterns)


def test_a_body_within_the_limit_still_reaches_the_view(client, settings):
    settings.CONTAINER_MANAGER = {"API_TOKENS": [TOKEN]}
    body = json.dumps({"docker_image": "x", "description": "d" * 1000})
    answer = client.post(
        reverse("container_manager:events-cloudrun"), body, content_type="application/json"
    )
    assert answer.status_code == 401 and answer["Content-Type"] == "application/json"


def test_metrics_answers_a_wrong_method_in_json(client):
    response = client.post(reverse("container_manager:metrics"))
    assert response.status_code == 405 and response.json()["error"]
    assert response["Allow"] == "GET, HEAD"


def test_a_long_message_is_cut_and_says_how_much():
    answer = json.loads(errors.error(400, "y" * 5000).content)
    assert len(answer["error"]) < errors.MAX_MESSAGE_CHARS + 40
    assert answer["error"].endswith("… (4000 more characters)")


def test_a_400_naming_thousands_of_fields_is_bounded(client, settings, recording, mock_host):
    settings.CONTAINER_MANAGER = {**settings.CONTAINER_MANAGER, "API_TOKENS": [TOKEN]}
    body = {"docker_image": "x", **{f"field_{n}_" + "z" * 300: n for n in range(3000)}}
    assert len(json.dumps(body)) < settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    response = client.post(
        reverse("container_manager:api-jobs"), json.dumps(body), content_type="application/json",
        headers={"Authorization": f"Bearer {TOKEN}"},
    )  # fmt: skip
    assert response.status_code == 400
    assert len(response.content) < 10_000
    answer = response.json()
    assert len(answer["fields"]) == errors.MAX_FIELDS
    assert answer["fields_omitted"] == 3000 - errors.MAX_FIELDS
    assert all(len(name) <= errors.MAX_FIELD_NAME_CHARS + 40 for name in answer["fields"])
    assert not ContainerJob.objects.exists()
