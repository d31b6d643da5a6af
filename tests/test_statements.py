"""Statements per step: a job without endpoints or dependencies reads neither table.

And the reads it skips are still made when something can match: endpoints and dependents.
"""

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from container_manager.engine import steps
from container_manager.engine.steps import common
from container_manager.engine.transitions import move
from container_manager.models import ContainerExecution, ContainerJob, IdempotencyKey, JobTally
from container_manager.models.webhooks import WebhookDelivery, WebhookEndpoint
from container_manager.rules import status as st
from tests.support import submit

pytestmark = pytest.mark.django_db(transaction=True)


def run(step, job):
    with CaptureQueriesContext(connection) as captured:
        answer = steps.run_step(step, job.pk)
    return answer, [query["sql"] for query in captured.captured_queries]


def reads(statements, table):
    """SELECTs whose own FROM is ``table`` (not a subquery of the job's SELECT)."""
    found = []
    for sql in statements:
        outer, inner = sql, None
        while inner != outer:  # drop parenthesised parts, innermost first
            inner, outer = outer, re.sub(r"\([^()]*\)", "", outer)
        if outer.startswith("SELECT") and f' FROM "{table}"' in outer:
            found.append(sql)
    return found


def lifecycle(recording, job):
    """The statements of ``job``'s launch and its check, which finds it completed."""
    recording.take()
    launched, at_launch = run("launch", job)
    finished, at_check = run("check", job)
    assert (launched, finished) == ("launched", "completed")
    return at_launch, at_check


def test_a_plain_job_reads_no_endpoint_and_no_dependency(recording, mock_host):
    at_launch, at_check = lifecycle(recording, submit(mock_host))
    for statements in (at_launch, at_check):
        assert reads(statements, "container_manager_webhookendpoint") == []
        assert reads(statements, "container_manager_jobdependency") == []
    # The step's load only: no hand-over selects a waiting job while the host has room.
    jobs = [len(reads(s, "container_manager_containerjob")) for s in (at_launch, at_check)]
    assert jobs == [1, 1]


def verbs(statements):
    """Each statement's first word: ``SELECT``, ``WITH``, ``UPDATE``, ``BEGIN``…"""
    return [sql.split()[0] for sql in statements]


#: Each step of a plain job, statement by statement (benchmarks/README.md, "Issue 27").
PLAIN = {
    "postgresql": {
        # The load; the slot claim with the attempt's INSERT; the move to running with
        # the attempt's copy.
        "launch": ["SELECT", "WITH", "WITH"],
        # The load; the final move, the attempt's results and the slot's release.
        "check": ["SELECT", "WITH"],
    },
    "sqlite": {
        # The load; the claim (its trigger takes the slot and writes the attempt); the move
        # to running (its trigger copies onto the attempt): models.sqlite_triggers.
        "launch": ["SELECT", "UPDATE", "UPDATE"],
        # … and the metrics' tally upsert, in the move's transaction.
        "check": ["SELECT", "BEGIN", "UPDATE", "UPDATE", "UPDATE", "INSERT", "COMMIT"],
    },
}


def test_each_step_of_a_plain_job_is_its_load_and_one_statement_per_write(recording, mock_host):
    """PostgreSQL: 6 statements a job with its submit (13 before), SQLite 11 (18 before)."""
    job = submit(mock_host)
    at_launch, at_check = lifecycle(recording, job)
    expected = PLAIN[connection.vendor]
    assert {"launch": verbs(at_launch), "check": verbs(at_check)} == expected
    attempt = ContainerExecution.objects.get(job_id=job.pk)
    assert (attempt.status, attempt.exit_code) == (st.COMPLETED, 0)


def test_the_logs_are_written_once_on_the_job_and_read_by_its_attempt(recording, mock_host):
    job = submit(mock_host)
    _, at_check = lifecycle(recording, job)
    assert sum("simulated run" in sql for sql in at_check) == 1
    attempt = ContainerExecution.objects.get(job_id=job.pk)
    assert attempt.stdout_log == ""  # not copied
    stored = ContainerJob.objects.get(pk=job.pk)
    assert "simulated run" in stored.stdout_log
    assert attempt.log("stdout_log") == stored.stdout_log
    assert attempt.log("docker_log") == stored.docker_log
    assert attempt.logs == stored.stdout_log + stored.stderr_log


def test_a_finish_on_a_full_host_hands_its_slot_over_in_its_own_statement(
    recording, make_mock_host
):
    host = make_mock_host(max_concurrent_jobs=1)
    first, second = submit(host), submit(host)
    recording.take()
    assert steps.run_step("launch", first.pk) == "launched"
    assert steps.run_step("launch", second.pk) == "waiting-for-slot"
    finished, at_check = run("check", first)
    assert finished == "completed"
    if connection.vendor == "postgresql":
        assert verbs(at_check) == ["SELECT", "WITH"]
    assert ("start", str(second.pk), 0.0) in recording.take()
    handed = ContainerJob.objects.get(pk=second.pk)
    assert (handed.status, handed.attempt_count) == (st.LAUNCHING, 1)
    assert steps.run_step("start", second.pk) == "launched"


