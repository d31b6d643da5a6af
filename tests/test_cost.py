"""The estimated cost of a job: known durations and resources on each platform's price."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.core import checks

from container_manager.engine import cost, steps
from container_manager.models import ContainerJob, ExecutorHost
from container_manager.rules.cost import CENT

START = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def job_on(executor_type, config=None, **fields):
    host = ExecutorHost(
        name=executor_type, executor_type=executor_type, executor_config=config or {}
    )
    return ContainerJob(docker_host=host, **fields)


def cost_of(job, seconds):
    return cost.estimate(job, START, START + timedelta(seconds=seconds))


def test_fargate_bills_the_task_size_per_hour_with_a_minute_minimum():
    # 0.3 vCPU / 600 MB rounds up to the 0.5 vCPU / 1 GB task size.
    job = job_on("fargate", {"region": "us-east-1"}, cpu_limit=0.3, memory_limit=600)
    amount = Decimal("3600") * (Decimal("0.5") * Decimal("0.04048") + Decimal("0.004445")) / 3600
    assert cost_of(job, 3600) == (amount.quantize(CENT), "USD")
    assert cost_of(job, 5) == cost_of(job, 60)


def test_cloud_run_bills_vcpu_and_gib_seconds_in_tenths_of_a_second():
    job = job_on("cloudrun", {"region": "europe-west1"}, cpu_limit=2, memory_limit=1024)
    # 10.01 s is billed as 10.1 s: 10.1 * (2 * 0.000018 + 1 * 0.000002)
    assert cost_of(job, 10.01) == (Decimal("0.000384"), "USD")


def test_scaleway_bills_in_euros():
    job = job_on("scaleway", {"region": "fr-par"}, cpu_limit=1, memory_limit=2048)
    assert cost_of(job, 1000) == (Decimal("0.012000"), "EUR")


def test_a_region_in_settings_overrides_the_default(settings):
    settings.CONTAINER_MANAGER = {
        "PRICES": {"fargate": {"eu-west-3": {"currency": "EUR", "vcpu_hour": 1, "gb_hour": 0}}}
    }
    paris = job_on("fargate", {"region": "eu-west-3"}, cpu_limit=1, memory_limit=2048)
    assert cost_of(paris, 1800) == (Decimal("0.500000"), "EUR")
    virginia = job_on("fargate", {"region": "us-east-1"}, cpu_limit=1, memory_limit=2048)
    assert cost_of(virginia, 1800)[1] == "USD"  # the built-in default still applies


def test_docker_is_free_unless_the_host_has_a_rate():
    assert cost_of(job_on("docker", cpu_limit=1), 3600) == (Decimal(0), "")
    priced = job_on("docker", {"prices": {"currency": "USD", "vcpu_hour": 0.1}}, cpu_limit=2)
    assert cost_of(priced, 3600) == (Decimal("0.200000"), "USD")


def test_used_resources_count_when_none_were_requested():
    job = job_on(
        "docker", {"prices": {"vcpu_second": 1, "gb_second": 1}},
        cpu_usage_percent=50.0, max_memory_usage=512 * 2**20,
    )  # fmt: skip
    assert cost_of(job, 2) == (Decimal("2.000000"), "USD")  # 2 s * (0.5 vCPU + 0.5 GB)


def test_unknown_platform_or_no_start_has_no_cost():
    assert cost_of(job_on("my-platform"), 60) is None
    assert cost.estimate(job_on("docker"), None, START) is None


@pytest.mark.django_db
def test_harvest_stores_the_cost_on_the_job(recording, make_mock_host):
    host = make_mock_host(prices={"currency": "USD", "vcpu_hour": 3600})
    job = ContainerJob.objects.create_job(image="x", docker_host=host, cpu_limit=1)
    steps.launch(job.pk)
    ContainerJob.objects.filter(pk=job.pk).update(next_check_at=None)
    steps.check(job.pk)
    done = ContainerJob.objects.get(pk=job.pk)
    assert done.status == "completed" and done.cost_currency == "USD"
    seconds = Decimal(str((done.completed_at - done.started_at).total_seconds()))
    assert done.estimated_cost == seconds.quantize(CENT)


def test_bad_price_entries_are_reported_by_the_system_check(settings):
    settings.CONTAINER_MANAGER = {"PRICES": {"fargate": {"default": {"vcpu_hour": -1}}}}
    [error] = [m for m in checks.run_checks() if m.id == "container_manager.E020"]
    assert "PRICES['fargate']['default']['vcpu_hour']: must be a number >= 0" in error.msg
