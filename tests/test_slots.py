"""Slot hand-off: a freed slot goes to a distinct waiting job in the transaction that frees it.

The count of a host never exceeds ``max_concurrent_jobs``, also with concurrent steps (PostgreSQL).
"""

import threading
from collections import Counter
from contextlib import contextmanager

import pytest
from django.db import connection, connections, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from container_manager.engine import steps, transitions
from container_manager.executors import factory
from container_manager.models import ContainerExecution, ContainerJob, ExecutorHost, HostSlot
from container_manager.rules import status as st
from tests.support import submit

pytestmark = pytest.mark.django_db(transaction=True)


def holding(host):
    return ContainerJob.objects.filter(docker_host=host, status__in=st.HOLDS_SLOT).count()


def together(work):
    """Run ``(function, job_id)`` items on threads released at once; the exceptions raised."""
    barrier, errors = threading.Barrier(len(work)), []

    def run(function, job_id):
        try:
            barrier.wait()
            function(job_id)
        except Exception as exc:  # noqa: BLE001 - reported by the caller's assertion
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=item) for item in work]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


@contextmanager
def held_open(action):
    """Run ``action`` in a transaction on another thread, kept open for the block: its result."""
    ready, done, held = threading.Event(), threading.Event(), {}

    def hold():
        try:
            with transaction.atomic():
                held["value"] = action()
                ready.set()
                assert done.wait(timeout=60)
        finally:
            ready.set()
            connections.close_all()

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert ready.wait(timeout=60)
        yield held
    finally:
        done.set()
        holder.join()


def due_now(jobs):
    ContainerJob.objects.filter(pk__in=[j.pk for j in jobs]).update(next_check_at=timezone.now())


def test_each_freed_slot_goes_to_a_different_waiting_job(recording, make_mock_host):
    host = make_mock_host(max_concurrent_jobs=3)
    first = [submit(host) for _ in range(3)]
    waiting = [submit(host, priority=p) for p in (0, 5, 0, 0)]
    for job in first + waiting:
        steps.launch(job.pk)
    recording.take()
    due_now(first)
    assert [steps.check(job.pk) for job in first] == ["completed"] * 3
    launches = [job_id for step, job_id, _ in recording.take() if step == "start"]
    # Best priority first, then the oldest; never the same job twice.
    assert launches == [str(waiting[1].pk), str(waiting[0].pk), str(waiting[2].pk)]
    assert ExecutorHost.objects.get(pk=host.pk).current_job_count == 3 == holding(host)
    handed = ContainerJob.objects.get(pk=waiting[1].pk)
    assert (handed.status, handed.attempt_count) == ("launching", 1)
    assert ContainerExecution.objects.get(job=handed).status == "launching"
    assert [steps.launch(job_id) for job_id in launches] == ["launched"] * 3
    assert [steps.launch(job_id) for job_id in launches] == ["nothing-to-do"] * 3


def test_a_slot_is_freed_when_nothing_waits_and_never_handed_to_a_cancelled_job(
    recording, make_mock_host
):
    host = make_mock_host(max_concurrent_jobs=1)
    running, cancelled = submit(host), submit(host)
    steps.launch(running.pk)
    ContainerJob.objects.filter(pk=cancelled.pk).update(cancel_requested_at=timezone.now())
    recording.take()
    due_now([running])
    assert steps.check(running.pk) == "completed"
    assert [m for m in recording.take() if m[0] in ("launch", "start")] == []
    assert ExecutorHost.objects.get(pk=host.pk).current_job_count == 0


def test_an_inactive_host_gets_its_slot_back_instead(recording, make_mock_host):
    host = make_mock_host(max_concurrent_jobs=1)
    running, waiting = submit(host), submit(host)
    steps.launch(running.pk)
    ExecutorHost.objects.filter(pk=host.pk).update(is_active=False)
    due_now([running])
    assert steps.check(running.pk) == "completed"
    assert ContainerJob.objects.get(pk=waiting.pk).status == "pending"
    assert ExecutorHost.objects.get(pk=host.pk).current_job_count == 0


def test_a_lost_hand_off_message_is_found_by_the_sweep(recording, make_mock_host):
    host = make_mock_host(max_concurrent_jobs=1)
    running, waiting = submit(host), submit(host)
    steps.launch(running.pk)
    due_now([running])
    steps.check(running.pk)
    recording.take()  # the hand-off's launch is lost
    steps.sweep(now=timezone.now())
    assert ("launch", str(waiting.pk), 0) in [(s, j, int(d)) for s, j, d in recording.take()]


