"""Outputs to dependents: a job's last stdout line as its JSON result, stored in its final move,
and given to the jobs that depend on it as ``CM_INPUT_<NODE>`` at their launch, both bounded.

Run on SQLite and on PostgreSQL (``DATABASE_URL``); the recording backend plays the transport.
"""

import json

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from container_manager import dispatch
from container_manager.admin.jobpage import outcome_block
from container_manager.engine import steps
from container_manager.engine.steps import common
from container_manager.executors.mock import MockExecutor
from container_manager.models import ContainerExecution, ContainerJob, Workflow
from tests.conftest import wait_for
from tests.support import row, submit
from tests.test_api import BEARER, conforms
from tests.test_statements import PLAIN, lifecycle, reads, verbs
from tests.test_workflows import deliver_all

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def launched(monkeypatch):
    """The environment of each launch request the mock executor gets, by job id."""
    seen = {}
    original = MockExecutor.launch_job

    def launch_job(self, request):
        seen[request.job_id] = dict(request.environment)
        return original(self, request)

    monkeypatch.setattr(MockExecutor, "launch_job", launch_job)
    return seen


def limits(settings, **values):
    """Change settings; the recording backend they make is the one that records from now on."""
    settings.CONTAINER_MANAGER = {**settings.CONTAINER_MANAGER, **values}
    return dispatch.get_backend()


def chain(hosts):
    """a -> b -> c, a and b returning results, each on its own host."""
    a, b, c = hosts
    return {
        "name": "chain",
        "nodes": {
            "a": {"docker_image": "x", "host": a.name, "returns_result": True},
            "b": {"docker_image": "x", "host": b.name, "returns_result": True, "depends_on": ["a"]},
            "c": {"docker_image": "x", "host": c.name, "depends_on": ["b"]},
        },
    }


def nodes_of(workflow):
    return {job.workflow_node: job for job in workflow.jobs.all()}


def test_a_result_goes_from_a_to_b_to_c(recording, make_mock_host, launched):
    hosts = (
        make_mock_host(stdout='counting\n{"rows": 3}\n\n'),
        make_mock_host(stdout='{"rows": 4, "from": "b"}'),
        make_mock_host(),
    )
    workflow = Workflow.objects.submit(chain(hosts))
    deliver_all(recording)
    jobs = nodes_of(workflow)
    assert {job.status for job in jobs.values()} == {"completed"}
    assert (jobs["a"].result, jobs["b"].result, jobs["c"].result) == (
        '{"rows": 3}',
        '{"rows": 4, "from": "b"}',
        None,
    )
    inputs = {
        name: {k: v for k, v in launched[str(job.pk)].items() if k.startswith("CM_INPUT_")}
        for name, job in jobs.items()
    }
    assert inputs == {
        "a": {},
        "b": {"CM_INPUT_A": '{"rows": 3}'},
        "c": {"CM_INPUT_B": '{"rows": 4, "from": "b"}'},
    }
    # Derived at each launch from the rows, never written to the dependent's row.
    assert "CM_INPUT" not in jobs["b"].override_environment
    again = common.build_launch_request(common.load(jobs["c"].pk))
    assert again.environment["CM_INPUT_B"] == '{"rows": 4, "from": "b"}'


def test_a_job_outside_a_workflow_gives_its_result_under_its_name(
    recording, make_mock_host, launched
):
    producer = submit(make_mock_host(stdout="[1, 2]"), name="load-rows", returns_result=True)
    anonymous = submit(make_mock_host(stdout="7"), returns_result=True)
    consumer = submit(make_mock_host(), depends_on=[producer, anonymous])
    deliver_all(recording)
    environment = launched[str(consumer.pk)]
    assert environment["CM_INPUT_LOAD_ROWS"] == "[1, 2]"
    assert environment[f"CM_INPUT_{str(anonymous.pk).upper().replace('-', '_')}"] == "7"


