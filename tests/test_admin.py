"""The admin through Django's test client: every page, action and permission rule, query counts.

Jobs are moved by calling the steps directly; the recording backend delivers nothing.
"""

import csv
import io
import json

import pytest
from django.contrib.auth.models import Permission, User
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from container_manager.engine import steps
from container_manager.models import (
    ContainerExecution,
    ContainerJob,
    EnvironmentVariableTemplate,
    ExecutorHost,
)
from container_manager.rules.logtext import cap_log
from container_manager.rules.secrets import MASK

pytestmark = pytest.mark.django_db

JOBS = "admin:container_manager_containerjob"
SECRET_ENV = "API_KEY=sk-live-123\nMODE=fast"


def url(name, *args):
    return reverse(f"{JOBS}_{name}" if not name.startswith("admin:") else name, args=args)


def finish(job):
    """Run launch and check inline; a mock host with duration 0 ends the job at once."""
    steps.launch(job.pk)
    steps.check(job.pk)
    return ContainerJob.objects.get(pk=job.pk)


def staff(client, name, *codenames):
    user = User.objects.create_user(name, password="pw", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    client.force_login(user)
    return user


@pytest.fixture
def jobs(mock_host, recording):
    return [
        ContainerJob.objects.create_job(image="x", name=f"job-{n}", docker_host=mock_host)
        for n in range(5)
    ]


@pytest.fixture
def failed_job(make_mock_host, recording):
    host = make_mock_host(name="failing", exit_code=3, stderr="boom\n")
    job = ContainerJob.objects.create_job(
        image="busybox", command="false", docker_host=host, override_environment=SECRET_ENV
    )
    return finish(job)


@pytest.fixture
def viewer(client):
    staff(client, "viewer", "view_containerjob", "view_executorhost",
          "view_environmentvariabletemplate", "view_containerexecution")  # fmt: skip
    return client


# -- pages -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "model", ["containerjob", "executorhost", "environmentvariabletemplate", "containerexecution"]
)
def test_list_pages_load(admin_client, failed_job, model):
    EnvironmentVariableTemplate.objects.create(name="t", environment_variables_text="A=1")
    assert (
        admin_client.get(reverse(f"admin:container_manager_{model}_changelist")).status_code == 200
    )


@pytest.mark.parametrize("model", ["containerjob", "executorhost", "environmentvariabletemplate"])
def test_add_pages_load(admin_client, mock_host, model):
    assert admin_client.get(reverse(f"admin:container_manager_{model}_add")).status_code == 200


def test_change_pages_of_every_model_load(admin_client, failed_job):
    template = EnvironmentVariableTemplate.objects.create(name="t", environment_variables_text="")
    execution = ContainerExecution.objects.get(job=failed_job)
    for model, pk in [
        ("containerjob", failed_job.pk),
        ("executorhost", failed_job.docker_host_id),
        ("environmentvariabletemplate", template.pk),
        ("containerexecution", execution.pk),
    ]:
        page = admin_client.get(reverse(f"admin:container_manager_{model}_change", args=[pk]))
        assert page.status_code == 200, model


def test_pending_job_request_is_editable_results_are_not(admin_client, jobs):
    page = admin_client.get(url("change", jobs[0].pk))
    assert b'name="docker_image"' in page.content
    assert b'name="stdout_log"' not in page.content
    assert b'name="status"' not in page.content


def test_launched_job_is_read_only_with_logs_and_attempts(admin_client, failed_job):
    page = admin_client.get(url("change", failed_job.pk)).content.decode()
    assert 'name="docker_image"' not in page  # launched: nothing left to edit
    assert "boom" in page and 'class="cm-log"' in page
    assert "attempt" in page.lower() and "containerexecution_set" in page
    assert "Retry as a new job" in page and "Cancel job" not in page


def test_truncated_log_shows_a_badge(admin_client, failed_job):
    ContainerJob.objects.filter(pk=failed_job.pk).update(stdout_log=cap_log("x" * 100, 10))
    page = admin_client.get(url("change", failed_job.pk)).content.decode()
    assert "log truncated" in page and "cm-truncated" in page


