"""The metrics endpoint: token check, figures parsed with prometheus-client, a fixed query count."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission, User
from django.urls import reverse
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from container_manager import dispatch
from container_manager.engine import steps
from container_manager.models import ApiToken, ContainerJob, JobTally

pytestmark = pytest.mark.django_db

TOKEN = "metrics-test-token"
BEARER = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def scrape(client, settings, recording):
    settings.CONTAINER_MANAGER = {**settings.CONTAINER_MANAGER, "API_TOKENS": [TOKEN]}

    def get():
        response = client.get(reverse("container_manager:metrics"), headers=BEARER)
        assert response.status_code == 200, response.content
        assert response["Content-Type"].startswith("text/plain; version=0.0.4")
        return samples(response.content.decode())

    return get


def samples(text):
    """``{(name, sorted label pairs): value}`` of every sample in the exposition."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def finished_job(host, wait, run, status="completed", cost=None):
    """A job submitted ``wait + run`` seconds ago that started after ``wait`` and ran ``run``.

    Written straight to the row, so it is added to the tallies as its final move would.
    """
    job = ContainerJob.objects.create_job(image="busybox", command="true", docker_host=host)
    created = timezone.now() - timedelta(seconds=wait + run + 60)
    ContainerJob.objects.filter(pk=job.pk).update(
        status=status, created_at=created, started_at=created + timedelta(seconds=wait),
        completed_at=created + timedelta(seconds=wait + run),
        estimated_cost=cost, cost_currency="USD" if cost is not None else "",
    )  # fmt: skip
    JobTally.objects.record(job.pk)
    return job


def test_scrape_needs_the_api_token(client, settings):
    url = reverse("container_manager:metrics")
    settings.CONTAINER_MANAGER = {"API_TOKENS": [TOKEN]}
    assert client.get(url).status_code == 401
    assert client.get(url, headers={"Authorization": "Bearer wrong"}).status_code == 403
    settings.CONTAINER_MANAGER = {"API_TOKENS": []}
    assert client.get(url, headers=BEARER).status_code == 403


def test_a_user_token_needs_view_metrics(client, settings):
    url = reverse("container_manager:metrics")
    settings.CONTAINER_MANAGER = {"API_TOKENS": [TOKEN]}
    ordinary = User.objects.create_user("alice")
    ordinary.user_permissions.add(*Permission.objects.filter(codename__endswith="_containerjob"))
    response = client.get(url, headers={"Authorization": f"Bearer {issue(ordinary)}"})
    assert response.status_code == 403
    assert response.json() == {
        "error": "this token's user may not read metrics (needs container_manager.view_metrics)"
    }
    watcher = User.objects.create_user("watcher")
    watcher.user_permissions.add(Permission.objects.get(codename="view_metrics"))
    assert client.get(url, headers={"Authorization": f"Bearer {issue(watcher)}"}).status_code == 200
    assert client.get(url, headers=BEARER).status_code == 200


def issue(user):
    return ApiToken.objects.issue(user)[1]


def test_the_token_check_is_a_setting(client, settings):
    settings.CONTAINER_MANAGER = {"METRICS_AUTH": "tests.test_metrics.refuse_all"}
    response = client.get(reverse("container_manager:metrics"), headers=BEARER)
    assert (response.status_code, response.json()) == (403, {"error": "nobody scrapes here"})


def refuse_all(request):
    from container_manager.web.auth import AuthError

    raise AuthError(403, "nobody scrapes here")


def test_jobs_by_status_and_host_and_cost(scrape, make_mock_host):
    one, two = make_mock_host(name="one"), make_mock_host(name="two")
    finished_job(one, 3, 40, cost="0.25")
    finished_job(one, 100, 7200, cost="0.50")
    finished_job(two, 1, 1, status="failed")
    ContainerJob.objects.create_job(image="busybox", docker_host=two)
    found = scrape()
    assert found["cm_jobs", (("host", "one"), ("status", "completed"))] == 2
    assert found["cm_jobs", (("host", "two"), ("status", "failed"))] == 1
    assert found["cm_jobs", (("host", "two"), ("status", "pending"))] == 1
    assert found["cm_jobs_estimated_cost", (("currency", "USD"), ("host", "one"))] == 0.75


