"""The ``cm`` command line end to end: the real entry point in a subprocess, against a live server.

Steps run on the local dispatch backend with mock hosts; the CLI polls every few milliseconds
(``CM_POLL_INTERVAL``/``CM_POLL_MAX``), and the tests wait on its process, never on a clock.
"""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from container_manager.models import ContainerJob
from container_manager.models.schedules import JobSchedule

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "cli-test-token-5f1c"
LINES = "".join(f"line {n}\n" for n in range(20))
#: Seconds a CLI run may take before the test fails (a job here lasts a second or two).
RUN_TIMEOUT = 60


@pytest.fixture
def server(settings, local, live_server):
    """The live server's URL of ``container_manager.urls``, the test token accepted."""
    settings.CONTAINER_MANAGER = {**settings.CONTAINER_MANAGER, "API_TOKENS": [TOKEN]}
    return f"{live_server.url}/cm/"


@pytest.fixture
def environ(server, tmp_path):
    """The CLI's environment: the server and token, fast polls, a home with no config file."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("CM_", "XDG_CONFIG"))}
    return {
        **clean,
        "CM_URL": server,
        "CM_TOKEN": TOKEN,
        "CM_POLL_INTERVAL": "0.02",
        "CM_POLL_MAX": "0.2",
        "HOME": str(tmp_path),
        "PYTHONPATH": str(ROOT),
    }


@pytest.fixture
def cm(environ):
    """``cm(*args, **env)``: run ``python -m container_manager.cli`` to its end."""

    def run(*args, stdin=None, **env):
        return subprocess.run(
            [sys.executable, "-m", "container_manager.cli", *args],
            input=stdin, capture_output=True, text=True, cwd=ROOT,
            env={**environ, **env}, timeout=RUN_TIMEOUT,
        )  # fmt: skip

    return run


def started(environ, *args):
    """A ``cm`` process left running, its output piped."""
    return subprocess.Popen(
        [sys.executable, "-m", "container_manager.cli", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=environ,
    )  # fmt: skip


def job_of(host, **fields):
    """A job submitted on ``host`` in Python (the local backend runs its steps)."""
    return ContainerJob.objects.create_job(
        image="busybox", command="true", docker_host=host, **fields
    )


@pytest.mark.parametrize("as_json", [False, True])
@pytest.mark.parametrize("exit_code", [0, 3])
def test_submit_wait_exits_with_the_jobs_exit_code(cm, make_mock_host, exit_code, as_json):
    make_mock_host(name="runner", duration=0.2, exit_code=exit_code)
    done = cm(
        "submit", "busybox", "--host", "runner", "--name", "cli", "--env", "A=1",
        "--label", "team=data", "--wait", *(["--json"] if as_json else []),
        "--", "sh", "-c", f"exit {exit_code}",
    )  # fmt: skip
    assert done.returncode == exit_code, done.stderr
    ended = json.loads(done.stdout) if as_json else {"id": done.stdout.strip()}
    job = ContainerJob.objects.get(pk=ended["id"])
    assert (job.docker_image, job.name, job.exit_code) == ("busybox", "cli", exit_code)
    assert json.loads(job.command) == ["sh", "-c", f"exit {exit_code}"]
    assert job.get_override_environment_variables_dict() == {"A": "1"}
    assert f"exit code {exit_code}" in done.stderr
    if as_json:
        status = "failed" if exit_code else "completed"
        assert (ended["status"], ended["labels"]) == (status, {"team": "data"})


def test_submit_follow_prints_the_output_and_exits_with_the_jobs_code(cm, make_mock_host):
    make_mock_host(name="printer", duration=1, line_interval=0.05, stdout=LINES, exit_code=7)
    done = cm("submit", "busybox", "--host", "printer", "--follow", "--", "echo")
    assert done.returncode == 7, done.stderr
    assert done.stdout == LINES


def test_wait_maps_a_timeout_and_a_cancel_to_124_and_130(cm, make_mock_host):
    host = make_mock_host(duration=60)
    timed_out, cancelled = job_of(host), job_of(host)
    ContainerJob.objects.filter(pk=timed_out.pk).update(status="timeout")
    assert cm("wait", str(timed_out.pk)).returncode == 124
    assert cm("cancel", str(cancelled.pk)).returncode == 0
    done = cm("wait", str(cancelled.pk), "--json")
    assert done.returncode == 130, done.stderr
    assert json.loads(done.stdout)["status"] == "cancelled"


def test_logs_follow_prints_the_whole_output_once(cm, make_mock_host):
    host = make_mock_host(duration=1.5, line_interval=0.05, stdout=LINES, stderr="warn\n")
    job = job_of(host)
    done = cm("logs", "-f", str(job.pk))
    assert done.returncode == 0, done.stderr
    assert done.stdout == LINES
    assert done.stderr == "warn\n"
    assert ContainerJob.objects.get(pk=job.pk).status == "completed"


def test_logs_without_follow_prints_what_there_is_and_returns(cm, make_mock_host):
    job = job_of(make_mock_host(duration=60))  # running or pending: nothing printed yet
    done = cm("logs", str(job.pk), "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["complete"] is False


def test_ctrl_c_while_following_leaves_the_job_running(environ, make_mock_host):
    host = make_mock_host(duration=120, line_interval=0.05, stdout=LINES)
    job = job_of(host)
    following = started(environ, "logs", "-f", str(job.pk))
    assert following.stdout.readline() == "line 0\n"  # it is following
    following.send_signal(signal.SIGINT)
    _, err = following.communicate(timeout=RUN_TIMEOUT)
    assert following.returncode == 130
    assert "keeps running" in err
    assert ContainerJob.objects.get(pk=job.pk).status == "running"
    job.cancel()


def test_cancel_a_job_and_cancel_a_finished_one(cm, make_mock_host):
    job = job_of(make_mock_host(duration=60))
    done = cm("cancel", str(job.pk))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(job.pk)
    assert cm("wait", str(job.pk)).returncode == 130
    again = cm("cancel", str(job.pk))
    assert again.returncode == 1
    assert "job is already cancelled" in again.stderr


def test_retry_a_failed_job_and_refuse_a_running_one(cm, make_mock_host):
    failed = job_of(make_mock_host(exit_code=2))
    assert cm("wait", str(failed.pk)).returncode == 2
    done = cm("retry", str(failed.pk), "--json")
    assert done.returncode == 0, done.stderr
    again = json.loads(done.stdout)
    assert again["id"] != str(failed.pk) and again["docker_image"] == "busybox"
    running = job_of(make_mock_host(duration=60))
    refused = cm("retry", str(running.pk))
    assert refused.returncode == 1
    assert "status" in refused.stderr


def test_ls_follows_next_cursor_over_pages(cm, make_mock_host):
    host = make_mock_host()
    made = {str(job_of(host, name=f"page-{n}").pk) for n in range(5)}
    first = cm("ls", "--limit", "2")
    assert first.returncode == 0, first.stderr
    assert len(first.stdout.splitlines()) == 1 + 2  # the header and one page
    assert "cm ls --all" in first.stderr
    every = cm("ls", "--limit", "2", "--all", "--json", "--debug")
    assert every.returncode == 0, every.stderr
    listed = [job["id"] for job in json.loads(every.stdout)["jobs"]]
    assert sorted(listed) == sorted(made)  # each once
    assert every.stderr.count("cursor=") == 2  # pages 2 and 3


def test_ls_filters_by_name_and_labels(cm, mock_host):
    wanted = job_of(mock_host, name="wanted", labels={"team": "data", "tier": "batch"})
    job_of(mock_host, name="wanted", labels={"team": "web"})
    job_of(mock_host, name="other", labels={"team": "data"})
    done = cm(
        "ls", "--name", "wanted", "--label", "team=data", "--label", "tier=batch", "--json",
        "--debug",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "name=wanted" in done.stderr and "label=team%3Ddata&label=tier%3Dbatch" in done.stderr
    assert [found["id"] for found in json.loads(done.stdout)["jobs"]] == [str(wanted.pk)]
    table = cm("ls", "--name", "wanted", "--label", "team=data").stdout
    assert str(wanted.pk) in table and "busybox" in table


def test_show_prints_the_job(cm, mock_host):
    job = job_of(mock_host, name="shown")
    done = cm("show", str(job.pk))
    assert done.returncode == 0, done.stderr
    assert "id:" in done.stdout and str(job.pk) in done.stdout and "shown" in done.stdout
    assert json.loads(cm("show", str(job.pk), "--json").stdout)["name"] == "shown"


def test_a_bad_field_prints_the_field_and_exits_2(cm, mock_host):
    done = cm("submit", "busybox", "--memory", "1", "--", "true")
    assert done.returncode == 2
    assert "memory_limit" in done.stderr
    assert not ContainerJob.objects.exists()
    listed = cm("ls", "--status", "bogus")
    assert listed.returncode == 2
    assert "status: must be one of" in listed.stderr


def test_a_bad_token_exits_1_with_the_servers_message_and_never_prints_the_token(cm, server):
    secret = "wrong-token-0123456789abcdef"
    done = cm("ls", "--debug", CM_TOKEN=secret)
    assert done.returncode == 1
    assert "unknown or revoked API token" in done.stderr
    assert secret not in done.stdout + done.stderr


def test_an_unreachable_server_exits_3(cm):
    done = cm("ls", CM_URL="http://127.0.0.1:9/cm/")
    assert done.returncode == 3
    assert "cannot reach http://127.0.0.1:9/cm/api/" in done.stderr


def test_login_writes_a_private_profile_that_later_commands_use(cm, server, tmp_path, mock_host):
    job = job_of(mock_host)
    done = cm("login", server, "--profile", "work", stdin=f"{TOKEN}\n", CM_URL="", CM_TOKEN="")
    assert done.returncode == 0, done.stderr
    assert TOKEN not in done.stdout + done.stderr
    path = tmp_path / ".config" / "cm" / "config.toml"
    assert path.stat().st_mode & 0o777 == 0o600
    assert f'token = "{TOKEN}"' in path.read_text()
    listed = cm("--profile", "work", "ls", "--json", CM_URL="", CM_TOKEN="")
    assert listed.returncode == 0, listed.stderr
    assert [found["id"] for found in json.loads(listed.stdout)["jobs"]] == [str(job.pk)]
    missing = cm("--profile", "home", "ls", CM_URL="", CM_TOKEN="")
    assert missing.returncode == 2 and "no [home]" in missing.stderr


def test_login_with_a_bad_token_writes_nothing(cm, server, tmp_path):
    done = cm("login", server, stdin="not-a-token\n", CM_URL="", CM_TOKEN="")
    assert done.returncode == 1
    assert "unknown or revoked API token" in done.stderr
    assert not (tmp_path / ".config" / "cm" / "config.toml").exists()


def test_the_cli_runs_without_django(environ, mock_host):
    job = job_of(mock_host)
    script = (
        "import sys; sys.modules['django'] = None\n"  # any import of Django now fails
        "from container_manager.cli.main import main\n"
        "sys.exit(main(['show', sys.argv[1], '--json']))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(job.pk)],
        capture_output=True, text=True, cwd=ROOT, env=environ, timeout=RUN_TIMEOUT,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["id"] == str(job.pk)


def test_schedules_ls(cm, mock_host):
    JobSchedule.objects.create(name="nightly", cron="0 3 * * *", docker_image="busybox")
    done = cm("schedules")
    assert done.returncode == 0, done.stderr
    assert "nightly" in done.stdout and "0 3 * * *" in done.stdout
    body = json.loads(cm("schedules", "ls", "--json").stdout)
    assert [s["name"] for s in body["schedules"]] == ["nightly"]


def test_schedules_show_disable_enable_run_and_rm(cm, mock_host):
    schedule = JobSchedule.objects.create(
        name="nightly", cron="0 3 * * *", docker_image="busybox", docker_host=mock_host
    )
    ident = str(schedule.pk)
    shown = cm("schedules", "show", ident)
    assert shown.returncode == 0, shown.stderr
    assert "nightly" in shown.stdout and "busybox" in shown.stdout
    assert cm("schedules", "disable", ident).returncode == 0
    assert JobSchedule.objects.get(pk=schedule.pk).enabled is False
    assert cm("schedules", "enable", ident).returncode == 0
    assert JobSchedule.objects.get(pk=schedule.pk).enabled is True
    ran = cm("schedules", "run", ident, "--wait")
    assert ran.returncode == 0, ran.stderr
    assert ContainerJob.objects.get(pk=ran.stdout.strip()).status == "completed"
    assert cm("schedules", "rm", ident).returncode == 0
    assert not JobSchedule.objects.filter(pk=schedule.pk).exists()
    assert cm("schedules", "show", ident).returncode == 1  # a 404


def test_the_console_script_names_main(cm):
    import tomllib

    from container_manager.cli import main

    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["cm"] == "container_manager.cli.main:main"
    assert callable(main.main)
    usage = cm("--help")
    assert usage.returncode == 0
    for command in ("submit", "ls", "show", "logs", "wait", "cancel", "retry", "schedules"):
        assert command in usage.stdout