def test_an_endpoint_made_before_the_step_gets_the_events(recording, mock_host):
    job = submit(mock_host)
    WebhookEndpoint.objects.create(url="http://127.0.0.1:9/hook")  # after the submit
    recording.take()
    assert steps.run_step("launch", job.pk) == "launched"
    assert steps.run_step("check", job.pk) == "completed"
    events = set(WebhookDelivery.objects.filter(job=job).values_list("event", flat=True))
    assert events == {"job.started", "job.completed"}
    assert [m[0] for m in recording.take()].count("notify") == 2


def test_an_event_costs_two_statements_in_its_move_for_any_endpoints(recording, mock_host):
    """One SELECT of the endpoints and one INSERT of every delivery, before the move commits.

    A move that is one statement without them (PostgreSQL's; SQLite's move to running) gets
    its BEGIN and COMMIT from them too.
    """
    plain = submit(mock_host)
    without = [len(run(step, plain)[1]) for step in ("launch", "check")]
    for n in range(3):
        WebhookEndpoint.objects.create(url=f"http://127.0.0.1:9/hook{n}")
    job = submit(mock_host)
    recording.take()
    runs = [run(step, job)[1] for step in ("launch", "check")]
    extra = [4, 4] if connection.vendor == "postgresql" else [4, 2]
    counts = [n + e for n, e in zip(without, extra, strict=True)]
    assert [len(statements) for statements in runs] == counts
    for statements in runs:
        assert len(reads(statements, "container_manager_webhookendpoint")) == 1
        (insert,) = [
            i
            for i, sql in enumerate(statements)
            if sql.startswith("INSERT") and 'INTO "container_manager_webhookdelivery"' in sql
        ]
        begin = max(i for i, sql in enumerate(statements[:insert]) if sql.startswith("BEGIN"))
        commit = min(i for i, sql in enumerate(statements) if i > insert and sql == "COMMIT")
        moved = [sql for sql in statements[begin:commit] if 'SET "status"' in sql]
        assert moved, "the delivery rows are written in the move's transaction"
    assert WebhookDelivery.objects.filter(job=job).count() == 6


def test_a_dependent_recorded_during_the_final_move_is_released(recording, mock_host):
    upstream = submit(mock_host)
    recording.take()
    assert steps.run_step("launch", upstream.pk) == "launched"
    stale = common.load(upstream.pk)  # read by a check before the dependent exists
    assert not stale.has_dependents
    downstream = submit(mock_host, depends_on=[upstream])
    assert steps.run_step("launch", downstream.pk) == "waiting-for-dependencies"
    recording.take()
    assert move(stale, st.RUNNING, st.COMPLETED, guard={"attempt_count": stale.attempt_count})
    assert stale.has_dependents
    assert ("launch", str(downstream.pk), 0.0) in recording.take()
    assert steps.run_step("launch", downstream.pk) == "launched"


def test_a_final_move_already_made_is_not_made_again(recording, mock_host):
    job = submit(mock_host)
    recording.take()
    steps.run_step("launch", job.pk)
    stale = common.load(job.pk)
    assert steps.run_step("check", job.pk) == "completed"
    assert not move(stale, st.RUNNING, st.FAILED, guard={"attempt_count": stale.attempt_count})
    assert ContainerJob.objects.get(pk=job.pk).status == st.COMPLETED


def test_a_submission_without_an_idempotency_key_is_one_insert(recording, mock_host):
    """No key, no quota asked: no read of the key table, no transaction, only the job's INSERT."""
    with CaptureQueriesContext(connection) as captured:
        submit(mock_host)
    assert [q["sql"].split()[0] for q in captured.captured_queries] == ["INSERT"]
    assert not IdempotencyKey.objects.exists()


def test_a_final_move_writes_its_tally_with_it_and_a_move_made_twice_none(recording, mock_host):
    """The metrics' upsert rides in the final move: PostgreSQL, a CTE of the move's one
    statement; SQLite, one more statement in the move's transaction."""
    job = submit(mock_host)
    recording.take()
    steps.run_step("launch", job.pk)
    stale = common.load(job.pk)
    finished, statements = run("check", job)
    assert finished == "completed"
    tallied = [i for i, sql in enumerate(statements) if '"container_manager_jobtally"' in sql]
    assert len(tallied) == 1
    if connection.vendor == "postgresql":
        assert 'SET "status"' in statements[tallied[0]]  # the move itself
    else:
        begin = max(i for i, sql in enumerate(statements[: tallied[0]]) if sql.startswith("BEGIN"))
        commit = min(i for i, sql in enumerate(statements) if i > tallied[0] and sql == "COMMIT")
        assert any('SET "status"' in sql for sql in statements[begin:commit])
    counted = list(JobTally.objects.values_list("kind", "bucket", "jobs", "seen"))
    with CaptureQueriesContext(connection) as again:
        assert not move(stale, st.RUNNING, st.FAILED, guard={"attempt_count": stale.attempt_count})
    assert list(JobTally.objects.values_list("kind", "bucket", "jobs", "seen")) == counted
    if connection.vendor != "postgresql":  # no upsert sent when nothing moved
        assert not any("jobtally" in query["sql"] for query in again.captured_queries)
