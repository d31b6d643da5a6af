"""Webhook events under worker kills: is every job event received while workers are SIGKILLed?

PostgreSQL (a fresh database per run), mock jobs (``--duration`` s each) submitted in batches,
``--workers`` ``manage.py process_container_jobs`` processes of the checkout ``--repo`` (this
one by default, so an older checkout gives the baseline). Every 1-3 s one worker, at random,
is SIGKILLed and a new one started (``--kills`` times); then the workers run on until every
job is final and no delivery is pending (at most ``--drain`` s). A threaded HTTP server on
127.0.0.1 (an endpoint wanting every event, allowed by ``CM_WEBHOOK_ALLOWED_NETWORKS``)
records each POST's delivery id, event and job.
Expected: job.started for each job that moved to running, its final event for each job.
Writes results/webhook_faults_<label>_r<round>.json.
"""

from __future__ import annotations

import argparse
import http.server
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, write_result  # noqa: E402

SERVER = "postgres://container_manager:container_manager@127.0.0.1:5432"
TERMINAL = {"completed", "failed", "timeout", "cancelled"}


def main() -> None:
    """Parse flags, run the kills, count the events, write the figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=150)
    parser.add_argument("--kills", type=int, default=15)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--duration", type=float, default=0.5, help="seconds a mock job runs")
    parser.add_argument("--poll-interval", type=float, default=1.0)
    parser.add_argument("--drain", type=float, default=300.0, help="seconds at most after kills")
    parser.add_argument("--repo", type=Path, default=REPO, help="checkout whose code runs")
    parser.add_argument("--label", default="after")
    parser.add_argument("--round", type=int, default=1)
    args = parser.parse_args()
    name = f"webhook_faults_{args.label}_r{args.round}"
    database = f"cm_faults_{args.label}_r{args.round}"
    _recreate(database)
    env = _env(f"{SERVER}/{database}")
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "-v0"], cwd=args.repo, env=env, check=True
    )
    os.environ.update(env)
    sys.path.insert(0, str(args.repo.resolve()))
    import django

    django.setup()
    import container_manager

    result: dict[str, Any] = {"args": vars(args), "code": container_manager.__file__}
    result["loadavg_before"] = _loadavg()
    receiver = Receiver()
    try:
        result |= _run(args, env, receiver)
    finally:
        receiver.close()
    result["loadavg_after"] = _loadavg()
    print(json.dumps(result["counts"], indent=2), "\n", write_result(name, result))
    from django.db import connections

    connections.close_all()
    _drop(database)


def _run(args: Any, env: dict[str, str], receiver: Receiver) -> dict[str, Any]:
    from container_manager.models import ExecutorHost, WebhookEndpoint

    WebhookEndpoint.objects.create(url=receiver.url)
    host = ExecutorHost.objects.create(
        name="faults", executor_type="mock", connection_string="mock://",
        executor_config={"duration": args.duration}, max_concurrent_jobs=50,
    )  # fmt: skip
    rng = random.Random(args.round)
    workers = [_start(args, env) for _ in range(args.workers)]
    began, kills = time.monotonic(), []
    batches = [args.jobs // args.kills + (i < args.jobs % args.kills) for i in range(args.kills)]
    try:
        for batch in batches:
            _submit(host, batch)
            time.sleep(rng.uniform(1.0, 3.0))
            index = rng.randrange(len(workers))
            workers[index].kill()
            workers[index].wait(timeout=30)
            kills.append(round(time.monotonic() - began, 2))
            workers[index] = _start(args, env)
        drained = _drain(args.drain)
    finally:
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
        for worker in workers:
            try:
                worker.wait(timeout=60)
            except subprocess.TimeoutExpired:
                worker.kill()
    return {
        "kills_at_s": kills,
        "drained_after_kills_s": drained,
        "seconds": round(time.monotonic() - began, 1),
        **_count(receiver.received),
    }


class Receiver:
    """A threaded HTTP server on 127.0.0.1 answering 200 and recording each POST."""

    def __init__(self) -> None:
        self.received: list[tuple[str, str, str]] = []
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                delivery = self.headers["X-CM-Webhook-Delivery"]
                owner.received.append(
                    (delivery, self.headers["X-CM-Webhook-Event"], body["job"]["id"])
                )
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _count(received: list[tuple[str, str, str]]) -> dict[str, Any]:
    """Expected events against delivery rows and receipts."""
    from container_manager.conf import setting
    from container_manager.models import ContainerJob, WebhookDelivery

    jobs = list(ContainerJob.objects.values_list("pk", "status", "execution_id"))
    expected = {(str(pk), f"job.{status}") for pk, status, _ in jobs if status in TERMINAL}
    expected |= {(str(pk), "job.started") for pk, _, execution in jobs if execution}
    every_row = list(WebhookDelivery.objects.all())
    rows = {(str(r.job_id), r.event): r for r in every_row}
    sends = Counter(delivery for delivery, _, _ in received)
    got = {(job, event) for _, event, job in received}
    limit = setting("WEBHOOK_MAX_ATTEMPTS")
    lost = sorted(expected - got)
    counts = {
        "jobs": len(jobs),
        "jobs_by_status": dict(Counter(status for _, status, _ in jobs)),
        "events_expected": len(expected),
        "events_received": len(expected & got),
        "events_lost": len(lost),
        "lost_without_row": sum(1 for key in lost if key not in rows),
        "lost_with_row": {
            state: sum(1 for key in lost if key in rows and rows[key].state == state)
            for state in ("pending", "delivered", "failed")
        },
        "unexpected_events_received": len(got - expected),
        "receipts": len(received),
        "deliveries_received_twice_or_more": sum(1 for n in sends.values() if n > 1),
        "extra_receipts": sum(n - 1 for n in sends.values()),
        "events_with_two_rows": len(every_row) - len(rows),
        "events_received_under_two_ids": _multi_ids(received),
        "max_receipts_of_a_delivery": max(sends.values(), default=0),
        "max_attempts_of_a_row": max((r.attempts for r in every_row), default=0),
        "deliveries_sent_over_max_attempts": sum(1 for n in sends.values() if n > limit),
        "rows_over_max_attempts": sum(1 for r in every_row if r.attempts > limit),
        "rows_by_state": dict(Counter(r.state for r in every_row)),
        "webhook_max_attempts": limit,
    }
    return {"counts": counts, "lost": lost}


def _multi_ids(received: list[tuple[str, str, str]]) -> int:
    ids: dict[tuple[str, str], set[str]] = {}
    for delivery, event, job in received:
        ids.setdefault((job, event), set()).add(delivery)
    return sum(1 for found in ids.values() if len(found) > 1)


def _drain(limit: float) -> float | None:
    """Seconds until every job is final and no delivery pending; None if not within ``limit``."""
    from container_manager.models import ContainerJob, WebhookDelivery

    began = time.monotonic()
    while time.monotonic() - began < limit:
        busy = ContainerJob.objects.exclude(status__in=TERMINAL).exists()
        if not busy and not WebhookDelivery.objects.filter(state="pending").exists():
            time.sleep(1.0)  # a last POST answered but not yet recorded
            return round(time.monotonic() - began, 1)
        time.sleep(0.5)
    return None


def _submit(host: Any, n: int) -> None:
    """``n`` jobs whose launch messages this process drops: the workers' sweeps launch them."""
    from container_manager import dispatch
    from container_manager.dispatch.base import DispatchBackend
    from container_manager.models import ContainerJob

    class Dropped(DispatchBackend):
        def send(self, step: str, job_id: str, delay: float) -> None:
            pass

    with dispatch.use_backend(Dropped({})):
        for _ in range(n):
            ContainerJob.objects.create_job(image="mock", command="true", docker_host=host)


def _start(args: Any, env: dict[str, str]) -> subprocess.Popen:
    command = ["manage.py", "process_container_jobs", "--poll-interval", str(args.poll_interval)]
    worker = subprocess.Popen(
        [sys.executable, *command], cwd=args.repo, env=env, stdout=subprocess.PIPE, text=True
    )
    worker.stdout.readline()  # "processing jobs with …": started and resumed
    return worker


def _env(url: str) -> dict[str, str]:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "functions.settings",
        "DATABASE_URL": url,
        "CM_DISPATCH_BACKEND": "local",
        "CM_LOCAL_WORKERS": "4",
        "CM_SWEEP_INTERVAL": "0",
        "CM_LOG_LEVEL": "ERROR",
        "CM_WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8",  # the receiver listens on loopback
        "DJANGO_DEBUG": "0",
        "DJANGO_SECRET_KEY": "benchmark-only",
    }


def _recreate(database: str) -> None:
    _drop(database)
    _admin(f'CREATE DATABASE "{database}"')


def _drop(database: str) -> None:
    _admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


def _admin(sql: str) -> None:
    import psycopg

    with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as connection:
        connection.execute(sql)


def _loadavg() -> list[float]:
    return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]


if __name__ == "__main__":
    main()
