"""Hot statements built once per process: a move's UPDATEs and the ORM queries the steps run
for every job, kept as SQL text per shape and run with parameters (no compilation per job).
"""

from __future__ import annotations

import inspect
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from django.db import models
from django.db.models.query import get_related_populators

from container_manager.models import ContainerJob

#: Django 6.1 gives querysets a fetch mode (how deferred and related fields load later),
#: which its related populators and ``Model.from_db`` take; earlier versions have none.
_TAKES_FETCH_MODE = "fetch_mode" in inspect.signature(get_related_populators).parameters

#: Stand-ins a query is compiled with once; each use puts the real values in their places.
HOST, JOB, NOW = -7_272_727, uuid.UUID(int=0x2727_2727), datetime(1901, 2, 3, 4, 5, 6, 70809, UTC)

_BUILT: dict[tuple[Any, ...], Any] = {}


def built(key: tuple[Any, ...], build: Callable[[], Any]) -> Any:
    """``build()``'s answer, made the first time ``key`` is asked for in this process."""
    try:
        return _BUILT[key]
    except KeyError:
        made = _BUILT[key] = build()
        return made


def update(
    connection: Any,
    model: type[models.Model],
    names: tuple[str, ...],
    where: tuple[tuple[str, bool], ...],
    *,
    also: str = "",
    returning: str = "",
) -> str:
    """``UPDATE`` of ``model`` setting the fields ``names``, where each ``(name, is_null)``.

    The placeholders are the set values (``set_params``) then the where values that are not
    null (``where_params``). ``also`` is one more condition in SQL, ``returning`` the
    ``RETURNING`` list.
    """

    def build() -> str:
        quote = connection.ops.quote_name

        def column(name: str) -> str:
            return quote(model._meta.get_field(name).column)

        sets = ", ".join(f"{column(name)} = %s" for name in names)
        conditions = [f"{column(n)} IS NULL" if null else f"{column(n)} = %s" for n, null in where]
        if also:
            conditions.append(also)
        tail = f" RETURNING {returning}" if returning else ""
        table = quote(model._meta.db_table)
        return f"UPDATE {table} SET {sets} WHERE {' AND '.join(conditions)}{tail}"

    key = ("update", connection.vendor, model._meta.label, names, where, also, returning)
    return built(key, build)


def set_params(connection: Any, model: type[models.Model], values: dict[str, Any]) -> list[Any]:
    """The values of an ``update``'s SET list, as the database takes them."""
    get = model._meta.get_field
    return [get(name).get_db_prep_save(value, connection) for name, value in values.items()]


def where_params(connection: Any, model: type[models.Model], values: dict[str, Any]) -> list[Any]:
    """The values of an ``update``'s conditions that are not null, as the database takes them."""
    get = model._meta.get_field
    return [
        get(name).get_db_prep_value(value, connection, prepared=False)
        for name, value in values.items()
        if value is not None
    ]


def params(
    connection: Any, model: type[models.Model], values: dict[str, Any], where: dict[str, Any]
) -> list[Any]:
    """An ``update``'s parameters: ``set_params`` of ``values``, ``where_params`` of ``where``."""
    return [*set_params(connection, model, values), *where_params(connection, model, where)]


def shape(values: dict[str, Any]) -> tuple[tuple[str, bool], ...]:
    """The ``where`` of ``update`` for conditions ``values``: each name and whether it is null."""
    return tuple((name, value is None) for name, value in values.items())


def compiled(
    name: str,
    connection: Any,
    build: Callable[[Any, Any, Any], tuple[str, Any]],
    host: Any = HOST,
    job: Any = JOB,
    now: Any = NOW,
) -> tuple[str, list[Any]]:
    """SQL and parameters of the query ``build(host, job, now)`` makes, compiled once.

    ``build`` returns ``sql_with_params()`` of an ORM query; it is called once with the
    stand-ins ``HOST``, ``JOB`` and ``NOW``, and each later call only puts the given host
    id, job id and time where the stand-ins were.
    """

    def compile_once() -> tuple[str, list[tuple[int | None, Any]]]:
        sql, params = build(HOST, JOB, NOW)
        marks = _prepared(connection, HOST, JOB, NOW)
        places = []
        for param in params:
            index = next((i for i, mark in enumerate(marks) if _same(param, mark)), None)
            places.append((index, param))
        return sql, places

    sql, places = built(("compiled", name, connection.vendor), compile_once)
    given = _prepared(connection, host, job, now)
    return sql, [param if index is None else given[index] for index, param in places]


def fetch(
    name: str, connection: Any, build: Callable[[Any], models.QuerySet], job: Any
) -> list[models.Model]:
    """The instances the queryset ``build(job)`` returns, its SQL compiled once.

    ``build`` is called once with the stand-in ``JOB``; each call then runs the kept SQL
    with ``job`` in its places and makes the instances (with ``select_related`` rows and
    annotations) as Django's own ``ModelIterable`` does, from the kept compiler's
    column map and converters.
    """

    def compile_once() -> tuple[Any, str, list[tuple[int | None, Any]]]:
        compiler = build(JOB).query.get_compiler(connection=connection)
        sql, params = compiler.as_sql()
        marks = _prepared(connection, HOST, JOB, NOW)
        places = [
            (next((i for i, mark in enumerate(marks) if _same(p, mark)), None), p) for p in params
        ]
        return compiler, sql, places

    compiler, sql, places = built(("fetch", name, connection.alias), compile_once)
    given = _prepared(connection, HOST, job, NOW)
    with connection.cursor() as cursor:
        cursor.execute(sql, [param if index is None else given[index] for index, param in places])
        rows = cursor.fetchall()
    return list(_instances(compiler, connection.alias, rows)) if rows else []


def _instances(compiler: Any, db: str, rows: list[Any]) -> Any:
    select, klass_info = compiler.select, compiler.klass_info
    model = klass_info["model"]
    start, end = klass_info["select_fields"][0], klass_info["select_fields"][-1] + 1
    names = [column[0].target.attname for column in select[start:end]]
    mode: tuple[Any, ...] = ()
    if _TAKES_FETCH_MODE:  # the default mode, as a queryset of the model would pass it
        mode = (model._default_manager.all()._fetch_mode,)
    populators = get_related_populators(klass_info, select, db, *mode)
    keywords = {"fetch_mode": mode[0]} if mode else {}
    for row in compiler.results_iter([rows]):
        instance = model.from_db(db, names, row[start:end], **keywords)
        for populator in populators:
            populator.populate(row, instance)
        for name, position in compiler.annotation_col_map.items():
            setattr(instance, name, row[position])
        yield instance


def _prepared(connection: Any, host: Any, job: Any, now: Any) -> tuple[Any, Any, Any]:
    fields = ContainerJob._meta
    return (
        fields.get_field("docker_host").get_db_prep_value(host, connection),
        fields.pk.get_db_prep_value(job, connection),
        fields.get_field("run_after").get_db_prep_value(now, connection),
    )


def _same(param: Any, mark: Any) -> bool:
    # ``True == 1``: a constant is a stand-in's place only if its type is the stand-in's.
    return type(param) is type(mark) and param == mark