def test_running_job_page_shows_its_live_output_and_where_to_follow_it(
    admin_client, make_mock_host, recording
):
    host = make_mock_host(name="live", duration=60, stdout="hello live\n", stderr="careful\n")
    job = ContainerJob.objects.create_job(image="busybox", docker_host=host)
    steps.launch(job.pk)
    page = admin_client.get(url("change", job.pk)).content.decode()
    assert '<pre class="cm-log" data-cm-log="stdout" data-cm-offset="11">hello live\n</pre>' in page
    assert '<pre class="cm-log" data-cm-log="stderr" data-cm-offset="8">careful\n</pre>' in page
    assert f'name="cm-logs-url" content="{url("logs", job.pk)}"' in page
    follow = admin_client.get(url("logs", job.pk), {"stdout_offset": 6, "stderr_offset": 8})
    assert follow.json() == {
        "status": "running", "stdout": "live\n", "stderr": "", "clean_output": "live\n",
        "truncated": False, "stdout_offset": 11, "stderr_offset": 8, "complete": False,
        "source": "live",
    }  # fmt: skip


def test_pending_job_page_waits_for_output_and_finished_one_is_not_followed(
    admin_client, failed_job, jobs
):
    page = admin_client.get(url("change", jobs[0].pk)).content.decode()
    assert "(no output yet)" in page and 'data-cm-log="stdout" data-cm-offset="0"' in page
    done = admin_client.get(url("change", failed_job.pk)).content.decode()
    assert "boom" in done and "data-cm-log=" not in done
    answer = admin_client.get(url("logs", failed_job.pk), {"stderr_offset": 2}).json()
    assert (answer["stderr"], answer["complete"], answer["source"]) == ("om\n", True, "stored")


def test_logs_view_checks_permission_before_it_looks_for_the_job(client, failed_job):
    unknown = "00000000-0000-0000-0000-000000000000"
    staff(client, "nobody")
    assert client.get(url("logs", failed_job.pk)).status_code == 403
    assert client.get(url("logs", unknown)).status_code == 403  # the same: nothing leaks
    staff(client, "reader", "view_containerjob")
    assert client.get(url("logs", failed_job.pk)).status_code == 200
    assert client.get(url("logs", unknown)).status_code == 404
    bad = client.get(url("logs", failed_job.pk), {"stdout_offset": "-5"})
    assert bad.status_code == 400 and "stdout_offset" in bad.json()["error"]


def test_list_shows_status_host_image_duration_exit_code(admin_client, failed_job):
    page = admin_client.get(url("changelist")).content.decode()
    assert f'data-cm-job="{failed_job.pk}"' in page and 'data-cm-status="failed"' in page
    assert "failing" in page and "busybox" in page
    assert f'data-cm-job-field="{failed_job.pk}" data-cm-field="exit_code">3<' in page
    assert "container_manager/admin/live.js" in page and "cm-status-url" in page


def test_list_filters_and_search(admin_client, jobs, failed_job):
    failed = admin_client.get(url("changelist"), {"status__exact": "failed"})
    assert failed.context["cl"].result_count == 1
    found = admin_client.get(url("changelist"), {"q": "job-3"})
    assert [j.name for j in found.context["cl"].result_list] == ["job-3"]


def test_job_list_query_count_is_constant(admin_client, jobs, django_assert_num_queries, mock_host):
    page = url("changelist")
    admin_client.get(page)
    with CaptureQueriesContext(connection) as first:
        admin_client.get(page)
    for n in range(95):
        ContainerJob.objects.create_job(image="x", name=f"more-{n}")
    with django_assert_num_queries(len(first.captured_queries)):
        response = admin_client.get(page)
    assert len(response.context["cl"].result_list) == 100
    assert len(first.captured_queries) <= 8  # session, user, host filter, 2 counts, the page
    assert not any("stdout_log" in q["sql"] for q in first.captured_queries[-3:])


# -- submit ------------------------------------------------------------------------


