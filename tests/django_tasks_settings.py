"""Settings for Django's own ``tests/tasks`` run against ``ContainerTaskBackend``.

See tests/django_tasks_suite.py. Steps run inline and task jobs run as child processes.
"""

from functions.settings import *  # noqa: F403
from functions.settings import CONTAINER_MANAGER

#: The host of the TASKS entries that stand for Django's ImmediateBackend: jobs run at once.
RUNNING_HOST = "django-suite-running"
#: The host of those that stand for DummyBackend: it has no slot, so jobs wait as pending.
HELD_HOST = "django-suite-held"
#: The image task jobs name; the process executor runs this interpreter instead.
IMAGE = "this-python"

# Django's test runner turns DEBUG off, and the app refuses the development key then.
SECRET_KEY = "django-tasks-suite-key-only-for-this-test-database-0123456789"
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
TASKS = {
    "default": {
        "BACKEND": "container_manager.tasks.ContainerTaskBackend",
        "OPTIONS": {"image": IMAGE, "host": RUNNING_HOST},
    }
}
CONTAINER_MANAGER = {
    **CONTAINER_MANAGER,
    "DISPATCH": {
        "BACKEND": "container_manager.dispatch.immediate.ImmediateBackend",
        "OPTIONS": {"SLEEP": False},
    },
    "EXECUTORS": {"process": "tests.process_executor.ProcessExecutor"},
}