def test_submit_to_start_and_run_time_histograms(scrape, make_mock_host):
    host = make_mock_host(name="h")
    finished_job(host, 3, 40)
    finished_job(host, 100, 7200)
    found = scrape()
    wait = "cm_job_submit_to_start_seconds_bucket"
    assert found[wait, (("host", "h"), ("le", "5"))] == 1
    assert found[wait, (("host", "h"), ("le", "120"))] == 2
    assert found[wait, (("host", "h"), ("le", "+Inf"))] == 2
    assert found["cm_job_submit_to_start_seconds_gsum", (("host", "h"),)] == pytest.approx(103)
    run = "cm_job_run_seconds_bucket"
    assert found[run, (("host", "h"), ("le", "60"))] == 1
    assert found[run, (("host", "h"), ("le", "3600"))] == 1
    assert found[run, (("host", "h"), ("le", "14400"))] == 2


def test_jobs_older_than_the_window_are_left_out(scrape, settings, make_mock_host):
    host = make_mock_host(name="old")
    job = finished_job(host, 5, 5)
    earlier = timezone.now() - timedelta(hours=30)
    JobTally.objects.record(job.pk, sign=-1)
    ContainerJob.objects.filter(pk=job.pk).update(
        created_at=earlier, started_at=earlier, completed_at=earlier
    )
    JobTally.objects.record(job.pk)
    found = scrape()
    assert ("cm_job_run_seconds_bucket", (("host", "old"), ("le", "+Inf"))) not in found
    assert found["cm_jobs", (("host", "old"), ("status", "completed"))] == 1


def test_steps_sweeps_and_failed_sends_are_counted(scrape, settings, mock_host):
    before = scrape()
    job = ContainerJob.objects.create_job(image="busybox", docker_host=mock_host)
    assert steps.run_step("launch", job.pk) == "launched"
    ContainerJob.objects.filter(pk=job.pk).update(created_at=timezone.now() - timedelta(minutes=1))
    steps.sweep(now=timezone.now() + timedelta(minutes=5))
    settings.CONTAINER_MANAGER = {
        **settings.CONTAINER_MANAGER, "DISPATCH": {"BACKEND": "tests.backends.FailingBackend"},
    }  # fmt: skip
    dispatch.reset_backend()
    with pytest.raises(ConnectionError):
        dispatch.send("check", job.pk)
    dispatch.reset_backend()
    settings.CONTAINER_MANAGER = {**settings.CONTAINER_MANAGER, "DISPATCH": {
        "BACKEND": "tests.backends.RecordingBackend"}}  # fmt: skip
    after = scrape()

    def grew(name, **labels):
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0) - before.get(key, 0)

    assert grew("cm_step_outcomes_total", step="launch", outcome="launched") == 1
    assert grew("cm_step_duration_seconds_count", step="launch") == 1
    assert grew("cm_sweep_found_total", kind="check") == 1
    assert grew("cm_dispatch_send_failures_total", step="check") == 1


@pytest.mark.parametrize("jobs", [3, 40])
def test_a_scrape_costs_two_queries_at_any_size(
    jobs, scrape, make_mock_host, django_assert_num_queries
):
    hosts = [make_mock_host(name=f"size-{n}") for n in range(2)]
    for n in range(jobs):
        finished_job(hosts[n % 2], n, n + 1, status="completed" if n % 3 else "failed")
    with django_assert_num_queries(2):
        found = scrape()
    total = sum(v for (name, _), v in found.items() if name == "cm_jobs")
    assert total == jobs
