"""The job page answers at a glance: the outcome first, what is true of a job that never launched,
the retry note, a labelled timeline, an array's grid of children, readable executor metadata."""

import re

import django
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from container_manager.admin import arrays
from container_manager.models import ContainerJob, ExecutorHost
from container_manager.rules.secrets import MASK
from container_manager.rules.taskwire import error_line
from tests.test_admin import finish, staff, url

pytestmark = pytest.mark.django_db


def page_of(client, job) -> str:
    return client.get(url("change", job.pk)).content.decode()


@pytest.fixture
def done(mock_host, recording):
    return finish(ContainerJob.objects.create_job(image="x", name="done", docker_host=mock_host))


def test_the_outcome_comes_before_the_output_and_the_request_is_folded(admin_client, done):
    page = page_of(admin_client, done)
    outcome, output = page.index('id="cm-outcome"'), page.index(">Output</h2>")
    assert outcome < output < page.index("Timeline") < page.index("Request")
    facts = page[outcome:output]
    for fact in ("status", "exit code", "duration", "estimated cost", "attempts"):
        assert f"<dt>{fact}</dt>" in facts
    for folded in ("Request", "Limits", "Environment", "Executor", "Times"):
        assert re.search(rf"<details[^>]*>\s*<summary>.*?{folded}", page, re.S), folded


def test_the_timeline_labels_phases_with_human_times_and_durations(admin_client, done):
    page = page_of(admin_client, done)
    timeline = page[page.index('class="cm-attempt"') :]
    for phase in ("submitted", "launch requested", "accepted", "container started", "harvested"):
        assert f'<th scope="row">{phase}</th>' in timeline
    assert "since the phase before" in timeline
    assert not re.search(r"\d{2}:\d{2}:\d{2}\.\d{6}", timeline)  # no microsecond ISO times
    assert re.search(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}<", timeline)
    assert re.search(r"waiting \d+ ms", timeline)


def test_an_array_parent_and_a_cancelled_dependent_say_what_is_true(
    admin_client, make_mock_host, recording
):
    quick, failing = make_mock_host(), make_mock_host(exit_code=1)
    parent = ContainerJob.objects.create_job(image="x", docker_host=quick, array_size=2)
    for child in parent.array_children.all():
        finish(child)
    first = finish(ContainerJob.objects.create_job(image="x", name="first", docker_host=failing))
    after = finish(
        ContainerJob.objects.create_job(image="x", docker_host=quick, depends_on=[first])
    )
    assert ContainerJob.objects.get(pk=after.pk).status == "cancelled"
    parent_page, after_page = page_of(admin_client, parent), page_of(admin_client, after)
    assert "array parent: runs no container" in parent_page
    assert f"cancelled before launch: dependency {first.pk} (first) ended failed" in after_page
    assert "not launched yet" not in parent_page + after_page


def test_retry_button_only_when_retryable_and_the_note_says_why_not(
    admin_client, make_mock_host, recording, done
):
    running = ContainerJob.objects.create_job(image="x", docker_host=make_mock_host(duration=600))
    from container_manager.engine import steps

    steps.launch(running.pk)
    failed = finish(
        ContainerJob.objects.create_job(image="x", docker_host=make_mock_host(exit_code=2))
    )
    running_page = page_of(admin_client, running)
    assert 'class="cm-tool cm-retry"' not in running_page
    assert (
        "Retry is offered once the job has failed, timed out or been cancelled: it is running."
        in running_page
    )
    assert 'class="cm-tool cm-retry"' not in page_of(
        admin_client, done
    ) and ": it completed." in page_of(admin_client, done)
    failed_page = page_of(admin_client, failed)
    assert 'class="cm-tool cm-retry"' in failed_page and "Retry submits a new job" in failed_page


def test_a_failed_task_shows_its_exception(admin_client, make_mock_host, recording):
    trace = 'Traceback (most recent call last):\n  File "t.py", line 1\nValueError: bad input'
    host = make_mock_host(exit_code=1, stderr=error_line("builtins.ValueError", trace) + "\n")
    job = finish(ContainerJob.objects.create_job(image="x", docker_host=host))
    outcome = page_of(admin_client, job).split('id="cm-outcome"')[1].split("</fieldset>")[0]
    assert "<code>builtins.ValueError</code> ValueError: bad input" in outcome
    assert "final reason:" in outcome


