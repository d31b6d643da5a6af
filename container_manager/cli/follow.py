"""Waiting for a job and following its logs: polls with backoff, and the exit code of a job.

Polls start ``first`` seconds apart and grow by half each time nothing changed, up to
``longest``; a busy (429) or briefly unavailable (502-504, unreachable) server is waited out.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

from container_manager.cli.client import ApiError, Client, Unreachable

#: The statuses a job never leaves.
FINAL = frozenset({"completed", "failed", "timeout", "cancelled", "skipped"})
#: Exit codes of jobs that ended without their own: as ``timeout(1)`` and a shell's Ctrl-C.
TIMEOUT_EXIT, CANCELLED_EXIT = 124, 130
#: Answers worth asking again after a wait, and how many in a row before giving up.
TRANSIENT_STATUSES = frozenset({429, 502, 503, 504})
MAX_TRANSIENT_IN_A_ROW = 10
#: The runtime's RFC 3339 timestamp at the start of a log line (Docker's ``timestamps=1``).
_TIMESTAMP = re.compile(
    r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2})? ?", re.MULTILINE
)


def exit_code(job: dict[str, Any]) -> int:
    """The exit status ``cm`` ends with for a finished job, as a shell would see it.

    A completed job's exit code (0); a failed one's, or 1 when it has none in 1..255;
    a timed-out one 124; a cancelled or skipped one (it never ran) 130.

    >>> [exit_code({"status": s, "exit_code": c}) for s, c in
    ...  [("completed", 0), ("failed", 3), ("failed", None), ("failed", 0), ("timeout", 137),
    ...   ("cancelled", 137), ("completed", None), ("skipped", None)]]
    [0, 3, 1, 1, 124, 130, 0, 130]
    """
    status, code = job["status"], job.get("exit_code")
    if status == "timeout":
        return TIMEOUT_EXIT
    if status in ("cancelled", "skipped"):
        return CANCELLED_EXIT
    if status == "failed":
        return code if isinstance(code, int) and 0 < code <= 255 else 1
    return code if isinstance(code, int) and 0 <= code <= 255 else 0


class Backoff:
    """Waits between polls: ``first`` seconds, half as long again after each idle poll, at most
    ``longest``; ``reset`` after a poll that brought something.

    >>> waits = []
    >>> backoff = Backoff(1.0, 3.0, sleep=waits.append)
    >>> for _ in range(4):
    ...     backoff.wait()
    >>> backoff.reset(); backoff.wait(); waits
    [1.0, 1.5, 2.25, 3.0, 1.0]
    """

    def __init__(
        self, first: float, longest: float, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        self.first, self.longest = first, longest
        self._next = first
        self._sleep = sleep

    def wait(self, at_least: float = 0.0) -> None:
        """Sleep the next interval (``at_least`` seconds if longer: a server's Retry-After)."""
        self._sleep(max(self._next, min(at_least, 60.0)))
        self._next = min(self._next * 1.5, self.longest)

    def reset(self) -> None:
        """The next wait is the first one again."""
        self._next = self.first


def wait_for_end(
    client: Client, job_id: str, backoff: Backoff, on_status: Callable[[dict[str, Any]], None]
) -> dict[str, Any]:
    """Poll the job until its status is final; ``on_status`` sees each new status. The job."""
    seen = None
    while True:
        job = _patiently(client, f"jobs/{job_id}/", (), backoff)
        if job["status"] != seen:
            seen = job["status"]
            on_status(job)
            backoff.reset()
        if seen in FINAL:
            return job
        backoff.wait()


def follow_logs(
    client: Client,
    job_id: str,
    backoff: Backoff,
    write: Callable[[str, str], None],
    until_complete: bool = True,
    timestamps: bool = False,
) -> dict[str, Any]:
    """Write the job's output as it comes, each byte once, ``write(stream, text)``; the last answer.

    Reads from the offsets of the previous answer (``stdout`` and ``stderr`` streams), until
    ``complete`` (a final job's stored logs read to their end); with ``until_complete``
    false, until an answer brings nothing new. ``timestamps`` keeps the runtime's ones.
    """
    offsets = {"stdout": 0, "stderr": 0}
    line_start = {"stdout": True, "stderr": True}
    while True:
        query = [(f"{name}_offset", str(offsets[name])) for name in offsets]
        logs = _patiently(client, f"jobs/{job_id}/logs/", query, backoff)
        moved = False
        for name in offsets:
            text = logs.get(name) or ""
            moved = moved or logs[f"{name}_offset"] != offsets[name]
            offsets[name] = logs[f"{name}_offset"]
            if text:
                write(name, text if timestamps else strip_timestamps(text, line_start[name]))
                line_start[name] = text.endswith("\n")
        if logs.get("complete") or (not until_complete and not moved):
            return logs
        if moved:
            backoff.reset()
        else:
            backoff.wait()


def strip_timestamps(text: str, at_line_start: bool = True) -> str:
    """``text`` without the runtime's timestamp at the start of each line.

    ``at_line_start`` false: ``text`` goes on a line begun before, whose start is kept.

    >>> strip_timestamps("2024-01-02T03:04:05.123Z one\\n2024-01-02T03:04:06Z two\\n")
    'one\\ntwo\\n'
    >>> strip_timestamps("2024-01-02T03:04:05Z rest\\n2024-01-02T03:04:06Z next", False)
    '2024-01-02T03:04:05Z rest\\nnext'
    """
    if at_line_start:
        return _TIMESTAMP.sub("", text)
    head, newline, rest = text.partition("\n")
    return head + newline + _TIMESTAMP.sub("", rest)


def _patiently(client: Client, path: str, query: Any, backoff: Backoff) -> dict[str, Any]:
    """GET ``path``, waiting out a busy or briefly unavailable server a bounded number of times."""
    failures = 0
    while True:
        try:
            return client.get(path, query)
        except ApiError as exc:
            failures += 1
            if exc.status not in TRANSIENT_STATUSES or failures >= MAX_TRANSIENT_IN_A_ROW:
                raise
            backoff.wait(at_least=exc.retry_after or 0.0)
        except Unreachable:
            failures += 1
            if failures >= MAX_TRANSIENT_IN_A_ROW:
                raise
            backoff.wait()
