"""The admin's view of timings and cost: the attempt timeline, the cost column, the dashboard."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from container_manager.admin import dashboard
from container_manager.engine import steps
from container_manager.models import ContainerExecution, ContainerJob

pytestmark = pytest.mark.django_db
JOBS = "admin:container_manager_containerjob"


def finished(host, **fields):
    job = ContainerJob.objects.create_job(image="x", docker_host=host, **fields)
    steps.launch(job.pk)
    steps.check(job.pk)
    return ContainerJob.objects.get(pk=job.pk)


@pytest.fixture
def priced_host(make_mock_host, recording):
    return make_mock_host(name="priced", prices={"currency": "USD", "vcpu_hour": 36})


def test_job_page_draws_each_attempt_as_a_timeline(admin_client, priced_host):
    job = finished(priced_host, cpu_limit=1)
    page = admin_client.get(reverse(f"{JOBS}_change", args=[job.pk])).content.decode()
    assert page.count('class="cm-timeline"') == 1
    for phase in ("waiting", "launching", "starting", "running", "harvesting"):
        assert f"cm-phase cm-phase-{phase}" in page
    assert '<th scope="row">container started</th>' in page
    assert '<th scope="row">harvested</th>' in page
    assert f"{job.estimated_cost} USD" in page


def test_the_job_list_shows_and_sorts_by_cost(admin_client, priced_host):
    cheap, dear = finished(priced_host, cpu_limit=1), finished(priced_host, cpu_limit=1)
    ContainerJob.objects.filter(pk=cheap.pk).update(estimated_cost=Decimal("0.01"))
    ContainerJob.objects.filter(pk=dear.pk).update(estimated_cost=Decimal("9.5"))
    changelist = admin_client.get(reverse(f"{JOBS}_changelist"))
    page = changelist.content.decode()
    assert "9.500000 USD" in page and "0.010000 USD" in page
    column = changelist.context["cl"].list_display.index("cost_display")
    ascending = admin_client.get(reverse(f"{JOBS}_changelist"), {"o": str(column)})
    assert [j.pk for j in ascending.context["cl"].result_list] == [cheap.pk, dear.pk]


def test_dashboard_sums_cost_per_day_and_host_in_one_currency(priced_host, make_mock_host):
    other = make_mock_host(name="euro", prices={"currency": "EUR", "vcpu_hour": 36})
    for host, amount in ((priced_host, "1.5"), (priced_host, "2.0"), (other, "4.0")):
        job = finished(host, cpu_limit=1)
        ContainerJob.objects.filter(pk=job.pk).update(estimated_cost=Decimal(amount))
    summary = dashboard.cost_summary()
    hosts = {(r["label"], r["currency"]): (r["total"], r["jobs"]) for r in summary["hosts"]}
    assert hosts == {("priced", "USD"): (Decimal("3.5"), 2), ("euro", "EUR"): (Decimal("4"), 1)}
    assert {(r["currency"], r["total"]) for r in summary["days"]} == {
        ("USD", Decimal("3.5")), ("EUR", Decimal("4")),
    }  # fmt: skip


def test_dashboard_median_time_to_start_per_host(priced_host):
    now = timezone.now()
    for wait in (10, 20, 90):
        job = finished(priced_host)
        ContainerJob.objects.filter(pk=job.pk).update(created_at=now - timedelta(seconds=wait))
        ContainerExecution.objects.filter(job=job).update(
            started_at=now - timedelta(seconds=wait / 2), container_started_at=now
        )
    [row] = dashboard.start_medians()
    assert (row["host"], row["attempts"]) == ("priced", 3)
    assert (row["submit_to_start"], row["launch_to_start"]) == (20, 10)


@pytest.mark.parametrize("size", [2, 20])
def test_dashboard_query_count_is_fixed(size, admin_client, priced_host, make_mock_host):
    hosts = [priced_host, make_mock_host(name="second")]
    for n in range(size):
        finished(hosts[n % 2], cpu_limit=1)
    admin_client.get(reverse(f"{JOBS}_dashboard"))
    with CaptureQueriesContext(connection) as queries:
        response = admin_client.get(reverse(f"{JOBS}_dashboard"))
    figures = [q for q in queries.captured_queries if "container_manager_" in q["sql"]]
    assert len(figures) == 5
    page = response.content.decode()
    assert 'id="cm-start-medians"' in page and "USD" in page and "free" in page
