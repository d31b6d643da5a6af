"""An array's ``max_parallel`` and ``tolerated_failures`` (issue 29, item 4b), message by message.

The recording backend delivers nothing by itself: each test plays the transport, or loses it.
Concurrent launches of one array are raced on PostgreSQL.
"""

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.db.models.signals import post_save
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from container_manager.engine import steps, transitions
from container_manager.engine.retry import retry_job
from container_manager.models import ArrayCounts, ContainerJob, ExecutorHost, Workflow
from container_manager.rules import status as st
from tests.support import race, row, submit
from tests.test_api import BEARER, conforms
from tests.test_api import submit as api_submit
from tests.test_workflows import deliver_all, launches

pytestmark = pytest.mark.django_db(transaction=True)


def busy(parent):
    """How many children of ``parent`` are launching or running, from the rows."""
    return parent.array_children.filter(status__in=st.HOLDS_SLOT).count()


def children(parent):
    return list(row(parent).array_children.order_by("array_index"))


def start(recording, parent):
    """Deliver the parent's launch; return the launches it sent, in order."""
    recording.take()
    assert steps.launch(parent.pk) == "array-parent"
    return [job_id for step, job_id, _ in recording.take() if step == "launch"]


def array_running(recording, host, size, running, **limits):
    """An array on ``host`` whose first ``running`` children are launched: (parent, children)."""
    parent = submit(host, array_size=size, **limits)
    kids = children(parent)
    start(recording, parent)
    assert [steps.launch(kid.pk) for kid in kids[:running]] == ["launched"] * running
    return parent, kids


def launched_next(recording):
    """The jobs sent ``launch`` since the last take, in order."""
    return [job_id for step, job_id, _ in recording.take() if step == "launch"]


def end(job, status="completed"):
    """Move a running child to ``status`` as its harvest would."""
    assert transitions.move(row(job), st.RUNNING, status, completed_at=timezone.now())


# -- max_parallel ----------------------------------------------------------------


def test_ten_children_three_at_a_time_on_the_mock_executor(recording, make_mock_host):
    host = make_mock_host(max_concurrent_jobs=10)
    parent = submit(host, array_size=10, max_parallel=3)
    most = []

    def record(sender, instance, update_fields, **kwargs):
        if instance.array_parent_id == parent.pk and instance.status == st.LAUNCHING:
            most.append(busy(parent))

    post_save.connect(record, sender=ContainerJob)
    try:
        answers = deliver_all(recording)
    finally:
        post_save.disconnect(record, sender=ContainerJob)
    parent = row(parent)
    assert parent.status == "completed" and parent.last_error == ""
    assert [c.status for c in children(parent)] == ["completed"] * 10
    assert [launches(c) for c in children(parent)] == [1] * 10
    assert len(most) == 10 and max(most) == 3
    launched = [job_id for step, job_id, answer in answers if answer == "launched"]
    order = {str(c.pk): c.array_index for c in children(parent)}
    assert [order[job_id] for job_id in launched] == list(range(10))  # by index
    assert ExecutorHost.objects.get(pk=host.pk).current_job_count == 0


def test_a_child_beyond_max_parallel_waits_pending_without_a_slot(recording, make_mock_host):
    host = make_mock_host(duration=3600, max_concurrent_jobs=10)
    parent = submit(host, array_size=5, max_parallel=2)
    sent = start(recording, parent)
    kids = children(parent)
    assert sent == [str(kids[0].pk), str(kids[1].pk)]
    assert [steps.launch(kid.pk) for kid in kids[:3]] == [
        "launched",
        "launched",
        "waiting-for-array",
    ]
    third = row(kids[2])
    assert (third.status, third.attempt_count) == ("pending", 0)
    assert not third.containerexecution_set.exists()
    assert ExecutorHost.objects.get(pk=host.pk).current_job_count == 2
    recording.take()
    end(kids[0])
    # The child leaving its slot sends launch to the next pending child by index.
    assert launched_next(recording) == [str(kids[2].pk)]
    assert steps.launch(kids[2].pk) == "launched"
    assert steps.launch(kids[3].pk) == "waiting-for-array"
    assert busy(parent) == 2


