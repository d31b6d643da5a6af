"""A million rows: the admin list and the metrics scrape cost the same at any number of jobs.

Statement counts, not timings (``benchmarks/million_rows.py`` times them): the list counts at
most ``COUNT_CAP`` rows, the scrape reads finished jobs from the tallies their final moves
wrote, and those tallies equal a scan of the rows.
"""

import io
import re
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from container_manager.admin import counting
from container_manager.engine import steps
from container_manager.engine.steps import common
from container_manager.engine.transitions import move
from container_manager.models import ContainerJob, JobTally
from container_manager.models.tallies import BOUNDS
from container_manager.rules import status as st
from tests.support import submit
from tests.test_metrics import TOKEN, finished_job, samples

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:container_manager_containerjob_changelist"
JOBS = 'FROM "container_manager_containerjob"'


def jobs_on(host, count):
    """``count`` jobs straight into the table: finished ones of every kind and a few live."""
    statuses = ["completed", "failed", "timeout", "cancelled"]
    for n in range(count):
        if n % 10 == 9:
            ContainerJob.objects.create_job(image="busybox", docker_host=host)
        else:
            finished_job(host, n % 70, n * 13 % 5000, status=statuses[n % 4])


def list_statements(client, query=""):
    with CaptureQueriesContext(connection) as captured:
        response = client.get(f"{reverse(CHANGELIST)}?{query}")
    assert response.status_code == 200
    return [q["sql"] for q in captured.captured_queries]


@pytest.mark.parametrize("query", ["", "status__exact=failed", "q=busybox"])
def test_the_job_list_costs_the_same_statements_at_10_and_100_jobs(
    admin_client, make_mock_host, query
):
    host = make_mock_host(name="list")
    jobs_on(host, 10)
    small = list_statements(admin_client, query)
    jobs_on(host, 90)
    large = list_statements(admin_client, query)
    assert len(small) == len(large)


def test_the_job_list_counts_no_table_in_full(admin_client, make_mock_host):
    """Every COUNT reads at most ``COUNT_CAP + 1`` rows (old: two full ``COUNT(*)``)."""
    jobs_on(make_mock_host(name="count"), 12)
    for query in ("", "status__exact=failed", "docker_host__executor_type=mock"):
        statements = list_statements(admin_client, query)
        counts = [sql for sql in statements if "COUNT(*)" in sql and JOBS in sql]
        assert counts, query
        capped = rf"LIMIT {counting.COUNT_CAP + 1}\b"
        assert [sql for sql in counts if not re.search(capped, sql)] == []


def test_past_the_cap_a_filtered_list_shows_the_cap(admin_client, make_mock_host, monkeypatch):
    monkeypatch.setattr(counting, "COUNT_CAP", 5)
    jobs_on(make_mock_host(name="cap"), 12)
    filtered = admin_client.get(f"{reverse(CHANGELIST)}?status__exact=completed")
    assert filtered.context["cl"].result_count == 3
    everything = admin_client.get(f"{reverse(CHANGELIST)}?q=busybox")
    assert everything.context["cl"].result_count == 5


def test_only_indexed_columns_sort_the_list(admin_client, make_mock_host):
    jobs_on(make_mock_host(name="sort"), 3)
    response = admin_client.get(reverse(CHANGELIST))
    sortable = [header["text"] for header in _headers(response) if header["sortable"]]
    assert sortable == ["job", "created"]


def _headers(response):
    from django.contrib.admin.templatetags.admin_list import result_headers

    return list(result_headers(response.context["cl"]))


@pytest.fixture
def scrape(client, settings, recording):
    settings.CONTAINER_MANAGER = {**settings.CONTAINER_MANAGER, "API_TOKENS": [TOKEN]}

    def get():
        with CaptureQueriesContext(connection) as captured:
            response = client.get(
                reverse("container_manager:metrics"), headers={"Authorization": f"Bearer {TOKEN}"}
            )
        assert response.status_code == 200
        return samples(response.content.decode()), [q["sql"] for q in captured]

    return get


def test_a_scrape_reads_no_finished_job_row_at_10_or_100_jobs(scrape, make_mock_host):
    host = make_mock_host(name="scrape")
    jobs_on(host, 10)
    _, small = scrape()
    jobs_on(host, 90)
    _, large = scrape()
    assert len(small) == len(large) == 2
    for sql in large:
        if JOBS in sql:
            assert all(f"'{status}'" in sql for status in st.LIVE)
            assert not any(f"'{status}'" in sql for status in st.TERMINAL)


def scan(now, window_hours=24):
    """The figures as the old scrape derived them: a scan of every row."""
    since = now - timedelta(hours=window_hours)
    found, hosts = {}, set()
    for job in ContainerJob.objects.select_related("docker_host"):
        host = job.docker_host.name
        key = ("cm_jobs", (("host", host), ("status", job.status)))
        found[key] = found.get(key, 0) + 1
        if job.estimated_cost is not None and job.cost_currency:
            key = ("cm_jobs_estimated_cost", (("currency", job.cost_currency), ("host", host)))
            found[key] = found.get(key, 0) + float(job.estimated_cost)
        started = job.started_at is not None and job.started_at >= since
        finished = job.completed_at is not None and job.completed_at >= since
        if started or finished:
            hosts.add(host)
        spans = {
            "cm_job_submit_to_start_seconds": started and job.started_at - job.created_at,
            "cm_job_run_seconds": finished and job.started_at and job.completed_at - job.started_at,
        }
        for family, span in spans.items():
            if not span and span != timedelta(0):
                continue
            for bound in [*BOUNDS, "+Inf"]:
                if bound == "+Inf" or span <= timedelta(seconds=bound):
                    key = (f"{family}_bucket", (("host", host), ("le", str(bound))))
                    found[key] = found.get(key, 0) + 1
            key = (f"{family}_gsum", (("host", host),))
            found[key] = found.get(key, 0) + span.total_seconds()
    for host in hosts:
        for family in ("cm_job_submit_to_start_seconds", "cm_job_run_seconds"):
            for bound in [*BOUNDS, "+Inf"]:
                found.setdefault((f"{family}_bucket", (("host", host), ("le", str(bound)))), 0)
            found.setdefault((f"{family}_gsum", (("host", host),)), 0)
            found[f"{family}_gcount", (("host", host),)] = found[
                f"{family}_bucket", (("host", host), ("le", "+Inf"))
            ]
    return found


