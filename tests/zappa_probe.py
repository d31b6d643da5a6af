"""Run inside an unzipped zappa bundle as Lambda would, and send it the events AWS sends.

``python -S tests/zappa_probe.py BUNDLE_DIR``: only the bundle is importable; prints one JSON line.
"""

import json
import os
import re
import sys
import time
from datetime import timedelta

HOST = "abc123.execute-api.eu-west-1.amazonaws.com"


def main(bundle: str) -> dict:
    sys.path[:0] = [bundle]
    os.chdir(bundle)
    import handler
    import zappa_settings

    def call(event):
        return handler.lambda_handler(event, None)

    result = {"migrate": call({"manage": "migrate --noinput"})}
    login = call(_http_get("/admin/login/", zappa_settings.API_STAGE))
    body = login.get("body", "")
    result["login"] = {"status": login["statusCode"], "form": 'id="login-form"' in body}
    stylesheet = re.search(rf'href="/{zappa_settings.API_STAGE}(/static/[^"]+\.css)"', body)
    result["stylesheet"] = stylesheet.group(1) if stylesheet else None
    if stylesheet:
        served = call(_http_get(stylesheet.group(1), zappa_settings.API_STAGE))
        result["stylesheet_status"] = served["statusCode"]

    from django.utils import timezone

    from container_manager.models import ContainerJob, ExecutorHost

    host = ExecutorHost.objects.create(
        name="mock", executor_type="mock", connection_string="mock://"
    )
    job = ContainerJob.objects.create_job(image="x", command="true", docker_host=host)
    ContainerJob.objects.filter(pk=job.pk).update(created_at=timezone.now() - timedelta(minutes=1))
    rule = f"arn:aws:events:eu-west-1:123456789012:rule/{handler_rule(zappa_settings)}"
    result["sweep"] = call({"detail-type": "Scheduled Event", "source": "aws.events",
                           "resources": [rule], "detail": {}})  # fmt: skip

    [queue_arn] = zappa_settings.AWS_EVENT_MAPPING
    result["batches"] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        status = ContainerJob.objects.get(pk=job.pk).status
        if status in ("completed", "failed"):
            break
        records = _receive(queue_arn)
        if records:
            result["batches"].append(call({"Records": records}))
    result["job"] = ContainerJob.objects.get(pk=job.pk).status
    result.update(_task_event(call, queue_arn))
    return result


def _task_event(call, queue_arn: str) -> dict:
    """An ECS Task State Change for a running job, on the queue as EventBridge puts it there."""
    from container_manager.engine import steps
    from container_manager.models import ContainerJob, ExecutorHost

    host = ExecutorHost.objects.create(
        name="mock-long", executor_type="mock", connection_string="mock://",
        executor_config={"duration": 3600},
    )  # fmt: skip
    job = ContainerJob.objects.create_job(image="x", command="true", docker_host=host)
    steps.launch(job.pk)
    job.refresh_from_db()
    detail = {
        "taskArn": job.execution_id,
        "lastStatus": "STOPPED",
        "version": 7,
        "startedBy": f"cm-{job.id.hex}-1",
        "containers": [],
        "stopCode": "TaskFailedToStart",
    }
    event = {"version": "0", "id": "e-1", "detail-type": "ECS Task State Change",
             "source": "aws.ecs", "region": "eu-west-1", "resources": [job.execution_id],
             "detail": detail}  # fmt: skip
    record = {"messageId": "ecs-1", "body": json.dumps(event), "eventSource": "aws:sqs",
              "eventSourceARN": queue_arn, "awsRegion": "eu-west-1"}  # fmt: skip
    answer = call({"Records": [record]})
    job.refresh_from_db()
    version = job.executor_metadata["ecs_task"]["version"]
    return {"task_event": answer, "task_event_version": version}


def handler_rule(zappa_settings) -> str:
    """The rule name zappa gives the sweep's schedule: its handler routes on the last part."""
    return f"{zappa_settings.PROJECT_NAME}-{zappa_settings.API_STAGE}-functions.handlers.sweep"


def _http_get(path: str, stage: str) -> dict:
    """An API Gateway (REST, proxy) event, as it reaches the function."""
    return {
        "resource": "/{proxy+}",
        "path": path,
        "httpMethod": "GET",
        "headers": {"Host": HOST, "X-Forwarded-Proto": "https", "Accept": "text/html"},
        "multiValueHeaders": {},
        "queryStringParameters": None,
        "pathParameters": {"proxy": path.lstrip("/")},
        "requestContext": {"stage": stage, "httpMethod": "GET", "path": f"/{stage}{path}"},
        "body": None,
        "isBase64Encoded": False,
    }


def _receive(queue_arn: str) -> list[dict]:
    """Messages from the queue the deployment sends to, as SQS records for the function."""
    import boto3

    client = boto3.client("sqs", endpoint_url=os.environ["CM_SQS_ENDPOINT_URL"])
    url = os.environ["CM_SQS_QUEUE_URL"]
    messages = client.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
    records = []
    for m in messages.get("Messages", []):
        client.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
        records.append({"messageId": m["MessageId"], "body": m["Body"], "eventSource": "aws:sqs",
                        "eventSourceARN": queue_arn, "awsRegion": "eu-west-1"})  # fmt: skip
    return records


if __name__ == "__main__":
    sys.stdout.write(json.dumps(main(sys.argv[1]), default=str) + "\n")
