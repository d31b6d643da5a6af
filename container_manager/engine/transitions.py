"""Compare-and-set status moves: the only code that writes a job's ``status``.

One row changed means this caller owns the move; zero means someone else made it.
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any

from django.db import connections, transaction
from django.db.models import Exists, F, OuterRef, Q
from django.db.models.signals import post_save
from django.utils import timezone

from container_manager import clock, dispatch, signals
from container_manager.engine import outbox, statements
from container_manager.models import (
    ContainerExecution,
    ContainerJob,
    ExecutorHost,
    HostSlot,
    JobTally,
)
from container_manager.models.manager import unfinished_dependencies
from container_manager.models.tallies import TALLIED_COLUMNS, tally_sql
from container_manager.models.workflows import (
    ArrayCounts,
    array_has_room,
    count_child,
    count_sql,
    counts_of,
    final_status,
)
from container_manager.rules import array_limits
from container_manager.rules import status as st


class HostFull(Exception):
    """The host had no free slot (or is inactive); the job stays pending."""


class ArrayFull(Exception):
    """The job's array has ``max_parallel`` children launching or running; it stays pending."""


class _Taken(Exception):
    """Another caller moved the job first (``begin_launch`` answers False)."""


def move(
    job: ContainerJob,
    old: str,
    new: str,
    *,
    guard: dict[str, Any] | None = None,
    execution: dict[str, Any] | None = None,
    **fields: Any,
) -> bool:
    """Move ``job`` from ``old`` to ``new`` if its row is still ``old``; return True if moved.

    ``guard`` adds conditions (e.g. the attempt number), ``fields`` are written
    with the status, ``execution`` updates the current attempt's
    ``ContainerExecution`` in the same transaction. Leaving launching/running
    hands the host slot to the next waiting job or frees it (``hand_over``) in
    that transaction too, so counts never drift; an array's counts and a job's
    dependents follow the move there too (``job_moved``), a child's final move adds one to
    its array's counts (``count_sql``) and, once committed, ends the array if that was the
    last child (``_end_array``), and a final move adds the
    job to the metrics' tallies (``JobTally.objects.record``, one statement). A move that
    makes a webhook event writes its delivery rows in that transaction too (``outbox.write``),
    so a crash after the commit cannot lose them.

    On PostgreSQL the job's UPDATE, the attempt's, the hand-over, a final move's tally and
    an array child's count are one statement (``_write``); a move with no array parent to
    start and no webhook event to write then runs without a transaction of its own (BEGIN
    and COMMIT would triple its cost), so the counts row is locked only while that
    statement runs. On SQLite they are one statement each, in a transaction when more
    than one; the move to running's attempt copy is written by a trigger on the job's
    UPDATE (``_copied_by_trigger``), so that move is one statement there too.
    """
    st.check_move(old, new, array_parent=job.is_array_parent)
    now = clock.now()
    frees_slot = old in st.HOLDS_SLOT and new not in st.HOLDS_SLOT and not job.is_array_parent
    values = {"status": new, "updated_at": now, **fields}
    conditions = {"id": job.pk, "status": old, **(guard or {})}
    connection = connections[ContainerJob.objects.db]
    if _copied_by_trigger(connection, (old, new), execution, fields):
        execution = None
    alone = not _moves_array(job, new) and not outbox.may_write(job, new)
    if connection.vendor != "postgresql" and (
        frees_slot or execution is not None or new in st.TERMINAL
    ):
        alone = False
    with nullcontext() if alone else transaction.atomic():
        written = _write(connection, job, conditions, values, execution, frees_slot, now)
        moved, handed, counts = written
        if moved is None:
            return False
        job.has_dependents = moved
        if handed is not None:
            _send_start(handed)
        if new in st.TERMINAL and connection.vendor != "postgresql":
            JobTally.objects.record(job.pk)  # once: only the caller whose move changed the row
        _apply(job, new, fields)  # before the outbox: an event's body shows the written values
        job_moved(job, new)
        if frees_slot and job.max_parallel is not None:
            _next_in_array(job)
        outbox.write(job, new)
    _announce(job, {"status", *fields})
    if counts is not None:
        _end_array(job.array_parent_id, job, counts)
    return True