def job_figures(found):
    return {key: value for key, value in found.items() if key[0].startswith(("cm_jobs", "cm_job_"))}


def test_the_figures_equal_a_scan_of_the_rows(scrape, make_mock_host):
    one, two = make_mock_host(name="one"), make_mock_host(name="two")
    jobs_on(one, 30)
    for n in range(8):
        finished_job(two, n * 40, n * 700 + 0.5, cost="0.125" if n % 2 else None)
    old = finished_job(two, 5, 5)
    JobTally.objects.record(old.pk, sign=-1)
    earlier = timezone.now() - timedelta(hours=30)
    ContainerJob.objects.filter(pk=old.pk).update(
        created_at=earlier, started_at=earlier, completed_at=earlier + timedelta(seconds=1)
    )
    JobTally.objects.record(old.pk)
    never = ContainerJob.objects.create_job(image="busybox", docker_host=make_mock_host(name="3"))
    ContainerJob.objects.filter(pk=never.pk).update(status="cancelled", completed_at=timezone.now())
    JobTally.objects.record(never.pk)
    running = ContainerJob.objects.create_job(image="busybox", docker_host=two)
    ContainerJob.objects.filter(pk=running.pk).update(
        status="running", started_at=timezone.now() - timedelta(seconds=30)
    )
    found, _ = scrape()
    assert job_figures(found) == pytest.approx(scan(timezone.now()))
    gone = ContainerJob.objects.filter(docker_host=two, status="completed").values("pk")[:3]
    ContainerJob.objects.filter(pk__in=[row["pk"] for row in gone]).delete()
    found, _ = scrape()
    assert job_figures(found) == pytest.approx(scan(timezone.now()))


def test_a_rebuild_gives_the_tallies_the_final_moves_wrote(recording, make_mock_host):
    host = make_mock_host(name="rebuild")
    for _ in range(4):
        job = submit(host)
        steps.run_step("launch", job.pk)
        steps.run_step("check", job.pk)
    cancelled = submit(host)
    cancelled.cancel()
    steps.run_step("cancel", cancelled.pk)
    columns = ("host_id", "kind", "bucket", "currency", "jobs", "micros", "seen", "le_1")
    written = sorted(JobTally.objects.values_list(*columns))
    assert sum(row[4] for row in written if row[1] in st.TERMINAL) == 5
    call_command("rebuild_metrics", stdout=io.StringIO())
    assert sorted(JobTally.objects.values_list(*columns)) == written


def test_a_job_harvested_twice_is_counted_once(recording, mock_host):
    job = submit(mock_host)
    steps.run_step("launch", job.pk)
    stale = common.load(job.pk)
    assert steps.run_step("check", job.pk) == "completed"
    counted = list(JobTally.objects.order_by("kind").values_list("kind", "jobs"))
    assert counted == [("completed", 1), ("run", 1), ("wait", 1)]
    steps.run_step("harvest", job.pk)
    assert not move(stale, st.RUNNING, st.COMPLETED, guard={"attempt_count": 1})
    assert list(JobTally.objects.order_by("kind").values_list("kind", "jobs")) == counted


def test_a_search_matches_name_image_command_host_and_whole_id(admin_client, make_mock_host):
    host = make_mock_host(name="gpu-west")
    other = make_mock_host(name="cpu-east")
    create = ContainerJob.objects.create_job
    by_name = create(image="x", command="true", name="nightly-report", docker_host=other)
    by_image = create(image="registry.example/etl:7", command="true", docker_host=other)
    by_command = create(image="x", command="python crunch.py", docker_host=other)
    by_host = create(image="x", command="true", docker_host=host)
    unmatched = create(image="x", command="true", name="other", docker_host=other)

    def found(term):
        response = admin_client.get(reverse(CHANGELIST), {"q": term})
        return {job.pk for job in response.context["cl"].result_list}

    assert found("REPORT") == {by_name.pk}
    assert found("etl:7") == {by_image.pk}
    assert found("crunch") == {by_command.pk}
    assert found("gpu-") == {by_host.pk}
    assert found(str(unmatched.pk)) == {unmatched.pk}
    assert found("nightly crunch") == set()  # every term must match
    assert found('"nightly-report"') == {by_name.pk}


@pytest.mark.postgres
def test_on_postgresql_a_search_is_answered_from_the_trigram_indexes(
    postgres_only, admin_client, make_mock_host
):
    """The search's conditions match the trigram indexes' expressions, so PostgreSQL can
    answer them with a bitmap over the three indexes (it does at a million rows; here, with
    ten, only when told not to scan)."""
    jobs_on(make_mock_host(name="plan"), 10)
    queryset = admin_client.get(reverse(CHANGELIST), {"q": "job-4242"}).context["cl"].queryset
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_indexscan = off")
        plan = queryset.order_by().explain()
    for index in ("cjob_name_trgm", "cjob_image_trgm", "cjob_command_trgm"):
        assert index in plan, plan
