"""Settings the Python test image runs tasks with: the project's, plus ``TASKS`` for the examples.

Also used by the host-side tests that run ``container_manager.run_task`` as a subprocess.
"""

import django

from functions.settings import *  # noqa: F403
from functions.settings import INSTALLED_APPS

TASKS = {
    "default": {
        "BACKEND": "container_manager.tasks.ContainerTaskBackend",
        "OPTIONS": {"image": "cm-python:latest"},
    }
}
if django.VERSION < (6, 0):
    INSTALLED_APPS = [*INSTALLED_APPS, "django_tasks"]
