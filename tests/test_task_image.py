"""The image of one's own project for ``ContainerTaskBackend``: ``manage.py build_task_image``.

What goes in (without ``packaging``, which the app does not depend on), and a throwaway
project's image built on the real engine, whose tasks run through the backend.
"""

import importlib
import io
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from django.core.management import call_command

from container_manager.management import rootfs
from container_manager.models import ContainerJob, EnvironmentVariableTemplate

REPO = Path(__file__).resolve().parent.parent
#: Runs a script as ``__main__`` with ``packaging`` unimportable, as in a venv holding only the
#: app's runtime distributions (``pip install container_manager``).
WITHOUT_PACKAGING = (
    "import runpy, sys; sys.modules['packaging'] = None; "
    "sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')"
)
TASKS_MODULE = """
from container_manager.tasks.compat import task


@task()
def shout(word):
    return word.upper() + "!"


@task()
def refuse(word):
    raise ValueError(f"bad input: {word}")
"""
SETTINGS_MODULE = """
import django

SECRET_KEY = "throwaway"
INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth", "container_manager"]
if django.VERSION < (6, 0):
    INSTALLED_APPS.append("django_tasks")
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
TASKS = {"default": {"BACKEND": "container_manager.tasks.ContainerTaskBackend",
                     "OPTIONS": {"image": "unused"}}}
"""


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A throwaway project (a settings and a tasks module) importable here: its package name."""
    name = f"throwaway_{uuid.uuid4().hex[:8]}"
    package = tmp_path / name
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "settings.py").write_text(SETTINGS_MODULE)
    (package / "tasks.py").write_text(TASKS_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    return name


def test_the_rootfs_script_needs_no_packaging():
    done = subprocess.run(
        [sys.executable, "-c", WITHOUT_PACKAGING, str(REPO / "infra/python_rootfs.py"), "--list"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    names = {line.split("\t", 1)[0] for line in done.stdout.splitlines()}
    assert "app/container_manager/run_task.py" in names
    assert any(n.startswith("opt/cm/site-packages/django/") for n in names)


def test_the_listing_holds_the_project_and_leaves_out_caches_vcs_venvs_and_databases(
    project, tmp_path
):
    for path in (".git/HEAD", "venv/pyvenv.cfg", "venv/lib/x.py", "db.sqlite3",
                 f"{project}/__pycache__/tasks.cpython-39.pyc", "notes/big.csv"):  # fmt: skip
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text("x")
    out = io.StringIO()
    call_command(
        "build_task_image", "unused:1", project_dir=str(tmp_path), list=True,
        exclude=["notes"], settings_module=f"{project}.settings", stdout=out,
    )  # fmt: skip
    names = {line.split("\t", 1)[0] for line in out.getvalue().splitlines()}
    project_files = {n for n in names if n.startswith("app/")}
    assert project_files == {f"app/{project}/{m}.py" for m in ("__init__", "settings", "tasks")}
    assert "opt/cm/site-packages/container_manager/run_task.py" in names
    assert any(n.startswith("opt/cm/site-packages/django/") for n in names)


def test_a_distribution_that_is_not_installed_is_named(project, tmp_path):
    with pytest.raises(Exception, match="no-such-distribution is not installed"):
        call_command(
            "build_task_image", "unused:1", project_dir=str(tmp_path), list=True,
            distributions=["no-such-distribution"], settings_module=f"{project}.settings",
        )  # fmt: skip


def test_closure_follows_requirements_but_not_extras():
    names = {d.metadata["Name"].lower() for d in rootfs.closure(["container_manager"])}
    assert {"django", "asgiref", "sqlparse", "cronsim"} <= names
    assert "docker" not in names and "boto3" not in names  # extras stay out


@pytest.mark.docker
@pytest.mark.django_db(transaction=True)
def test_a_throwaway_projects_image_runs_its_tasks_on_the_engine(
    project, tmp_path, docker_host, local, settings
):
    import docker

    from tests.test_tasks_docker import finished

    tag = f"cm-throwaway-{uuid.uuid4().hex[:8]}:1"
    out = io.StringIO()
    call_command(
        "build_task_image", tag, project_dir=str(tmp_path),
        settings_module=f"{project}.settings", stdout=out,
    )  # fmt: skip
    try:
        assert f"built {tag}" in out.getvalue()
        # This test process runs other settings; the project's own process would not need it.
        EnvironmentVariableTemplate.objects.create(
            name="throwaway",
            environment_variables_text=f"DJANGO_SETTINGS_MODULE={project}.settings",
        )
        settings.TASKS = {
            "default": {
                "BACKEND": "container_manager.tasks.ContainerTaskBackend",
                "OPTIONS": {"image": tag, "host": docker_host.name,
                            "environment_template": "throwaway", "memory_limit": 256},
            }
        }  # fmt: skip
        tasks = importlib.import_module(f"{project}.tasks")
        shouted, refused = tasks.shout.enqueue("hi"), tasks.refuse.enqueue("x")
        assert finished(shouted).return_value == "HI!"
        assert finished(refused).status == "FAILED"
        [error] = refused.errors
        assert error.exception_class is ValueError and f"/app/{project}/tasks.py" in error.traceback
        assert ContainerJob.objects.get(pk=refused.id).last_error == (
            "ValueError: bad input: x (exited with code 1)"
        )
    finally:
        docker.from_env().images.remove(tag, force=True)