def test_a_full_hosts_hand_over_passes_over_a_limited_child(recording, make_mock_host):
    host = make_mock_host(duration=3600, max_concurrent_jobs=3)
    parent = submit(host, array_size=4, max_parallel=2)
    kids = children(parent)
    start(recording, parent)
    assert [steps.launch(kid.pk) for kid in kids[:2]] == ["launched", "launched"]
    other = submit(host)
    assert steps.launch(other.pk) == "launched"
    assert steps.launch(kids[2].pk) == "waiting-for-slot"  # the host is full too
    end(other)
    # The freed slot is not handed to child 2: its array has max_parallel children running.
    assert busy(parent) == 2 and row(kids[2]).status == "pending"
    assert ExecutorHost.objects.get(pk=host.pk).current_job_count == 2


def test_the_sweep_starts_the_next_child_when_the_hand_over_message_is_lost(
    recording, make_mock_host
):
    host = make_mock_host(duration=3600, max_concurrent_jobs=10)
    parent, kids = array_running(recording, host, 4, 2, max_parallel=2)
    end(kids[0])
    recording.take()  # the launch of child 2 is lost
    later = timezone.now() + timedelta(seconds=60)
    assert steps.sweep(now=later)["launch"] == 1
    assert launched_next(recording) == [str(kids[2].pk)]
    assert steps.launch(kids[2].pk) == "launched"
    recording.take()
    assert steps.sweep(now=later + timedelta(seconds=60))["launch"] == 0  # no room: none sent
    assert busy(parent) == 2


def test_a_retried_child_gives_its_place_back(recording, make_mock_host):
    host = make_mock_host(max_concurrent_jobs=10, launch_error="retryable")
    parent = submit(host, array_size=3, max_parallel=1, max_attempts=2)
    kids = children(parent)
    start(recording, parent)
    assert steps.launch(kids[0].pk) == "retrying"
    assert busy(parent) == 0 and row(kids[0]).status == "pending"
    # Its place went to the next due child, child 1.
    assert str(kids[1].pk) in [j for s, j, _ in recording.take() if s == "launch"]


# -- tolerated_failures --------------------------------------------------------------


def test_one_failure_too_many_fails_the_array_at_once_and_cancels_the_rest(
    recording, make_mock_host
):
    host = make_mock_host(duration=3600, max_concurrent_jobs=10)
    parent, kids = array_running(recording, host, 6, 4, tolerated_failures=1)
    end(kids[0], st.FAILED)
    assert row(parent).status == "running"  # one failure is tolerated
    recording.take()
    end(kids[1], st.TIMEOUT)
    parent = row(parent)
    assert parent.status == "failed" and parent.cancel_requested_at is not None
    assert parent.last_error == (
        "array children: 0 completed, 1 failed, 1 timed out, 0 cancelled; 2 of 6 failed or "
        "timed out, tolerated_failures 1 allows 1 (failed before all ended; the rest cancelled)"
    )
    assert ("cancel", str(parent.pk)) in [(s, j) for s, j, _ in recording.messages]
    deliver_all(recording)
    statuses = [c.status for c in children(parent)]
    assert statuses == ["failed", "timeout"] + ["cancelled"] * 4
    counts = ArrayCounts.objects.get(parent=parent)
    assert (counts.failed, counts.timeout, counts.cancelled) == (1, 1, 4)
    assert row(parent).status == "failed"  # a later final move changes nothing
    assert ExecutorHost.objects.get(pk=host.pk).current_job_count == 0


def test_the_sweep_cancels_the_rest_when_the_failed_arrays_cancel_is_lost(
    recording, make_mock_host
):
    host = make_mock_host(duration=3600, max_concurrent_jobs=10)
    parent, kids = array_running(recording, host, 4, 2, tolerated_failures="25%")
    end(kids[0], st.FAILED)
    end(kids[1], st.FAILED)
    assert row(parent).status == "failed"
    recording.take()  # the parent's cancel is lost
    later = timezone.now() + timedelta(seconds=60)
    assert steps.sweep(now=later)["cancel"] == 1
    deliver_all(recording)
    assert [c.status for c in children(parent)] == ["failed", "failed", "cancelled", "cancelled"]
    recording.take()
    assert steps.sweep(now=later + timedelta(seconds=60))["cancel"] == 0


