"""The admin in headless Chromium: log in, submit, watch the list update live, logs, cancel, chart;
every admin page of the app at 1400 x 1000 without a horizontal scroll bar.

Needs Debian's chromium (infra/browser.sh); screenshots go to test-output/browser/<test>/
(``.ci/run`` keeps them as test-output/browser-screenshots.tar.gz).
"""

import re
import shutil
from functools import partial
from pathlib import Path

import pytest
from django.contrib.auth.models import User

from container_manager.models import (
    ApiToken,
    ContainerExecution,
    ContainerJob,
    EnvironmentVariableTemplate,
    JobSchedule,
    WebhookDelivery,
    WebhookEndpoint,
)
from tests.conftest import missing_service, wait_for

pytestmark = pytest.mark.django_db(transaction=True)

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
OUTPUT = Path(__file__).resolve().parent.parent / "test-output" / "browser"
WAIT_MS = 20_000
VIEWPORT = {"width": 1400, "height": 1000}
ADMIN = "/admin/container_manager"
#: Boxes of the page's content that hide part of what they hold behind a horizontal scroll
#: (the admin's result table scrolls inside its own box instead of widening the page).
CLIPPED_JS = """[...document.querySelectorAll('#content *')]
  .filter(e => !['INPUT', 'SELECT', 'TEXTAREA'].includes(e.tagName))
  .filter(e => !e.closest('.visually-hidden'))
  .filter(e => getComputedStyle(e).overflowX !== 'visible' && e.scrollWidth > e.clientWidth + 1)
  .map(e => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') + '.' + e.className)"""
#: The breadcrumbs' background: Django styles only the markup of its own version.
CRUMBS_JS = """(() => { const b = document.querySelector('.breadcrumbs');
  return b ? getComputedStyle(b).backgroundColor : null; })()"""


@pytest.fixture
def browser_page(request, live_server, monkeypatch):
    """A logged-in admin page in headless Chromium, and a ``shot(name)`` that saves a screenshot."""
    if not Path(CHROMIUM).exists():
        missing_service(f"{CHROMIUM} not found: run infra/browser.sh (as root)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        missing_service(f"playwright is not installed: {exc}")
    # Playwright's sync API keeps an event loop on this thread; the ORM calls made here are sync.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    User.objects.create_superuser("operator", "op@example.com", "pw")
    out = OUTPUT / request.node.name
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport=VIEWPORT)
        page.set_default_timeout(WAIT_MS)
        page.goto(f"{live_server.url}/admin/login/?next=/admin/")
        page.fill("#id_username", "operator")
        page.fill("#id_password", "pw")
        page.click("input[type=submit]")
        page.wait_for_url(re.compile(r".*/admin/$"))

        def shot(name):
            page.screenshot(path=str(out / f"{name}.png"), full_page=True)

        shot.folder = out

        shot("01-admin-index")
        try:
            yield page, shot
        finally:
            browser.close()


def test_submit_watch_complete_and_read_logs(browser_page, live_server, local, make_mock_host):
    page, shot = browser_page
    host = make_mock_host(name="quick", duration=1, stdout="hello from the browser test\n")
    page.goto(f"{live_server.url}/admin/container_manager/containerjob/add/")
    page.fill("#id_name", "browser-job")
    page.fill("#id_docker_image", "busybox:latest")
    page.fill("#id_command", "echo hello")
    page.select_option("#id_docker_host", str(host.pk))
    page.fill("#id_override_environment", "API_KEY=very-secret\nMODE=fast")
    shot("02-submit-form")
    page.click("input[name=_save]")
    page.wait_for_url(re.compile(r".*/containerjob/$"))
    job = ContainerJob.objects.get(name="browser-job")

    page.evaluate("window.cmNoReload = true")  # a reload would drop this flag
    page.wait_for_selector(f'[data-cm-job="{job.pk}"][data-cm-status="completed"]')
    assert page.evaluate("window.cmNoReload") is True
    exit_code = page.locator(f'[data-cm-job-field="{job.pk}"][data-cm-field="exit_code"]')
    assert exit_code.inner_text() == "0"
    shot("03-list-completed-live")

    page.click(f"text={str(job.pk)[:8]}")
    page.wait_for_selector("pre.cm-log")
    page.click("summary:has-text('Environment')")  # the request's details are folded
    body = page.inner_text("body")
    assert "hello from the browser test" in body
    assert "very-secret" not in body and "API_KEY=********" in body
    shot("04-job-logs")


