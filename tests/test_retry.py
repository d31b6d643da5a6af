"""Retry as new jobs: a chain brings back what its failure cancelled, an array re-runs its rest.

The recording backend delivers nothing by itself: each test plays the transport.
"""

import json

import pytest
from django.contrib.auth.models import Permission, User
from django.core.exceptions import ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from container_manager.engine import steps
from container_manager.engine.retry import retry_job
from container_manager.executors.mock import MockExecutor
from container_manager.models import ApiToken, ArrayCounts, ContainerJob, ExecutorHost, JobLabel
from tests.support import race, row, submit
from tests.test_workflows import deliver_all

pytestmark = pytest.mark.django_db(transaction=True)


def launches(job):
    return MockExecutor.launch_count(job.pk)


def depends_on(job):
    return set(ContainerJob.objects.get(pk=job.pk).depends_on.values_list("pk", flat=True))


def set_exit_code(host, exit_code):
    """What the mock host's executions exit with from now on."""
    ExecutorHost.objects.filter(pk=host.pk).update(executor_config={"exit_code": exit_code})


@pytest.fixture
def chain(recording, make_mock_host, mock_host):
    """P completed; A (after P) failed on ``flaky``; B after A and C after B cancelled by it."""
    flaky = make_mock_host(name="flaky", exit_code=2)
    p = submit(mock_host, name="p")
    a = submit(flaky, name="a", depends_on=[p])
    b = submit(mock_host, name="b", depends_on=[a])
    c = submit(mock_host, name="c", depends_on=[b])
    deliver_all(recording)
    assert [row(j).status for j in (p, a, b, c)] == [
        "completed",
        "failed",
        "cancelled",
        "cancelled",
    ]
    set_exit_code(flaky, 0)
    return p, a, b, c


# -- chains ------------------------------------------------------------------------


def test_retrying_a_failed_job_brings_back_the_chain_it_cancelled(recording, chain):
    p, a, b, c = chain
    a2 = retry_job(row(a))
    b2, c2 = sorted(a2.brought_back, key=lambda job: job.name)
    assert (a2.name, b2.name, c2.name) == ("a", "b", "c")
    assert depends_on(a2) == {p.pk}  # the retry keeps its dependencies
    assert depends_on(b2) == {a2.pk} and depends_on(c2) == {b2.pk}
    assert [j.executor_metadata for j in (a2, b2, c2)] == [
        {"retry_of": str(j.pk)} for j in (a, b, c)
    ]
    for old, new in ((a, a2), (b, b2), (c, c2)):
        old = row(old)
        assert old.executor_metadata["retried_as"] == str(new.pk)
        assert old.status in ("failed", "cancelled")  # history kept
    deliver_all(recording)
    assert [row(j).status for j in (a2, b2, c2)] == ["completed"] * 3
    assert [launches(j) for j in (a, b, c, a2, b2, c2)] == [1, 0, 0, 1, 1, 1]
    assert row(b2).started_at >= row(a2).completed_at


def test_only_what_the_failure_cancelled_comes_back_with_its_other_dependencies(
    recording, make_mock_host, mock_host
):
    flaky = make_mock_host(exit_code=1)
    x = submit(mock_host, name="x")
    a = submit(flaky, name="a")
    joined = submit(mock_host, name="joined", depends_on=[a, x])
    withdrawn = submit(mock_host, name="withdrawn", depends_on=[a])
    withdrawn.cancel()  # cancelled on request while it waited: not because of a
    deliver_all(recording)
    assert (row(joined).status, row(withdrawn).status) == ("cancelled", "cancelled")
    set_exit_code(flaky, 0)
    a2 = retry_job(row(a))
    [joined2] = a2.brought_back
    assert joined2.name == "joined" and depends_on(joined2) == {a2.pk, x.pk}
    assert not ContainerJob.objects.filter(executor_metadata__retry_of=str(withdrawn.pk)).exists()
    deliver_all(recording)
    assert row(joined2).status == "completed"


def test_a_job_is_retried_once_while_its_retry_exists(recording, chain):
    _, a, _, _ = chain
    stale = row(a)
    first = retry_job(row(a))
    for copy in (stale, row(a)):  # the loaded status says failed: the row's mark decides
        with pytest.raises(ValidationError) as refused:
            retry_job(copy)
        assert refused.value.message_dict == {
            "status": [f"status: job {a.pk} was already retried as job {first.pk}"]
        }
    assert ContainerJob.objects.filter(executor_metadata__retry_of=str(a.pk)).count() == 1
    ContainerJob.objects.filter(pk=first.pk).delete()  # its retry gone: it may be retried again
    again = retry_job(row(a))
    assert row(a).executor_metadata["retried_as"] == str(again.pk)


