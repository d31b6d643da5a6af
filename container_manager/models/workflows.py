"""Workflow rows and what a submit writes of them: dependency edges, an array's counts and children.

What happens when jobs move (release, counts, the parent's end) is the engine's.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.db import connections, models
from django.db.models import F, Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from container_manager.conf import setting
from container_manager.models.owners import owned_by
from container_manager.rules import array_edges
from container_manager.rules import status as st


class JobDependency(models.Model):
    """
    An edge of a workflow: ``job`` launches only once ``depends_on`` has ended as its
    ``condition`` asks (``rules.status.edge_fires``): completed (``success``, the default),
    failed or timed out (``failure``), or in any final status (``always``).

    Written by ``create_job(depends_on=...)`` through ``container_manager.engine.workflows``,
    which refuses unknown jobs, jobs the submitter may not view, and cycles. When
    ``depends_on`` ends in a status on which the edge cannot fire, ``job`` ends ``skipped``
    (a workflow node) or ``cancelled`` (a job outside a workflow). Deleting either job
    deletes the edge.
    """

    job = models.ForeignKey(
        "ContainerJob",
        on_delete=models.CASCADE,
        related_name="dependency_links",
        help_text="The job that waits.",
    )
    depends_on = models.ForeignKey(
        "ContainerJob",
        on_delete=models.CASCADE,
        related_name="dependent_links",
        help_text="The job it waits for.",
    )
    condition = models.CharField(
        max_length=7,
        choices=[(c, c) for c in st.EDGE_CONDITIONS],
        default=st.SUCCESS,
        help_text="On which end of the job it waits for the edge fires: success, failure "
        "(failed or timed out) or always.",
    )

    class Meta:
        verbose_name = "job dependency"
        verbose_name_plural = "job dependencies"
        constraints = [
            models.UniqueConstraint(fields=["job", "depends_on"], name="cjobdep_unique"),
            models.CheckConstraint(condition=~Q(job=F("depends_on")), name="cjobdep_not_self"),
        ]
        indexes = [
            models.Index(fields=["depends_on", "job"], name="cjobdep_reverse_idx"),
            # The sweep's doomed jobs (``engine.workflows.doomed``) read the few edges that
            # have a condition from here, not every edge of every completed job.
            models.Index(
                fields=["depends_on", "job"],
                condition=~Q(condition="success"),
                name="cjobdep_conditional_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.job_id} after {self.depends_on_id}"


class ArrayCounts(models.Model):
    """
    How many children of an array job have ended, by final status.

    Incremented by each child's final move, in that move's statement (PostgreSQL) or
    transaction (SQLite), so the count is exact under concurrent finishes; the child whose
    move makes the sum equal the array's size then moves the parent to its final status
    (and the sweep does, from this row, if that child's step was lost).
    """

    parent = models.OneToOneField(
        "ContainerJob",
        primary_key=True,
        on_delete=models.CASCADE,
        related_name="array_counts",
        help_text="The array job.",
    )
    completed = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    timeout = models.PositiveIntegerField(default=0)
    cancelled = models.PositiveIntegerField(default=0)

    class Meta:
        verbose_name = "array counts"
        verbose_name_plural = "array counts"

    def __str__(self) -> str:
        return f"{self.parent_id}: {self.finished} ended"

    @property
    def finished(self) -> int:
        """Children that have ended, whatever their status."""
        return self.completed + self.failed + self.timeout + self.cancelled


#: Hard upper bound of ``array_size``, whatever ``ARRAY_MAX_SIZE`` says.
ARRAY_LIMIT = 10_000
#: How many missing dependency ids an error names; the rest are counted.
NAMED_IDS = 3
#: The final statuses an array counts, each a column of ``ArrayCounts``.
_COUNTED = tuple(str(status) for status in (st.COMPLETED, st.FAILED, st.TIMEOUT, st.CANCELLED))
#: The columns ``insert_children`` reads of an earlier array's children to re-run them.
_RERUN_COLUMNS = ("array_index", "array_parent", "status")


def fired_edges() -> Q:
    """Edges (rows of ``JobDependency``) whose dependency ended as their condition asks."""
    return _edges_where(lambda condition: st.FIRES_ON[condition])


def dead_edges() -> Q:
    """Edges whose dependency ended in a status on which they never fire: their job is doomed."""
    return _edges_where(lambda condition: st.TERMINAL - st.FIRES_ON[condition])


def resolve_dependencies(
    depends_on: Iterable[Any] | None, viewer: Any = None
) -> list[tuple[models.Model, str]]:
    """The jobs ``depends_on`` names that ``viewer`` may see, each once, with its edge's condition.

    Each item is a job or an id (the edge fires on ``success``), or a pair ``(job or id,
    condition)`` with a condition of ``rules.status.EDGE_CONDITIONS``; a job named twice keeps
    its last condition.

    ``viewer`` is the submitter (``models.owners``; None: trusted code sees every job). A job
    the viewer may not see is refused exactly like an unknown id (one SELECT of the jobs,
    filtered by visibility), so the answer never tells that it exists. The message names
    the first ``NAMED_IDS`` missing ids and counts the rest.

    >>> resolve_dependencies(None)
    []
    >>> resolve_dependencies(["not-an-id"])
    Traceback (most recent call last):
    ...
    django.core.exceptions.ValidationError: {'depends_on': [...'not-an-id' is not a job id."]}
    """
    if depends_on is None:
        return []
    if isinstance(depends_on, str | bytes | _jobs()) or not isinstance(depends_on, Iterable):
        raise ValidationError({"depends_on": "depends_on: must be a list of jobs or job ids."})
    wanted: dict[uuid.UUID, str] = {}
    for item in depends_on:
        item, condition = _edge(item)
        wanted[_job_id(item)] = condition
    if not wanted:
        return []
    visible = owned_by(_jobs().objects.filter(pk__in=list(wanted)), viewer)
    found = {job.pk: job for job in visible}
    missing = [str(pk) for pk in wanted if pk not in found]
    if missing:
        raise ValidationError({"depends_on": f"depends_on: no job {_some(missing)}."})
    return [(found[pk], condition) for pk, condition in wanted.items()]


def check_array_size(array_size: Any) -> int | None:
    """``array_size`` if it is an allowed size (2 … ``ARRAY_MAX_SIZE``), None if not given.

    >>> check_array_size(None), check_array_size(3)
    (None, 3)
    >>> check_array_size(1)
    Traceback (most recent call last):
    ...
    django.core.exceptions.ValidationError: {'array_size': [...from 2 to 10000.']}
    """
    if array_size is None:
        return None
    high = min(setting("ARRAY_MAX_SIZE"), ARRAY_LIMIT)
    if not isinstance(array_size, int) or isinstance(array_size, bool):
        raise ValidationError({"array_size": f"array_size: must be an integer from 2 to {high}."})
    if not 2 <= array_size <= high:
        raise ValidationError({"array_size": f"array_size: must be an integer from 2 to {high}."})
    return array_size


def submitted(
    job: models.Model,
    depends_on: list[tuple[models.Model, str]],
    per_child: list[tuple[models.Model, str]] = (),
    order: str | None = None,
) -> None:
    """Write a new job's dependency edges and, for an array, its counts and children.

    Runs in ``create_job``'s transaction, after the job's row is saved. A job whose
    dependency already failed is cancelled by its first launch, an array parent's
    children by their own. The children are one ``INSERT … SELECT`` whatever the size
    (``insert_children``): no message is sent for them here, the parent's launch starts them.
    ``per_child`` are the arrays it waits for ``n_to_n`` (``link_children``), and a
    ``sequential`` ``order`` chains its children (``chain_children``).
    """
    link(job, depends_on, check_cycles=False)
    if job.is_array_parent:
        ArrayCounts.objects.create(parent=job)
        sequential = order == array_edges.SEQUENTIAL
        insert_children(job, chained=sequential)
        for dependency, condition in per_child:
            link_children(job.pk, dependency.pk, condition)
        if sequential:
            chain_children(job.pk)


def split_types(depends_on: Any) -> tuple[Any, list[tuple[Any, str]]]:
    """``depends_on`` without its ``n_to_n`` items, and those items as pairs (job or id, condition).

    An item may be an object ``{"job": <job or id>, "on": <condition>, "type": "n_to_n"}``
    (``on`` and ``type`` optional); one without ``type`` is the pair ``(job, on)``. Anything
    else is left for ``resolve_dependencies`` to judge.

    >>> split_types(["a", {"job": "b", "type": "n_to_n"}, {"job": "c", "on": "always"}])
    (['a', ('c', 'always')], [('b', 'success')])
    """
    if not isinstance(depends_on, list | tuple):
        return depends_on, []
    plain, per_child = [], []
    for number, item in enumerate(depends_on, 1):
        if not isinstance(item, dict):
            plain.append(item)
            continue
        problem = array_edges.typed_item_error(item)
        if problem:
            raise ValidationError({"depends_on": f"depends_on: item {number}: {problem}"})
        pair = (item["job"], item.get("on", st.SUCCESS))
        (per_child if "type" in item else plain).append(pair)
    return plain, per_child


def resolve_n_to_n(
    items: list[tuple[Any, str]], viewer: Any, array_size: int | None
) -> list[tuple[models.Model, str]]:
    """The arrays an array of ``array_size`` waits for ``n_to_n``: each an array of its size.

    As ``resolve_dependencies`` (no query without items); a job that is not an array parent,
    an array of another size, or a job that is no array itself is a ValidationError on
    ``depends_on``.
    """
    if not items:
        return []
    found = resolve_dependencies(items, viewer)
    for dependency, _ in found:
        size = dependency.array_size if dependency.is_array_parent else None
        problem = array_edges.n_to_n_error(array_size, size, f"job {dependency.pk}")
        if problem:
            raise ValidationError({"depends_on": f"depends_on: {problem}"})
    return found


def check_array_order(order: Any, array_size: int | None) -> str | None:
    """``order`` if an array of ``array_size`` may have it (``rules.array_edges``); None: unset."""
    problem = array_edges.array_order_error(order, array_size)
    if problem:
        raise ValidationError({"array_order": f"array_order: {problem}"})
    return order


def link_children(job_id: Any, dependency_id: Any, condition: str) -> int:
    """Make child ``i`` of array ``job_id`` wait for child ``i`` of array ``dependency_id``.

    The edges are ordinary child-to-child ``JobDependency`` rows, so the release, the skip
    and the sweep treat them as any edge; the parent ``job_id`` gets no edge, so it starts
    its children at once and each waits only for its own. Two statements whatever the size:
    one ``INSERT … SELECT`` pairing the children by index, one UPDATE flagging the waited-for
    children (as ``write_edges``). Returns how many edges were written.

    The pairs come from one scan of both arrays' children, each index's child of
    ``dependency_id`` sorted before ``job_id``'s and taken with ``lag``: a join on the index
    would be planned as a nested loop over the two arrays (the planner cannot know that
    rows just inserted are thousands), which took 10 s for two arrays of 10,000.
    """
    written = _insert_child_edges(
        "SELECT s.id, s.dep, %s FROM (SELECT {id} AS id, {parent} AS parent, lag({id}) OVER "
        "(PARTITION BY {index} ORDER BY CASE WHEN {parent} = %s THEN 1 ELSE 0 END) AS dep "
        "FROM {jobs} WHERE {parent} IN (%s, %s)) s WHERE s.parent = %s AND s.dep IS NOT NULL",
        [condition, job_id, job_id, dependency_id, job_id],
    )
    _flag(_jobs().objects.filter(array_parent_id=dependency_id))
    return written


def chain_children(parent_id: Any) -> int:
    """Make each child ``i > 0`` of array ``parent_id`` wait for child ``i - 1``.

    The edges fire on ``success``: a child that does not complete cancels the rest. The
    children were inserted flagged as waited for (``insert_children(..., chained=True)``).

    The ``sequential`` order: one ``INSERT … SELECT`` whatever the size, each child paired
    with the one before it by ``lag`` (see ``link_children``). Returns how many edges were
    written.
    """
    written = _insert_child_edges(
        "SELECT s.id, s.dep, %s FROM (SELECT {id} AS id, lag({id}) OVER (ORDER BY {index}) "
        "AS dep FROM {jobs} WHERE {parent} = %s) s WHERE s.dep IS NOT NULL",
        [st.SUCCESS, parent_id],
    )
    return written


def copy_child_edges(reruns: dict[Any, Any]) -> None:
    """Give the re-run children of each new array the edges of the child of the same index.

    ``reruns`` maps an old array's id to its retry's. A dependency that is a child of one of
    those old arrays and is re-run too is replaced by its re-run (the same index under the
    retry), so a ``sequential`` chain and an ``n_to_n`` edge join the new children. One
    ``INSERT … SELECT`` per array and one UPDATE, whatever the sizes.
    """
    if not reruns:
        return
    connection = connections[JobDependency.objects.db]
    key = _jobs()._meta.pk
    case = " ".join("WHEN %s THEN %s" for _ in reruns)
    mapping = [key.get_db_prep_value(id_, connection) for pair in reruns.items() for id_ in pair]
    for old, new in reruns.items():
        # Each new child with the old child of its index: ``lag`` as in ``link_children``.
        _insert_child_edges(
            "SELECT p.id, COALESCE(r.{id}, x.{id}), e.{condition} FROM (SELECT {id} AS id, "
            "{parent} AS parent, lag({id}) OVER (PARTITION BY {index} ORDER BY CASE WHEN "
            "{parent} = %s THEN 1 ELSE 0 END) AS old FROM {jobs} WHERE {parent} IN (%s, %s)) p "
            "INNER JOIN {edges} e ON e.{job} = p.old "
            "INNER JOIN {jobs} x ON x.{id} = e.{depends_on} "
            f"LEFT JOIN {{jobs}} r ON r.{{index}} = x.{{index}} AND r.{{parent}} = "
            f"CASE x.{{parent}} {case} ELSE NULL END WHERE p.parent = %s AND p.old IS NOT NULL",
            [new, old, new, *mapping, new],
        )
    waited = JobDependency.objects.filter(job__array_parent_id__in=list(reruns.values()))
    _flag(_jobs().objects.filter(pk__in=waited.values("depends_on_id")))


def insert_children(parent: models.Model, rerun_of: Any = None, chained: bool = False) -> int:
    """Insert the ``array_size`` children of a saved array parent in one statement; return how many.

    Each child copies the parent's request fields from its row (``run_after`` too), is named
    ``<name or image>[<index>]``, and has every system field at its default, as a new job
    has. Child ``i`` is created ``i`` microseconds after the first, so ``LAUNCH_ORDER``
    starts them by index. The indexes come from ``generate_series`` on PostgreSQL and from a
    recursive CTE elsewhere, so the statement and its parameters do not grow with the size.

    With ``rerun_of`` (the id of an earlier array of the same size, a retry's original) only
    the indexes of its children that did not complete are inserted, read in the same statement.
    ``chained`` (a ``sequential`` array, ``chain_children``) flags every child but the last as
    waited for (``has_dependents``) as it is inserted, which spares an UPDATE of every child.
    """
    jobs = type(parent)
    connection = connections[jobs.objects.db]
    quote = connection.ops.quote_name
    postgresql = connection.vendor == "postgresql"
    now = timezone.now()
    columns, values, params = [], [], []
    for field in jobs._meta.concrete_fields:
        if chained and field.name == "has_dependents":
            expression, field_params = "(g.i < %s)", [parent.array_size - 1]
        else:
            expression, field_params = _child_value(field, parent, connection, now, postgresql)
        columns.append(quote(field.column))
        values.append(expression)
        params.extend(field_params)
    table = quote(jobs._meta.db_table)
    key = jobs._meta.pk.get_db_prep_value(parent.pk, connection)
    indexes, source_params = _indexes(parent, rerun_of, connection)
    if postgresql:
        prefix, source = "", f"{indexes} AS g(i)"
        params = [*params, *source_params]
    else:
        # Each index with 16 random bytes, from which its child's id is made.
        prefix = f"WITH RECURSIVE n(i) AS ({indexes}), g(i, h) AS "
        prefix += "(SELECT i, lower(hex(randomblob(16))) FROM n) "
        source, params = "g", [*source_params, *params]
    sql = (
        f"{prefix}INSERT INTO {table} ({', '.join(columns)}) SELECT {', '.join(values)} "
        f"FROM {table} p CROSS JOIN {source} WHERE p.{quote(jobs._meta.pk.column)} = %s"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, key])
        return cursor.rowcount


def link(job: models.Model, depends_on: list[tuple[models.Model, str]], check_cycles: bool) -> None:
    """Write the edges that make ``job`` wait for ``depends_on`` (jobs with their conditions).

    A cycle is a ValidationError. A dependency that already ended where its edge cannot fire
    dooms ``job``: its launch step skips or cancels it.
    """
    if not depends_on:
        return
    ids = {dep.pk for dep, _ in depends_on}
    if job.pk in ids or (check_cycles and _reaches(ids, job.pk)):
        raise ValidationError(
            {"depends_on": f"depends_on: job {job.pk} would wait for itself (a cycle)."}
        )
    write_edges([(job.pk, dep.pk, condition) for dep, condition in depends_on])


def write_edges(edges: list[tuple[Any, ...]]) -> None:
    """Write the edges ``(job id, depends_on id[, condition])``; flag each dependency as waited for.

    An edge without a condition fires on ``success``. Two statements whatever the number of
    edges (SQLite splits a long INSERT by its parameter limit); nothing is checked: the
    caller knows the jobs exist, the conditions are valid and there is no cycle.
    """
    if not edges:
        return
    JobDependency.objects.bulk_create(
        [
            JobDependency(job_id=job, depends_on_id=dep, condition=rest[0] if rest else st.SUCCESS)
            for job, dep, *rest in edges
        ],
        ignore_conflicts=True,
    )
    # On the dependencies' rows, so a final move in flight and this transaction serialise:
    # either the move sees the flag (``transitions.move``) or this job's launch sees it ended.
    targets = {dep for _, dep, *_ in edges}
    _jobs().objects.filter(pk__in=targets, has_dependents=False).update(has_dependents=True)


def count_sql(connection: Any, status: str, also: str = "") -> str:
    """``UPDATE … RETURNING`` adding one to the ``status`` count of the array ``%s``.

    Returns the four counts after the increment (``_COUNTED`` order). The increment and the
    read are one statement under the row lock it takes, so of concurrent final moves exactly
    one sees the sum complete. ``also`` is one more condition in SQL (the final move's
    ``EXISTS (SELECT 1 FROM moved)`` when it is a CTE of that move).
    """
    if str(status) not in _COUNTED:
        raise ValueError(f"status: an array counts {', '.join(_COUNTED)}, not {status!r}")
    quote = connection.ops.quote_name
    column = quote(str(status))
    table, pk = quote(ArrayCounts._meta.db_table), quote(ArrayCounts._meta.pk.column)
    condition = f"{pk} = %s AND {also}" if also else f"{pk} = %s"
    return (
        f"UPDATE {table} SET {column} = {column} + 1 WHERE {condition} "
        f"RETURNING {', '.join(quote(name) for name in _COUNTED)}"
    )


def counts_of(parent_id: Any, values: Any) -> ArrayCounts:
    """The counts of array ``parent_id`` from a row of ``count_sql``'s ``RETURNING``."""
    if values is None or values[0] is None:
        raise ArrayCounts.DoesNotExist(f"array {parent_id} has no counts row")
    return ArrayCounts(parent_id=parent_id, **dict(zip(_COUNTED, values, strict=True)))


def count_child(parent_id: Any, status: str) -> ArrayCounts:
    """Add one to the ``status`` count of the array ``parent_id``; the counts after it.

    ``count_sql`` on its own: the portable path, in the child's final move's transaction
    (PostgreSQL runs the same statement as a CTE of the move, ``transitions._write``).
    """
    connection = connections[ArrayCounts.objects.db]
    key = ArrayCounts._meta.pk.get_db_prep_value(parent_id, connection)
    with connection.cursor() as cursor:
        cursor.execute(count_sql(connection, status), [key])
        values = cursor.fetchone()
    return counts_of(parent_id, values)


def final_status(counts: ArrayCounts, allowed: int | None = None) -> str:
    """The parent's status once every child ended: completed, failed or cancelled.

    ``allowed`` is how many children may fail or time out (``rules.array_limits``; None: none
    may). Within it, the failures do not fail the parent.

    >>> cases = [{"completed": 3}, {"completed": 2, "timeout": 1}, {"completed": 1, "cancelled": 2}]
    >>> [str(final_status(ArrayCounts(**counts))) for counts in cases]
    ['completed', 'failed', 'cancelled']
    >>> str(final_status(ArrayCounts(completed=2, failed=1), allowed=1))
    'completed'
    """
    if counts.finished == counts.completed:
        return st.COMPLETED
    failures = counts.failed + counts.timeout
    if failures and (allowed is None or failures > allowed):
        return st.FAILED
    return st.CANCELLED if counts.cancelled else st.COMPLETED


def array_has_room(child: models.Model) -> bool:
    """Whether the array of ``child``, just moved to launching, has at most ``max_parallel`` so.

    Run in the launch's transaction after the child's move: locks the array's counts row
    (``SELECT … FOR UPDATE``; SQLite's write lock is already held) and then counts the
    children launching or running in a statement of its own, whose snapshot is taken after
    the lock: the launches of one array are serialised, each sees the ones before it
    committed. Every final move locks the counts row after its child's row, as this does,
    so the two cannot deadlock. Children leave the count by their own moves: nothing is
    given back, and nothing can drift.
    """
    parent = child.array_parent_id
    list(ArrayCounts.objects.select_for_update().filter(pk=parent).values_list("pk"))
    busy = _jobs().objects.filter(array_parent_id=parent, status__in=sorted(st.HOLDS_SLOT))
    return busy.count() <= child.max_parallel


def _edges_where(statuses: Any) -> Q:
    """Edges whose dependency is in ``statuses(condition)`` of their condition: a fixed OR."""
    q = Q()
    for condition in st.EDGE_CONDITIONS:
        wanted = sorted(str(status) for status in statuses(condition))
        q |= Q(condition=condition, depends_on__status__in=wanted)
    return q


def _jobs() -> type[models.Model]:
    """``ContainerJob``, which this module's rows point at (imported above it, not here)."""
    return JobDependency._meta.get_field("job").related_model


def _edge(item: Any) -> tuple[Any, str]:
    """A ``depends_on`` item as (job or id, condition): a bare job or id fires on success.

    >>> _edge(("x", "always")), _edge("x"), _edge({"job": "x", "on": "failure"})
    (('x', 'always'), ('x', 'success'), ('x', 'failure'))
    """
    if isinstance(item, dict):
        problem = array_edges.typed_item_error(item)
        if problem is None and "type" in item:
            problem = "an n_to_n edge is written with its array (create_job), not added later."
        if problem:
            raise ValidationError({"depends_on": f"depends_on: {problem}"})
        return item["job"], item.get("on", st.SUCCESS)
    if not isinstance(item, tuple):
        return item, st.SUCCESS
    if len(item) != 2 or item[1] not in st.EDGE_CONDITIONS:
        raise ValidationError(
            {
                "depends_on": "depends_on: a pair must be (job or id, condition), the condition "
                f"one of {', '.join(st.EDGE_CONDITIONS)}."
            }
        )
    return item


def _job_id(item: Any) -> uuid.UUID:
    if isinstance(item, _jobs()):
        if item._state.adding:
            raise ValidationError({"depends_on": "depends_on: a job must be saved first."})
        return item.pk
    try:
        return item if isinstance(item, uuid.UUID) else uuid.UUID(str(item))
    except ValueError:
        raise ValidationError({"depends_on": f"depends_on: {item!r} is not a job id."}) from None


def _some(ids: list[str]) -> str:
    """The first ``NAMED_IDS`` of ``ids``, and how many more: an answer of bounded size.

    >>> _some(["a", "b"]), _some(["a", "b", "c", "d", "e"])
    ('a, b', 'a, b, c and 2 more')
    """
    named = ", ".join(ids[:NAMED_IDS])
    return f"{named} and {len(ids) - NAMED_IDS} more" if len(ids) > NAMED_IDS else named


def _reaches(start: set[uuid.UUID], target: uuid.UUID) -> bool:
    """True when ``target`` is upstream of ``start``: two queries per level of the graph.

    An array child waits for what its parent waits for, so a child leads to its parent; an
    array waits for what its children wait for (``n_to_n``), so it leads to their
    dependencies' arrays, each array once however many children.
    """
    seen, frontier = set(start), set(start)
    while frontier:
        parents = _jobs().objects.filter(pk__in=frontier, array_parent__isnull=False)
        frontier |= set(parents.values_list("array_parent_id", flat=True))
        edges = JobDependency.objects.filter(
            Q(job_id__in=frontier) | Q(job__array_parent_id__in=frontier)
        ).annotate(array=Coalesce("depends_on__array_parent_id", "depends_on_id"))
        rows = list(edges.values_list("depends_on_id", "array"))
        if target in frontier or any(target in row for row in rows):
            return True
        upstream = {array for _, array in rows}
        seen |= frontier
        frontier = upstream - seen
    return False


def _child_value(
    field: models.Field, parent: models.Model, connection: Any, now: datetime, postgresql: bool
) -> tuple[str, list[Any]]:
    """The SQL of ``field`` for child ``g.i`` of ``parent`` (row ``p``), and its parameters."""
    name = field.name
    if name == "id":
        if postgresql:
            return "gen_random_uuid()", []
        # A version 4 UUID from the row's 16 random bytes, as 32 hex digits like Django stores.
        return (
            "substr(g.h, 1, 12) || '4' || substr(g.h, 14, 3) "
            "|| substr('89ab', 1 + abs(random()) %% 4, 1) || substr(g.h, 18, 15)"
        ), []
    if name in ("created_at", "updated_at"):
        if postgresql:
            return "%s + g.i * interval '1 microsecond'", [now]
        return _sqlite_time_plus_index(connection, now)
    if name == "array_parent":
        return f"p.{connection.ops.quote_name(parent._meta.pk.column)}", []
    if name == "array_index":
        return "g.i", []
    if name == "name":
        return "%s || '[' || CAST(g.i AS text) || ']'", [parent.name or parent.docker_image]
    if name in parent.SYSTEM_FIELDS and name != "run_after":
        return "%s", [field.get_db_prep_save(field.get_default(), connection)]
    return f"p.{connection.ops.quote_name(field.column)}", []


def _sqlite_time_plus_index(connection: Any, now: datetime) -> tuple[str, list[Any]]:
    """``now`` plus ``g.i`` microseconds, as the text Django stores datetimes as on SQLite."""
    if timezone.is_aware(now):
        now = timezone.make_naive(now, connection.timezone)
    micros = (now - datetime(1970, 1, 1)) // timedelta(microseconds=1)
    total = "(%s + g.i)"
    return (
        f"strftime('%%Y-%%m-%%d %%H:%%M:%%S', {total} / 1000000, 'unixepoch') "
        f"|| '.' || printf('%%06d', {total} %% 1000000)"
    ), [micros, micros]


def _indexes(parent: models.Model, rerun_of: Any, connection: Any) -> tuple[str, list[Any]]:
    """The indexes ``insert_children`` makes children for, as SQL and its parameters.

    On PostgreSQL a row source of the FROM clause; elsewhere the body of the CTE ``n(i)``.
    """
    if rerun_of is None:
        if connection.vendor == "postgresql":
            return "generate_series(0, %s - 1)", [parent.array_size]
        return "SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < %s", [parent.array_size]
    jobs = type(parent)
    quote = connection.ops.quote_name
    column = {name: quote(jobs._meta.get_field(name).column) for name in _RERUN_COLUMNS}
    sql = (
        f"SELECT {column['array_index']} FROM {quote(jobs._meta.db_table)} "
        f"WHERE {column['array_parent']} = %s AND {column['status']} <> %s"
    )
    if connection.vendor == "postgresql":
        sql = f"({sql})"
    return sql, [jobs._meta.pk.get_db_prep_value(rerun_of, connection), str(st.COMPLETED)]


def _insert_child_edges(select: str, params: list[Any]) -> int:
    """``INSERT INTO`` the edges ``(job, depends_on, condition)`` the rows of ``select``.

    ``select`` names the tables and columns as ``{jobs}``, ``{edges}``, ``{id}``,
    ``{parent}``, ``{index}``, ``{job}``, ``{depends_on}`` and ``{condition}``; ids among
    ``params`` are made database values here.
    """
    jobs = _jobs()
    connection = connections[JobDependency.objects.db]
    quote = connection.ops.quote_name
    names = {
        "jobs": quote(jobs._meta.db_table),
        "edges": quote(JobDependency._meta.db_table),
        "id": quote(jobs._meta.pk.column),
        "parent": quote(jobs._meta.get_field("array_parent").column),
        "index": quote(jobs._meta.get_field("array_index").column),
        **{
            name: quote(JobDependency._meta.get_field(name).column)
            for name in ("job", "depends_on", "condition")
        },
    }
    columns = ", ".join(names[name] for name in ("job", "depends_on", "condition"))
    key = jobs._meta.pk
    values = [
        key.get_db_prep_value(value, connection) if isinstance(value, uuid.UUID) else value
        for value in params
    ]
    sql = f"INSERT INTO {names['edges']} ({columns}) {select.format(**names)}"
    with connection.cursor() as cursor:
        cursor.execute(sql, values)
        return cursor.rowcount


def _flag(waited: models.QuerySet) -> None:
    """Flag ``waited`` as waited for (``has_dependents``), as ``write_edges`` does: one UPDATE."""
    waited.filter(has_dependents=False).update(has_dependents=True)
