"""App configuration: loads the steps (which bind the models' hooks), the system checks, webhooks.

Registers the ``notify`` step, connects the webhook receiver to the job signals and the Django
tasks' started/finished signals to job moves.
"""

from django.apps import AppConfig
from django.db.models.signals import post_save


class ContainerManagerConfig(AppConfig):
    """The ``container_manager`` Django app."""

    name = "container_manager"
    verbose_name = "Container manager"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from container_manager import (
            checks,  # noqa: F401 - registers the system checks
            notify,
            signals,
            steps,  # binds launch, harvest, cancel and submit for the models
        )
        from container_manager.models import ContainerJob
        from container_manager.tasks.signals import job_moved

        # Moves announce themselves with post_save: Django tasks' started/finished signals.
        post_save.connect(job_moved, sender=ContainerJob, dispatch_uid="cm-task-job-moved")
        steps.register_step("notify", notify.notify)
        for signal in (signals.job_started, signals.job_finished):
            signal.connect(notify.on_job_event, dispatch_uid="cm-webhooks")
