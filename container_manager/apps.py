"""App configuration: wires job signals to dispatch and to Django tasks, registers the checks."""

from django.apps import AppConfig
from django.db.models.signals import post_save


class ContainerManagerConfig(AppConfig):
    """The ``container_manager`` Django app."""

    name = "container_manager"
    verbose_name = "Container manager"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from container_manager import checks  # noqa: F401 - registers the system checks
        from container_manager.dispatch import job_created
        from container_manager.models import ContainerJob
        from container_manager.tasks.signals import job_moved

        post_save.connect(job_created, sender=ContainerJob, dispatch_uid="cm-job-created")
        post_save.connect(job_moved, sender=ContainerJob, dispatch_uid="cm-task-job-moved")
