"""What every ``cm`` command is handed: the API client, the output streams, the poll timing."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TextIO
from urllib.parse import quote

from container_manager.cli.client import Client
from container_manager.cli.follow import Backoff


@dataclass
class Context:
    """A command's client, its stdout and stderr, and ``backoff()`` making a fresh poll timer."""

    client: Client
    out: TextIO
    err: TextIO
    backoff: Callable[[], Backoff]

    def write(self, stream: str, text: str) -> None:
        """Write ``text`` to ``stdout`` or ``stderr`` at once (a follower sees it live)."""
        target = self.out if stream == "stdout" else self.err
        target.write(text)
        target.flush()

    def note(self, line: str) -> None:
        """One line for the person at the terminal, on stderr: stdout stays the data."""
        self.write("stderr", line + "\n")


#: What a command is: it reads its parsed arguments and returns the exit status.
Command = Callable[[argparse.Namespace, Context], int]


def pairs(text: str) -> tuple[str, str]:
    """An argparse type for ``KEY=VALUE``; the value may hold ``=`` and be empty.

    >>> pairs("A=b=c"), pairs("EMPTY=")
    (('A', 'b=c'), ('EMPTY', ''))
    >>> pairs("novalue")
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: expected KEY=VALUE, got 'novalue'
    """
    key, equals, value = text.partition("=")
    if not equals or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text[:100]!r}")
    return key, value


def add_command(
    commands: Any,
    common: argparse.ArgumentParser,
    name: str,
    summary: str,
    run: Command,
    target: str = "",
) -> argparse.ArgumentParser:
    """A command of ``commands`` (subparsers) that ``run`` carries out, with the ``common``
    options and ``--json``; ``target`` (``job``, ``schedule``) names the id it takes first."""
    parser = commands.add_parser(name, parents=[common], help=summary)
    if target:
        parser.add_argument(target, metavar=target.upper(), help=f"the {target}'s id")
    add_output_options(parser)
    parser.set_defaults(run=run)
    return parser


def add_output_options(parser: argparse.ArgumentParser) -> None:
    """``--json`` on a command that reads: the API's JSON instead of the human text."""
    parser.add_argument(
        "--json", action="store_true", help="print the API's JSON (for scripts) instead of text"
    )


def add_wait_options(parser: argparse.ArgumentParser) -> None:
    """``--wait`` and ``--follow`` on a command that starts a job."""
    parser.add_argument(
        "--wait", action="store_true", help="wait for the job to end; exit with its exit code"
    )
    parser.add_argument(
        "--follow",
        "-f",
        action="store_true",
        help="print the job's output as it runs, then exit with its exit code",
    )


def api_path(kind: str, ident: Any, action: str = "") -> str:
    """The API path of one object (``kind`` ``jobs`` or ``schedules``), quoted whole.

    >>> api_path("jobs", "0b9e"), api_path("schedules", 3, "run"), api_path("jobs", "../x?y")
    ('jobs/0b9e/', 'schedules/3/run/', 'jobs/..%2Fx%3Fy/')
    """
    return f"{kind}/{quote(str(ident), safe='')}/" + (f"{action}/" if action else "")