def test_each_child_of_a_dependent_array_gets_the_input(recording, make_mock_host, launched):
    producer = submit(make_mock_host(stdout='{"shards": 2}'), name="plan", returns_result=True)
    parent = submit(make_mock_host(), array_size=2, depends_on=[producer])
    deliver_all(recording)
    children = list(parent.array_children.all())
    assert [launched[str(c.pk)]["CM_INPUT_PLAN"] for c in children] == ['{"shards": 2}'] * 2


def test_two_dependencies_giving_one_variable_fail_the_dependent_at_launch(
    recording, make_mock_host
):
    first = submit(make_mock_host(stdout="1"), name="load rows", returns_result=True)
    second = submit(make_mock_host(stdout="2"), name="load-rows", returns_result=True)
    consumer = submit(make_mock_host(), depends_on=[first, second])
    deliver_all(recording)
    assert (row(consumer).status, row(consumer).last_error) == (
        "failed",
        "launch failed: inputs: two dependencies give CM_INPUT_LOAD_ROWS; name them apart",
    )


def test_a_result_larger_than_the_setting_fails_its_producer(recording, settings, make_mock_host):
    recording = limits(settings, WORKFLOW_OUTPUT_MAX_BYTES=10)
    producer = submit(make_mock_host(stdout='{"rows": 12345}'), returns_result=True)
    consumer = submit(make_mock_host(), depends_on=[producer])
    deliver_all(recording)
    producer = row(producer)
    assert (producer.status, producer.exit_code, producer.result) == ("failed", 0, None)
    assert producer.last_error == (
        "returns_result: the result is 15 bytes, more than WORKFLOW_OUTPUT_MAX_BYTES (10)"
    )
    attempt = ContainerExecution.objects.get(job=producer)
    assert (attempt.status, attempt.error) == ("failed", producer.last_error)
    assert row(consumer).status == "cancelled"


def test_no_json_last_line_fails_the_producer_and_skips_its_dependent(recording, make_mock_host):
    hosts = (make_mock_host(stdout='{"rows": 3}\ndone\n'), make_mock_host(), make_mock_host())
    workflow = Workflow.objects.submit(chain(hosts))
    deliver_all(recording)
    jobs = nodes_of(workflow)
    assert [jobs[n].status for n in "abc"] == ["failed", "skipped", "skipped"]
    assert jobs["a"].last_error == "returns_result: the last line of stdout is not JSON: done"
    assert workflow.status == "failed"


def test_a_job_without_returns_result_keeps_no_result_whatever_it_prints(recording, make_mock_host):
    job = submit(make_mock_host(stdout='{"rows": 3}'))
    deliver_all(recording)
    assert (row(job).status, row(job).result) == ("completed", None)


def test_inputs_larger_than_the_setting_fail_the_dependent_at_launch(
    recording, settings, make_mock_host, launched
):
    recording = limits(settings, WORKFLOW_INPUTS_MAX_BYTES=20)
    a = submit(make_mock_host(stdout='"0123456789"'), name="a", returns_result=True)
    b = submit(make_mock_host(stdout="[1]"), name="b", returns_result=True)
    consumer = submit(make_mock_host(), depends_on=[a, b])
    deliver_all(recording)
    consumer = row(consumer)
    assert consumer.status == "failed"
    assert consumer.last_error == (
        "launch failed: inputs: 37 bytes (CM_INPUT_A 23, CM_INPUT_B 14), "
        "more than WORKFLOW_INPUTS_MAX_BYTES (20)"
    )
    assert str(consumer.pk) not in launched
    assert slots_free(consumer)


def slots_free(job):
    return row(job).docker_host.slots_in_use() == 0


def test_an_array_with_returns_result_is_refused_naming_the_field(mock_host):
    with pytest.raises(ValidationError) as raised:
        submit(mock_host, array_size=3, returns_result=True)
    assert raised.value.message_dict == {
        "returns_result": ["returns_result: an array has no result; submit it without."]
    }
    spec = {"nodes": {"fan": {"docker_image": "x", "array_size": 2, "returns_result": True}}}
    with pytest.raises(ValidationError) as raised:
        Workflow.objects.submit(spec)
    assert list(raised.value.message_dict) == ["nodes.fan.returns_result"]
    assert not ContainerJob.objects.exists() and not Workflow.objects.exists()