def _copied_by_trigger(
    connection: Any, step: tuple[str, str], execution: dict[str, Any] | None, fields: dict[str, Any]
) -> bool:
    """Whether SQLite's trigger on the move to running writes ``execution`` with the job's UPDATE.

    The trigger (``models.sqlite_triggers``) copies the job's new
    ``execution_id`` and ``started_at`` onto the attempt's row, running, with no error, as the
    launch step asks (``steps.launch``); any other attempt write is made by the move itself.
    """
    if connection.vendor != "sqlite" or step != (st.LAUNCHING, st.RUNNING):
        return False
    copied = {"execution_id": fields.get("execution_id"), "accepted_at": fields.get("started_at")}
    return execution == {"status": st.RUNNING, **copied, "error": ""}


def _apply(job: ContainerJob, new: str, fields: dict[str, Any]) -> None:
    """Give the loaded ``job`` the status and the fields its move wrote to the row."""
    job.status = new
    job._loaded_status = new
    for name, value in fields.items():
        setattr(job, name, value)


# A final move also learns if a job started waiting for this one: a new dependent sets
# ``has_dependents`` on this row (``workflows``), so it waits for this move or this move
# waits for it and its UPDATE, re-evaluated on the newest row, returns the flag set; the
# dependents are then released after the commit.
_RETURNING = "has_dependents"


def _write(
    connection: Any,
    job: ContainerJob,
    conditions: dict[str, Any],
    values: dict[str, Any],
    execution: dict[str, Any] | None,
    frees_slot: bool,
    now: Any,
) -> tuple[bool | None, Any, ArrayCounts | None]:
    """The move's writes: ``values`` where ``conditions`` hold, the attempt's, the hand-over.

    Returns the row's ``has_dependents`` (None if the row was not moved), the id of
    the job the slot was handed to or that is to be sent its launch (``hand_over``), and
    for an array child's final move its array's counts after this one (else None).
    On PostgreSQL one statement: ``moved``, the attempt's ``attempt``, the hand-over's and
    the count's ``counted``.
    """
    final = values["status"] in st.TERMINAL
    counted = final and job.array_parent_id is not None
    update = statements.update(
        connection, ContainerJob, tuple(values), statements.shape(conditions),
        returning=", ".join(["id", _RETURNING, *(TALLIED_COLUMNS if final else ())]),
    )  # fmt: skip
    params = statements.params(connection, ContainerJob, values, conditions)
    if connection.vendor != "postgresql":
        return _write_portable(
            connection, job, (update, params), execution, frees_slot, now,
            values["status"] if counted else None,
        )  # fmt: skip
    parts = [f"moved AS ({update})"]
    if final:  # the metrics' tallies, from the row as moved (``JobTally``)
        tallied, _ = tally_sql(connection, JobTally, "TRUE", [], 1, rows="moved")
        parts.append(f"tallied AS ({tallied})")
    if execution is not None:
        attempt = statements.update(
            connection, ContainerExecution, tuple(execution), (("attempt", False),),
            also=f"{_column(connection, 'job')} IN (SELECT id FROM moved)",
        )  # fmt: skip
        parts.append(f"attempt AS ({attempt})")
        params += statements.set_params(connection, ContainerExecution, execution)
        params.append(job.attempt_count)
    handed = "NULL"
    if frees_slot:
        ctes, cte_params, handed = _hand_over_ctes(connection, job.docker_host_id, job.pk, now)
        parts.append(ctes)
        params += cte_params
    counts = ""
    if counted:
        also = "EXISTS (SELECT 1 FROM moved)"
        parts.append(f"counted AS ({count_sql(connection, values['status'], also)})")
        params.append(ArrayCounts._meta.pk.get_db_prep_value(job.array_parent_id, connection))
        counts = ", " + ", ".join(f"(SELECT {c} FROM counted)" for c in _counted_columns())
    sql = f"WITH {', '.join(parts)} SELECT (SELECT {_RETURNING} FROM moved), {handed}{counts}"
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        flag, handed_id, *array = cursor.fetchone()
    if flag is None:
        return None, None, None
    return flag, handed_id, counts_of(job.array_parent_id, array) if counted else None


