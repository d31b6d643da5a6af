"""moto in server mode for the Fargate executor: ECS and CloudWatch Logs over HTTP.

moto runs in a thread of the test process, so a test can also reach its in-process
backend for what the HTTP API cannot do (set a container's exit code, forget a task).
"""

import contextlib
import time
import uuid

import pytest

REGION = "us-east-1"
ACCOUNT = "123456789012"
FAKE_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
}


class Moto:
    """A running moto server: its URL, boto3 clients on it, and its in-process ECS backend."""

    def __init__(self, url):
        import boto3

        self.url = url
        self.ecs = boto3.client("ecs", endpoint_url=url, region_name=REGION)
        self.logs = boto3.client("logs", endpoint_url=url, region_name=REGION)
        self.ec2 = boto3.client("ec2", endpoint_url=url, region_name=REGION)

    def backend(self):
        """moto's in-process ECS backend (used only where HTTP cannot do it)."""
        from moto.backends import get_backend

        return get_backend("ecs")[ACCOUNT][REGION]

    def stack(self, log_group="cm-jobs", prefix="cm"):
        """A cluster, a network, a Fargate task definition logging to CloudWatch: the config."""
        name = f"cm-{uuid.uuid4().hex[:8]}"
        vpc = self.ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        # moto builds the task's ENI only in a VPC with DNS host names.
        self.ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})
        subnet = self.ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.0.0/24")["Subnet"]["SubnetId"]
        group = self.ec2.create_security_group(GroupName=name, Description="jobs", VpcId=vpc)
        self.ecs.create_cluster(clusterName=name)
        self.ecs.register_task_definition(
            family=name,
            requiresCompatibilities=["FARGATE"],
            networkMode="awsvpc",
            cpu="256",
            memory="512",
            containerDefinitions=[
                {
                    "name": "job",
                    "image": "busybox",
                    "cpu": 256,
                    "memory": 512,  # moto needs a container-level size
                    "logConfiguration": {
                        "logDriver": "awslogs",
                        "options": {
                            "awslogs-group": log_group,
                            "awslogs-stream-prefix": prefix,
                            "awslogs-region": REGION,
                        },
                    },
                }
            ],
        )
        with contextlib.suppress(self.logs.exceptions.ResourceAlreadyExistsException):
            self.logs.create_log_group(logGroupName=log_group)
        return {
            "cluster": name,
            "task_definition": name,
            "subnets": [subnet],
            "security_groups": [group["GroupId"]],
            "region": REGION,
            "endpoint_url": self.url,
            "log_wait_seconds": 0,
            "image": "busybox",  # the task definition's: jobs naming it are accepted
        }

    def tasks(self, cluster, started_by_prefix=""):
        """Every task of the cluster (all states) whose startedBy begins with the prefix."""
        tasks = self.backend().tasks.get(cluster, {}).values()
        return [t for t in tasks if t.started_by.startswith(started_by_prefix)]

    def write_logs(self, group, stream, lines, first=0):
        """Put lines in a CloudWatch stream over HTTP, as the awslogs driver would.

        ``first`` shifts the timestamps, so batches written in one millisecond keep their order.
        """
        with contextlib.suppress(self.logs.exceptions.ResourceAlreadyExistsException):
            self.logs.create_log_stream(logGroupName=group, logStreamName=stream)
        now = int(time.time() * 1000)
        events = [{"timestamp": now + first + i, "message": line} for i, line in enumerate(lines)]
        if events:
            self.logs.put_log_events(logGroupName=group, logStreamName=stream, logEvents=events)

    def set_task_progression(self, times):
        """How many describe calls move a task one state on (RUNNING -> ... -> STOPPED)."""
        from moto.moto_api import state_manager

        state_manager.set_transition("ecs::task", {"progression": "manual", "times": times})


@pytest.fixture(scope="session")
def moto_server():
    """A moto server on 127.0.0.1 with fake credentials in the environment."""
    try:
        from moto.server import ThreadedMotoServer
    except ImportError as exc:  # pragma: no cover - the dev extra installs moto[server]
        from tests.conftest import missing_service

        missing_service(f"moto[server] not installed: {exc}")
    with pytest.MonkeyPatch.context() as patch:
        for key, value in FAKE_ENV.items():
            patch.setenv(key, value)
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        try:
            yield Moto(f"http://{host}:{port}")
        finally:
            server.stop()


@pytest.fixture
def moto(moto_server):
    """The moto server with tasks that stop after a few describes, reset after the test."""
    moto_server.set_task_progression(1)
    yield moto_server
    from moto.moto_api import state_manager

    state_manager.unset_transition("ecs::task")
