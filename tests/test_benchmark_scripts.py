"""The benchmark scripts' own logic: what the tables show and what the floor does per job.

The timings themselves are not tested (benchmarks/README.md); only that the figures are put
together as their documentation says.
"""

import pytest
from django.db import connection

from benchmarks import pg_floor, render, tasks_db, workflows


def test_threaded_floor_row_does_not_repeat_the_sequential_latency():
    """Latency is taken one job at a time: the threaded row shows its throughput only."""
    sequential = {"jobs_per_s": 2.0, "submit_to_start": {"p50_ms": 300.0, "p95_ms": 370.0}}
    threaded = {"jobs_per_s": 4.2, "cpu_s_per_job": 0.01, "submit_to_start": {"p50_ms": 900.0}}
    data = {"floor": {"threads": 4, "sequential": sequential, "threaded": threaded}}

    rows = {label: (seq, burst) for label, seq, burst in render._lifecycle_rows(data)}

    assert rows["floor: docker-py, sequential"] == (sequential, sequential)
    assert rows["floor: docker-py, 4 threads"] == (None, threaded)
    line = next(line for line in render.table(data).splitlines() if "4 threads" in line)
    assert "300.0" not in line and "4.2" in line


def _run(side, mode, jobs_per_s, cpu_s, load=(1.0, 2.0)):
    return {
        "side": side, "mode": mode, "k": 1, "jobs_per_s": jobs_per_s,
        "jobs_per_s_per_process": jobs_per_s, "jobs_per_cpu_s": cpu_s,
        "jobs_per_cpu_s_with_start_up": cpu_s / 2, "cpu_ms_per_job": 1000 / cpu_s,
        "start_up_cpu_s_per_process": 0.4, "load_before": load[0], "load_after": load[1],
    }  # fmt: skip


def test_comparison_reports_medians_of_each_side_and_their_ratio():
    runs = [
        *(_run("ours", "submit", rate, 50) for rate in (20, 30, 25)),
        *(_run("theirs", "submit", rate, 200) for rate in (40, 60, 50)),
        *(_run("floor", "submit", rate, 1000) for rate in (100, 100, 100)),
    ]

    (row,) = tasks_db._medians(runs, ["ours", "theirs", "floor"])

    assert row["k"] == 1 and row["mode"] == "submit"
    assert row["ours"]["jobs_per_s"] == 25 and row["theirs"]["jobs_per_s"] == 50
    assert row["ours_over_theirs"]["jobs_per_s"] == 0.5
    assert row["ours_over_theirs"]["jobs_per_cpu_s"] == 0.25
    assert row["ours_over_floor"]["jobs_per_s"] == 0.25
    assert row["ours"]["loads"] == [(1.0, 2.0)] * 3
    assert "queued" not in {r["mode"] for r in tasks_db._medians(runs, ["ours"])}


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_floor_runs_every_job_once_from_two_connections(postgres_only):
    """Insert, claim with SKIP LOCKED, finish: every job completed, none claimed twice."""
    params = connection.get_connection_params()
    url = " ".join(
        f"{key}={params[key]}" for key in ("dbname", "user", "password", "host", "port")
        if params.get(key)
    )  # fmt: skip
    pg_floor.prepare(url)
    workers = [pg_floor.FloorWorker(url), pg_floor.FloorWorker(url)]
    options = connection.settings_dict["OPTIONS"]
    if "prepare_threshold" in options:  # behind a transaction pooler: nothing prepared
        for worker in workers:
            worker.connection.prepare_threshold = options["prepare_threshold"]
    try:
        for worker in workers:
            worker.prepare("queued", 5)
        for worker in workers:
            worker.run("queued", 5)
            worker.run("submit", 3)
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT status, count(*) FROM {pg_floor.TABLE} GROUP BY status")
            assert dict(cursor.fetchall()) == {"completed": 16}
        first, last, done = pg_floor.span(url)
        assert done == 16 and first <= last
    finally:
        for worker in workers:
            worker.connection.close()
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE {pg_floor.TABLE}")


def _shape(shape, number, submit, done, per_node):
    return {
        "shape": shape, "round": number, "submit_seconds": submit,
        "seconds_until_all_done": done, "statements_per_node": per_node,
        "submit_statements": 11 if shape == "workflow" else 4005, "load": [1.0, 1.0],
    }  # fmt: skip


def test_workflow_benchmark_compares_the_shapes_round_by_round():
    runs = [
        _shape("workflow", 0, 0.1, 10, 6), _shape("single", 0, 30, 20, 9),
        _shape("single", 1, 40, 30, 9), _shape("workflow", 1, 0.2, 10, 6),
        _shape("workflow", 2, 0.4, 20, 7), _shape("single", 2, 20, 20, 10),
    ]  # fmt: skip

    summary = workflows.summarise(runs)

    assert summary["workflow"]["submit_seconds_median"] == 0.2
    assert summary["single"]["submit_statements"] == [4005]
    assert summary["submit_seconds_single_over_workflow"]["per_round"] == [300, 200, 50]
    assert summary["submit_seconds_single_over_workflow"]["median"] == 200
    assert summary["seconds_until_all_done_single_over_workflow"]["median"] == 2


@pytest.mark.django_db
def test_workflow_benchmark_builds_the_same_three_stages_both_ways(mock_host):
    from container_manager.models import ContainerJob, JobDependency, Workflow

    document, singles = workflows.STAGE2["fan-out"]
    workflow = Workflow.objects.submit(document(mock_host.name, 3))
    middle = workflow.jobs.get(workflow_node="middle")
    assert middle.array_children.count() == 3
    assert set(workflow.jobs.get(workflow_node="last").depends_on.all()) == {middle}
    ContainerJob.objects.all().delete()

    singles(mock_host, 3)

    assert ContainerJob.objects.count() == 5
    assert JobDependency.objects.count() == 3 + 3