def submit_data(**overrides):
    data = {
        "name": "from-form", "docker_image": "busybox:latest", "command": "echo hi",
        "docker_host": "", "memory_limit": "64", "cpu_limit": "0.5", "timeout_seconds": "60",
        "environment_template": "", "override_environment": "TOKEN=abc\nA=1",
        "network_configuration": "[]", "priority": "0", "max_attempts": "3",
        "containerexecution_set-TOTAL_FORMS": "0", "containerexecution_set-INITIAL_FORMS": "0",
    }  # fmt: skip
    data.update(overrides)
    return data


def test_submit_form_creates_a_job_on_any_host(admin_client, mock_host, recording, caplog):
    caplog.set_level("INFO", logger="container_manager")
    response = admin_client.post(url("add"), submit_data())
    assert response.status_code == 302, response.content
    job = ContainerJob.objects.get(name="from-form")
    assert (job.docker_host, job.status, job.memory_limit, job.cpu_limit) == (
        mock_host, "pending", 64, 0.5,
    )  # fmt: skip
    assert job.created_by.username == "admin"
    assert job.get_override_environment_variables_dict() == {"TOKEN": "abc", "A": "1"}
    assert "abc" not in caplog.text and str(job.pk) in caplog.text


def test_submit_form_with_a_host_and_template(admin_client, make_mock_host, recording):
    make_mock_host(name="other")
    chosen = make_mock_host(name="chosen")
    template = EnvironmentVariableTemplate.objects.create(
        name="base", environment_variables_text=""
    )
    data = submit_data(docker_host=str(chosen.pk), environment_template=str(template.pk))
    assert admin_client.post(url("add"), data).status_code == 302
    job = ContainerJob.objects.get(name="from-form")
    assert (job.docker_host, job.environment_template) == (chosen, template)


def test_submit_form_reports_errors(admin_client, mock_host, recording):
    bad = admin_client.post(url("add"), submit_data(docker_image="", memory_limit="1"))
    assert bad.status_code == 200
    errors = bad.context["adminform"].form.errors
    assert "docker_image" in errors and "memory_limit" in errors
    ExecutorHost.objects.update(is_active=False)
    no_host = admin_client.post(url("add"), submit_data())
    assert "No active executor host" in no_host.content.decode()
    assert not ContainerJob.objects.exists()


def test_submit_needs_add_permission(viewer, mock_host, recording):
    assert viewer.get(url("add")).status_code == 403
    assert viewer.post(url("add"), submit_data()).status_code == 403
    assert not ContainerJob.objects.exists()


# -- cancel --------------------------------------------------------------------------


def test_cancel_action_needs_change_permission(viewer, admin_client, jobs):
    data = {"action": "cancel_jobs", "_selected_action": [str(jobs[0].pk)]}
    viewer.post(url("changelist"), data)
    assert ContainerJob.objects.get(pk=jobs[0].pk).cancel_requested_at is None
    admin_client.post(url("changelist"), data)
    assert ContainerJob.objects.get(pk=jobs[0].pk).cancel_requested_at is not None


def test_cancel_button_goes_through_the_cancel_step(admin_client, make_mock_host, recording):
    job = ContainerJob.objects.create_job(image="x", docker_host=make_mock_host(duration=60))
    steps.launch(job.pk)
    page = admin_client.get(url("change", job.pk)).content.decode()
    assert "Cancel job" in page
    assert admin_client.get(url("cancel", job.pk)).status_code == 403  # POST only
    response = admin_client.post(url("cancel", job.pk))
    assert response.status_code == 302
    steps.cancel(job.pk)  # what the recorded message would run
    job.refresh_from_db()
    assert (job.status, job.exit_code) == ("cancelled", 137)


def test_cancel_and_retry_buttons_need_change_permission(viewer, failed_job, jobs):
    page = viewer.get(url("change", jobs[0].pk)).content.decode()
    assert "Cancel job" not in page and 'name="docker_image"' not in page
    assert viewer.post(url("cancel", jobs[0].pk)).status_code == 403
    assert viewer.post(url("retry", failed_job.pk)).status_code == 403
    assert ContainerJob.objects.get(pk=jobs[0].pk).cancel_requested_at is None
    assert ContainerJob.objects.count() == 6


# -- retry ---------------------------------------------------------------------------