def _counted_columns() -> list[str]:
    """The counts ``count_sql`` returns, as the ``counted`` CTE's columns."""
    return [f.column for f in ArrayCounts._meta.concrete_fields if not f.primary_key]


def _write_portable(
    connection: Any,
    job: ContainerJob,
    update: tuple[str, list[Any]],
    execution: dict[str, Any] | None,
    frees_slot: bool,
    now: Any,
    counted: str | None,
) -> tuple[bool | None, Any, ArrayCounts | None]:
    """``_write`` as one statement per table, inside the caller's transaction.

    ``counted`` is the final status to add to the job's array's counts, or None.
    """
    with connection.cursor() as cursor:
        cursor.execute(*update)
        row = cursor.fetchone()
    if row is None:
        return None, None, None
    handed = hand_over(connection, job.docker_host_id, job.pk, now) if frees_slot else None
    if execution is not None:
        attempt = statements.update(
            connection, ContainerExecution, tuple(execution), (("job", False), ("attempt", False))
        )
        where = {"job": job.pk, "attempt": job.attempt_count}
        params = statements.params(connection, ContainerExecution, execution, where)
        with connection.cursor() as cursor:
            cursor.execute(attempt, params)
    counts = count_child(job.array_parent_id, counted) if counted else None
    return bool(row[1]), handed, counts


def _column(connection: Any, name: str) -> str:
    """The quoted column of ``ContainerExecution``'s field ``name``."""
    return connection.ops.quote_name(ContainerExecution._meta.get_field(name).column)


def begin_launch(job: ContainerJob, lease_expires_at: Any) -> bool:
    """Move pending -> launching as a new attempt, taking a free slot row of the job's host.

    Returns False when another caller already moved the job. Raises
    ``HostFull`` when the host is inactive or has no free slot, ``ArrayFull`` when the job is
    a child of an array with ``max_parallel`` children already launching or running
    (``array_has_room``, in the same transaction; nothing is changed either way).
    Writes the attempt's ``ContainerExecution`` (``_insert_attempt``). This is one
    statement: on PostgreSQL (``_begin_launch_postgresql``) it locks only the slot row it
    takes, so launches on one host do not wait for each other; on SQLite
    (``_begin_launch_sqlite``) the claim's trigger takes the slot and writes the attempt.
    """
    attempt = job.attempt_count + 1
    now = clock.now()
    connection = connections[ContainerJob.objects.db]
    limited = job.max_parallel is not None and job.array_parent_id is not None
    claim = _begin_launch_postgresql if connection.vendor == "postgresql" else _begin_launch_sqlite
    try:
        with transaction.atomic() if limited else nullcontext():
            claim(connection, job, lease_expires_at, now)
            if limited and not array_has_room(job):
                raise ArrayFull(job.array_parent_id)  # undoes the move, the slot and the attempt
    except _Taken:
        return False
    job.status = job._loaded_status = st.LAUNCHING
    job.attempt_count = attempt
    job.lease_expires_at = lease_expires_at
    job.execution_id = ""
    _announce(job, {"status", "attempt_count", "lease_expires_at", "execution_id"})
    return True


def _begin_launch_sqlite(
    connection: Any, job: ContainerJob, lease_expires_at: Any, now: Any
) -> None:
    """``begin_launch`` in one UPDATE; returns when moved, raises ``HostFull`` or ``_Taken``.

    The job moves only if its host is active and has a free slot; the claim's trigger
    (``models.sqlite_triggers``) then gives it the first free slot and writes
    the attempt's row, in the same statement. One statement needs no BEGIN: SQLite's write
    lock, taken when it starts, serialises the claims. Only when nothing moved, one SELECT
    tells a full host from a job another caller moved first.
    """
    values = {
        "status": st.LAUNCHING, "attempt_count": job.attempt_count + 1,
        "lease_expires_at": lease_expires_at, "execution_id": "", "updated_at": now,
    }  # fmt: skip
    conditions = {"id": job.pk, "status": st.PENDING, "attempt_count": job.attempt_count}
    update = statements.update(
        connection, ContainerJob, tuple(values), statements.shape(conditions),
        also=statements.built(("claim room", connection.vendor), lambda: _room_sql(connection)),
    )  # fmt: skip
    with connection.cursor() as cursor:
        cursor.execute(update, statements.params(connection, ContainerJob, values, conditions))
        if cursor.rowcount == 1:
            return
    if ContainerJob.objects.filter(**conditions).exists():
        raise HostFull(job.docker_host_id)
    raise _Taken(job.pk)


