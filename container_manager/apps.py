"""App configuration: loads the steps (which bind the models' hooks), the system checks, webhooks.

Registers the ``notify`` step and connects the webhook receiver to the job signals.
"""

from django.apps import AppConfig


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

        steps.register_step("notify", notify.notify)
        for signal in (signals.job_started, signals.job_finished):
            signal.connect(notify.on_job_event, dispatch_uid="cm-webhooks")