def test_executor_metadata_and_host_config_are_key_values_masked(
    admin_client, client, make_mock_host, done
):
    ContainerJob.objects.filter(pk=done.pk).update(
        executor_metadata={"retry_of": "abc", "api_token": "tok-123", "ports": [1, 2]}
    )
    page = page_of(admin_client, done)
    assert '<th scope="row">retry_of</th><td>abc</td>' in page
    assert f'<th scope="row">api_token</th><td>{MASK}</td>' in page and "tok-123" not in page
    assert '<th scope="row">ports</th><td>[1, 2]</td>' in page
    host = make_mock_host()
    ExecutorHost.objects.filter(pk=host.pk).update(
        executor_config={"duration": 0, "secret_key": "s3"}
    )
    staff(client, "viewer", "view_executorhost")
    host_page = client.get(url("admin:container_manager_executorhost_change", host.pk))
    text = host_page.content.decode()
    assert f'<th scope="row">secret_key</th><td>{MASK}</td>' in text
    assert '<th scope="row">duration</th><td>0</td>' in text and "{&#x27;" not in text


# -- arrays ------------------------------------------------------------------------


@pytest.mark.parametrize("size", [3, 40])
def test_array_grid_draws_a_cell_per_child_in_a_constant_number_of_queries(
    size, admin_client, mock_host, recording
):
    parent = ContainerJob.objects.create_job(image="x", docker_host=mock_host, array_size=size)
    finish(parent.array_children.get(array_index=1))
    admin_client.get(url("change", parent.pk))
    with CaptureQueriesContext(connection) as queries:
        page = page_of(admin_client, parent)
    assert page.count('class="cm-cell ') == size
    assert 'class="cm-cell cm-status-completed"' in page and 'title="child 1: completed"' in page
    assert f'href="{arrays.children_url(parent.pk, "pending")}"' in page.replace("&amp;", "&")
    wheres = [q["sql"].split(" WHERE ", 1)[-1] for q in queries.captured_queries]
    children = [
        where
        for where in wheres
        if where.startswith('"container_manager_containerjob"."array_parent_id" =')
    ]
    assert len(children) == 2  # the counts (one aggregate) and the cells (one bounded list)
    assert len(queries.captured_queries) == EXPECTED_PAGE_QUERIES


#: Every query of an array parent's page, whatever its size: session, user, the job,
#: deliveries, workflow links, history, the counts and the cells.
EXPECTED_PAGE_QUERIES = 10


def test_array_grid_is_bounded_with_a_link_to_the_rest(
    admin_client, mock_host, recording, monkeypatch
):
    monkeypatch.setattr(arrays, "GRID_CELLS", 2)
    parent = ContainerJob.objects.create_job(image="x", docker_host=mock_host, array_size=5)
    page = page_of(admin_client, parent)
    assert page.count('class="cm-cell ') == 2
    assert "The first 2 children are drawn" in page and "all 5 in the job" in page


def test_a_list_of_an_arrays_children_says_so(admin_client, mock_host, recording):
    parent = ContainerJob.objects.create_job(
        image="x", name="batch", docker_host=mock_host, array_size=2
    )
    listing = admin_client.get(
        url("changelist"), {"array_parent": parent.pk, "status__exact": "pending"}
    )
    page = listing.content.decode()
    assert "Showing only the children of the array" in page
    assert f'href="{url("change", parent.pk)}">batch</a>' in page
    assert f'href="{url("changelist")}?status__exact=pending">Show every job</a>' in page
    assert "Showing only" not in admin_client.get(url("changelist")).content.decode()


# -- list and dashboard ----------------------------------------------------------------


def test_the_dashboard_draws_its_breadcrumbs_as_this_django_does(admin_client):
    listing = admin_client.get(url("changelist")).content.decode()
    dashboard = admin_client.get(url("dashboard")).content.decode()
    tag = '<ol class="breadcrumbs">' if django.VERSION >= (6, 0) else '<div class="breadcrumbs">'
    assert tag in listing and tag in dashboard
