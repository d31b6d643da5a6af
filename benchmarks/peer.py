"""The peer: public django-container-manager 1.0.14 running the same jobs on the same engine.

Runs in .venv-peer (its import name is ours too) on a throwaway Django project in a temp dir.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _common import COMMAND, DOCKER_URL, IMAGE, latency_summary, write_result  # noqa: E402

TERMINAL = {"completed", "failed", "timeout", "cancelled"}
_PEER_LABEL = "managed_by=django-container-manager"
SETTINGS = """
SECRET_KEY = "benchmark-only"
USE_TZ = True
INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth", "container_manager"]
DATABASES = {{"default": {{"ENGINE": "django.db.backends.sqlite3", "NAME": {db!r},
              "OPTIONS": {{"timeout": 30}}}}}}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
CONTAINER_MANAGER = {{"AUTO_PULL_IMAGES": False}}
LOGGING = {{"version": 1, "disable_existing_loggers": False,
           "root": {{"handlers": [], "level": "ERROR"}}}}
"""


def main() -> None:
    """Run each scenario of the peer's ``process_container_jobs``; write results/peer.json."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--max-jobs", type=int, default=4, help="its per-cycle launch limit")
    parser.add_argument("--time-limit", type=float, default=300, help="seconds per scenario")
    parser.add_argument("--stall", type=float, default=20, help="seconds without progress = stuck")
    parser.add_argument("--latency-n", type=int, default=20, help="jobs submitted one at a time")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cm-peer-") as tmp:
        peer = Peer(Path(tmp))
        scenarios = [
            ("default: jobs from create_job", [], False, args.stall),
            ("default: jobs queued with queue_job", [], True, args.stall),
            (
                f"--legacy-mode --poll-interval 1 --max-jobs {args.max_jobs}",
                ["--legacy-mode", "--poll-interval", "1", "--max-jobs", str(args.max_jobs)],
                False,
                args.stall,
            ),
        ]
        results = [
            peer.scenario(name, flags, queued, args.n, args.time_limit, stall)
            for name, flags, queued, stall in scenarios
        ]
        results.append(peer.sequential(scenarios[-1][1], args.latency_n))
    import django

    write_result(
        "peer",
        {
            "package": "django-container-manager==1.0.14",
            "django": django.get_version(),
            "n": args.n,
            "image": IMAGE,
            "command": COMMAND,
            "scenarios": results,
        },
    )