@pytest.mark.postgres
def test_begin_launch_and_hand_off_are_one_statement_each(postgres_only, recording, make_mock_host):
    host = make_mock_host(max_concurrent_jobs=1)
    running, waiting = submit(host), submit(host)
    with CaptureQueriesContext(connection) as launch:
        steps.launch(running.pk)
    due_now([running])
    with CaptureQueriesContext(connection) as finish:
        steps.check(running.pk)
    launch_sql = [q["sql"] for q in launch.captured_queries]
    assert sum("WITH slot AS" in sql for sql in launch_sql) == 1
    assert sum("SKIP LOCKED" in q["sql"] for q in finish.captured_queries) == 1
    assert ContainerJob.objects.get(pk=waiting.pk).status == "launching"


@pytest.mark.postgres
def test_concurrent_finishes_and_launches_never_exceed_the_host(
    postgres_only, recording, make_mock_host
):
    """Rounds of 4 finishing and 4 launching threads against 4 slots, started together."""
    capacity, threads_per_kind = 4, 4
    host = make_mock_host(max_concurrent_jobs=capacity)
    jobs = [submit(host) for _ in range(24)]
    for job in jobs[:capacity]:
        assert steps.launch(job.pk) == "launched"
    handed = Counter()
    for _ in range(3):
        running = list(ContainerJob.objects.filter(docker_host=host, status=st.RUNNING))
        due_now(running)
        pending = list(
            ContainerJob.objects.filter(docker_host=host, status=st.PENDING).order_by("created_at")
        )
        recording.take()
        work = [(steps.check, job.pk) for job in running[:threads_per_kind]]
        work += [(steps.launch, job.pk) for job in pending[-threads_per_kind:]]
        errors = together(work)
        assert errors == []
        count = ExecutorHost.objects.get(pk=host.pk).current_job_count
        assert count == holding(host) <= capacity
        launches = [job_id for step, job_id, _ in recording.take() if step == "start"]
        handed.update(launches)
        for job_id in set(launches):
            steps.launch(job_id)
    assert max(handed.values()) == 1
    assert ExecutorHost.objects.get(pk=host.pk).current_job_count == holding(host) == capacity


def launch_now(job_id):
    """``begin_launch`` of a pending job; True if it took a slot, False if the host was full."""
    job = ContainerJob.objects.get(pk=job_id)
    try:
        return transitions.begin_launch(job, timezone.now())
    except transitions.HostFull:
        return False


@pytest.mark.postgres
def test_a_launch_does_not_wait_for_another_launch_on_the_same_host(
    postgres_only, recording, make_mock_host
):
    """One launch keeps its transaction (and its slot row) open; the others run meanwhile.

    They may wait for no lock at all (``lock_timeout`` makes a wait an error): with the
    host row as the counter, the second launch waited for the first one's commit.
    """
    host = make_mock_host(max_concurrent_jobs=2)
    first, second, third = (submit(host) for _ in range(3))
    answers = {}
    with held_open(lambda: launch_now(first.pk)) as held:
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = '50ms'")
        # The second takes the other slot; the third finds none (one held open, one taken).
        answers["second"] = launch_now(second.pk)
        answers["third"] = launch_now(third.pk)
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = 0")
    answers["first"] = held["value"]
    assert answers == {"first": True, "second": True, "third": False}
    assert HostSlot.objects.filter(host=host, job__isnull=False).count() == 2
    assert set(HostSlot.objects.filter(host=host).values_list("job", flat=True)) == {
        first.pk,
        second.pk,
    }
    assert ContainerJob.objects.get(pk=third.pk).status == "pending"


@pytest.mark.postgres
def test_a_full_host_whose_waiting_job_is_locked_frees_the_slot_and_sends_it_a_start(
    postgres_only, recording, make_mock_host
):
    """The waiting job's row is locked (its launch is being refused that moment): no claim.

    The slot is freed and the job is sent a ``start``, which takes the slot; a host with a
    free slot besides the leaving one sends nothing, the waiting jobs' own launches find room.
    """
    host = make_mock_host(max_concurrent_jobs=1)
    running, waiting = submit(host), submit(host)
    steps.launch(running.pk)
    recording.take()
    locking = ContainerJob.objects.select_for_update().filter(pk=waiting.pk)
    with held_open(lambda: list(locking)):
        due_now([running])
        assert steps.check(running.pk) == "completed"
    assert HostSlot.objects.filter(host=host, job__isnull=False).count() == 0
    assert [(step, job_id) for step, job_id, _ in recording.take()] == [("start", str(waiting.pk))]
    assert steps.launch(waiting.pk) == "launched"
    ExecutorHost.objects.filter(pk=host.pk).update(max_concurrent_jobs=3)
    HostSlot.objects.sync(ExecutorHost.objects.get(pk=host.pk))
    later = submit(host)
    recording.take()
    due_now([waiting])
    assert steps.check(waiting.pk) == "completed"
    assert [m for m in recording.take() if m[0] in ("launch", "start")] == []
    assert ContainerJob.objects.get(pk=later.pk).status == "pending"


