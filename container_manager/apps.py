"""App configuration: the system checks, the Django tasks' signals, the tallies' delete hook,
the SQLite connection setup and SQLite's move triggers.

Connects the Django tasks' started/finished signals to job moves. The steps are not imported
here: ``container_manager.hooks`` loads them at the first call, so a cold start that serves
the admin does not pay for them.
"""

from django.apps import AppConfig
from django.db.backends.signals import connection_created
from django.db.models.signals import post_migrate, post_save, pre_delete, pre_migrate


class ContainerManagerConfig(AppConfig):
    """The ``container_manager`` Django app."""

    name = "container_manager"
    verbose_name = "Container manager"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from container_manager import checks  # noqa: F401 - registers the system checks
        from container_manager.models import ContainerJob, sqlite_triggers
        from container_manager.models.sqlite import prepare_connection
        from container_manager.models.tallies import job_deleted
        from container_manager.tasks.lifecycle import job_moved

        # Moves announce themselves with post_save: Django tasks' started/finished signals.
        post_save.connect(job_moved, sender=ContainerJob, dispatch_uid="cm-task-job-moved")
        # A deleted finished job leaves the metrics' tallies with its row.
        pre_delete.connect(job_deleted, sender=ContainerJob, dispatch_uid="cm-tally-job-deleted")
        # Every SQLite connection waits for locks and journals in WAL (models/sqlite.py).
        connection_created.connect(prepare_connection, dispatch_uid="cm-sqlite-prepare")
        # SQLite's move triggers (models/sqlite_triggers.py): off while migrating, then remade.
        connection_created.connect(sqlite_triggers.created, dispatch_uid="cm-sqlite-triggers")
        pre_migrate.connect(sqlite_triggers.before_migrate, sender=self, dispatch_uid="cm-pre")
        post_migrate.connect(sqlite_triggers.after_migrate, sender=self, dispatch_uid="cm-post")