@pytest.mark.parametrize("status", ["pending", "completed"])
def test_a_live_or_completed_job_is_refused_naming_status(recording, mock_host, status):
    job = submit(mock_host)
    if status == "completed":
        deliver_all(recording)
    before = ContainerJob.objects.count()
    with pytest.raises(ValidationError) as refused:
        retry_job(row(job))
    assert refused.value.message_dict == {"status": [f"status: a {status!r} job cannot be retried"]}
    assert ContainerJob.objects.count() == before
    assert "retried_as" not in row(job).executor_metadata


def test_the_statements_of_a_retry_grow_with_the_levels_not_the_jobs(
    recording, make_mock_host, mock_host
):
    def statements(width, depth):
        flaky = make_mock_host(exit_code=1)
        top = submit(flaky)
        for _ in range(width):
            level = top
            for _ in range(depth):
                level = submit(mock_host, depends_on=[level])
        deliver_all(recording)
        top = ContainerJob.objects.select_related("docker_host").get(pk=top.pk)
        with CaptureQueriesContext(connection) as captured:
            retry_job(top)
        recording.take()
        return len(captured)

    one = statements(width=1, depth=1)
    assert statements(width=8, depth=1) == one  # 9 jobs made with the statements of 2
    assert statements(width=1, depth=3) == one + 2  # one SELECT per level more
    assert one <= 10


@pytest.mark.postgres
def test_concurrent_retries_on_postgres_make_one_retry(postgres_only, recording, chain):
    _, a, b, c = chain
    threads, made, refused = 6, [], []

    def retry():
        try:
            made.append(retry_job(row(a)).pk)
        except ValidationError as exc:
            refused.append(exc.message_dict["status"][0])

    race(retry, threads)
    assert len(made) == 1
    assert refused == [f"status: job {a.pk} was already retried as job {made[0]}"] * (threads - 1)
    for old in (a, b, c):
        assert ContainerJob.objects.filter(executor_metadata__retry_of=str(old.pk)).count() == 1


# -- arrays ------------------------------------------------------------------------


def run_child(host, child, exit_code):
    set_exit_code(host, exit_code)
    steps.launch(child.pk)
    steps.check(child.pk)


def test_retrying_an_array_reruns_only_the_children_that_did_not_complete(
    recording, make_mock_host
):
    host = make_mock_host(name="shards")
    parent = submit(host, name="shard", array_size=10)
    merge = submit(host, name="merge", depends_on=[parent])
    steps.launch(parent.pk)
    for child in parent.array_children.order_by("array_index"):
        run_child(host, child, 1 if child.array_index in (2, 5, 7) else 0)
    deliver_all(recording)
    parent, merge = row(parent), row(merge)
    assert (parent.status, merge.status) == ("failed", "cancelled")
    set_exit_code(host, 0)

    again = retry_job(parent)
    [merge2] = again.brought_back
    children = list(again.array_children.order_by("array_index"))
    assert [c.array_index for c in children] == [2, 5, 7]
    assert (again.array_size, children[1].array_size, children[1].name) == (10, 10, "shard[5]")
    environment = steps.build_launch_request(children[1]).environment
    assert (environment["CM_ARRAY_INDEX"], environment["CM_ARRAY_SIZE"]) == ("5", "10")
    assert ArrayCounts.objects.get(parent=again).completed == 7
    assert depends_on(merge2) == {again.pk}

    deliver_all(recording)
    again, merge2 = row(again), row(merge2)
    assert (again.status, again.last_error) == ("completed", "")
    assert sum(launches(c) for c in children) == 3
    assert (merge2.status, launches(merge2), launches(merge)) == ("completed", 1, 0)


def test_a_child_of_an_array_is_retried_with_its_array(recording, make_mock_host):
    parent = submit(make_mock_host(exit_code=1), array_size=2)
    deliver_all(recording)
    child = parent.array_children.get(array_index=1)
    with pytest.raises(ValidationError) as refused:
        retry_job(row(child))
    assert list(refused.value.message_dict) == ["array_parent"]
    assert "retry the array" in refused.value.messages[0]


def test_a_retry_keeps_its_labels_for_the_list_filter(recording, make_mock_host):
    """The label rows come with the retried job and its re-run children: the filter finds them."""
    host = make_mock_host(name="labelled", exit_code=1)
    job = submit(host, labels={"team": "data"})
    parent = submit(host, array_size=2, labels={"team": "data"})
    deliver_all(recording)
    set_exit_code(host, 0)
    again, array_again = retry_job(row(job)), retry_job(row(parent))
    labelled = set(
        JobLabel.objects.filter(key="team", value="data").values_list("job_id", flat=True)
    )
    rerun = set(array_again.array_children.values_list("pk", flat=True))
    assert {again.pk, array_again.pk} | rerun <= labelled
    assert again.labels == {"team": "data"}