def test_the_api_takes_returns_result_and_shows_the_result(client, settings, recording, mock_host):
    limits(settings, API_TOKENS=["api-test-token"])
    jobs = reverse("container_manager:api-jobs")
    bad = client.post(
        jobs, json.dumps({"docker_image": "x", "returns_result": "yes"}),
        content_type="application/json", headers=BEARER,
    )  # fmt: skip
    assert bad.status_code == 400
    assert bad.json()["fields"] == {
        "returns_result": ["returns_result: must be true or false, not a string."]
    }
    made = client.post(
        jobs, json.dumps({"docker_image": "x", "returns_result": True, "host": mock_host.name}),
        content_type="application/json", headers=BEARER,
    )  # fmt: skip
    assert made.status_code == 201
    assert (made.json()["returns_result"], made.json()["result"]) == (True, None)
    ContainerJob.objects.filter(pk=made.json()["id"]).update(result='{"rows": 3}')
    shown = client.get(made.json()["links"]["self"], headers=BEARER).json()
    assert shown["result"] == {"rows": 3}
    document = client.get(reverse("container_manager:api-openapi")).json()
    assert conforms(document, "Job", shown)
    submit_schema = document["components"]["schemas"]["JobSubmit"]["properties"]
    assert submit_schema["returns_result"]["type"] == "boolean"


def test_the_workflow_answer_and_the_admin_show_each_result(
    client, settings, recording, make_mock_host
):
    recording = limits(settings, API_TOKENS=["api-test-token"])
    hosts = (make_mock_host(stdout='{"rows": 3}'), make_mock_host(stdout="4"), make_mock_host())
    workflow = Workflow.objects.submit(chain(hosts))
    deliver_all(recording)
    answer = client.get(
        reverse("container_manager:api-workflow", args=[workflow.pk]), headers=BEARER
    ).json()
    assert {node["name"]: node["result"] for node in answer["nodes"]} == {
        "a": {"rows": 3},
        "b": 4,
        "c": None,
    }
    block = outcome_block(nodes_of(workflow)["a"], True, "-")
    assert "<code>{&quot;rows&quot;: 3}</code>" in block


def test_a_result_rides_in_the_final_move_and_inputs_cost_one_select(recording, make_mock_host):
    """A producer's launch and check are a plain job's statements; a dependent's launch reads
    the results once more, in one SELECT."""
    producer = submit(make_mock_host(stdout='{"rows": 3}'), returns_result=True)
    at_launch, at_check = lifecycle(recording, producer)
    expected = PLAIN[connection.vendor]
    assert {"launch": verbs(at_launch), "check": verbs(at_check)} == expected
    assert row(producer).result == '{"rows": 3}'
    consumer = submit(make_mock_host(), depends_on=[producer])
    recording.take()
    with CaptureQueriesContext(connection) as captured:
        assert steps.run_step("launch", consumer.pk) == "launched"
    statements = [query["sql"] for query in captured.captured_queries]
    inputs = reads(statements, "container_manager_jobdependency")
    assert len(inputs) == 1
    assert verbs([sql for sql in statements if sql not in inputs]) == expected["launch"]


@pytest.mark.docker
def test_a_container_prints_the_result_of_the_one_it_depends_on(local, docker_host, docker_ready):
    spec = {
        "name": "docker-chain",
        "nodes": {
            "a": {
                "docker_image": docker_ready, "host": docker_host.name, "returns_result": True,
                "command": """sh -c 'echo counting; echo "{\\"rows\\": 3}"'""",
            },
            "b": {
                "docker_image": docker_ready, "host": docker_host.name, "depends_on": ["a"],
                "command": """sh -c 'echo "a said $CM_INPUT_A"'""",
            },
        },
    }  # fmt: skip
    workflow = Workflow.objects.submit(spec)
    wait_for(lambda: not workflow.jobs.live().exists(), timeout=120)
    jobs = nodes_of(workflow)
    assert (jobs["a"].status, jobs["a"].result) == ("completed", '{"rows": 3}')
    assert (jobs["b"].status, jobs["b"].clean_output) == ("completed", 'a said {"rows": 3}\n')
