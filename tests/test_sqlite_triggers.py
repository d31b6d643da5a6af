"""SQLite's move triggers (``models.sqlite_triggers``): a claim and a move to running are one
UPDATE each.

The claim's trigger takes the job's slot and writes its attempt's row; the move to running's
copies the execution id and acceptance time onto that row. SQLite only: PostgreSQL writes the
same rows in the move's own statement (``tests/test_statements.py`` counts both).
"""

import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from container_manager.engine import statements, steps, transitions
from container_manager.engine.steps import common
from container_manager.models import ContainerExecution, ContainerJob, HostSlot
from container_manager.rules import status as st
from tests.support import row, submit

pytestmark = pytest.mark.django_db(transaction=True)

CLAIM, RUNNING = "cm_claim_takes_slot_and_attempt", "cm_running_copies_attempt"
ATTEMPTS = ContainerExecution._meta.db_table


@pytest.fixture(autouse=True)
def sqlite_only(db, recording):
    """SQLite, and a transport that sends nothing: no launch races the test's own."""
    if connection.vendor != "sqlite":
        pytest.skip("SQLite's triggers; PostgreSQL writes these rows in the move's statement")


def trigger_sql(name):
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tbl_name, sql FROM sqlite_master WHERE type = 'trigger' AND name = %s", [name]
        )
        found = cursor.fetchone()
    assert found, (
        f"no trigger {name}: models.sqlite_triggers makes it after every migrate and on every "
        "new connection"
    )
    assert found[0] == ContainerJob._meta.db_table
    return found[1]


def literal(value):
    """``value`` as a SQL literal, as the frozen trigger spells a field's default."""
    if value is None:
        return "NULL"
    return "'" + str(value).replace("'", "''") + "'"


def test_the_claim_trigger_writes_the_row_insert_attempt_writes():
    """The frozen trigger against ``_insert_attempt``, which follows the live model's fields."""
    sql, params = transitions._insert_attempt("claimed", statements.HOST, statements.NOW)
    columns = re.search(r"\((.*?)\) SELECT", sql).group(1).split(", ")
    now = ContainerExecution._meta.get_field("started_at").get_db_prep_save(
        statements.NOW, connection
    )
    given = {statements.HOST: 'NEW."docker_host_id"', now: 'NEW."updated_at"'}
    values, selected = iter(params), re.search(r"SELECT (.*) FROM claimed", sql).group(1)
    expected = {}
    for column, value in zip(columns, selected.split(", "), strict=True):
        if value.startswith("claimed."):
            expected[column] = 'NEW."{}"'.format(value.removeprefix("claimed."))
            continue
        param = next(values)
        expected[column] = given.get(param) or literal(getattr(param, "value", param))
    insert = re.search(
        rf'INSERT INTO "{ATTEMPTS}" \((.*?)\) VALUES \((.*?)\)\s+ON CONFLICT \((.*?)\) '
        r"DO UPDATE SET (.*?);",
        trigger_sql(CLAIM),
        re.DOTALL,
    )
    frozen = dict(zip(insert.group(1).split(", "), insert.group(2).split(", "), strict=True))
    assert frozen == expected, (
        "the SQLite claim trigger (models.sqlite_triggers.attempt_row) no longer writes the "
        "row transitions._insert_attempt writes"
    )
    assert insert.group(3) == '"job_id", "attempt"'
    updated = [c for c in expected if c not in ('"job_id"', '"attempt"')]
    assert insert.group(4).split(", ") == [f"{c} = excluded.{c}" for c in updated]
    assert 'NEW."execution_id"' in trigger_sql(RUNNING)


def verbs(captured):
    return [query["sql"].split()[0] for query in captured.captured_queries]


def test_a_claim_is_one_update_that_takes_the_slot_and_writes_the_attempt(make_mock_host):
    host = make_mock_host(max_concurrent_jobs=2)
    job = submit(host)
    lease = timezone.now() + timedelta(seconds=60)
    with CaptureQueriesContext(connection) as captured:
        assert transitions.begin_launch(job, lease)
    assert verbs(captured) == ["UPDATE"]  # no BEGIN: one statement is atomic
    claimed = row(job)
    assert (claimed.status, claimed.attempt_count) == (st.LAUNCHING, 1)
    assert list(HostSlot.objects.filter(job=job).values_list("number", flat=True)) == [0]
    (attempt,) = ContainerExecution.objects.filter(job=job)
    assert (attempt.attempt, attempt.status, attempt.host_id) == (1, st.LAUNCHING, host.pk)
    assert attempt.started_at == claimed.updated_at
    assert (attempt.execution_id, attempt.platform_times, attempt.exit_code) == ("", {}, None)


def test_a_claim_on_a_full_host_raises_host_full_and_writes_nothing(make_mock_host, hold_slots):
    host = make_mock_host(max_concurrent_jobs=1)
    hold_slots(host, 1)
    job = submit(host)
    with CaptureQueriesContext(connection) as captured, pytest.raises(transitions.HostFull):
        transitions.begin_launch(job, timezone.now())
    assert verbs(captured) == ["UPDATE", "SELECT"]  # the SELECT only when nothing moved
    assert (row(job).status, row(job).attempt_count) == (st.PENDING, 0)
    assert not ContainerExecution.objects.filter(job=job).exists()
    assert not HostSlot.objects.filter(job=job).exists()