def test_within_tolerated_failures_the_array_completes_and_says_how_many_failed(
    client, settings, recording, make_mock_host
):
    parent = submit(make_mock_host(exit_code=1), array_size=4, tolerated_failures="100%")
    deliver_all(recording)
    parent = row(parent)
    assert parent.status == "completed"
    assert parent.last_error == (
        "array children: 0 completed, 4 failed, 0 timed out, 0 cancelled; 4 of 4 failed or "
        "timed out, tolerated_failures 100% allows 4"
    )
    settings.CONTAINER_MANAGER = {**settings.CONTAINER_MANAGER, "API_TOKENS": ["api-test-token"]}
    body = client.get(reverse("container_manager:api-job", args=[parent.pk]), headers=BEARER)
    array = body.json()["array"]
    assert (array["counts"]["failed"], array["tolerated_failures"]) == (4, "100%")


def test_a_count_of_tolerated_failures_is_kept_to_the_end(recording, make_mock_host):
    host = make_mock_host(duration=3600, max_concurrent_jobs=10)
    parent, kids = array_running(recording, host, 3, 3, tolerated_failures=1)
    end(kids[0])
    end(kids[1], st.FAILED)
    end(kids[2])
    assert row(parent).status == "completed"
    assert "1 of 3 failed or timed out" in row(parent).last_error


def test_without_tolerated_failures_a_failure_still_fails_the_array_after_all_ended(
    recording, make_mock_host
):
    host = make_mock_host(duration=3600, max_concurrent_jobs=10)
    parent, kids = array_running(recording, host, 3, 3)
    end(kids[0], st.FAILED)
    assert row(parent).status == "running"
    end(kids[1])
    end(kids[2])
    assert row(parent).status == "failed"


# -- surfaces ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "field", "rule"),
    [
        ({"array_size": 3, "max_parallel": 4}, "max_parallel", "from 1 to array_size (3)"),
        ({"array_size": 3, "max_parallel": 0}, "max_parallel", "integer from 1"),
        ({"max_parallel": 2}, "max_parallel", "only an array"),
        ({"array_size": 3, "tolerated_failures": -1}, "tolerated_failures", "a count"),
        ({"array_size": 3, "tolerated_failures": "101%"}, "tolerated_failures", "a percent"),
        ({"array_size": 3, "tolerated_failures": "ten"}, "tolerated_failures", "a percent"),
        ({"tolerated_failures": 1}, "tolerated_failures", "only an array"),
    ],
)
def test_bad_limits_are_refused_naming_the_field_and_the_rule(
    recording, mock_host, fields, field, rule
):
    with pytest.raises(ValidationError) as raised:
        submit(mock_host, **fields)
    [message] = raised.value.message_dict[field]
    assert message.startswith(f"{field}: ") and rule in message
    assert not ContainerJob.objects.exists()


def test_the_api_takes_the_limits_and_says_which_is_wrong(client, settings, recording, mock_host):
    settings.CONTAINER_MANAGER = {**settings.CONTAINER_MANAGER, "API_TOKENS": ["api-test-token"]}
    base = {"docker_image": "x", "command": "true", "host": mock_host.name, "array_size": 4}
    made = api_submit(client, **base, max_parallel=2, tolerated_failures="25%")
    assert made.status_code == 201, made.content
    assert made.json()["array"] | {"counts": None} == {
        "size": 4, "index": None, "parent": None, "max_parallel": 2,
        "tolerated_failures": "25%", "counts": None,
    }  # fmt: skip
    child = ContainerJob.objects.get(array_parent_id=made.json()["id"], array_index=0)
    assert (child.max_parallel, child.tolerated_failures) == (2, "25%")
    for extra, field in [
        ({"max_parallel": 5}, "max_parallel"),
        ({"max_parallel": "2"}, "max_parallel"),
        ({"tolerated_failures": "1.5"}, "tolerated_failures"),
        ({"tolerated_failures": True}, "tolerated_failures"),
    ]:
        answer = api_submit(client, **base, **extra)
        assert answer.status_code == 400, (extra, answer.content)
        assert answer.json()["fields"][field][0].startswith(f"{field}: ")
    document = client.get(reverse("container_manager:api-openapi")).json()
    properties = document["components"]["schemas"]["JobSubmit"]["properties"]
    assert {"max_parallel", "tolerated_failures"} <= set(properties)
    assert conforms(document, "Job", made.json())
    counted = api_submit(client, **base, tolerated_failures=1)
    assert counted.json()["array"]["tolerated_failures"] == 1
    assert conforms(document, "Job", counted.json())
    assert conforms(document, "JobSubmit", {**base, "tolerated_failures": "2.5%"})


