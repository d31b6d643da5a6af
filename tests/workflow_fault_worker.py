"""A ``process_container_jobs`` worker that SIGKILLs itself at a chosen point of a workflow's steps.

Started by tests/test_workflow_faults.py as ``python -m tests.workflow_fault_worker`` with the
test database in ``DATABASE_URL``. ``CM_FAULT_KILL`` is ``<point>:<n>``: the process kills
itself at the ``n``-th time it reaches ``point`` (empty: never):

- ``final``: in a final move, after its writes: before its transaction commits when it has one
  (the move is rolled back), after the commit when it is one statement (PostgreSQL);
- ``release``: after a final move committed, before its dependents are sent ``launch``;
- ``array_end``: after the final move that counted an array's last child committed, before
  the array's parent is ended (the sweep's ``check`` of the parent ends it);
- ``skip``: in the launch step, before a node whose edge cannot fire is moved to ``skipped``.

The mock executor's launches are written to the file ``CM_FAULT_LEDGER`` (job id, launch
key, execution id), shared by every worker: a launch retried in another process finds its
execution there by launch key, as Docker finds a container by its labels, and the test counts
the executions each job got.
"""

from __future__ import annotations

import fcntl
import os
import signal
import threading
from typing import Any

import django


def main() -> None:
    """Set Django up, install the kill point and the ledger, run the worker loop."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "functions.settings")
    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    from tests.conftest import FAST_STEPS

    settings.CONTAINER_MANAGER = {
        **settings.CONTAINER_MANAGER,
        **FAST_STEPS,
        "LAUNCH_LEASE_SECONDS": 3,
        "LAUNCH_RECONCILE_SECONDS": 1,
    }
    point, _, nth = os.environ.get("CM_FAULT_KILL", "").partition(":")
    if point:
        install_kill_point(point, int(nth))
    install_ledger(os.environ["CM_FAULT_LEDGER"])
    call_command("process_container_jobs", poll_interval=0.3)


def install_kill_point(point: str, nth: int) -> None:
    """Wrap the engine function of ``point`` so that its ``nth`` call SIGKILLs this process."""
    from container_manager.engine import transitions, workflows
    from container_manager.rules import status as st

    hits = [0]
    lock = threading.Lock()

    def reached() -> None:
        with lock:
            hits[0] += 1
            if hits[0] == nth:
                os.kill(os.getpid(), signal.SIGKILL)

    if point == "final":
        real_moved = transitions.job_moved

        def job_moved(job: Any, new: str) -> None:
            if new in st.TERMINAL:
                reached()
            real_moved(job, new)

        transitions.job_moved = job_moved
    elif point == "release":
        real_release = transitions.release_dependents

        def release_dependents(job_id: Any, status: str) -> int:
            reached()
            return real_release(job_id, status)

        transitions.release_dependents = release_dependents
    elif point == "array_end":
        real_end = transitions._end_array

        def end_array(parent_id: Any, member: Any, counts: Any) -> bool:
            if counts.finished >= member.array_size:  # the last child, its count committed
                reached()
            return real_end(parent_id, member, counts)

        transitions._end_array = end_array
    elif point == "skip":
        real_doom = workflows._doom

        def doom(job: Any, dependency: dict[str, Any]) -> str:
            reached()
            return real_doom(job, dependency)

        workflows._doom = doom
    else:
        raise ValueError(f"CM_FAULT_KILL: unknown point {point!r}")


def install_ledger(path: str) -> None:
    """Make the mock executor's launches idempotent across processes through the file ``path``."""
    from container_manager.executors.mock import MockExecutor

    real_launch = MockExecutor.launch_job

    def launch_job(self: MockExecutor, request: Any) -> str:
        with open(path, "a+") as ledger:
            fcntl.flock(ledger, fcntl.LOCK_EX)
            ledger.seek(0)
            found = _find(ledger.read(), request.launch_key)
            if found:
                with self._lock:
                    self._executions.setdefault(found, {"key": request.launch_key, "stopped": None})
                return found
            execution_id = real_launch(self, request)
            ledger.write(f"{request.job_id} {request.launch_key} {execution_id}\n")
            ledger.flush()
        return execution_id

    def find_launched(self: MockExecutor, request: Any) -> str | None:
        with open(path, "a+") as ledger:
            fcntl.flock(ledger, fcntl.LOCK_SH)
            ledger.seek(0)
            return _find(ledger.read(), request.launch_key)

    MockExecutor.launch_job = launch_job
    MockExecutor.find_launched = find_launched


def read_ledger(path: str) -> list[tuple[str, str, str]]:
    """The launches written to the ledger: (job id, launch key, execution id) per line."""
    try:
        with open(path) as ledger:
            return [tuple(line.split()) for line in ledger if line.strip()]
    except FileNotFoundError:
        return []


def _find(text: str, key: str) -> str | None:
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1] == key:
            return parts[2]
    return None


if __name__ == "__main__":
    main()
