"""A workflow's graph in headless Chromium: a diamond with a failed and a skipped node, a handler
on failure, and an array still running; the screenshot goes to test-output/browser/<test>/.

Needs Debian's chromium (infra/browser.sh), as ``tests/test_admin_browser.py``.
"""

import pytest

from container_manager.models import ContainerJob, Workflow
from tests.conftest import wait_for
from tests.test_admin_browser import ADMIN, CLIPPED_JS, VIEWPORT, browser_page  # noqa: F401
from tests.test_workflow_graph import etl
from tests.test_workflow_objects import jobs_of

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_workflow_page_draws_its_graph_with_live_states(
    browser_page,  # noqa: F811
    live_server,
    local,
    make_mock_host,
):
    page, shot = browser_page
    quick = make_mock_host(name="quick", max_concurrent_jobs=20)
    failing = make_mock_host(name="failing", exit_code=3, stderr="boom\n")
    slow = make_mock_host(name="slow", max_concurrent_jobs=4, duration=600)
    workflow = Workflow.objects.submit(etl(quick, failing, slow))
    ends = {"transform": "failed", "load": "skipped", "page-oncall": "completed"}
    ends.update({"cleanup": "completed", "shards": "running", "report": "pending"})
    wait_for(lambda: {n: jobs_of(workflow)[n].status for n in ends} == ends)
    shards = jobs_of(workflow)["shards"]
    wait_for(lambda: shards.array_children.filter(status="running").count() == 4)

    page.goto(f"{live_server.url}{ADMIN}/workflow/{workflow.pk}/change/")
    svg = page.locator(".cm-graph svg")
    assert svg.is_visible()
    assert page.locator(".cm-graph a.cm-node").count() == 8
    text = page.locator(".cm-graph").inner_text()
    for words in ("failed", "skipped", "on failure", "always", "0 ok, 0 failed, 4 running of 12"):
        assert words in text, words
    assert page.evaluate("document.documentElement.scrollWidth") <= VIEWPORT["width"]
    assert page.evaluate(CLIPPED_JS) == []
    shot("workflow-graph")
    page.locator(".cm-graph-module").screenshot(path=str(shot.folder / "workflow-graph-only.png"))

    page.click(".cm-graph a.cm-node-failed")
    page.wait_for_url(f"**/containerjob/{jobs_of(workflow)['transform'].pk}/change/")
    assert workflow.cancel() is True
    wait_for(lambda: not ContainerJob.objects.filter(status__in=["launching", "running"]).exists())
