"""Helpers shared by the management commands: inline dispatch, the Docker probe, waiting, tables.

Only the commands in ``container_manager.management.commands`` import this module.
"""

from __future__ import annotations

import logging
import os
import time
from collections import Counter, deque
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from django.core.management.base import CommandError, OutputWrapper

from container_manager import dispatch
from container_manager.dispatch.base import DispatchBackend
from container_manager.dispatch.local import LocalBackend
from container_manager.engine import runner
from container_manager.executors.factory import ExecutorFactory
from container_manager.models import ContainerJob, ExecutorHost
from container_manager.rules import status as st

logger = logging.getLogger(__name__)

DOCKER_SOCKET = "unix:///var/run/docker.sock"
DEFAULT_IMAGE = "cm-busybox:latest"
#: Seconds between two looks at the jobs while waiting for them.
POLL_SECONDS = 0.25


def sample_image() -> str:
    """The image sample and demo jobs run: ``CM_TEST_IMAGE``, else ``cm-busybox:latest``."""
    return os.environ.get("CM_TEST_IMAGE") or DEFAULT_IMAGE


class InlineBackend(DispatchBackend):
    """Hold the steps sent while installed, so the command can run the due ones itself.

    Delayed sends are counted and dropped: the row already stores when that
    work is due (``next_check_at``, ``run_after``), so a later sweep finds it.
    """

    def __init__(self) -> None:
        super().__init__({})
        self.due: deque[tuple[str, str]] = deque()
        self.deferred = 0

    def send(self, step: str, job_id: str, delay: float) -> None:
        """Keep a step due now; count a delayed one."""
        if delay > 0:
            self.deferred += 1
        else:
            self.due.append((step, job_id))

    def run_due(self) -> dict[str, Counter[str]]:
        """Run each held step once, and the due steps they send; count outcomes per step name.

        A (step, job) pair runs at most once per call, which bounds the work
        even if steps kept sending each other.
        """
        outcomes: dict[str, Counter[str]] = {}
        done: set[tuple[str, str]] = set()
        while self.due:
            message = self.due.popleft()
            if message in done:
                continue
            done.add(message)
            outcomes.setdefault(message[0], Counter())[_run_step(*message)] += 1
        return outcomes


@contextmanager
def inline_dispatch() -> Iterator[InlineBackend]:
    """Send every step of this process to a fresh ``InlineBackend`` until the block ends."""
    with dispatch.use_backend(InlineBackend()) as backend:
        yield backend


def local_backend(why: str) -> LocalBackend:
    """The configured backend when it is the local one; ``CommandError`` saying ``why`` if not."""
    backend = dispatch.get_backend()
    if not isinstance(backend, LocalBackend):
        name = f"{type(backend).__module__}.{type(backend).__qualname__}"
        raise CommandError(f"the dispatch backend is {name}, not the local one: {why}")
    return backend


def docker_problem(image: str) -> str | None:
    """Why jobs of ``image`` cannot run on the local Docker engine now, or None when they can."""
    probe = ExecutorHost(
        name="docker-probe",
        executor_type="docker",
        host_type="unix",
        connection_string=DOCKER_SOCKET,
        auto_pull_images=False,
        executor_config={"timeout": 10},
    )
    try:
        executor = ExecutorFactory.executor_class("docker")(probe)
        executor.ping()
        executor.client.images.get(image)
    except Exception as exc:  # noqa: BLE001 - any failure means: not usable here
        return f"{type(exc).__name__}: {exc}"
    return None


def wait_for_jobs(job_ids: list, timeout: float, out: OutputWrapper) -> bool:
    """Show the jobs' progress until all are terminal; False when ``timeout`` seconds pass first.

    On a terminal one line is rewritten in place; otherwise a line is written
    each time the counts change.
    """
    tty = out.isatty()
    started = time.monotonic()
    shown = ""
    while True:
        counts = Counter(
            ContainerJob.objects.filter(pk__in=job_ids).values_list("status", flat=True)
        )
        elapsed = time.monotonic() - started
        summary = ", ".join(
            f"{name} {counts[name]}" for name, _ in st.STATUS_CHOICES if counts[name]
        )
        finished = sum(counts[name] for name in st.TERMINAL) == len(job_ids)
        if tty:
            out.write(f"\r\033[K{elapsed:5.1f}s  {summary}", ending="")
            out.flush()
        elif summary != shown:
            out.write(f"{elapsed:5.1f}s  {summary}")
        shown = summary
        if finished or elapsed >= timeout:
            break
        time.sleep(POLL_SECONDS)
    if tty:
        out.write("")
    return finished


def job_table(jobs: Iterable[ContainerJob]) -> str:
    """Name, status, exit code, seconds and first output line (or error) of each job."""
    rows = [
        [
            job.name,
            job.status,
            "-" if job.exit_code is None else str(job.exit_code),
            "-" if job.duration is None else f"{job.duration.total_seconds():.1f}",
            first_line(job.clean_output_processed) or first_line(job.last_error),
        ]
        for job in jobs
    ]
    return render_table(["name", "status", "exit", "seconds", "output"], rows)


def render_table(headers: list[str], rows: list[list[str]]) -> str:
    """Left-aligned columns two spaces apart, with a rule under the headers.

    >>> print(render_table(["name", "n"], [["a", "10"], ["bbbbbb", "2"]]))
    name    n
    ------  --
    a       10
    bbbbbb  2
    """
    widths = [max(len(row[i]) for row in [headers, *rows]) for i in range(len(headers))]
    lines = [headers, ["-" * width for width in widths], *rows]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )


def first_line(text: str, width: int = 40) -> str:
    """The first non-blank line of ``text``, cut to ``width`` characters with an ellipsis.

    >>> first_line("\\n  hello world  \\nmore", width=8)
    'hello w…'
    """
    line = next((line.strip() for line in text.splitlines() if line.strip()), "")
    return line if len(line) <= width else line[: width - 1] + "…"


def _run_step(step: str, job_id: str) -> str:
    outcome = runner.run(step, job_id)
    return outcome.result if outcome.verdict == runner.Verdict.DONE else "error"
