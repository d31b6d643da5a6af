"""SQLite only: the triggers that make a claim and a move to running one statement each.

SQLite has no data-modifying CTE, so the other tables a move writes are written by triggers on
the job's status (``engine.transitions``): a claim (pending -> launching) takes the first free
slot of the job's host, unless the job holds one (a hand-over passes it), and writes the
attempt's row as ``transitions._insert_attempt`` does; a move to running copies the execution id
and the acceptance time onto the attempt's row. The SQL is frozen here: a field added to
``ContainerExecution`` needs a migration that recreates the claim trigger
(``tests/test_sqlite_triggers.py`` fails until then). SQLite drops a table's triggers with the
table, and refuses to rename a table over one a trigger names: a later migration that remakes
one of these tables on SQLite drops the triggers first and creates them again after.
"""

from django.db import migrations

JOBS = '"container_manager_containerjob"'
SLOTS = '"container_manager_hostslot"'
HOSTS = '"container_manager_executorhost"'
ATTEMPTS = '"container_manager_containerexecution"'

#: Every column of an attempt row as this migration knows it, and the value a claim writes:
#: the claimed row's own values, or the field's default.
ATTEMPT_ROW = (
    ('"job_id"', 'NEW."id"'),
    ('"attempt"', 'NEW."attempt_count"'),
    ('"host_id"', 'NEW."docker_host_id"'),
    ('"execution_id"', "''"),
    ('"status"', "'launching'"),
    ('"started_at"', 'NEW."updated_at"'),
    ('"accepted_at"', "NULL"),
    ('"container_started_at"', "NULL"),
    ('"finished_at"', "NULL"),
    ('"harvested_at"', "NULL"),
    ('"platform_times"', "'{}'"),
    ('"exit_code"', "NULL"),
    ('"stdout_log"', "''"),
    ('"stderr_log"', "''"),
    ('"docker_log"', "''"),
    ('"max_memory_usage"', "NULL"),
    ('"cpu_usage_percent"', "NULL"),
    ('"error"', "''"),
)
KEY = ('"job_id"', '"attempt"')

CLAIM = "cm_claim_takes_slot_and_attempt"
RUNNING = "cm_running_copies_attempt"


def _claim_sql() -> str:
    columns = ", ".join(column for column, _ in ATTEMPT_ROW)
    values = ", ".join(value for _, value in ATTEMPT_ROW)
    fresh = ", ".join(f"{c} = excluded.{c}" for c, _ in ATTEMPT_ROW if c not in KEY)
    return f"""
        CREATE TRIGGER "{CLAIM}" AFTER UPDATE OF "status" ON {JOBS}
        WHEN OLD."status" = 'pending' AND NEW."status" = 'launching'
        BEGIN
            UPDATE {SLOTS} SET "job_id" = NEW."id"
            WHERE "id" = (
                SELECT s."id" FROM {SLOTS} s JOIN {HOSTS} h ON h."id" = s."host_id"
                WHERE s."host_id" = NEW."docker_host_id" AND h."is_active"
                    AND s."job_id" IS NULL AND s."number" < h."max_concurrent_jobs"
                ORDER BY s."number" LIMIT 1
            ) AND NOT EXISTS (SELECT 1 FROM {SLOTS} WHERE "job_id" = NEW."id");
            INSERT INTO {ATTEMPTS} ({columns}) VALUES ({values})
            ON CONFLICT ({", ".join(KEY)}) DO UPDATE SET {fresh};
        END
    """


def _running_sql() -> str:
    return f"""
        CREATE TRIGGER "{RUNNING}" AFTER UPDATE OF "status" ON {JOBS}
        WHEN OLD."status" = 'launching' AND NEW."status" = 'running'
        BEGIN
            UPDATE {ATTEMPTS} SET "status" = 'running', "execution_id" = NEW."execution_id",
                "error" = '', "accepted_at" = NEW."started_at"
            WHERE "job_id" = NEW."id" AND "attempt" = NEW."attempt_count";
        END
    """


def create_triggers(apps, schema_editor) -> None:
    """Create both triggers on SQLite; other databases write these rows in the move's SQL."""
    if schema_editor.connection.vendor != "sqlite":
        return
    for sql in (_claim_sql(), _running_sql()):
        schema_editor.execute(sql, params=None)


def drop_triggers(apps, schema_editor) -> None:
    """Drop both triggers on SQLite."""
    if schema_editor.connection.vendor != "sqlite":
        return
    for name in (CLAIM, RUNNING):
        schema_editor.execute(f'DROP TRIGGER IF EXISTS "{name}"', params=None)


class Migration(migrations.Migration):
    dependencies = [("container_manager", "0024_array_limits")]

    operations = [migrations.RunPython(create_triggers, drop_triggers, elidable=False)]
