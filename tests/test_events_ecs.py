"""ECS task state changes: EventBridge rule to the step queue (moto server), read by sqs_batch.

Duplicates, out-of-order versions, tasks that failed to start and out-of-memory kills.
"""

import json
import uuid

import pytest

from container_manager.engine import steps
from container_manager.events import ecs
from container_manager.models import ContainerJob, ExecutorHost
from functions import handlers
from tests.aws_support import lambda_event, receive
from tests.fakes.aws import ACCOUNT, REGION, moto, moto_server  # noqa: F401 - fixtures

pytestmark = pytest.mark.django_db(transaction=True)

OOM_REASON = "OutOfMemoryError: Container killed due to memory usage"


@pytest.fixture
def running(recording, moto):  # noqa: F811 - the fixture imported above
    """A Fargate job launched on moto's ECS and running: ``(job, stack)``."""
    stack = moto.stack()
    host = ExecutorHost.objects.create(
        name=f"fargate-{stack['cluster']}", executor_type="fargate", executor_config=stack
    )
    job = ContainerJob.objects.create_job(image="busybox", command="true", docker_host=host)
    assert steps.launch(job.pk) == "launched"
    recording.take()
    return ContainerJob.objects.get(pk=job.pk), stack


def stop_in_moto(moto, stack, arn):  # noqa: F811
    """Let moto's task reach STOPPED, as ECS's own view does before it sends the event."""
    for _ in range(10):
        task = moto.ecs.describe_tasks(cluster=stack["cluster"], tasks=[arn])["tasks"][0]
        if task["lastStatus"] == "STOPPED":
            return
    pytest.fail("moto's task did not stop")


def task_event(job, stack, version, status="STOPPED", containers=None, **detail):
    """An ECS Task State Change event as EventBridge delivers it (AWS's documented shape)."""
    arn = job.execution_id
    cluster = f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/{stack['cluster']}"
    if containers is None:
        containers = [{"name": "job", "lastStatus": status, "taskArn": arn,
                       "containerArn": f"{arn}/container", "exitCode": 0}]  # fmt: skip
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "ECS Task State Change",
        "source": "aws.ecs",
        "account": ACCOUNT,
        "time": "2026-12-01T10:00:05Z",
        "region": REGION,
        "resources": [arn],
        "detail": {
            "clusterArn": cluster,
            "taskArn": arn,
            "taskDefinitionArn": f"{cluster.replace(':cluster/', ':task-definition/')}:1",
            "lastStatus": status,
            "desiredStatus": "STOPPED",
            "startedBy": f"cm-{job.id.hex}-{job.attempt_count}",
            "group": f"family:{stack['cluster']}",
            "launchType": "FARGATE",
            "containers": containers,
            "version": version,
            "createdAt": "2026-12-01T10:00:00.000Z",
            "startedAt": "2026-12-01T10:00:01.000Z",
            "stoppedAt": "2026-12-01T10:00:04.500Z",
            "updatedAt": "2026-12-01T10:00:04.500Z",
            **detail,
        },
    }


def sqs_record(event, message_id="m-1"):
    return {"messageId": message_id, "body": json.dumps(event), "eventSource": "aws:sqs"}


