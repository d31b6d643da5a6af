"""The job commands of ``cm``: submit, ls, show, logs, wait, cancel, retry.

``--wait`` and ``--follow`` end with the job's exit code (``follow.exit_code``); Ctrl-C stops
the waiting, never the job.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from container_manager.cli.context import (
    Context,
    add_command,
    add_wait_options,
    api_path,
    pairs,
)
from container_manager.cli.follow import exit_code, follow_logs, wait_for_end
from container_manager.cli.output import cell, fields, print_json, table

#: What ``cm show`` prints of a job, in this order (the others are in ``--json``).
SHOWN = (
    "id", "name", "status", "exit_code", "last_error", "docker_image", "command", "host",
    "labels", "attempts", "created_at", "started_at", "completed_at", "duration_seconds",
    "estimated_cost", "cost_currency", "depends_on", "array", "result",
)  # fmt: skip
#: The columns of ``cm ls``.
COLUMNS = (
    ("ID", lambda job: job["id"]),
    ("NAME", lambda job: job.get("name")),
    ("STATUS", lambda job: job["status"]),
    ("EXIT", lambda job: job.get("exit_code")),
    ("IMAGE", lambda job: job.get("docker_image")),
    ("HOST", lambda job: job.get("host")),
    ("CREATED", lambda job: job.get("created_at")),
)


def add_parsers(commands: Any, common: argparse.ArgumentParser) -> None:
    """Add the job commands to the ``commands`` subparsers, each with the ``common`` options."""
    _add_submit(commands, common)
    _add_ls(commands, common)
    add_command(commands, common, "show", "one job's details", show, "job")
    logs_parser = add_command(commands, common, "logs", "a job's output", logs, "job")
    logs_parser.add_argument(
        "--follow", "-f", action="store_true", help="keep printing until the job has ended"
    )
    logs_parser.add_argument(
        "--timestamps", "-t", action="store_true", help="keep the runtime's timestamps"
    )
    summary = "wait for a job to end; exit with its exit code"
    add_command(commands, common, "wait", summary, wait, "job").set_defaults(follow=False)
    add_command(commands, common, "cancel", "cancel a job", cancel, "job")
    summary = "run a failed, timed-out or cancelled job again"
    add_wait_options(add_command(commands, common, "retry", summary, retry, "job"))


def _add_submit(commands: Any, common: argparse.ArgumentParser) -> None:
    submit_parser = add_command(commands, common, "submit", "submit a job", submit)
    submit_parser.description = (
        "Submit a job running IMAGE; the CMD after -- runs as given (exec form, as docker "
        "run): for a shell, -- sh -c '...'. Prints the job's id."
    )
    submit_parser.add_argument("image", metavar="IMAGE")
    submit_parser.add_argument("command", metavar="CMD", nargs="*", help="the command, after --")
    submit_parser.add_argument("--name", help="a human-readable name")
    submit_parser.add_argument(
        "--env", metavar="K=V", type=pairs, action="append", default=[], help="a variable"
    )
    submit_parser.add_argument(
        "--label", metavar="K=V", type=pairs, action="append", default=[], help="a label"
    )
    submit_parser.add_argument("--memory", metavar="MB", type=int, help="memory limit in MB")
    submit_parser.add_argument("--cpu", metavar="C", type=float, help="CPU limit in cores")
    submit_parser.add_argument("--timeout", metavar="S", type=int, help="timeout in seconds")
    submit_parser.add_argument("--host", metavar="H", help="the executor host's name")
    submit_parser.add_argument(
        "--idempotency-key", metavar="KEY", help="a retried submit with this key makes one job"
    )
    add_wait_options(submit_parser)


def _add_ls(commands: Any, common: argparse.ArgumentParser) -> None:
    ls_parser = add_command(commands, common, "ls", "list jobs, newest first", ls)
    ls_parser.add_argument("--status", help="only jobs in this status")
    ls_parser.add_argument("--name", help="only jobs with this name")
    ls_parser.add_argument("--host", help="only jobs on this executor host")
    ls_parser.add_argument("--label", metavar="K=V", type=pairs, action="append", default=[])
    ls_parser.add_argument("--created-after", metavar="TIME", help="ISO 8601")
    ls_parser.add_argument("--created-before", metavar="TIME", help="ISO 8601")
    ls_parser.add_argument("--limit", metavar="N", type=int, help="jobs per page (1 to 200)")
    ls_parser.add_argument("--cursor", help="the page after this cursor (from a previous ls)")
    ls_parser.add_argument("--all", action="store_true", help="every page, not only the first")


def submit(args: argparse.Namespace, ctx: Context) -> int:
    """``cm submit``: POST the job, then print its id, or wait for it or follow it."""
    body: dict[str, Any] = {"docker_image": args.image}
    if args.command:
        body["command"] = json.dumps(args.command)
    optional = {
        "name": args.name,
        "memory_limit": args.memory,
        "cpu_limit": args.cpu,
        "timeout_seconds": args.timeout,
        "host": args.host,
    }
    body.update({name: value for name, value in optional.items() if value is not None})
    if args.env:
        body["environment_vars"] = dict(args.env)
    if args.label:
        body["labels"] = dict(args.label)
    key = args.idempotency_key
    job = ctx.client.post("jobs/", body, {"Idempotency-Key": key} if key else None)
    return started(job, args, ctx)


def started(job: dict[str, Any], args: argparse.Namespace, ctx: Context) -> int:
    """After a job was made (submit, retry, a schedule's run): print it, or wait or follow.

    ``--json`` prints the job's JSON once: as made, or as it ended with ``--wait``.
    """
    if args.follow:
        ctx.note(f"job {job['id']}: following its output (Ctrl-C stops following, not the job)")
    elif not args.json:
        ctx.write("stdout", f"{job['id']}\n")
    if args.wait or args.follow:
        return watch(job["id"], args, ctx)
    if args.json:
        print_json(job, ctx.out)
    return 0


def watch(job_id: str, args: argparse.Namespace, ctx: Context) -> int:
    """Wait for the job to end (following its output with ``args.follow``); its exit code.

    With ``--json`` and without ``--follow`` (whose stdout is the job's output), the job's
    JSON as it ended. Ctrl-C stops watching and exits 130; the job runs on.
    """
    try:
        if args.follow:
            follow_logs(ctx.client, job_id, ctx.backoff(), ctx.write)
            job = ctx.client.get(api_path("jobs", job_id))
        else:
            job = wait_for_end(
                ctx.client,
                job_id,
                ctx.backoff(),
                lambda seen: ctx.note(f"job {job_id}: {seen['status']}"),
            )
    except KeyboardInterrupt:
        ctx.note(f"stopped watching job {job_id}; it keeps running (cm cancel {job_id} stops it)")
        return 130
    code = exit_code(job)
    ctx.note(
        f"job {job_id} {job['status']}, exit code {cell(job.get('exit_code'))} (cm exits {code})"
    )
    if args.json and not args.follow:
        print_json(job, ctx.out)
    return code


def wait(args: argparse.Namespace, ctx: Context) -> int:
    """``cm wait``: wait for a job to end; exit with its exit code."""
    return watch(args.job, args, ctx)


def ls(args: argparse.Namespace, ctx: Context) -> int:
    """``cm ls``: one page of jobs, or every page with ``--all`` (following ``next_cursor``)."""
    query = [("limit", str(args.limit))] if args.limit is not None else []
    filters = {
        "status": args.status,
        "name": args.name,
        "host": args.host,
        "created_after": args.created_after,
        "created_before": args.created_before,
    }
    query += [(name, value) for name, value in filters.items() if value]
    query += [("label", f"{key}={value}") for key, value in args.label]
    jobs, cursor = all_pages(ctx, "jobs/", "jobs", query, args.cursor, args.all)
    if args.json:
        print_json({"jobs": jobs, "next_cursor": cursor}, ctx.out)
        return 0
    ctx.write("stdout", table(jobs, COLUMNS) + "\n")
    if cursor:
        ctx.note(f"more jobs: cm ls --all, or cm ls --cursor {cursor}")
    return 0


def all_pages(
    ctx: Context, path: str, key: str, query: list[tuple[str, str]], cursor: str | None, every: bool
) -> tuple[list[dict[str, Any]], str | None]:
    """The ``key`` list of the page after ``cursor`` (of every page with ``every``), and the
    ``next_cursor`` of the last page read."""
    items: list[dict[str, Any]] = []
    seen = set()
    while True:
        page = ctx.client.get(path, query + ([("cursor", cursor)] if cursor else []))
        items += page[key]
        cursor = page.get("next_cursor")
        if not (every and cursor) or cursor in seen:
            return items, cursor
        seen.add(cursor)


def show(args: argparse.Namespace, ctx: Context) -> int:
    """``cm show``: a job's details."""
    job = ctx.client.get(api_path("jobs", args.job))
    if args.json:
        print_json(job, ctx.out)
    else:
        ctx.write("stdout", fields(job, SHOWN) + "\n")
    return 0


def logs(args: argparse.Namespace, ctx: Context) -> int:
    """``cm logs``: a job's stdout and stderr so far, to the end with ``-f``.

    With ``--json``, one document when the reading ends: both streams whole (as printed), the
    offsets and ``complete`` of the last answer.
    """
    kept: dict[str, list[str]] = {"stdout": [], "stderr": []}
    write = (lambda stream, text: kept[stream].append(text)) if args.json else ctx.write
    try:
        last = follow_logs(
            ctx.client,
            args.job,
            ctx.backoff(),
            write,
            until_complete=args.follow,
            timestamps=args.timestamps,
        )
    except KeyboardInterrupt:
        ctx.note(f"stopped following job {args.job}; it keeps running")
        return 130
    if args.json:
        streams = {name: "".join(parts) for name, parts in kept.items()}
        read = {name: value for name, value in last.items() if name != "clean_output"}
        print_json({**read, **streams}, ctx.out)
    return 0


def cancel(args: argparse.Namespace, ctx: Context) -> int:
    """``cm cancel``: ask for the job to be cancelled; a job that already ended is an error."""
    job = ctx.client.post(api_path("jobs", args.job, "cancel"))
    if args.json:
        print_json(job, ctx.out)
    else:
        ctx.write("stdout", f"{job['id']}\n")
        ctx.note(f"job {job['id']}: cancel requested (status {job['status']})")
    return 0


def retry(args: argparse.Namespace, ctx: Context) -> int:
    """``cm retry``: run a failed, timed-out or cancelled job again; the new job's id."""
    job = ctx.client.post(api_path("jobs", args.job, "retry"))
    return started(job, args, ctx)