@pytest.mark.postgres
def test_racing_launches_take_exactly_the_free_slots(postgres_only, recording, make_mock_host):
    """8 launches released together on 3 slots: exactly 3 launch, each on its own slot row."""
    host = make_mock_host(max_concurrent_jobs=3)
    jobs = [submit(host) for _ in range(8)]
    won = []
    errors = together(
        [(lambda job_id: launch_now(job_id) and won.append(job_id), job.pk) for job in jobs]
    )
    assert errors == []
    assert len(won) == 3
    held = HostSlot.objects.filter(host=host, job__isnull=False)
    assert sorted(held.values_list("number", flat=True)) == [0, 1, 2]
    assert set(held.values_list("job", flat=True)) == set(won)
    assert ContainerJob.objects.filter(docker_host=host, status=st.LAUNCHING).count() == 3
    steps.sweep(now=timezone.now())
    assert ExecutorHost.objects.get(pk=host.pk).current_job_count == 3


def slot_rows(host):
    """``{number: job id or None}`` of the host's slot rows."""
    return dict(HostSlot.objects.filter(host=host).values_list("number", "job"))


def test_lowering_the_limit_drops_free_rows_then_the_held_ones_as_their_jobs_leave(
    recording, make_mock_host
):
    host = make_mock_host(max_concurrent_jobs=3, duration=60)
    first, second, waiting = submit(host), submit(host), submit(host)
    assert [steps.launch(job.pk) for job in (first, second)] == ["launched"] * 2
    host.max_concurrent_jobs = 1
    host.save()
    assert slot_rows(host) == {0: first.pk, 1: second.pk}  # the free row 2 is gone
    assert steps.launch(waiting.pk) == "waiting-for-slot"
    ContainerJob.objects.get(pk=second.pk).cancel()
    steps.cancel(second.pk)
    # Row 1 is above the limit: deleted, not handed to the waiting job.
    assert slot_rows(host) == {0: first.pk}
    assert ContainerJob.objects.get(pk=waiting.pk).status == "pending"
    assert ExecutorHost.objects.get(pk=host.pk).current_job_count == 1
    host.max_concurrent_jobs = 2
    host.save()
    assert slot_rows(host) == {0: first.pk, 1: None}
    assert host.is_available() and steps.launch(waiting.pk) == "launched"
    assert ExecutorHost.objects.get(pk=host.pk).current_job_count == 2 == holding(host)


def test_the_migration_gives_every_live_job_a_slot(recording, make_mock_host):
    from importlib import import_module

    from django.apps import apps

    give_slots = import_module("container_manager.migrations.0008_slots").give_slots
    host = make_mock_host(max_concurrent_jobs=1)
    jobs = [submit(host) for _ in range(3)]
    parent = submit(host, array_size=2)
    ContainerJob.objects.filter(pk__in=[j.pk for j in jobs[:2]]).update(status=st.RUNNING)
    ContainerJob.objects.filter(pk=parent.pk).update(status=st.RUNNING)
    HostSlot.objects.all().delete()
    give_slots(apps, None)
    # Two live jobs on one slot: a second row above the limit, dropped when its job leaves.
    assert slot_rows(host) == {0: jobs[0].pk, 1: jobs[1].pk}
    assert ExecutorHost.objects.get(pk=host.pk).current_job_count == 2
    assert not host.is_available()


def test_a_job_back_from_an_unreachable_host_is_handed_a_slot_under_the_same_attempt(
    recording, make_mock_host
):
    """Its attempt's row is there (status pending): the hand-over resets it, never inserts it twice.

    On SQLite the hand-over inserted a second row for attempt 1: the UNIQUE error undid the
    finishing job's move, so the host's slot stayed taken for good.
    """
    host = make_mock_host(max_concurrent_jobs=1, launch_error="unreachable")
    returning = submit(host)
    assert steps.launch(returning.pk) == "host-unreachable"
    ExecutorHost.objects.filter(pk=host.pk).update(executor_config={})
    factory.clear_cache()
    running = submit(host)
    assert steps.launch(running.pk) == "launched"
    ContainerJob.objects.filter(pk=returning.pk).update(run_after=None)
    recording.take()
    due_now([running])
    assert steps.check(running.pk) == "completed"
    assert [(step, job_id) for step, job_id, _ in recording.take() if step == "start"] == [
        ("start", str(returning.pk))
    ]
    handed = ContainerJob.objects.get(pk=returning.pk)
    assert (handed.status, handed.attempt_count) == ("launching", 1)
    row = ContainerExecution.objects.get(job=handed)
    assert (row.attempt, row.status, row.error, row.finished_at) == (1, "launching", "", None)
    assert steps.launch(returning.pk) == "launched"
    assert list(ContainerExecution.objects.filter(job=handed).values_list("attempt", "status")) == [
        (1, "running")
    ]