def test_eventbridge_delivers_the_stop_to_the_queue_and_the_handler_harvests(running, moto):  # noqa: F811
    import boto3

    job, stack = running
    sqs = boto3.client("sqs", endpoint_url=moto.url, region_name=REGION)
    bridge = boto3.client("events", endpoint_url=moto.url, region_name=REGION)
    url = sqs.create_queue(QueueName=f"steps-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]
    cluster = f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/{stack['cluster']}"
    # The rule terraform/modules/aws/events.tf creates.
    pattern = {"source": ["aws.ecs"], "detail-type": ["ECS Task State Change"],
               "detail": {"clusterArn": [cluster], "lastStatus": ["STOPPED"]}}  # fmt: skip
    bridge.put_rule(Name="cm-task-stopped", EventPattern=json.dumps(pattern))
    bridge.put_targets(Rule="cm-task-stopped", Targets=[{"Id": "steps", "Arn": arn["QueueArn"]}])
    stop_in_moto(moto, stack, job.execution_id)
    oom = [{"name": "job", "lastStatus": "STOPPED", "exitCode": 137, "reason": OOM_REASON}]
    for status, version in (("RUNNING", 2), ("STOPPED", 4)):
        event = task_event(job, stack, version, status=status, containers=oom,
                           stopCode="EssentialContainerExited",
                           stoppedReason="Essential container in task exited")  # fmt: skip
        entry = {
            "Source": event["source"],
            "DetailType": event["detail-type"],
            "Detail": json.dumps(event["detail"]),
            "Resources": event["resources"],
        }
        assert bridge.put_events(Entries=[entry])["FailedEntryCount"] == 0
    messages = receive(sqs, url)
    assert [json.loads(m["Body"])["detail"]["version"] for m in messages] == [4]  # rule: STOPPED
    result = handlers.sqs_batch(lambda_event(messages, arn["QueueArn"]), None)
    assert result == {"batchItemFailures": []}
    done = ContainerJob.objects.get(pk=job.pk)
    assert (done.status, done.exit_code) == ("failed", 137)
    assert OOM_REASON in done.last_error and "EssentialContainerExited" in done.last_error
    assert done.executor_metadata["ecs_task"]["version"] == 4


def test_duplicates_and_older_versions_change_nothing(running, moto):  # noqa: F811
    job, stack = running
    newer = ecs.parse_event(task_event(job, stack, 3, status="DEPROVISIONING"))
    assert ecs.handle(newer).result == "recorded"
    assert ecs.handle(newer).result == "stale"
    assert (
        ecs.handle(ecs.parse_event(task_event(job, stack, 2, status="RUNNING"))).result == "stale"
    )
    kept = ContainerJob.objects.get(pk=job.pk)
    assert (kept.status, kept.executor_metadata["ecs_task"]["version"]) == ("running", 3)
    stop_in_moto(moto, stack, job.execution_id)
    stopped = ecs.parse_event(task_event(job, stack, 5))
    assert ecs.handle(stopped).result == "completed"
    assert ecs.handle(stopped).result == "unknown-task"  # late copy: the job is no longer running
    assert ContainerJob.objects.get(pk=job.pk).status == "completed"


def test_a_task_that_failed_to_start_fails_the_job_with_its_reason(running, moto):  # noqa: F811
    job, stack = running
    stop_in_moto(moto, stack, job.execution_id)
    reason = "CannotPullContainerError: pull image manifest has been retried 5 time(s)"
    event = task_event(job, stack, 2, containers=[], stopCode="TaskFailedToStart",
                       stoppedReason=reason)  # fmt: skip
    assert handlers.sqs_batch({"Records": [sqs_record(event)]}) == {"batchItemFailures": []}
    done = ContainerJob.objects.get(pk=job.pk)
    assert (done.status, done.exit_code) == ("failed", None)
    assert "TaskFailedToStart" in done.last_error and "CannotPullContainerError" in done.last_error


def test_events_of_other_tasks_pass_and_broken_ones_are_reported(running):
    job, stack = running
    other = task_event(job, stack, 2, startedBy="someone-else")
    unknown = task_event(job, stack, 2)
    unknown["detail"]["taskArn"] = unknown["resources"][0] = "arn:aws:ecs:task/nobody"
    broken = task_event(job, stack, 2)
    del broken["detail"]["version"]
    records = [sqs_record(other, "other"), sqs_record(unknown, "unknown"),
               sqs_record(broken, "broken")]  # fmt: skip
    assert handlers.sqs_batch({"Records": records}) == {
        "batchItemFailures": [{"itemIdentifier": "broken"}]
    }
    assert ecs.handle(ecs.parse_event(other)).result == "not-ours"
    assert ecs.handle(ecs.parse_event(unknown)).result == "unknown-task"
    assert ContainerJob.objects.get(pk=job.pk).status == "running"


def test_a_stop_ecs_has_not_described_yet_is_harvested_again_later(running, recording):
    job, stack = running
    # ECS still describes the task as running: its event came first.
    assert ecs.handle(ecs.parse_event(task_event(job, stack, 6))).result == "not-finished"
    [again] = recording.take()
    assert again[:2] == ("harvest", str(job.pk)) and again[2] == pytest.approx(5.0)
    assert ContainerJob.objects.get(pk=job.pk).status == "running"
