"""App configuration: loads the steps (which bind the models' hooks) and the system checks."""

from django.apps import AppConfig


class ContainerManagerConfig(AppConfig):
    """The ``container_manager`` Django app."""

    name = "container_manager"
    verbose_name = "Container manager"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from container_manager import (
            checks,  # noqa: F401 - registers the system checks
            steps,  # noqa: F401 - binds launch, harvest, cancel and submit for the models
        )