def test_retry_button_submits_a_new_job_and_links_both(admin_client, failed_job):
    response = admin_client.post(url("retry", failed_job.pk))
    new = ContainerJob.objects.exclude(pk=failed_job.pk).get()
    assert response.url == url("change", new.pk)
    assert (new.status, new.docker_image, new.command) == ("pending", "busybox", "false")
    assert new.override_environment == failed_job.override_environment
    assert new.executor_metadata == {"retry_of": str(failed_job.pk)}
    old = ContainerJob.objects.get(pk=failed_job.pk)
    assert (old.status, old.exit_code) == ("failed", 3)  # history kept
    assert str(failed_job.pk) in admin_client.get(url("change", new.pk)).content.decode()
    assert str(new.pk) in admin_client.get(url("change", failed_job.pk)).content.decode()


def test_retry_action_skips_jobs_that_did_not_fail(admin_client, failed_job, jobs):
    data = {"action": "retry_jobs", "_selected_action": [str(failed_job.pk), str(jobs[0].pk)]}
    response = admin_client.post(url("changelist"), data, follow=True)
    assert ContainerJob.objects.filter(executor_metadata__retry_of=str(failed_job.pk)).count() == 1
    assert ContainerJob.objects.count() == 7
    assert "1 job(s) skipped" in response.content.decode()


# -- live status ---------------------------------------------------------------------


def test_status_view_returns_the_jobs_asked_for(admin_client, failed_job, jobs):
    ids = f"{failed_job.pk},{jobs[0].pk},not-a-uuid"
    data = admin_client.get(url("status"), {"ids": ids}).json()["jobs"]
    assert data[str(failed_job.pk)] == {
        "status": "failed", "label": "Failed", "live": False, "exit_code": "3",
        "duration": data[str(failed_job.pk)]["duration"],
    }  # fmt: skip
    assert data[str(jobs[0].pk)]["live"] is True
    assert len(data) == 2


def test_status_view_needs_view_permission(client, jobs):
    assert client.get(url("status")).status_code == 302  # to the login page
    staff(client, "nobody")
    assert client.get(url("status"), {"ids": str(jobs[0].pk)}).status_code == 403


# -- secrets -------------------------------------------------------------------------


def test_secrets_masked_for_viewers_and_in_read_only_pages(viewer, admin_client, failed_job):
    for who in (viewer, admin_client):  # the failed job is read-only for everyone
        page = who.get(url("change", failed_job.pk)).content.decode()
        assert "sk-live-123" not in page and MASK in page and "MODE=fast" in page


def test_pending_job_edit_form_shows_real_text_to_editors(admin_client, mock_host, recording):
    job = ContainerJob.objects.create_job(image="x", override_environment=SECRET_ENV)
    assert "sk-live-123" in admin_client.get(url("change", job.pk)).content.decode()


def test_csv_export_masks_secrets(viewer, failed_job):
    data = {"action": "export_csv", "_selected_action": [str(failed_job.pk)]}
    response = viewer.post(url("changelist"), data)
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert rows[0]["status"] == "failed" and rows[0]["exit_code"] == "3"
    assert rows[0]["override_environment"] == f"API_KEY={MASK}\nMODE=fast"


def test_templates_list_names_and_mask_values(viewer, admin_client):
    template = EnvironmentVariableTemplate.objects.create(
        name="prod", environment_variables_text="DB_PASSWORD=hunter2\nDEBUG=0"
    )
    listing = admin_client.get(
        reverse("admin:container_manager_environmentvariabletemplate_changelist")
    )
    assert "DB_PASSWORD (secret)" in listing.content.decode()
    assert "hunter2" not in listing.content.decode()
    change = reverse(
        "admin:container_manager_environmentvariabletemplate_change", args=[template.pk]
    )
    viewed = viewer.get(change).content.decode()
    assert "hunter2" not in viewed and f"DB_PASSWORD={MASK}" in viewed
    assert "hunter2" in admin_client.get(change).content.decode()  # the editor edits real text


def test_host_config_secrets_masked_for_viewers(viewer, make_mock_host):
    host = make_mock_host(stdout="API_TOKEN=should-not-show")
    ExecutorHost.objects.filter(pk=host.pk).update(
        executor_config={"duration": 0, "secret_key": "s3cr3t"}
    )
    page = viewer.get(reverse("admin:container_manager_executorhost_change", args=[host.pk]))
    assert "s3cr3t" not in page.content.decode() and MASK in page.content.decode()