def _room_sql(connection: Any) -> str:
    """Whether the job's host is active and has a free slot: the trigger's rule for a slot."""
    jobs, hosts, slots = _tables(connection)
    return (
        f"EXISTS (SELECT 1 FROM {slots} s JOIN {hosts} h ON h.id = s.host_id "
        f"WHERE s.host_id = {jobs}.docker_host_id AND h.is_active AND s.job_id IS NULL "
        "AND s.number < h.max_concurrent_jobs)"
    )


def _tables(connection: Any) -> tuple[str, str, str]:
    """The quoted tables of jobs, hosts and slots."""
    quote = connection.ops.quote_name
    return tuple(quote(m._meta.db_table) for m in (ContainerJob, ExecutorHost, HostSlot))


def _begin_launch_postgresql(
    connection: Any, job: ContainerJob, lease_expires_at: Any, now: Any
) -> None:
    """``begin_launch`` in one statement; returns when moved, raises ``HostFull`` or ``_Taken``.

    ``slot`` locks the first free slot row of an active host that no other
    transaction holds (``SKIP LOCKED``; the freedom is re-checked on the newest
    row version); the job moves only if a slot was had, the slot is given to
    the job and the attempt's row inserted only if it moved. The host row is
    only read.
    """
    quote = connection.ops.quote_name
    jobs, hosts = quote(ContainerJob._meta.db_table), quote(ExecutorHost._meta.db_table)
    slots = quote(HostSlot._meta.db_table)
    insert, insert_params = _insert_attempt("moved", job.docker_host_id, now)
    sql = f"""
        WITH slot AS (
            SELECT s.id FROM {slots} s JOIN {hosts} h ON h.id = s.host_id
            WHERE s.host_id = %s AND h.is_active AND s.job_id IS NULL
                AND s.number < h.max_concurrent_jobs
            ORDER BY s.number LIMIT 1
            FOR UPDATE OF s SKIP LOCKED
        ),
        moved AS (
            UPDATE {jobs} SET status = %s, attempt_count = attempt_count + 1,
                lease_expires_at = %s, execution_id = '', updated_at = %s
            WHERE id = %s AND status = %s AND attempt_count = %s AND EXISTS (SELECT 1 FROM slot)
            RETURNING id, attempt_count
        ),
        taken AS (
            UPDATE {slots} SET job_id = moved.id FROM moved
            WHERE {slots}.id IN (SELECT slot.id FROM slot)
        ),
        attempt AS ({insert})
        SELECT (SELECT count(*) FROM slot), (SELECT count(*) FROM moved)
    """
    params = (
        job.docker_host_id,
        st.LAUNCHING, lease_expires_at, now, job.pk, st.PENDING, job.attempt_count,
        *insert_params,
    )  # fmt: skip
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        slot, moved = cursor.fetchone()
    if moved:
        return
    if not slot:
        raise HostFull(job.docker_host_id)
    raise _Taken(job.pk)


def _announce(job: ContainerJob, changed: set[str]) -> None:
    """Send ``post_save`` with the written fields once the move is committed.

    Receivers written for Django's signals (``"status" in update_fields``)
    see every status change, though moves are updates, not ``save()`` calls.
    """
    update_fields = frozenset(changed)
    transaction.on_commit(
        lambda: post_save.send(
            sender=ContainerJob,
            instance=job,
            created=False,
            update_fields=update_fields,
            raw=False,
            using=ContainerJob.objects.db,
        )
    )
    signals.announce_move(job, job.status)


