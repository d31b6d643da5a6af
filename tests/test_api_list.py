"""The job list of the JSON API: cursor pages, filters, labels; labels in the admin and launch.

Every answer is validated against the served OpenAPI document.
"""

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from container_manager.engine.steps.common import build_launch_request
from container_manager.models import ContainerJob, JobLabel
from container_manager.models.labels import with_label
from tests.test_api import BEARER, TOKEN, conforms, submit

pytestmark = pytest.mark.django_db

JOBS = "/cm/api/jobs/"


@pytest.fixture
def api(settings, recording):
    """The test token accepted; steps recorded, not run."""
    settings.CONTAINER_MANAGER = {**settings.CONTAINER_MANAGER, "API_TOKENS": [TOKEN]}


@pytest.fixture
def document(client):
    return client.get(reverse("container_manager:api-openapi")).json()


def listed(client, document, expect=200, **params):
    response = client.get(JOBS, params, headers=BEARER)
    assert response.status_code == expect, response.content
    assert conforms(document, "JobPage" if expect == 200 else "Error", response.json())
    return response.json()


def made(host, n, after=0, **fields):
    """``n`` jobs, one second apart from 2030-01-01 + ``after`` s (created_at set, not now)."""
    create = ContainerJob.objects.create_job
    jobs = [create(image="x", docker_host=host, **fields) for _ in range(n)]
    start = datetime(2030, 1, 1, tzinfo=UTC) + timedelta(seconds=after)
    for i, job in enumerate(jobs):
        ContainerJob.objects.filter(pk=job.pk).update(created_at=start + timedelta(seconds=i))
    return [str(job.pk) for job in jobs]


def test_pages_by_cursor_newest_first_until_the_last(client, api, document, mock_host):
    ids = made(mock_host, 7)
    first = listed(client, document, limit=3)
    assert [j["id"] for j in first["jobs"]] == ids[::-1][:3] and first["next_cursor"]
    made(mock_host, 2, after=60)  # newer jobs do not shift the pages after the cursor
    second = listed(client, document, limit=3, cursor=first["next_cursor"])
    assert [j["id"] for j in second["jobs"]] == ids[::-1][3:6]
    last = listed(client, document, limit=3, cursor=second["next_cursor"])
    assert [j["id"] for j in last["jobs"]] == ids[:1] and last["next_cursor"] is None
    assert len(listed(client, document)["jobs"]) == 9  # default limit 50


def test_same_created_at_is_paged_by_id_without_a_loss_or_a_repeat(client, api, mock_host):
    ids = made(mock_host, 5)
    ContainerJob.objects.update(created_at=datetime(2030, 1, 1, tzinfo=UTC))
    seen, cursor = [], None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        body = client.get(JOBS, params, headers=BEARER).json()
        seen += [j["id"] for j in body["jobs"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(ids) and len(seen) == 5


def test_a_page_costs_the_same_statements_whatever_its_size(client, api, mock_host):
    made(mock_host, 3, labels={"team": "a"})
    made(mock_host, 20, labels={"team": "a"})

    def statements(limit):
        with CaptureQueriesContext(connection) as queries:
            answer = client.get(JOBS, {"limit": limit, "label": "team=a"}, headers=BEARER)
        assert answer.status_code == 200
        return len(queries)

    assert statements(2) == statements(20)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "201"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"cursor": "bm90IGEgY3Vyc29y"}, "cursor"),
        ({"status": "asleep"}, "status"),
        ({"created_after": "yesterday"}, "created_after"),
        ({"created_before": "2030-01-01T00:00:00"}, "created_before"),
        ({"label": "team"}, "label"),
        ({"label": "bad key=x"}, "label"),
        ({"colour": "blue"}, "colour"),
        ({"host": "a\x00b"}, "host"),  # PostgreSQL cannot compare a NUL: once a 500
    ],
)
def test_a_bad_parameter_is_a_400_naming_it(client, api, document, mock_host, params, field):
    assert field in listed(client, document, expect=400, **params)["fields"]


def test_a_cursor_changed_by_the_caller_is_refused(client, api, document, mock_host):
    made(mock_host, 3)
    cursor = listed(client, document, limit=1)["next_cursor"]
    changed = cursor[:-2] + ("AA" if cursor[-2:] != "AA" else "BB")
    assert "cursor" in listed(client, document, expect=400, cursor=changed)["fields"]