# -- hosts -------------------------------------------------------------------------


def test_host_list_shows_health_capacity_running(admin_client, make_mock_host, recording):
    host = make_mock_host(name="busy", duration=60)
    steps.launch(ContainerJob.objects.create_job(image="x", docker_host=host).pk)
    page = admin_client.get(reverse("admin:container_manager_executorhost_changelist"))
    row = page.context["cl"].result_list[0]
    assert (row.running, row.current_job_count) == (1, 1)
    assert "1/10" in page.content.decode() and "not tested" in page.content.decode()


def test_host_the_steps_could_not_reach_shows_unreachable(admin_client, make_mock_host, recording):
    host = make_mock_host(name="down", launch_error="unreachable")
    job = ContainerJob.objects.create_job(image="x", docker_host=host)
    assert steps.launch(job.pk) == "host-unreachable"
    hosts = admin_client.get(reverse("admin:container_manager_executorhost_changelist"))
    assert "unreachable since" in hosts.content.decode()
    assert "host unreachable (simulated)" in hosts.content.decode()
    dashboard = admin_client.get(url("dashboard"))
    assert "unreachable since" in dashboard.content.decode()
    ExecutorHost.objects.filter(pk=host.pk).update(executor_config={})
    assert ExecutorHost.objects.get(pk=host.pk).health_check() is True
    assert ExecutorHost.objects.get(pk=host.pk).unreachable_since is None


def test_test_connection_button_and_action(admin_client, viewer, make_mock_host):
    good = make_mock_host(name="good")
    broken = ExecutorHost.objects.create(name="broken", executor_type="nope", connection_string="x")
    test_url = reverse("admin:container_manager_executorhost_test", args=[good.pk])
    assert viewer.post(test_url).status_code == 403
    assert ExecutorHost.objects.get(pk=good.pk).last_health_ok is None
    assert admin_client.post(test_url).status_code == 302
    assert ExecutorHost.objects.get(pk=good.pk).last_health_ok is True
    changelist = reverse("admin:container_manager_executorhost_changelist")
    data = {"action": "test_connection", "_selected_action": [str(broken.pk)]}
    page = admin_client.post(changelist, data, follow=True).content.decode()
    assert ExecutorHost.objects.get(pk=broken.pk).last_health_ok is False
    assert "unknown executor type" in page


# -- delete ------------------------------------------------------------------------


def test_live_jobs_are_not_deleted(admin_client, jobs, failed_job):
    assert admin_client.get(url("delete", jobs[0].pk)).status_code == 403
    both = {"action": "delete_selected", "post": "yes",
            "_selected_action": [str(jobs[0].pk), str(failed_job.pk)]}  # fmt: skip
    assert admin_client.post(url("changelist"), both).status_code == 403
    assert ContainerJob.objects.filter(pk__in=[jobs[0].pk, failed_job.pk]).count() == 2
    admin_client.post(url("changelist"), {**both, "_selected_action": [str(failed_job.pk)]})
    assert not ContainerJob.objects.filter(pk=failed_job.pk).exists()


# -- dashboard -----------------------------------------------------------------------


def test_dashboard_shows_counts_chart_and_load(admin_client, failed_job, jobs):
    done = finish(ContainerJob.objects.create_job(image="x", docker_host=jobs[0].docker_host))
    assert done.status == "completed", done.last_error
    response = admin_client.get(url("dashboard"))
    page = response.content.decode()
    counts = {row["status"]: row["count"] for row in response.context["counts"]}
    assert (counts["pending"], counts["failed"], counts["completed"]) == (5, 1, 1)
    assert response.context["chart"]["total"] == 2
    assert '<svg id="cm-hourly-chart"' in page and "cm-bar-completed" in page
    assert "cm-bar-other" in page and "<title>" in page
    assert "failing" in page and "mock-host" in page