def _send_start(job_id: Any) -> None:
    # ``start`` is the launch step under its own name, so a transport can run it before
    # new jobs' launches (the local backend does): the slot it holds is busy from now on.
    dispatch.send_on_commit("start", job_id)


def _waiting(host_id: int, leaving_id: Any, now: Any) -> Any:
    """The jobs that may take the slot ``leaving_id`` frees on ``host_id``, best first.

    Not a child of an array with ``max_parallel``: only its own launch checks the array's room.
    """
    fits = HostSlot.objects.filter(
        job_id=leaving_id, number__lt=OuterRef("docker_host__max_concurrent_jobs")
    )
    return ContainerJob.objects.launchable(now).filter(
        Exists(fits), docker_host_id=host_id, max_parallel__isnull=True
    )


def _full(host_id: int, leaving_id: Any, now: Any) -> Any:
    """``_waiting`` if the host has no other free slot (one subquery), else nothing."""
    return _waiting(host_id, leaving_id, now).filter(~Exists(HostSlot.objects.free(host_id)))


def _hint(host_id: int, leaving_id: Any, now: Any) -> tuple[str, Any]:
    return _full(host_id, leaving_id, now).values("pk")[:1].query.sql_with_params()


def _claim_fields(now: Any) -> dict[str, Any]:
    return {
        "status": st.LAUNCHING,
        "attempt_count": F("attempt_count") + 1,
        "lease_expires_at": now,
        "execution_id": "",
        "updated_at": now,
    }


def hand_over(connection: Any, host_id: int, leaving_id: Any, now: Any) -> Any:
    """Job ``leaving_id`` left its slot on ``host_id``: pass the slot to the next waiting job.

    Run inside the transaction that moved the job out of its slot, on SQLite; on
    PostgreSQL the same rule is part of the move's own statement (``_hand_over_ctes``).
    The next waiting job (due, not cancelled, best priority, oldest) is claimed with
    ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so concurrent hand-overs each
    take a different job; SQLite's write lock serialises them anyway. The
    claimed job moves to ``launching`` as a new attempt with an expired lease
    and the leaving job's slot row becomes its own, so the launch step (sent
    when the transaction commits) takes it over as it would a lapsed launch,
    and so does the sweep if that message is lost.

    Only a full host (no other free slot) of which the slot is still one of
    its ``max_concurrent_jobs`` hands its slot over: with free slots the
    waiting jobs' own launches find room. Otherwise the slot row is freed, or
    deleted if its number is no longer below ``max_concurrent_jobs``. When a
    full host's waiting jobs are all locked by other callers (a launch being
    refused that moment because this slot was still held), the slot is freed
    and the first of them is sent its launch again. Returns the id of the job
    sent its launch (the ``start`` step, sent by ``move``), or None.

    Here, under SQLite's write lock: the slot is freed in one statement if no job waits
    on a full host; else the job is selected, claimed (the claim's trigger writes its
    attempt's row and, the host being full, takes no slot) and passed the slot, or the
    slot freed.
    """
    hint, hint_params = statements.compiled(
        "hand-over hint", connection, _hint, host_id, leaving_id, now
    )

    def build() -> str:
        _, hosts, slots = _tables(connection)
        return (
            f"UPDATE {slots} SET job_id = NULL WHERE job_id = %s AND number < "
            f"(SELECT max_concurrent_jobs FROM {hosts} WHERE id = %s) AND NOT EXISTS ({hint})"
        )

    leaving = ContainerJob._meta.pk.get_db_prep_value(leaving_id, connection)
    with connection.cursor() as cursor:
        cursor.execute(
            statements.built(("free slot", connection.vendor), build),
            [leaving, host_id, *hint_params],
        )
        if cursor.rowcount == 1:
            return None
    room = Exists(HostSlot.objects.free(OuterRef("docker_host_id")))
    first = _waiting(host_id, leaving_id, now).annotate(room=room)
    job_id = None
    for job_id, attempt, free_elsewhere in first.values_list("pk", "attempt_count", "room")[:1]:
        if free_elsewhere:
            job_id = None  # its own launch finds the free slot
            break
        claimed = ContainerJob.objects.filter(
            pk=job_id, status=st.PENDING, attempt_count=attempt
        ).update(**_claim_fields(now))
        if claimed:  # its trigger wrote its attempt's row and, the host being full, no slot
            HostSlot.objects.filter(job_id=leaving_id).update(job_id=job_id)
            return job_id
        job_id = None
    held = HostSlot.objects.filter(job_id=leaving_id)
    for number, cap in held.values_list("number", "host__max_concurrent_jobs"):
        if number < cap:
            held.update(job_id=None)
        else:
            held.delete()
    return job_id