def test_a_claim_on_an_inactive_host_raises_host_full(make_mock_host):
    host = make_mock_host(max_concurrent_jobs=1)
    job = submit(host)
    type(host).objects.filter(pk=host.pk).update(is_active=False)
    with pytest.raises(transitions.HostFull):
        transitions.begin_launch(job, timezone.now())
    assert row(job).status == st.PENDING
    assert not ContainerExecution.objects.filter(job=job).exists()


def test_a_claim_lost_to_another_caller_returns_false(make_mock_host):
    host = make_mock_host(max_concurrent_jobs=2)
    job = submit(host)
    stale = row(job)
    assert transitions.begin_launch(job, timezone.now())
    with CaptureQueriesContext(connection) as captured:
        assert not transitions.begin_launch(stale, timezone.now())
    assert verbs(captured) == ["UPDATE", "SELECT"]
    assert row(job).attempt_count == 1
    assert ContainerExecution.objects.filter(job=job).count() == 1
    assert HostSlot.objects.filter(job=job).count() == 1


def test_a_hand_over_leaves_the_claimed_job_one_slot_and_one_attempt(recording, make_mock_host):
    host = make_mock_host(max_concurrent_jobs=1)
    first, second = submit(host), submit(host)
    recording.take()
    assert steps.run_step("launch", first.pk) == "launched"
    assert steps.run_step("launch", second.pk) == "waiting-for-slot"
    with CaptureQueriesContext(connection) as captured:
        assert steps.run_step("check", first.pk) == "completed"
    attempt_writes = [q["sql"] for q in captured.captured_queries if ATTEMPTS in q["sql"]]
    # The finish's copy onto the leaving job's attempt; the claimed one's row is the trigger's.
    assert len(attempt_writes) == 1 and attempt_writes[0].startswith("UPDATE")
    handed = row(second)
    assert (handed.status, handed.attempt_count) == (st.LAUNCHING, 1)
    assert list(HostSlot.objects.filter(job=second).values_list("number", flat=True)) == [0]
    (attempt,) = ContainerExecution.objects.filter(job=second)
    assert (attempt.attempt, attempt.status, attempt.host_id) == (1, st.LAUNCHING, host.pk)
    assert steps.run_step("start", second.pk) == "launched"
    assert steps.run_step("check", second.pk) == "completed"
    assert ContainerExecution.objects.get(job=second).status == st.COMPLETED
    assert not HostSlot.objects.filter(job__isnull=False).exists()


def test_a_lifecycle_leaves_the_attempt_row_as_before(recording, mock_host):
    job = submit(mock_host)
    recording.take()
    with CaptureQueriesContext(connection) as captured:
        assert steps.run_step("launch", job.pk) == "launched"
    assert verbs(captured) == ["SELECT", "UPDATE", "UPDATE"]
    running = row(job)
    attempt = ContainerExecution.objects.get(job=job)
    assert (attempt.status, attempt.error) == (st.RUNNING, "")
    assert attempt.execution_id == running.execution_id != ""
    assert attempt.accepted_at == running.started_at
    assert steps.run_step("check", job.pk) == "completed"
    attempt = ContainerExecution.objects.get(job=job)
    assert (attempt.status, attempt.exit_code) == (st.COMPLETED, 0)
    assert attempt.execution_id == running.execution_id
    # The harvest may move "accepted" back to the container's own start (``timings``).
    assert attempt.accepted_at <= running.started_at
    assert attempt.finished_at is not None


def test_a_move_to_running_with_other_attempt_values_writes_them_itself(recording, mock_host):
    job = submit(mock_host)
    assert transitions.begin_launch(job, timezone.now())
    launching, now = common.load(job.pk), timezone.now()
    execution = {"status": st.RUNNING, "execution_id": "e-1", "error": "", "accepted_at": now}
    execution["container_started_at"] = now  # more than the trigger copies
    with CaptureQueriesContext(connection) as captured:
        assert transitions.move(
            launching, st.LAUNCHING, st.RUNNING, guard={"attempt_count": 1},
            execution_id="e-1", started_at=now, execution=execution,
        )  # fmt: skip
    assert verbs(captured) == ["BEGIN", "UPDATE", "UPDATE", "COMMIT"]
    attempt = ContainerExecution.objects.get(job=job)
    assert (attempt.execution_id, attempt.container_started_at) == ("e-1", now)


def test_a_migration_that_remakes_the_tables_keeps_the_triggers():
    """SQLite remakes a table for most field changes, dropping its triggers with it (and will
    not remake the attempt table while the claim's trigger names it): migrate drops them first
    and makes them again after, so launches keep their slot and attempt."""
    from django.core.management import call_command

    from container_manager.models import sqlite_triggers

    sqlite_triggers.before_migrate(None, using=connection.alias)
    with connection.schema_editor() as editor:  # what a field change does on SQLite
        editor._remake_table(ContainerJob)
        editor._remake_table(ContainerExecution)
    sqlite_triggers.after_migrate(None, using=connection.alias)
    assert trigger_sql(CLAIM) and trigger_sql(RUNNING)
    with connection.cursor() as cursor:
        cursor.execute(f'DROP TRIGGER "{RUNNING}"')
    call_command("migrate", verbosity=0)  # nothing to apply: its signals still run
    assert trigger_sql(CLAIM) and trigger_sql(RUNNING)


def test_a_connection_makes_the_triggers_where_they_are_missing():
    from container_manager.models import sqlite_triggers

    with connection.cursor() as cursor:
        cursor.execute(f'DROP TRIGGER "{CLAIM}"')
    sqlite_triggers.created(None, connection)
    assert trigger_sql(CLAIM)
