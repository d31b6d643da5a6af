"""``cm schedules``: list, show, enable, disable, run now and delete the schedules of a deployment.

Enabling is a PATCH of the schedule's ``enabled``; ``run`` answers the job it made, which
``--wait`` and ``--follow`` watch as ``cm submit`` does.
"""

from __future__ import annotations

import argparse
from typing import Any

from container_manager.cli import jobs
from container_manager.cli.context import Context, add_command, add_wait_options, api_path
from container_manager.cli.output import fields, print_json, table

#: What ``cm schedules show`` prints, in this order.
SHOWN = (
    "id", "name", "enabled", "cron", "timezone", "next_run_at", "last_run_at", "last_outcome",
    "docker_image", "command", "host", "overlap", "catchup",
)  # fmt: skip
COLUMNS = (
    ("ID", lambda s: s["id"]),
    ("NAME", lambda s: s.get("name")),
    ("ENABLED", lambda s: s.get("enabled")),
    ("CRON", lambda s: s.get("cron")),
    ("NEXT RUN", lambda s: s.get("next_run_at")),
    ("LAST OUTCOME", lambda s: s.get("last_outcome")),
    ("IMAGE", lambda s: s.get("docker_image")),
)


def add_parser(commands: Any, common: argparse.ArgumentParser) -> None:
    """Add ``schedules`` and its actions (``ls`` when none is named) to ``commands``."""
    parser = add_command(commands, common, "schedules", "job schedules", ls)
    parser.set_defaults(all=False)
    actions = parser.add_subparsers(title="actions", metavar="ACTION")
    summary = "list schedules (the default)"
    ls_parser = add_command(actions, common, "ls", summary, ls)
    ls_parser.add_argument("--all", action="store_true", help="every page, not only the first")
    for name, run, summary in (
        ("show", show, "one schedule's details"),
        ("enable", enable, "enable a schedule"),
        ("disable", disable, "disable a schedule: it makes no job until enabled"),
        ("rm", remove, "delete a schedule (its jobs stay)"),
    ):
        add_command(actions, common, name, summary, run, "schedule")
    summary = "make the schedule's job now"
    add_wait_options(add_command(actions, common, "run", summary, run_now, "schedule"))


def ls(args: argparse.Namespace, ctx: Context) -> int:
    """``cm schedules [ls]``: the schedules the token may see."""
    schedules, cursor = jobs.all_pages(ctx, "schedules/", "schedules", [], None, args.all)
    if args.json:
        print_json({"schedules": schedules, "next_cursor": cursor}, ctx.out)
        return 0
    ctx.write("stdout", table(schedules, COLUMNS) + "\n")
    if cursor:
        ctx.note("more schedules: cm schedules ls --all")
    return 0


def show(args: argparse.Namespace, ctx: Context) -> int:
    """``cm schedules show``: a schedule's details."""
    return _print(ctx.client.get(api_path("schedules", args.schedule)), args, ctx)


def enable(args: argparse.Namespace, ctx: Context) -> int:
    """``cm schedules enable``: PATCH ``enabled`` to true."""
    path = api_path("schedules", args.schedule)
    return _print(ctx.client.patch(path, {"enabled": True}), args, ctx)


def disable(args: argparse.Namespace, ctx: Context) -> int:
    """``cm schedules disable``: PATCH ``enabled`` to false."""
    path = api_path("schedules", args.schedule)
    return _print(ctx.client.patch(path, {"enabled": False}), args, ctx)


def run_now(args: argparse.Namespace, ctx: Context) -> int:
    """``cm schedules run``: make the schedule's job now; its id, or wait for it or follow it."""
    job = ctx.client.post(api_path("schedules", args.schedule, "run"))
    return jobs.started(job, args, ctx)


def remove(args: argparse.Namespace, ctx: Context) -> int:
    """``cm schedules rm``: delete the schedule; the jobs it made stay."""
    ctx.client.delete(api_path("schedules", args.schedule))
    ctx.note(f"schedule {args.schedule} deleted")
    return 0


def _print(schedule: dict[str, Any], args: argparse.Namespace, ctx: Context) -> int:
    if args.json:
        print_json(schedule, ctx.out)
    else:
        ctx.write("stdout", fields(schedule, SHOWN) + "\n")
    return 0
