"""Write-only secrets in the admin: a webhook endpoint's secret and a schedule's environment.

A superuser and a view-only staff user walk every page through Django's test client.
"""

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Permission, User
from django.contrib.sessions.models import Session
from django.test import Client
from django.urls import reverse

from container_manager.models import ContainerJob
from container_manager.models.schedules import JobSchedule
from container_manager.models.webhooks import WebhookEndpoint
from container_manager.rules.secrets import MASK

pytestmark = pytest.mark.django_db

ENDPOINT = "admin:container_manager_webhookendpoint"
SCHEDULE = "admin:container_manager_jobschedule"
SCHEDULE_ENV = "API_KEY=sk-sched-123\nDATABASE_URL=pg://app:db-pw-9@db/app\nMODE=fast"


@pytest.fixture
def root():
    client = Client()
    client.force_login(User.objects.create_superuser("root", password="pw"))
    return client


@pytest.fixture
def viewer():
    user = User.objects.create_user("viewer", password="pw", is_staff=True)
    codenames = ["view_webhookendpoint", "view_webhookdelivery", "view_jobschedule",
                 "view_containerjob"]  # fmt: skip
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    client = Client()
    client.force_login(user)
    return client


def pages(model, obj):
    """Every admin page that shows ``obj``: its list, its form, its history."""
    return [
        reverse(f"{model}_changelist"),
        reverse(f"{model}_change", args=[obj.pk]),
        reverse(f"{model}_history", args=[obj.pk]),
    ]


def add_endpoint(root):
    data = {"url": "https://93.184.216.34/hook", "events": ["job.failed"], "active": "on"}
    response = root.post(reverse(f"{ENDPOINT}_add"), data, follow=True)
    return WebhookEndpoint.objects.get(), response.content.decode()


def test_the_new_secret_is_only_in_the_body_of_the_answer_not_a_cookie_or_the_session(
    root, settings
):
    # Messages kept in the session would put the secret in a row of django_session.
    settings.MESSAGE_STORAGE = "django.contrib.messages.storage.session.SessionStorage"
    data = {"url": "https://93.184.216.34/hook", "events": ["job.failed"], "active": "on"}
    response = root.post(reverse(f"{ENDPOINT}_add"), data)
    secret = WebhookEndpoint.objects.get().secret
    assert response.status_code == 200 and secret in response.content.decode()
    assert not any(secret in morsel.value for morsel in response.cookies.values())
    sessions = [s.get_decoded() for s in Session.objects.all()]
    assert sessions and not any(secret in repr(decoded) for decoded in sessions)
    assert secret not in root.get(reverse(f"{ENDPOINT}_changelist")).content.decode()


def never_shown(secret, *clients, urls):
    for client in clients:
        for url in urls:
            response = client.get(url)
            assert response.status_code == 200, url
            assert secret not in response.content.decode(), url
    assert not LogEntry.objects.filter(change_message__contains=secret).exists()
    assert not LogEntry.objects.filter(object_repr__contains=secret).exists()


# -- webhook endpoints ------------------------------------------------------------


def test_an_endpoint_secret_is_shown_once_when_made_then_never(root, viewer, recording, mock_host):
    endpoint, after_add = add_endpoint(root)
    assert len(endpoint.secret) == 64 and endpoint.secret in after_add  # the page right after
    job = ContainerJob.objects.create_job(image="x", docker_host=mock_host)
    export = {"action": "export_csv", "_selected_action": [str(job.pk)]}
    jobs = reverse("admin:container_manager_containerjob_changelist")
    assert endpoint.secret not in root.post(jobs, export).content.decode()
    urls = [
        *pages(ENDPOINT, endpoint),
        reverse("admin:container_manager_webhookdelivery_changelist"),
    ]
    never_shown(endpoint.secret, root, viewer, urls=urls)
    for client in (root, viewer):
        page = client.get(reverse(f"{ENDPOINT}_change", args=[endpoint.pk])).content.decode()
        assert MASK in page
    assert 'name="secret"' not in root.get(reverse(f"{ENDPOINT}_add")).content.decode()


