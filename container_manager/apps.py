"""App configuration: wires the job-created signal to dispatch and registers the system checks."""

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
        )
        from container_manager.dispatch import job_created
        from container_manager.models import ContainerJob

        post_save.connect(job_created, sender=ContainerJob, dispatch_uid="cm-job-created")
        for signal in (signals.job_started, signals.job_finished):
            signal.connect(notify.on_job_event, dispatch_uid="cm-webhooks")
