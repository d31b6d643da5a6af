"""An executor whose "containers" are child processes of this one, for task jobs without an engine.

Used by Django's tasks suite (tests/django_tasks_suite.py): the runner runs as in an image.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from container_manager.executors.base import ContainerExecutor
from container_manager.executors.types import ExecutionState, HarvestResult, LaunchRequest

#: The directory child processes start in: the repository, so its modules import as here.
REPOSITORY = Path(__file__).resolve().parent.parent


class ProcessExecutor(ContainerExecutor):
    """Run a job's command with its environment as a child process, to its end, at launch.

    The image is ignored: a command starting with ``python`` runs this interpreter, with
    this process's ``sys.path``. The launch returns when the child has exited, so a job
    run by inline dispatch has finished when the step that launched it returns.
    """

    _finished: dict[str, HarvestResult] = {}

    def launch_job(self, request: LaunchRequest) -> str:
        """Run the child (once per launch key) and keep what it left; the key is the id."""
        if request.launch_key not in self._finished:
            self._finished[request.launch_key] = _run(request)
        return request.launch_key

    def check_status(self, execution_id: str) -> ExecutionState:
        """Exited once launched: children run to their end at launch."""
        if execution_id in self._finished:
            return ExecutionState.EXITED
        return ExecutionState.NOT_FOUND

    def get_logs(self, execution_id: str) -> tuple[str, str]:
        """The child's stdout and stderr."""
        result = self._finished[execution_id]
        return result.stdout, result.stderr

    def harvest_job(self, execution_id: str) -> HarvestResult | None:
        """What the child left: exit code, output, times."""
        return self._finished.get(execution_id)

    def seconds_left(self, execution_id: str) -> float | None:
        """None left once launched, so the first check is due at once."""
        return 0.0 if execution_id in self._finished else None

    def cleanup(self, execution_id: str) -> bool:
        """Forget the child's results."""
        self._finished.pop(execution_id, None)
        return True


def _run(request: LaunchRequest) -> HarvestResult:
    command = list(request.command or ())
    if command[:1] == ["python"]:
        command[0] = sys.executable
    environment = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": os.pathsep.join(path for path in sys.path if path),
        **request.environment,
    }
    started = datetime.now(UTC)
    child = subprocess.run(
        command,
        env=environment,
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        timeout=request.timeout_seconds,
        check=False,
    )
    return HarvestResult(
        exit_code=child.returncode,
        stdout=child.stdout,
        stderr=child.stderr,
        started_at=started,
        finished_at=datetime.now(UTC),
    )