def test_rotating_in_the_form_shows_the_new_secret_once(root, viewer):
    endpoint, _ = add_endpoint(root)
    old = endpoint.secret
    change = reverse(f"{ENDPOINT}_change", args=[endpoint.pk])
    assert 'name="rotate_secret"' in root.get(change).content.decode()
    data = {"url": endpoint.url, "events": ["job.failed"], "active": "on"}
    kept = root.post(change, data, follow=True).content.decode()
    assert WebhookEndpoint.objects.get().secret == old and old not in kept
    after = root.post(change, {**data, "rotate_secret": "on"}, follow=True).content.decode()
    new = WebhookEndpoint.objects.get().secret
    assert new != old and new in after and old not in after
    never_shown(new, root, viewer, urls=pages(ENDPOINT, endpoint))


def test_the_rotate_action_shows_each_new_secret_once(root, viewer):
    endpoint, _ = add_endpoint(root)
    old = endpoint.secret
    data = {"action": "rotate_secrets", "_selected_action": [endpoint.pk]}
    after = root.post(reverse(f"{ENDPOINT}_changelist"), data, follow=True).content.decode()
    new = WebhookEndpoint.objects.get().secret
    assert new != old and new in after
    never_shown(new, root, viewer, urls=pages(ENDPOINT, endpoint))
    assert LogEntry.objects.filter(change_message__contains="rotated").exists()


def test_a_viewer_can_neither_rotate_nor_see_the_secret(root, viewer):
    endpoint, _ = add_endpoint(root)
    change = reverse(f"{ENDPOINT}_change", args=[endpoint.pk])
    assert 'name="rotate_secret"' not in viewer.get(change).content.decode()
    assert viewer.post(change, {"url": endpoint.url, "rotate_secret": "on"}).status_code == 403
    data = {"action": "rotate_secrets", "_selected_action": [endpoint.pk]}
    viewer.post(reverse(f"{ENDPOINT}_changelist"), data)
    assert WebhookEndpoint.objects.get().secret == endpoint.secret


# -- schedules ----------------------------------------------------------------------


@pytest.fixture
def schedule():
    return JobSchedule.objects.create(
        name="nightly", cron="@daily", docker_image="x", override_environment=SCHEDULE_ENV
    )


def schedule_form(schedule, **changes):
    data = {
        "name": schedule.name, "cron": schedule.cron, "timezone": schedule.timezone,
        "enabled": "on", "overlap": schedule.overlap, "catchup": schedule.catchup,
        "job_name": "", "docker_image": schedule.docker_image, "command": "",
        "docker_host": "", "memory_limit": "", "cpu_limit": "",
        "timeout_seconds": schedule.timeout_seconds, "environment_template": "",
    }  # fmt: skip
    return {**data, **changes}


def test_a_schedule_environment_is_masked_for_everyone(root, viewer, schedule):
    for secret in ("sk-sched-123", "db-pw-9"):
        never_shown(secret, root, viewer, urls=pages(SCHEDULE, schedule))
    for client in (root, viewer):
        page = client.get(reverse(f"{SCHEDULE}_change", args=[schedule.pk])).content.decode()
        assert f"API_KEY={MASK}" in page and "MODE=fast" in page


def test_an_editor_keeps_masked_values_and_changes_the_rest(root, viewer, schedule):
    change = reverse(f"{SCHEDULE}_change", args=[schedule.pk])
    edited = f"API_KEY={MASK}\nDATABASE_URL=pg://app:{MASK}@db/app\nMODE=slow\nNEW_TOKEN=t-42"
    response = root.post(change, schedule_form(schedule, override_environment=edited))
    assert response.status_code == 302
    stored = JobSchedule.objects.get(pk=schedule.pk).override_environment
    assert stored == SCHEDULE_ENV.replace("MODE=fast", "MODE=slow") + "\nNEW_TOKEN=t-42"
    for secret in ("sk-sched-123", "db-pw-9", "t-42"):
        never_shown(secret, root, viewer, urls=pages(SCHEDULE, schedule))


def test_a_mask_that_cannot_be_put_back_is_an_error_naming_the_field(root, schedule):
    change = reverse(f"{SCHEDULE}_change", args=[schedule.pk])
    data = schedule_form(schedule, override_environment=f"MODE=fast\nOTHER_KEY={MASK}")
    page = root.post(change, data).content.decode()
    assert "override_environment: line 2: OTHER_KEY holds the mask" in page
    assert JobSchedule.objects.get(pk=schedule.pk).override_environment == SCHEDULE_ENV
    assert "sk-sched-123" not in page