def _hand_over_ctes(
    connection: Any, host_id: int, leaving_id: Any, now: Any
) -> tuple[str, list[Any], str]:
    """``hand_over`` as CTEs of the move's statement, each acting only if ``moved`` did.

    ``picked`` (``hint`` with ``FOR UPDATE SKIP LOCKED``: the ORM's query with the
    portable path's filter, compiled once) locks a job only when the host is full.
    ``passed``, ``freed`` and ``dropped`` are exclusive: the slot row is written once.
    ``hint`` is the first waiting job of a full host, unlocked, sent its launch when
    nothing was claimed. Whether the host is full is one subquery, evaluated once: a
    host with free slots reads no waiting job. Returns the CTEs, their parameters and
    the SQL of the id of the job claimed or hinted.
    """
    hint, hint_params = statements.compiled(
        "hand-over hint", connection, _hint, host_id, leaving_id, now
    )
    insert, insert_params = _insert_attempt("claimed", host_id, now)

    def build() -> str:
        quote = connection.ops.quote_name
        jobs, hosts = quote(ContainerJob._meta.db_table), quote(ExecutorHost._meta.db_table)
        slots = quote(HostSlot._meta.db_table)
        # The ORM names the selected column "pk": qualified, or "id" would be the outer table's.
        return f"""
            picked AS ({hint} FOR UPDATE OF {jobs} SKIP LOCKED),
            claimed AS (
                UPDATE {jobs} SET status = %s, attempt_count = attempt_count + 1,
                    lease_expires_at = %s, execution_id = '', updated_at = %s
                WHERE id IN (SELECT picked.pk FROM picked) AND status = %s
                    AND EXISTS (SELECT 1 FROM moved)
                RETURNING id, attempt_count
            ),
            passed AS (
                UPDATE {slots} SET job_id = claimed.id FROM claimed WHERE {slots}.job_id = %s
            ),
            host_cap AS (SELECT max_concurrent_jobs FROM {hosts} WHERE id = %s),
            freed AS (
                UPDATE {slots} SET job_id = NULL
                WHERE job_id = %s AND number < (SELECT max_concurrent_jobs FROM host_cap)
                    AND NOT EXISTS (SELECT 1 FROM claimed) AND EXISTS (SELECT 1 FROM moved)
                RETURNING id
            ),
            dropped AS (
                DELETE FROM {slots}
                WHERE job_id = %s AND number >= (SELECT max_concurrent_jobs FROM host_cap)
                    AND NOT EXISTS (SELECT 1 FROM claimed) AND EXISTS (SELECT 1 FROM moved)
                RETURNING id
            ),
            attempt_row AS ({insert}),
            hint AS ({hint})
        """

    params = [
        *hint_params, st.LAUNCHING, now, now, st.PENDING, leaving_id, host_id, leaving_id,
        leaving_id, *insert_params, *hint_params,
    ]  # fmt: skip
    sql = statements.built(("hand-over", connection.vendor), build)
    return sql, params, "COALESCE((SELECT id FROM claimed), (SELECT hint.pk FROM hint))"