def test_cancel_running_job_then_dashboard(browser_page, live_server, local, make_mock_host):
    page, shot = browser_page
    host = make_mock_host(name="slow", duration=60)
    job = ContainerJob.objects.create_job(image="busybox", command="sleep 60", docker_host=host)
    page.goto(f"{live_server.url}/admin/container_manager/containerjob/{job.pk}/change/")
    page.wait_for_selector(f'[data-cm-job="{job.pk}"][data-cm-status="running"]')
    shot("05-running")
    page.click("button.cm-cancel")
    page.wait_for_selector(f'[data-cm-job="{job.pk}"][data-cm-status="cancelled"]')
    shot("06-cancelled")
    job.refresh_from_db()
    assert (job.status, job.exit_code) == ("cancelled", 137)  # the mock container was stopped

    page.goto(f"{live_server.url}/admin/container_manager/containerjob/dashboard/")
    chart = page.locator("svg#cm-hourly-chart")
    assert chart.is_visible()
    assert page.locator("svg#cm-hourly-chart rect.cm-bar-other").count() == 1
    assert "slow" in page.inner_text(".cm-hosts")
    shot("07-dashboard")


def test_running_job_output_grows_live_until_it_ends(
    browser_page, live_server, local, make_mock_host
):
    page, shot = browser_page
    ticks = "".join(f"tick {n}\n" for n in range(600))
    host = make_mock_host(name="ticking", duration=120, line_interval=0.2, stdout=ticks)
    job = ContainerJob.objects.create_job(image="busybox", command="ticks", docker_host=host)
    wait_for(lambda: ContainerJob.objects.get(pk=job.pk).status == "running")
    page.goto(f"{live_server.url}/admin/container_manager/containerjob/{job.pk}/change/")
    page.evaluate("window.cmNoReload = true")  # a reload would drop this flag
    stdout = page.locator('pre[data-cm-log="stdout"]')
    shown = len(stdout.text_content())
    page.wait_for_function(
        f"document.querySelector('pre[data-cm-log=\"stdout\"]').textContent.length > {shown}"
    )
    shot("08-live-output")
    assert job.cancel() is True
    page.wait_for_selector('pre[data-cm-log="stdout"][data-cm-complete="1"]')
    done = ContainerJob.objects.get(pk=job.pk)
    assert done.status == "cancelled" and done.stdout_log.startswith("tick 0\ntick 1\n")
    assert stdout.text_content() == done.stdout_log  # every line once, none missing
    assert page.evaluate("window.cmNoReload") is True
    shot("09-live-output-complete")


def test_every_admin_page_fits_the_viewport(browser_page, live_server, local, make_mock_host):
    page, shot = browser_page
    jobs = _jobs_in_every_state(make_mock_host)
    pages = _admin_pages(jobs)
    wide, bare = {}, {}
    for name, url in pages:
        page.goto(f"{live_server.url}{url}")
        assert page.locator("#content").count() == 1, name
        shot(name)
        width = page.evaluate("document.documentElement.scrollWidth")
        clipped = page.evaluate(CLIPPED_JS)
        if width > VIEWPORT["width"] or clipped:
            wide[name] = (width, clipped)
        crumbs = page.evaluate(CRUMBS_JS)
        if crumbs in (None, "rgba(0, 0, 0, 0)"):  # unstyled: drawn below the header's bar
            bare[name] = crumbs
    page.goto(f"{live_server.url}{ADMIN}/webhookendpoint/add/")
    page.fill("#id_url", "https://93.184.216.34/hook")
    page.click("input[name=_save]")
    page.wait_for_selector("text=Copy the signing secret now")
    shot("webhookendpoint-secret-once")
    assert page.evaluate("document.documentElement.scrollWidth") <= VIEWPORT["width"]
    assert wide == {} and bare == {}