def test_filters_by_status_name_host_time_and_every_label(
    client, api, document, mock_host, make_mock_host
):
    other = make_mock_host(name="other-host")
    ids = made(mock_host, 4, name="nightly", labels={"team": "data", "tier": "batch"})
    made(other, 1, after=60, name="nightly", labels={"team": "data"})
    made(mock_host, 1, after=120, name="hourly")
    ContainerJob.objects.filter(pk=ids[0]).update(status="failed")

    def found(**params):
        return {j["id"] for j in listed(client, document, **params)["jobs"]}

    assert found(status="failed") == {ids[0]}
    assert found(name="nightly", host="mock-host") == set(ids)
    assert found(created_after="2030-01-01T00:00:00Z", created_before="2030-01-01T00:00:03Z") == {
        ids[1], ids[2],
    }  # fmt: skip
    assert found(label=["team=data", "tier=batch"]) == set(ids)
    assert len(found(label="team=data")) == 5 and found(label="team=ops") == set()


def test_labels_are_submitted_returned_and_checked(client, api, document, mock_host):
    response = submit(client, docker_image="x", labels={"team": "data", "example.com/app": "etl"})
    assert response.status_code == 201 and conforms(document, "Job", response.json())
    assert response.json()["labels"] == {"team": "data", "example.com/app": "etl"}
    job = ContainerJob.objects.get()
    assert {str(row) for row in job.label_rows.all()} == {"team=data", "example.com/app=etl"}
    for bad in (
        {"team": "data science"}, {"-team": "x"}, {"team": 3}, ["team=x"],
        {"container_manager.job_id": "x"}, {f"k{n}": "v" for n in range(33)},
    ):  # fmt: skip
        refused = submit(client, docker_image="x", labels=bad)
        assert refused.status_code == 400 and list(refused.json()["fields"]) == ["labels"], bad
    assert ContainerJob.objects.count() == 1


def test_create_job_checks_labels_and_an_array_passes_them_to_its_children(mock_host, recording):
    from django.core.exceptions import ValidationError

    for bad in ({"a b": "c"}, {1: "c"}, "a=b"):
        with pytest.raises(ValidationError) as raised:
            ContainerJob.objects.create_job(image="x", labels=bad)
        assert list(raised.value.message_dict) == ["labels"]
    parent = ContainerJob.objects.create_job(image="x", array_size=3, labels={"run": "r1"})
    tagged = with_label(ContainerJob.objects.all(), "run", "r1")
    assert tagged.count() == 4 and JobLabel.objects.count() == 4
    assert {job.labels["run"] for job in parent.array_children.all()} == {"r1"}


def test_the_launch_gives_the_platform_the_labels_with_the_apps_own(mock_host, recording):
    job = ContainerJob.objects.create_job(image="x", labels={"team": "data"})
    labels = build_launch_request(job).labels
    assert labels["team"] == "data" and labels["container_manager.job_id"] == str(job.pk)


def test_the_label_filter_and_the_order_are_served_by_their_indexes(mock_host, recording):
    made(mock_host, 3, labels={"team": "data"})
    query = with_label(ContainerJob.objects.all(), "team", "data").order_by("-created_at", "-id")
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:  # tiny tables are scanned: ask whether it can
            cursor.execute("SET LOCAL enable_seqscan = off")
    plan = query.explain()
    assert "cm_label_kv_idx" in plan, plan
    after = ContainerJob.objects.filter(created_at__lte=datetime(2030, 1, 2, tzinfo=UTC))
    page = after.order_by("-created_at", "-id")[:51]  # a page after a cursor, in its order
    assert "cjob_list_idx" in page.explain(), page.explain()


def test_the_admin_shows_labels_and_filters_the_job_list_by_one(admin_client, mock_host, recording):
    labelled = ContainerJob.objects.create_job(image="x", name="tagged", labels={"team": "data"})
    ContainerJob.objects.create_job(image="x", name="untagged")
    jobs = reverse("admin:container_manager_containerjob_changelist")
    page = admin_client.get(jobs, {"label": "team=data"})
    assert page.status_code == 200
    assert [j.pk for j in page.context["cl"].result_list] == [labelled.pk]
    change = reverse("admin:container_manager_containerjob_change", args=[labelled.pk])
    body = admin_client.get(change).content.decode()
    assert 'class="cm-label"' in body and "team=data" in body