def _insert_attempt(source: str, host_id: int, now: Any) -> tuple[str, list[Any]]:
    """The attempt's ``ContainerExecution``, written fresh for each row of the CTE ``source``.

    The one rule for attempt rows, on every path that claims an attempt (``begin_launch``,
    the hand-over): the claim of attempt N inserts its row, or, if
    attempt N already has one, overwrites every column of it (``ON CONFLICT DO UPDATE``).
    A row is already there when the attempt did not start a container and the job went
    back to pending under the same number (``steps._host_unreachable``), so a later claim
    of it never collides. ``source`` returns the job's ``id`` and its new
    ``attempt_count``; every other column gets the model field's default, so the
    statement follows the model. On SQLite the claim's trigger writes the same row
    (``models.sqlite_triggers.attempt_row``, made from the model too).
    """
    connection = connections[ContainerExecution.objects.db]
    column = {f.name: connection.ops.quote_name(f.column) for f in ContainerExecution._meta.fields}
    own = {"job": f"{source}.id", "attempt": f"{source}.attempt_count"}
    given = {"host": host_id, "started_at": now, "status": st.LAUNCHING}
    columns, values, params = [], [], []
    for field in ContainerExecution._meta.concrete_fields:
        if field.primary_key:
            continue
        columns.append(column[field.name])
        if field.name in own:
            values.append(own[field.name])
            continue
        value = given[field.name] if field.name in given else field.get_default()
        values.append("%s")
        params.append(field.get_db_prep_save(value, connection))
    table = connection.ops.quote_name(ContainerExecution._meta.db_table)
    key = (column["job"], column["attempt"])
    fresh = ", ".join(f"{name} = EXCLUDED.{name}" for name in columns if name not in key)
    # SQLite reads ON CONFLICT after a bare SELECT ... FROM as a join: the WHERE settles it.
    sql = (
        f"INSERT INTO {table} ({', '.join(columns)}) "
        f"SELECT {', '.join(values)} FROM {source} WHERE TRUE "
        f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {fresh}"
    )
    return sql, params


def job_moved(job: ContainerJob, new: str) -> None:
    """Carry a move over to the array and the dependents; runs inside the move's transaction.

    A child's first run marks its parent running (a child's final move is counted by the
    move's own writes, ``_write``, and ends the array after them). A final move sends
    ``launch`` to the dependents that became ready or doomed, after the commit (so
    two dependencies finishing at once cannot both miss the other's move), if the
    row says any job waits for this one (``has_dependents``, which ``move`` re-reads).
    """
    if job.array_parent_id is not None and new == st.RUNNING:
        _parent_running(job.array_parent_id)
    if new in st.TERMINAL and job.has_dependents:
        transaction.on_commit(lambda: release_dependents(job.pk, new))


def release_dependents(job_id: Any, status: str) -> int:
    """Send ``launch`` to the pending jobs waiting for ``job_id`` that it made ready or doomed.

    Ready: this job's edge fired on ``status`` and no other edge is left to fire. Doomed: its
    edge cannot fire on ``status`` (``rules.status.edge_fires``). One SELECT; returns how many
    were sent. The launch step decides from the rows: start, wait, or skip (cancel).
    """
    dead = [c for c in st.EDGE_CONDITIONS if st.edge_fires(c, status) is False]
    ready = ~Exists(unfinished_dependencies())
    waiting = ContainerJob.objects.filter(
        Q(dependency_links__depends_on_id=job_id)
        & (Q(dependency_links__condition__in=dead) | ready if dead else ready),
        status=st.PENDING,
    )
    return send_launches(waiting)


def send_launches(queryset: Any) -> int:
    """Send ``launch`` (on commit) to every job of ``queryset``; returns how many."""
    ids = list(queryset.values_list("pk", flat=True))
    dispatch.send_many_on_commit([("launch", pk, 0) for pk in ids])
    return len(ids)


#: Array parents this process saw leave ``pending`` (committed): a parent never goes back,
#: so the later children's starts read no parent row. Forgotten past ``_STARTED_MAX``.
_started_parents: set[Any] = set()
_STARTED_MAX = 10_000


def _moves_array(job: ContainerJob, new: str) -> bool:
    """Whether a child's move to ``new`` also writes its parent's row (``job_moved``).

    A move to running starts the parent, unless this process has seen the parent started
    (``_started_parents``). A final move's count is part of its own statement (``_write``).
    """
    return (
        job.array_parent_id is not None
        and new == st.RUNNING
        and job.array_parent_id not in _started_parents
    )