def _jobs_in_every_state(make_mock_host) -> dict:
    """Finished, failed, running, array and dependent jobs, and a row of every other model."""
    lines = "".join(f"line {n}\n" for n in range(40))
    quick = make_mock_host(name="quick", max_concurrent_jobs=50, stdout=lines)
    failing = make_mock_host(name="failing", exit_code=3, stderr="boom\n")
    slow = make_mock_host(name="slow", duration=600, memory_bytes=2**27, stdout="working\n")
    template = EnvironmentVariableTemplate.objects.create(
        name="defaults", environment_variables_text="MODE=fast\nDB_PASSWORD=hunter2"
    )
    submit = partial(ContainerJob.objects.create_job, image="busybox")
    jobs = {
        "finished": submit(
            image="registry.example.com/team/nightly-report:2026.12.1",
            command="echo hi", name="finished", docker_host=quick, environment_template=template,
            override_environment="API_KEY=very-secret",
        ),
        "failed": submit(name="fails", docker_host=failing),
        "running": submit(name="runs", docker_host=slow),
        "array": submit(name="array", docker_host=quick, array_size=12),
    }  # fmt: skip
    wait_for(lambda: ContainerJob.objects.get(pk=jobs["failed"].pk).status == "failed")
    jobs["dependent"] = submit(name="after-fails", docker_host=quick, depends_on=[jobs["failed"]])
    ends = {"finished": "completed", "array": "completed", "dependent": "cancelled"}
    for key, status in {**ends, "running": "running"}.items():
        wait_for(lambda k=key, s=status: ContainerJob.objects.get(pk=jobs[k].pk).status == s)
    endpoint = WebhookEndpoint.objects.create(url="https://hooks.example.com/cm", secret="s" * 64)
    WebhookDelivery.objects.create(
        endpoint=endpoint, job=jobs["finished"], event="job.completed", payload={"event": "x"}
    )
    JobSchedule.objects.create(
        name="nightly", cron="0 3 * * *", docker_image="busybox", docker_host=quick
    )
    ApiToken.objects.issue(User.objects.get(username="operator"), name="ci")
    return jobs


def _admin_pages(jobs: dict) -> list[tuple[str, str]]:
    """(screenshot name, URL) of every admin page of the app."""
    change = {key: f"{ADMIN}/containerjob/{job.pk}/change/" for key, job in jobs.items()}
    array = jobs["array"]
    pages = [
        ("app-index", f"{ADMIN}/"),
        ("dashboard", f"{ADMIN}/containerjob/dashboard/"),
        ("job-list", f"{ADMIN}/containerjob/"),
        ("job-list-array-children", f"{ADMIN}/containerjob/?array_parent={array.pk}"),
        ("job-add", f"{ADMIN}/containerjob/add/"),
        *((f"job-{key}", url) for key, url in change.items()),
    ]
    singles = [
        ("containerexecution", ContainerExecution.objects.filter(job=jobs["finished"]).first()),
        ("executorhost", jobs["running"].docker_host),
        ("environmentvariabletemplate", EnvironmentVariableTemplate.objects.first()),
        ("jobschedule", JobSchedule.objects.first()),
        ("apitoken", ApiToken.objects.first()),
        ("webhookendpoint", WebhookEndpoint.objects.first()),
        ("webhookdelivery", WebhookDelivery.objects.first()),
    ]
    for model, row in singles:
        pages.append((f"{model}-list", f"{ADMIN}/{model}/"))
        pages.append((f"{model}-change", f"{ADMIN}/{model}/{row.pk}/change/"))
        if model not in ("containerexecution", "webhookdelivery", "apitoken"):
            pages.append((f"{model}-add", f"{ADMIN}/{model}/add/"))
    return pages