def test_a_workflow_node_takes_the_limits_and_a_bad_one_names_the_node(recording, mock_host):
    node = {"docker_image": "x", "command": "true", "host": mock_host.name, "array_size": 3}
    spec = {"name": "w", "nodes": {"shards": {**node, "max_parallel": 1}}}
    workflow = Workflow.objects.submit(spec)
    parent = workflow.jobs.get(workflow_node="shards")
    assert parent.max_parallel == 1
    bad = {"name": "w", "nodes": {"shards": {**node, "tolerated_failures": "x%"}}}
    with pytest.raises(ValidationError) as raised:
        Workflow.objects.submit(bad)
    assert any("tolerated_failures" in key for key in raised.value.message_dict)
    assert Workflow.objects.count() == 1


def test_the_admin_array_block_shows_the_limits(admin_client, recording, mock_host):
    parent = submit(mock_host, array_size=10, max_parallel=3, tolerated_failures="10%")
    page = admin_client.get(
        reverse("admin:container_manager_containerjob_change", args=[parent.pk])
    ).content.decode()
    assert "at most 3 children at once; tolerates 10% failed (1 of 10)" in page


def test_a_retried_array_keeps_its_limits(recording, make_mock_host):
    parent = submit(make_mock_host(exit_code=1), array_size=3, max_parallel=2, tolerated_failures=0)
    deliver_all(recording)
    assert row(parent).status == "failed"
    again = retry_job(row(parent))
    assert (again.max_parallel, again.tolerated_failures) == (2, "0")
    assert {(c.max_parallel, c.tolerated_failures) for c in again.array_children.all()} == {
        (2, "0")
    }


# -- PostgreSQL: concurrency and statements ----------------------------------------------


def test_racing_launches_of_one_array_never_exceed_max_parallel(
    postgres_only, recording, make_mock_host
):
    host = make_mock_host(duration=3600, max_concurrent_jobs=20)
    for _ in range(3):
        parent = submit(host, array_size=8, max_parallel=2)
        kids = iter(children(parent))
        answers = []
        race(lambda kids=kids, answers=answers: answers.append(steps.launch(next(kids).pk)), 8)
        assert sorted(answers) == ["launched"] * 2 + ["waiting-for-array"] * 6
        assert busy(parent) == 2
        assert parent.array_children.filter(containerexecution__isnull=False).count() == 2


def test_statements_of_a_limited_childs_launch(postgres_only, recording, make_mock_host):
    host = make_mock_host(duration=3600, max_concurrent_jobs=10)
    plain, limited = submit(host, array_size=2), submit(host, array_size=2, max_parallel=1)
    counts = []
    for parent in (plain, limited):
        kid = children(parent)[0]
        with CaptureQueriesContext(connection) as queries:
            transitions.begin_launch(kid, timezone.now() + timedelta(seconds=60))
        counts.append(len(queries))
    # A plain child's begin_launch is one statement, without a transaction; a limited child's
    # is BEGIN, the same statement, the lock of the array's counts row, the count of its
    # children launching or running, COMMIT.
    assert counts == [1, 5]
    finals = []
    for parent in (plain, limited):
        kid = row(children(parent)[0])
        with CaptureQueriesContext(connection) as queries:
            transitions.move(kid, st.LAUNCHING, st.FAILED, completed_at=timezone.now())
        finals.append(len(queries))
    # Its final move adds one SELECT: the next child by index, sent its launch.
    assert finals[1] == finals[0] + 1