# -- the JSON API ------------------------------------------------------------------


def retry_url(job):
    return reverse("container_manager:api-job-retry", args=[job.pk])


def token_of(name, *codenames):
    user = User.objects.create_user(name)
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    return user, {"Authorization": f"Bearer {ApiToken.objects.issue(user)[1]}"}


def test_api_retry_answers_201_with_the_new_job(client, chain):
    _, a, b, _ = chain
    alice, auth = token_of("alice", "add_containerjob", "view_containerjob", "view_all_jobs")
    response = client.post(retry_url(a), headers=auth)
    assert response.status_code == 201
    body = response.json()
    new = ContainerJob.objects.get(pk=body["id"])
    assert new.executor_metadata == {"retry_of": str(a.pk)} and new.created_by == alice
    shown = client.get(reverse("container_manager:api-job", args=[new.pk]), headers=auth)
    assert body == shown.json()  # the shape of GET api/jobs/<id>/
    assert ContainerJob.objects.filter(executor_metadata__retry_of=str(b.pk)).count() == 1
    again = client.post(retry_url(a), headers=auth)
    assert again.status_code == 409
    assert again.json()["fields"] == {
        "status": [f"status: job {a.pk} was already retried as job {new.pk}"]
    }


def test_api_retry_refusals(client, recording, mock_host):
    _, auth = token_of("bob", "add_containerjob", "view_containerjob")
    _, viewer = token_of("carol", "view_containerjob", "view_all_jobs")
    live = ContainerJob.objects.create_job(image="x", created_by=User.objects.get(username="bob"))
    others = ContainerJob.objects.create_job(image="x")  # bob may not see it
    conflict = client.post(retry_url(live), headers=auth)
    assert conflict.status_code == 409
    assert conflict.json()["fields"] == {"status": ["status: a 'pending' job cannot be retried"]}
    unknown = client.post(
        reverse("container_manager:api-job-retry", args=["00000000-0000-0000-0000-000000000000"]),
        headers=auth,
    )
    invisible = client.post(retry_url(others), headers=auth)
    assert unknown.status_code == invisible.status_code == 404
    assert json.loads(invisible.content)["error"] == f"no job {others.pk}"
    assert client.post(retry_url(others), headers=viewer).status_code == 403
    assert client.get(retry_url(live), headers=auth).status_code == 405
    assert not ContainerJob.objects.filter(executor_metadata__has_key="retry_of").exists()


def test_api_retry_holds_a_users_token_to_its_quotas(client, settings, chain):
    _, a, _, _ = chain
    _, auth = token_of("dave", "add_containerjob", "view_containerjob", "view_all_jobs")
    settings.CONTAINER_MANAGER = {**settings.CONTAINER_MANAGER, "QUOTA_ROWS_PER_REQUEST": 2}
    response = client.post(retry_url(a), headers=auth)  # a, b and c: 3 rows
    assert (response.status_code, response.json()["quota"]) == (429, "rows_per_request")
    assert "retried_as" not in row(a).executor_metadata  # the whole retry was undone
    assert not ContainerJob.objects.filter(executor_metadata__has_key="retry_of").exists()


# -- the admin ---------------------------------------------------------------------


def admin_url(name, *args):
    return reverse(f"admin:container_manager_containerjob_{name}", args=args)


def retries_of(job):
    return ContainerJob.objects.filter(executor_metadata__retry_of=str(job.pk)).count()


def test_the_admin_button_brings_back_the_chain(admin_client, chain):
    _, a, b, c = chain
    response = admin_client.post(admin_url("retry", a.pk), follow=True)
    a2 = ContainerJob.objects.get(executor_metadata__retry_of=str(a.pk))
    assert response.redirect_chain[-1][0] == admin_url("change", a2.pk)
    assert "with 2 cancelled dependent job(s) brought back" in response.content.decode()
    assert [retries_of(j) for j in (a, b, c)] == [1, 1, 1]


def test_the_admin_action_retries_the_selection_oldest_first(admin_client, chain):
    _, a, b, c = chain
    data = {"action": "retry_jobs", "_selected_action": [str(j.pk) for j in (c, b, a)]}
    page = admin_client.post(admin_url("changelist"), data, follow=True).content.decode()
    assert "Submitted 1 retry job(s), with 2 cancelled dependent job(s) brought back." in page
    assert "2 job(s) skipped" in page  # b and c came back with a
    assert [retries_of(j) for j in (a, b, c)] == [1, 1, 1]