class Peer:
    """A temp Django project with the peer installed, its database, and a Docker event log."""

    def __init__(self, root: Path):
        self.root = root
        (root / "peerbench_settings.py").write_text(SETTINGS.format(db=str(root / "peer.sqlite3")))
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "peerbench_settings",
            "PYTHONPATH": str(root),
        }
        os.environ.update(DJANGO_SETTINGS_MODULE="peerbench_settings")
        sys.path.insert(0, str(root))
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0, interactive=False)
        self.starts: dict[str, float] = {}
        threading.Thread(target=self._watch_starts, daemon=True).start()

    def scenario(
        self, name: str, flags: list[str], queued: bool, n: int, limit: float, stall: float
    ) -> dict[str, Any]:
        """Submit ``n`` jobs, run the command until all finish, it stalls, or ``limit`` passes."""
        from tqdm import tqdm

        jobs = self._submit(n, queued)
        command = [sys.executable, "-m", "django", "process_container_jobs", *flags]
        log = (self.root / "command.log").open("w+")
        began = time.time()
        # cwd: ``python -m`` puts it first on sys.path, and the repo's cwd holds our own package.
        process = subprocess.Popen(
            command, cwd=self.root, env=self.env, stdout=log, stderr=subprocess.STDOUT
        )
        bar = tqdm(total=n, desc=f"peer {name[:40]}", unit="job")
        done, last_progress, stuck = 0, time.time(), False
        while True:
            time.sleep(0.5)
            counts = self._counts()
            finished = sum(v for k, v in counts.items() if k in TERMINAL)
            if finished != done:
                bar.update(finished - done)
                done, last_progress = finished, time.time()
            if done >= n or process.poll() is not None:
                break
            if time.time() - began > limit or time.time() - last_progress > stall:
                stuck = done < n
                break
        elapsed = time.time() - began
        bar.close()
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=30)
        self._remove_leftovers()
        log.seek(0)
        output = log.read()
        log.close()
        return {
            "name": name,
            "command": "process_container_jobs " + " ".join(flags),
            "jobs_queued_with_queue_job": queued,
            "seconds": round(elapsed, 2),
            "finished": done,
            "statuses": self._counts(),
            "stuck": stuck,
            "command_exit_code": process.returncode if process.returncode != -15 else None,
            "jobs_per_s": round(done / elapsed, 3) if done >= n else None,
            "finished_per_s": round(done / elapsed, 3),
            "submit_to_start": latency_summary(self._start_latencies(jobs)),
            "submit_to_done": latency_summary(self._done_latencies(jobs)),
            "command_output_tail": output.strip().splitlines()[-6:],
        }

    def sequential(self, flags: list[str], n: int) -> dict[str, Any]:
        """The command already running; submit one job, wait for its end, repeat: no queueing."""
        from tqdm import tqdm

        from container_manager.models import ContainerJob

        self._submit(0, False)
        process = subprocess.Popen(
            [sys.executable, "-m", "django", "process_container_jobs", *flags],
            cwd=self.root, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        time.sleep(2)  # its start-up is not part of a job's latency
        ids = []
        for _ in tqdm(range(n), desc="peer sequential", unit="job"):
            ids.extend(self._submit(1, False, keep=True))
            deadline = time.time() + 30
            while time.time() < deadline:
                if ContainerJob.objects.filter(pk=ids[-1], status__in=TERMINAL).exists():
                    break
                time.sleep(0.05)
        process.terminate()
        process.wait(timeout=30)
        return {
            "name": "sequential: one job at a time, " + " ".join(flags),
            "command": "process_container_jobs " + " ".join(flags),
            "jobs": n,
            "sequential": True,
            "statuses": self._counts(),
            "submit_to_start": latency_summary(self._start_latencies(ids)),
            "submit_to_done": latency_summary(self._done_latencies(ids)),
        }

    def _submit(self, n: int, queued: bool, keep: bool = False) -> list[str]:
        from container_manager.queue import queue_manager

        from container_manager.models import ContainerJob, ExecutorHost

        if not keep:
            ContainerJob.objects.all().delete()
        host, _ = ExecutorHost.objects.get_or_create(
            name="bench-docker",
            defaults={
                "host_type": "unix",
                "connection_string": DOCKER_URL,
                "executor_type": "docker",
                "auto_pull_images": False,
                "max_concurrent_jobs": n,
            },
        )
        ids = []
        for _ in range(n):
            job = ContainerJob.objects.create_job(image=IMAGE, command=COMMAND, docker_host=host)
            if queued:
                queue_manager.queue_job(job)
            ids.append(str(job.pk))
        return ids

    def _counts(self) -> dict[str, int]:
        from django.db.models import Count

        from container_manager.models import ContainerJob

        rows = ContainerJob.objects.values("status").annotate(count=Count("pk"))
        return {row["status"]: row["count"] for row in rows}

    def _start_latencies(self, ids: list[str]) -> list[float]:
        from container_manager.models import ContainerJob

        out = []
        for job in ContainerJob.objects.filter(pk__in=ids).exclude(execution_id=""):
            started = self.starts.get(job.execution_id)
            if started:
                out.append(started - job.created_at.timestamp())
        return out

    def _done_latencies(self, ids: list[str]) -> list[float]:
        from container_manager.models import ContainerJob

        # Its own completion time: it has no later "results stored" time to read.
        rows = ContainerJob.objects.filter(
            pk__in=ids, status__in=TERMINAL, completed_at__isnull=False
        )
        return [(job.completed_at - job.created_at).total_seconds() for job in rows]

    def _remove_leftovers(self) -> None:
        """Its queue mode never harvests: remove the containers it left (by its own label)."""
        import docker

        client = docker.DockerClient(base_url=DOCKER_URL)
        for container in client.containers.list(all=True, filters={"label": _PEER_LABEL}):
            container.remove(force=True)

    def _watch_starts(self) -> None:
        """Record the engine's own start time of every container (container start events)."""
        import docker

        client = docker.DockerClient(base_url=DOCKER_URL)
        for event in client.events(decode=True, filters={"type": "container", "event": "start"}):
            self.starts[event["id"]] = event["timeNano"] / 1e9


if __name__ == "__main__":
    main()
