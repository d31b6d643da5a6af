"""Admin registrations: pages load, the job list costs fixed queries, cancel needs permission."""

import pytest
from django.contrib.auth.models import Permission, User
from django.urls import reverse

from container_manager.models import ContainerJob, EnvironmentVariableTemplate

pytestmark = pytest.mark.django_db


@pytest.fixture
def jobs(mock_host, recording):
    return [ContainerJob.objects.create_job(image="x", name=f"job-{n}") for n in range(5)]


@pytest.mark.parametrize("model", ["containerjob", "executorhost", "environmentvariabletemplate"])
def test_list_and_add_pages_load(admin_client, jobs, model):
    EnvironmentVariableTemplate.objects.create(name="t", environment_variables_text="A=1")
    assert (
        admin_client.get(reverse(f"admin:container_manager_{model}_changelist")).status_code == 200
    )
    assert admin_client.get(reverse(f"admin:container_manager_{model}_add")).status_code == 200


def test_job_page_shows_results_read_only(admin_client, jobs):
    response = admin_client.get(
        reverse("admin:container_manager_containerjob_change", args=[jobs[0].pk])
    )
    assert response.status_code == 200
    assert b'name="docker_image"' in response.content  # the request is editable
    assert b'name="stdout_log"' not in response.content  # results are shown, not editable
    assert b'name="status"' not in response.content


def test_job_list_query_count_does_not_grow(
    admin_client, jobs, django_assert_max_num_queries, mock_host
):
    url = reverse("admin:container_manager_containerjob_changelist")
    admin_client.get(url)
    with django_assert_max_num_queries(12) as few:
        admin_client.get(url)
    for n in range(20):
        ContainerJob.objects.create_job(image="x", name=f"more-{n}")
    with django_assert_max_num_queries(len(few.captured_queries)):
        admin_client.get(url)


def test_cancel_action_needs_change_permission(client, admin_client, jobs):
    url = reverse("admin:container_manager_containerjob_changelist")
    viewer = User.objects.create_user("viewer", password="pw", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_containerjob"))
    client.force_login(viewer)
    data = {"action": "cancel_jobs", "_selected_action": [str(jobs[0].pk)]}
    client.post(url, data)
    assert ContainerJob.objects.get(pk=jobs[0].pk).cancel_requested_at is None
    admin_client.post(url, data)
    assert ContainerJob.objects.get(pk=jobs[0].pk).cancel_requested_at is not None