def _parent_running(parent_id: Any) -> None:
    if parent_id in _started_parents:
        return
    parent = ContainerJob.objects.filter(pk=parent_id, status=st.PENDING).first()
    if parent is not None:
        move(parent, st.PENDING, st.RUNNING, started_at=timezone.now())
    transaction.on_commit(lambda: _remember_started(parent_id))


def _remember_started(parent_id: Any) -> None:
    if len(_started_parents) >= _STARTED_MAX:
        _started_parents.clear()
    _started_parents.add(parent_id)


def end_array(parent: ContainerJob) -> str:
    """The ``check`` step of an array parent: end it if its counts say its children did.

    What the last child's final move does right after its commit (``_end_array``), read
    from the counts row instead: the sweep sends it for a live parent whose counts are
    complete, in case that child's step was lost after the commit.
    """
    counts = ArrayCounts.objects.filter(pk=parent.pk).first()
    if counts is None or parent.status in st.TERMINAL:
        return "nothing-to-do"
    return "array-ended" if _end_array(parent.pk, parent, counts) else "array-live"


def _end_array(parent_id: Any, member: ContainerJob, counts: ArrayCounts) -> bool:
    """Move the array ``parent_id`` to its final status if ``counts`` say it has ended.

    Ended: every child counted, or more failed than ``tolerated_failures`` allow
    (``member``, the parent or a child, carries the array's size and limit). Run after the
    child's counted move, not in it: the counts row stays locked only for the count. Only
    the move whose count completed the sum sees it complete; a duplicate (the sweep's
    ``end_array``) loses the parent's compare-and-set. Returns whether it moved the parent.
    """
    allowed = array_limits.allowed_failures(member.tolerated_failures, member.array_size)
    failures = counts.failed + counts.timeout
    too_many = allowed is not None and failures > allowed
    if counts.finished < member.array_size and not too_many:
        return False
    parent = ContainerJob.objects.get(pk=parent_id)
    if parent.status in st.TERMINAL:
        return False
    summary = (
        f"{counts.completed} completed, {counts.failed} failed, "
        f"{counts.timeout} timed out, {counts.cancelled} cancelled"
    )
    if allowed is not None:
        summary += f"; {failures} of {member.array_size} failed or timed out, "
        summary += f"tolerated_failures {member.tolerated_failures} allows {allowed}"
    final, now = final_status(counts, allowed), timezone.now()
    if counts.finished < member.array_size:
        return _fail_early(parent, summary, now)
    return move(
        parent, parent.status, final, completed_at=now,
        last_error=f"array children: {summary}" if final != st.COMPLETED or failures else "",
    )  # fmt: skip


def _fail_early(parent: ContainerJob, summary: str, now: Any) -> bool:
    """More children failed than the array tolerates: it fails now, and the rest are cancelled.

    The parent's move records a cancel request on it; its ``cancel`` step (sent on commit,
    re-sent by the sweep if lost) asks the live children to cancel in a transaction of its
    own: updating the siblings' rows here, after a child's final move and perhaps inside a
    caller's transaction, could deadlock with their own final moves.
    """
    moved = move(
        parent, parent.status, st.FAILED, completed_at=now, cancel_requested_at=now,
        last_error=f"array children: {summary} (failed before all ended; the rest cancelled)",
    )  # fmt: skip
    if moved:
        dispatch.send_on_commit("cancel", parent.pk)
    return moved


def _next_in_array(child: ContainerJob) -> None:
    """A child of an array with ``max_parallel`` left its slot: send launch to the next one.

    The first due pending child by index that has no cancel request. Its launch checks the array's
    room; if this message is lost, the sweep finds the child from the rows.
    """
    due = Q(run_after__isnull=True) | Q(run_after__lte=clock.now())
    siblings = ContainerJob.objects.filter(
        due, array_parent_id=child.array_parent_id, status=st.PENDING, cancel_requested_at=None
    )
    send_launches(siblings.order_by("array_index")[:1])