def test_dashboard_costs_one_query_per_figure(admin_client, failed_job, jobs):
    admin_client.get(url("dashboard"))
    with CaptureQueriesContext(connection) as queries:
        admin_client.get(url("dashboard"))
    figures = [q for q in queries.captured_queries if "container_manager_" in q["sql"]]
    assert len(figures) == 5, json.dumps([q["sql"] for q in figures], indent=1)


def test_dashboard_needs_view_permission_and_is_linked(client, admin_client, mock_host):
    staff(client, "nobody")
    assert client.get(url("dashboard")).status_code == 403
    dashboard = url("dashboard")
    assert dashboard in admin_client.get(url("changelist")).content.decode()
    app_index = reverse("admin:app_list", args=["container_manager"])
    assert dashboard in admin_client.get(app_index).content.decode()


def test_host_connection_string_masked_and_not_searchable_for_viewers(viewer, make_mock_host):
    host = make_mock_host(name="secret-host")
    ExecutorHost.objects.filter(pk=host.pk).update(
        connection_string="tcp://admin:p@ssw0rd@docker.example:2376",
        executor_config={"duration": 0, "endpoint": "https://svc:hunter2@api.example/"},
    )
    page = viewer.get(reverse("admin:container_manager_executorhost_change", args=[host.pk]))
    text = page.content.decode()
    assert page.status_code == 200
    assert "p@ssw0rd" not in text and "ssw0rd" not in text and "hunter2" not in text
    assert f"tcp://admin:{MASK}@docker.example:2376" in text
    listing = reverse("admin:container_manager_executorhost_changelist")
    found = viewer.get(listing, {"q": "ssw0rd"}).context["cl"].result_count
    assert found == 0


def test_csv_export_neutralises_formulas_after_tab_or_return(admin_client, mock_host, recording):
    for name in ["\t=cmd", "\r+1", " =HYPERLINK()", "plain"]:
        ContainerJob.objects.create_job(image="x", name=name, docker_host=mock_host)
    changelist = reverse("admin:container_manager_containerjob_changelist")
    response = admin_client.post(
        changelist,
        {"action": "export_csv", "_selected_action": list(
            ContainerJob.objects.values_list("pk", flat=True))},
    )  # fmt: skip
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    names = {row[1] for row in rows[1:]}
    assert names == {"'\t=cmd", "'\r+1", "' =HYPERLINK()", "plain"}


# -- workflows ---------------------------------------------------------------------


def test_job_pages_link_dependencies_both_ways(admin_client, mock_host, recording):
    first = ContainerJob.objects.create_job(image="x", name="extract", docker_host=mock_host)
    second = ContainerJob.objects.create_job(
        image="x", name="load", docker_host=mock_host, depends_on=[first]
    )
    waiting = admin_client.get(url("change", second.pk)).content.decode()
    assert f'href="{url("change", first.pk)}"' in waiting and "extract (pending)" in waiting
    waited = admin_client.get(url("change", first.pk)).content.decode()
    assert f'href="{url("change", second.pk)}"' in waited and "load (pending)" in waited


def test_array_parent_page_shows_progress_and_links_to_its_children(
    admin_client, mock_host, recording
):
    parent = ContainerJob.objects.create_job(image="x", docker_host=mock_host, array_size=3)
    child = parent.array_children.get(array_index=0)
    finish(child)
    page = admin_client.get(url("change", parent.pk)).content.decode()
    assert "1 of 3 children ended" in page
    children_url = f"{url('changelist')}?array_parent={parent.pk}"
    assert f'href="{children_url}"' in page
    listing = admin_client.get(url("changelist"), {"array_parent": parent.pk}).content.decode()
    assert listing.count('class="field-short_id"') == 3
    child_page = admin_client.get(url("change", child.pk)).content.decode()
    assert "child 0 of 3" in child_page and f'href="{url("change", parent.pk)}"' in child_page


def test_retrying_an_array_parent_makes_a_new_array(make_mock_host, recording):
    from container_manager.engine.retry import retry_job

    parent = ContainerJob.objects.create_job(
        image="x", docker_host=make_mock_host(exit_code=1), array_size=2
    )
    for child in parent.array_children.all():
        finish(child)
    parent.refresh_from_db()
    assert parent.status == "failed"
    again = retry_job(parent)
    assert again.is_array_parent and again.array_children.count() == 2
