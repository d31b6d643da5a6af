"""Platform events against polling, side by side in one run: Docker latency and checks per job.

Docker: the floor, then polling, engine events, every event dropped. Fargate on moto: checks.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import docker  # noqa: E402 - after the path setup, like every benchmark script
from _common import DOCKER_URL, IMAGE, latency_summary, setup_django, write_result  # noqa: E402
from floor import _one_job, _sequential  # noqa: E402
from ours import Bench, _fresh_sqlite_url  # noqa: E402

#: How far apart checks are while events flow, in the run whose events are all dropped.
DROPPED_CHECK_DELAY = 2.0
#: moto moves a task one state on (RUNNING -> ... -> STOPPED, four moves) after this long.
MOTO_STEP_SECONDS = 1.0


def main() -> None:
    """Run the floor and the three Docker modes, write results/events.json."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=50, help="jobs per mode, one at a time")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--fargate-n", type=int, default=20, help="Fargate jobs per mode (moto)")
    args = parser.parse_args()
    client = docker.DockerClient(base_url=DOCKER_URL, timeout=120)
    client.images.get(IMAGE)
    _one_job(client, time.time())
    result: dict[str, Any] = {"image": IMAGE, "jobs": args.n}
    result["floor"] = _sequential(client, args.n)
    setup_django(_fresh_sqlite_url(), args.workers)
    bench = Bench("docker", args.workers)
    result["polling"] = docker_mode(bench, args.n, events=False)
    result["events"] = docker_mode(bench, args.n, events=True, floor_client=client)
    result["events_dropped"] = docker_mode(bench, args.n, events=True, drop=True)
    result["floor_again"] = _sequential(client, args.n)
    if args.fargate_n:
        result["fargate"] = fargate_modes(bench, args.fargate_n)
    bench.close()
    write_result("events", result)
    _print(result)


def docker_mode(
    bench: Bench, n: int, events: bool, drop: bool = False, floor_client: Any = None
) -> dict[str, Any]:
    """Jobs one at a time through the local backend; latency, checks and harvests per job.

    With ``floor_client``, a floor job (docker-py alone) runs before each of ours, so the two
    are compared under the same load of the machine.
    """
    from django.conf import settings

    from container_manager import dispatch
    from container_manager.engine import flow
    from container_manager.events.docker import EngineFollower

    config = {**settings.CONTAINER_MANAGER, "INSTANCE": "bench-events"}
    config["DISPATCH"] = {
        **config["DISPATCH"],
        "OPTIONS": {**config["DISPATCH"]["OPTIONS"], "DOCKER_EVENTS": events},
    }
    if drop:
        config["CHECK_DELAY_WITH_EVENTS"] = DROPPED_CHECK_DELAY
    settings.CONTAINER_MANAGER = config
    real_on_event = EngineFollower._on_event
    if drop:
        EngineFollower._on_event = lambda self, event: None
    dispatch.reset_backend()
    try:
        host = bench._reset(max_concurrent=bench.workers)
        dispatch.get_backend().start()
        deadline = time.monotonic() + 30
        while events and not flow.events_flow(host):
            if time.monotonic() > deadline:
                raise RuntimeError("the Docker event stream did not open")
            time.sleep(0.01)
        totals, floor = [], []
        for _ in range(n):
            if floor_client is not None:
                submitted = time.time()
                _one_job(floor_client, submitted)
                floor.append(time.time() - submitted)
            job = bench._submit(host)
            bench.recorder.wait_done([str(job.pk)], timeout=120)
            totals.append(bench._job_latencies(job)[1])
        calls = bench.recorder.calls
        return {
            "submit_to_done": latency_summary(totals),
            "floor_interleaved": latency_summary(floor) if floor else None,
            "checks_per_job": round(calls.get("check", 0) / n, 3),
            "harvests_per_job": round(calls.get("harvest", 0) / n, 3),
            "check_results": dict(bench.recorder.results.get("check", {})),
            "harvest_results": dict(bench.recorder.results.get("harvest", {})),
            "outcomes": bench._outcomes(),
            "check_delay_with_events": config.get("CHECK_DELAY_WITH_EVENTS", 60.0),
        }
    finally:
        EngineFollower._on_event = real_on_event
        dispatch.reset_backend()


def fargate_modes(bench: Bench, n: int) -> dict[str, Any]:
    """Fargate on a moto server, polled and with ECS events through EventBridge and SQS."""
    from moto.moto_api import state_manager
    from moto.server import ThreadedMotoServer

    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "us-east-1"}.items():  # fmt: skip
        os.environ[name] = value
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    state_manager.set_transition("ecs::task", {"progression": "time", "seconds": MOTO_STEP_SECONDS})
    try:
        from tests.fakes.aws import Moto

        host, port = server.get_host_and_port()
        moto = Moto(f"http://{host}:{port}")
        return {
            "polling": _fargate_mode(bench, moto, n, events=False),
            "events": _fargate_mode(bench, moto, n, events=True),
            "moto_task_seconds": 4 * MOTO_STEP_SECONDS,
        }
    finally:
        state_manager.unset_transition("ecs::task")
        server.stop()


