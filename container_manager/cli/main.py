"""The ``cm`` console script: parse the command line, configure the client, run, map errors.

Exit status: the command's (a job's exit code with ``--wait``/``--follow``); 2 for a usage or
configuration error and for the API's 400; 1 for another API error; 3 when the server cannot
be reached; 130 after Ctrl-C.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from collections.abc import Mapping, Sequence

from container_manager.cli import config, jobs, schedules
from container_manager.cli.client import ApiError, Client, Unreachable
from container_manager.cli.context import Context
from container_manager.cli.follow import Backoff
from container_manager.cli.output import error_lines, redact

#: Exit statuses of ``cm``'s own failures (a job's exit code is the command's otherwise).
EXIT_ERROR, EXIT_USAGE, EXIT_UNREACHABLE, EXIT_INTERRUPTED = 1, 2, 3, 130


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``cm`` with ``argv`` (the process's arguments when None); the exit status."""
    args = parse(sys.argv[1:] if argv is None else list(argv))
    environ = os.environ
    token = None
    try:
        if args.run is login:
            return login(args, environ)
        settings = config.load(args.profile, environ)
        token = settings.token
        first, longest = config.poll_intervals(environ)
        debug = (lambda line: _say(line)) if args.debug else None
        ctx = Context(
            client=Client(settings.api_root, settings.token, debug=debug),
            out=sys.stdout,
            err=sys.stderr,
            backoff=lambda: Backoff(first, longest),
        )
        return args.run(args, ctx)
    except config.ConfigError as exc:
        _say(f"cm: {exc}")
        return EXIT_USAGE
    except ApiError as exc:
        for line in error_lines(exc.status, exc.body):
            _say(redact(line, token))
        return EXIT_USAGE if exc.status == 400 else EXIT_ERROR
    except Unreachable as exc:
        _say(redact(f"cm: {exc}", token))
        return EXIT_UNREACHABLE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (``cm ls | head``): stop quietly, as other tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_ERROR


def parse(argv: list[str]) -> argparse.Namespace:
    """The parsed arguments; what follows the first ``--`` is ``submit``'s command, as given.

    (argparse alone would drop a command after options: ``submit IMG --wait -- ls -la``.)

    >>> parse(["submit", "busybox", "--wait", "--", "ls", "-la"]).command
    ['ls', '-la']
    """
    parser = build_parser()
    head, tail = argv, None
    if "--" in argv:
        cut = argv.index("--")
        head, tail = argv[:cut], argv[cut + 1 :]
    args = parser.parse_args(head)
    args.profile = getattr(args, "profile", None)
    args.debug = getattr(args, "debug", False)
    if tail is not None:
        if getattr(args, "command", None) is None:
            parser.error("only submit takes a command after --")
        if args.command:
            parser.error("give the command after -- only")
        args.command = tail
    return args


def build_parser() -> argparse.ArgumentParser:
    """The parser of every command; each sets ``run``, the function that carries it out."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--profile", default=argparse.SUPPRESS, help="the config file's profile (CM_PROFILE)"
    )
    common.add_argument(
        "--debug",
        action="store_true",
        default=argparse.SUPPRESS,
        help="print each request and answer on stderr (never the token)",
    )
    parser = argparse.ArgumentParser(
        prog="cm",
        parents=[common],
        description="Run and follow container jobs through a container_manager deployment's "
        "API. The deployment: CM_URL and CM_TOKEN, else a profile written by cm login.",
    )
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    jobs.add_parsers(commands, common)
    schedules.add_parser(commands, common)
    login_parser = commands.add_parser(
        "login",
        parents=[common],
        help="save a deployment's URL and token in the config file (mode 0600)",
        description="Check the token against URL and save both as a profile. The token is "
        "read from CM_TOKEN, else asked for (not echoed), else read from stdin.",
    )
    login_parser.add_argument("url", metavar="URL", help="where container_manager is mounted")
    login_parser.set_defaults(run=login)
    return parser


def login(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    """``cm login URL``: check the token with one request, then save the profile."""
    root = config.api_root(args.url)
    token = environ.get("CM_TOKEN") or _ask_token()
    if not token:
        raise config.ConfigError("token: empty; give it in CM_TOKEN or when asked")
    debug = (lambda line: _say(line)) if args.debug else None
    Client(root, token, debug=debug).get("jobs/", [("limit", "1")])
    profile = args.profile or environ.get("CM_PROFILE") or config.DEFAULT_PROFILE
    path = config.config_path(environ)
    config.save(path, profile, args.url, token)
    _say(f"cm: profile [{profile}] saved in {path} (mode 0600): {args.url}")
    return 0


def _ask_token() -> str:
    if sys.stdin.isatty():
        return getpass.getpass("API token: ").strip()
    return sys.stdin.readline().strip()


def _say(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()
