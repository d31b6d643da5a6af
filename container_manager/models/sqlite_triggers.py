"""SQLite only: the triggers that make a claim and a move to running one statement each.

SQLite has no data-modifying CTE, so the other tables those moves write are written by
triggers on the job's status (``engine.transitions``): a claim (pending -> launching) takes the
first free slot of the job's host, unless the job holds one (a hand-over passes it), and
writes the attempt's row as ``transitions._insert_attempt`` does; a move to running copies the
execution id and the acceptance time onto the attempt's row.

The SQL is made from the models as they are, so it cannot drift from them. The triggers are
dropped before every ``migrate`` (``pre_migrate``) and made after it (``post_migrate``):
SQLite drops a table's triggers with the table and refuses to remake a table a trigger names,
and its migrations remake tables for most field changes. Every new connection also makes them
if they are missing (``connection_created``), so a database migrated by an interrupted run
still gets them. Other databases are left alone.
"""

from __future__ import annotations

import json
from typing import Any

from django.db import connections

#: The triggers' names.
CLAIM = "cm_claim_takes_slot_and_attempt"
RUNNING = "cm_running_copies_attempt"


def created(sender: Any, connection: Any, **kwargs: Any) -> None:
    """``connection_created``: on SQLite, make the triggers if the tables exist and they do not."""
    if connection.vendor == "sqlite":
        install(connection.connection)


def before_migrate(sender: Any, using: str = "default", **kwargs: Any) -> None:
    """``pre_migrate``: drop the triggers, so a migration may remake the tables they name."""
    connection = connections[using]
    if connection.vendor != "sqlite":
        return
    connection.ensure_connection()
    for name in (CLAIM, RUNNING):
        connection.connection.execute(f'DROP TRIGGER IF EXISTS "{name}"')


def after_migrate(sender: Any, using: str = "default", **kwargs: Any) -> None:
    """``post_migrate``: make the triggers from the models as migrated."""
    connection = connections[using]
    if connection.vendor == "sqlite":
        connection.ensure_connection()
        install(connection.connection)


def install(raw: Any) -> None:
    """Make the triggers missing on the sqlite3 connection ``raw``, if the job table exists.

    One read when nothing is missing: a connection that only reads takes no write lock.
    """
    from container_manager.models import ContainerJob

    found = {
        name
        for (name,) in raw.execute(
            "SELECT name FROM sqlite_master WHERE (type = 'table' AND name = ?) "
            "OR (type = 'trigger' AND name IN (?, ?))",
            [ContainerJob._meta.db_table, CLAIM, RUNNING],
        )
    }
    if ContainerJob._meta.db_table not in found:
        return
    for name, sql in ((CLAIM, claim_sql), (RUNNING, running_sql)):
        if name not in found:
            raw.execute(sql())


def claim_sql() -> str:
    """The claim's trigger: the first free slot of an active host, and the attempt's row."""
    from container_manager.models import ContainerExecution, ContainerJob, ExecutorHost, HostSlot

    jobs, hosts, slots, attempts = (
        _quote(model._meta.db_table)
        for model in (ContainerJob, ExecutorHost, HostSlot, ContainerExecution)
    )
    row = attempt_row()
    key = (_column(ContainerExecution, "job"), _column(ContainerExecution, "attempt"))
    fresh = ", ".join(f"{c} = excluded.{c}" for c in row if c not in key)
    return f"""
        CREATE TRIGGER IF NOT EXISTS "{CLAIM}" AFTER UPDATE OF "status" ON {jobs}
        WHEN OLD."status" = 'pending' AND NEW."status" = 'launching'
        BEGIN
            UPDATE {slots} SET "job_id" = NEW."id"
            WHERE "id" = (
                SELECT s."id" FROM {slots} s JOIN {hosts} h ON h."id" = s."host_id"
                WHERE s."host_id" = NEW."docker_host_id" AND h."is_active"
                    AND s."job_id" IS NULL AND s."number" < h."max_concurrent_jobs"
                ORDER BY s."number" LIMIT 1
            ) AND NOT EXISTS (SELECT 1 FROM {slots} WHERE "job_id" = NEW."id");
            INSERT INTO {attempts} ({", ".join(row)}) VALUES ({", ".join(row.values())})
            ON CONFLICT ({", ".join(key)}) DO UPDATE SET {fresh};
        END
    """


def running_sql() -> str:
    """The move to running's trigger: running, the execution id and the acceptance time."""
    from container_manager.models import ContainerExecution, ContainerJob

    jobs, attempts = (_quote(m._meta.db_table) for m in (ContainerJob, ContainerExecution))
    return f"""
        CREATE TRIGGER IF NOT EXISTS "{RUNNING}" AFTER UPDATE OF "status" ON {jobs}
        WHEN OLD."status" = 'launching' AND NEW."status" = 'running'
        BEGIN
            UPDATE {attempts} SET "status" = 'running', "execution_id" = NEW."execution_id",
                "error" = '', "accepted_at" = NEW."started_at"
            WHERE "job_id" = NEW."id" AND "attempt" = NEW."attempt_count";
        END
    """


def attempt_row() -> dict[str, str]:
    """Each column of a new attempt's row and the SQL of its value in the claim's trigger.

    The claimed job's own values (``NEW``), the status ``launching``, and every other
    column the field's default, as ``transitions._insert_attempt`` writes them.
    """
    from container_manager.models import ContainerExecution

    own = {
        "job": 'NEW."id"', "attempt": 'NEW."attempt_count"', "host": 'NEW."docker_host_id"',
        "started_at": 'NEW."updated_at"', "status": "'launching'",
    }  # fmt: skip
    connection = connections[ContainerExecution.objects.db]
    row = {}
    for field in ContainerExecution._meta.concrete_fields:
        if field.primary_key:
            continue
        value = own.get(field.name)
        if value is None:
            value = _literal(field.get_db_prep_save(field.get_default(), connection))
        row[_quote(field.column)] = value
    return row


def _literal(value: Any) -> str:
    """``value`` as a SQLite literal."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int | float):
        return repr(value)
    if not isinstance(value, str):
        value = json.dumps(getattr(value, "adapted", value))
    return "'" + value.replace("'", "''") + "'"


def _column(model: Any, name: str) -> str:
    return _quote(model._meta.get_field(name).column)


def _quote(name: str) -> str:
    return f'"{name}"'