def _fargate_mode(bench: Bench, moto: Any, n: int, events: bool) -> dict[str, Any]:
    """``n`` jobs at once; with events, a thread plays ECS + EventBridge and one plays Lambda."""
    from django.conf import settings

    from container_manager import dispatch
    from container_manager.models import ContainerJob, ExecutorHost

    settings.CONTAINER_MANAGER = {
        **settings.CONTAINER_MANAGER,
        "PLATFORM_EVENTS": ["fargate"] if events else [],
        "CHECK_DELAY_WITH_EVENTS": 60.0,
    }
    dispatch.reset_backend()
    bench._reset(max_concurrent=bench.workers)
    stack = moto.stack()
    host = ExecutorHost.objects.create(
        name="bench-fargate", executor_type="fargate", executor_config=stack,
        max_concurrent_jobs=n,
    )  # fmt: skip
    stop = threading.Event()
    threads = [threading.Thread(target=_play_ecs_and_lambda, args=(moto, stack, stop), daemon=True)]
    if events:
        for thread in threads:
            thread.start()
    began = time.perf_counter()
    try:
        jobs = [ContainerJob.objects.create_job(image="busybox", command="true", docker_host=host)
                for _ in range(n)]  # fmt: skip
        bench.recorder.wait_done([str(job.pk) for job in jobs], timeout=300)
    finally:
        stop.set()
        dispatch.reset_backend()
    calls = bench.recorder.calls
    return {
        "jobs": n,
        "seconds": round(time.perf_counter() - began, 2),
        "checks_per_job": round(calls.get("check", 0) / n, 3),
        "harvests_per_job": round(calls.get("harvest", 0) / n, 3),
        "check_results": dict(bench.recorder.results.get("check", {})),
        "harvest_results": dict(bench.recorder.results.get("harvest", {})),
        "outcomes": bench._outcomes(),
    }


def _play_ecs_and_lambda(moto: Any, stack: dict[str, Any], stop: threading.Event) -> None:
    """ECS: a task seen STOPPED is announced once through EventBridge (rule to an SQS queue).

    Lambda: the queue's messages are handed to ``functions.handlers.sqs_batch``.
    """
    import boto3
    from django.db import connections

    from functions import handlers
    from tests.aws_support import lambda_event

    sqs = boto3.client("sqs", endpoint_url=moto.url, region_name="us-east-1")
    bridge = boto3.client("events", endpoint_url=moto.url, region_name="us-east-1")
    url = sqs.create_queue(QueueName=f"events-{stack['cluster']}")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]
    pattern = {"source": ["aws.ecs"], "detail-type": ["ECS Task State Change"],
               "detail": {"lastStatus": ["STOPPED"], "startedBy": [{"prefix": "cm-"}]}}  # fmt: skip
    rule = f"stopped-{stack['cluster']}"
    bridge.put_rule(Name=rule, EventPattern=json.dumps(pattern))
    bridge.put_targets(Rule=rule, Targets=[{"Id": "q", "Arn": arn["QueueArn"]}])
    announced: set[str] = set()
    try:
        while not stop.is_set():
            for task in list(moto.tasks(stack["cluster"], "cm-")):
                if task.task_arn in announced or task.last_status != "STOPPED":
                    continue
                announced.add(task.task_arn)
                detail = {
                    "taskArn": task.task_arn,
                    "taskDefinitionArn": task.task_definition_arn,
                    "lastStatus": "STOPPED",
                    "version": 5,
                    "startedBy": task.started_by,
                    "stopCode": "EssentialContainerExited",
                    "containers": [{"name": "job", "exitCode": 0}],
                }
                bridge.put_events(Entries=[{"Source": "aws.ecs", "Detail": json.dumps(detail),
                                            "DetailType": "ECS Task State Change"}])  # fmt: skip
            messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10,
                                           WaitTimeSeconds=0).get("Messages", [])  # fmt: skip
            if messages:
                handlers.sqs_batch(lambda_event(messages, arn["QueueArn"]))
                for message in messages:
                    sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
            stop.wait(0.1)
    finally:
        connections.close_all()


def _print(result: dict[str, Any]) -> None:
    floor = result["floor"]["submit_to_done"]["p50_ms"]
    again = result["floor_again"]["submit_to_done"]["p50_ms"]
    print(f"floor p50 {floor} ms (again after the runs: {again} ms)")
    for mode, part in result.get("fargate", {}).items():
        if isinstance(part, dict):
            checks, harvests = part["checks_per_job"], part["harvests_per_job"]
            print(f"fargate {mode:8} checks/job {checks}, harvests/job {harvests}, "
                  f"outcomes {part['outcomes']}")  # fmt: skip
    interleaved = result["events"]["floor_interleaved"]["p50_ms"]
    events = result["events"]["submit_to_done"]["p50_ms"]
    print(f"events p50 {events} ms against the interleaved floor {interleaved} ms: "
          f"floor + {events - interleaved:.0f} ms")  # fmt: skip
    for mode in ("polling", "events", "events_dropped"):
        part = result[mode]
        p50 = part["submit_to_done"]["p50_ms"]
        print(f"{mode:15} p50 {p50} ms (floor + {p50 - floor:.0f} ms), "
              f"checks/job {part['checks_per_job']}, harvests/job {part['harvests_per_job']}, "
              f"outcomes {part['outcomes']}")  # fmt: skip


if __name__ == "__main__":
    main()
