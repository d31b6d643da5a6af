"""A workflow submitted as one object: validation before any write, status from its nodes, cancel.

Run on SQLite and on PostgreSQL (``DATABASE_URL``); the recording backend plays the transport.
"""

import pytest
from django.contrib.auth.models import Permission, User
from django.core.exceptions import ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from container_manager.models import ContainerJob, JobDependency, Workflow
from container_manager.models.owners import owned_by
from tests.test_workflows import deliver_all

pytestmark = pytest.mark.django_db(transaction=True)


def node(**fields):
    return {"docker_image": "x", "command": "true", **fields}


def diamond(host, **extra):
    return {
        "name": "etl",
        "nodes": {
            "join": node(host=host.name, depends_on=["left", "right"], **extra),
            "left": node(host=host.name, depends_on=["start"]),
            "right": node(host=host.name, depends_on=["start"]),
            "start": node(host=host.name),
        },
    }


def stored():
    return (Workflow.objects.count(), ContainerJob.objects.count(), JobDependency.objects.count())


def jobs_of(workflow):
    return {job.workflow_node: job for job in workflow.jobs.all()}


def test_a_diamond_is_one_object_and_completes_in_order(recording, mock_host):
    workflow = Workflow.objects.submit(diamond(mock_host))
    assert workflow.status == "pending"
    jobs = jobs_of(workflow)
    assert sorted(jobs) == ["join", "left", "right", "start"]
    assert {j.pk for j in jobs["join"].depends_on.all()} == {jobs["left"].pk, jobs["right"].pk}
    assert jobs["join"].name == "join" and jobs["start"].docker_host == mock_host
    deliver_all(recording)
    jobs = jobs_of(workflow)
    assert {job.status for job in jobs.values()} == {"completed"}
    assert jobs["join"].started_at >= max(jobs["left"].completed_at, jobs["right"].completed_at)
    assert jobs["left"].started_at >= jobs["start"].completed_at
    assert workflow.status == "completed"


def test_a_failed_node_fails_the_workflow_and_skips_its_dependents(
    recording, mock_host, make_mock_host
):
    failing = make_mock_host(exit_code=3)
    spec = diamond(mock_host)
    spec["nodes"]["left"]["host"] = failing.name
    workflow = Workflow.objects.submit(spec)
    deliver_all(recording)
    statuses = {name: job.status for name, job in jobs_of(workflow).items()}
    assert statuses == {
        "start": "completed", "left": "failed", "right": "completed", "join": "skipped",
    }  # fmt: skip
    assert workflow.status == "failed"


def test_an_array_node_is_one_node(recording, mock_host):
    spec = {
        "nodes": {
            "shards": node(host=mock_host.name, array_size=3),
            "merge": node(host=mock_host.name, depends_on=["shards"]),
        }
    }
    workflow = Workflow.objects.submit(spec)
    assert workflow.jobs.count() == 2  # the children are the parent's, not the workflow's
    assert ContainerJob.objects.filter(array_parent__workflow=workflow).count() == 3
    deliver_all(recording)
    assert workflow.status == "completed"


@pytest.mark.parametrize(
    ("spec", "field", "words"),
    [
        ({"nodes": {"a": node(depends_on=["nope"])}}, "nodes.a.depends_on", "no node 'nope'"),
        ({"nodes": {"a": node(cpu_limit=99)}}, "nodes.a.cpu_limit", "between"),
        ({"nodes": {"a": node(memory_limit="x")}}, "nodes.a.memory_limit", "integer"),
        ({"nodes": {"a": node(array_size=1)}}, "nodes.a.array_size", "between 2"),
        ({"nodes": {"a": node(image="x")}}, "nodes.a.image", "renamed docker_image"),
        ({"nodes": {"a": {"command": "true"}}}, "nodes.a.docker_image", "required"),
        ({"nodes": {"a": node(host="nowhere")}}, "nodes.a.host", "no executor host"),
        ({"nodes": {"a": node(environment_template="none")}}, "nodes.a.environment_template",
         "no template"),
        ({"nodes": {"a": node(depends_on="b"), "b": node()}}, "nodes.a.depends_on", "list"),
        ({"nodes": {"a": "x"}}, "nodes.a", "object"),
        ({"nodes": {"1a": node()}}, "nodes", "'1a' is not a node name"),
        ({"nodes": {"a" * 64: node()}}, "nodes", "63 characters"),
        ({"nodes": {}}, "nodes", "at least one node"),
        ({"nodes": []}, "nodes", "at least one node"),
        ({"name": 3, "nodes": {"a": node()}}, "name", "string"),
        ({"nodes": {"a": node()}, "extra": 1}, "extra", "unknown field"),
    ],
)  # fmt: skip
def test_a_bad_spec_names_node_and_field_and_stores_nothing(mock_host, spec, field, words):
    spec["nodes"] = spec["nodes"] if not isinstance(spec["nodes"], dict) else {
        name: body | {"host": mock_host.name} if isinstance(body, dict) and "host" not in body
        else body
        for name, body in spec["nodes"].items()
    }  # fmt: skip
    # One good node beside the bad one: it must not be stored either.
    if isinstance(spec["nodes"], dict) and spec["nodes"]:
        spec["nodes"]["good"] = node(host=mock_host.name)
    before = stored()
    with pytest.raises(ValidationError) as raised:
        Workflow.objects.submit(spec)
    messages = raised.value.message_dict[field]
    assert any(m.startswith(f"{field}: ") and words in m for m in messages), messages
    assert stored() == before


def test_a_field_only_the_model_refuses_rolls_back_the_nodes_made_before(mock_host):
    """``create_job``'s own checks run inside the transaction: the first nodes go with it."""
    spec = {
        "nodes": {
            "first": node(host=mock_host.name),
            "second": node(host=mock_host.name, depends_on=["first"], docker_image=" "),
        }
    }
    before = stored()
    with pytest.raises(ValidationError) as raised:
        Workflow.objects.submit(spec)
    assert "nodes.second.docker_image" in raised.value.message_dict
    assert stored() == before


def test_a_cycle_is_named_node_by_node(mock_host):
    spec = {
        "nodes": {
            "start": node(),
            "a": node(depends_on=["start", "c"]),
            "b": node(depends_on=["a"]),
            "c": node(depends_on=["b"]),
        }
    }
    with pytest.raises(ValidationError) as raised:
        Workflow.objects.submit(spec)
    [message] = raised.value.message_dict["nodes"]
    assert message == "nodes: a cycle: a -> c -> b -> a (each waits for the next)."
    assert stored() == (0, 0, 0)


def test_more_nodes_than_the_setting_allows_is_refused(mock_host, settings):
    settings.CONTAINER_MANAGER = {"WORKFLOW_MAX_NODES": 2}
    spec = {"nodes": {name: node(host=mock_host.name) for name in "abc"}}
    with pytest.raises(ValidationError, match="at most 2 nodes"):
        Workflow.objects.submit(spec)
    assert stored() == (0, 0, 0)


def chain(host, n):
    names = [f"n{i}" for i in range(n)]
    return {
        "nodes": {
            name: node(host=host.name, depends_on=names[i - 1 : i]) for i, name in enumerate(names)
        }
    }


def test_statements_grow_by_a_constant_per_node(recording, mock_host):
    counts = {}
    for n in (3, 30):
        with CaptureQueriesContext(connection) as queries:
            Workflow.objects.submit(chain(mock_host, n))
        counts[n] = len(queries)
    # One INSERT per node (create_job; its host named in the spec) and six whatever the size:
    # the named hosts' SELECT, the workflow's INSERT, the edges' INSERT and flag UPDATE, and
    # the transaction's two; no statement per edge.
    assert counts == {3: 3 + 6, 30: 30 + 6}


def test_cancel_cancels_what_has_not_finished_and_is_safe_twice(recording, mock_host):
    workflow = Workflow.objects.submit(diamond(mock_host))
    jobs = jobs_of(workflow)
    recording.take()
    from container_manager.engine import steps

    for name in ("start",):
        steps.run_step("launch", jobs[name].pk)
    assert workflow.cancel() is True
    assert workflow.cancel_requested_at is not None
    first = workflow.cancel_requested_at
    sent = recording.take()
    assert sorted(job_id for step, job_id, _ in sent if step == "cancel") == sorted(
        str(job.pk) for job in jobs.values()
    )
    assert workflow.cancel() is True  # still live until the steps run; nothing is sent again
    assert recording.take() == [] and workflow.cancel_requested_at == first
    for _step, job_id, _ in sent:
        steps.run_step("cancel", job_id)
    deliver_all(recording)
    assert workflow.status == "cancelled"
    assert workflow.cancel() is False


def test_cancel_leaves_finished_nodes_alone(recording, mock_host):
    spec = {"nodes": {"a": node(host=mock_host.name), "b": node(host=mock_host.name)}}
    workflow = Workflow.objects.submit(spec)
    jobs = jobs_of(workflow)
    recording.take()
    from container_manager.engine import steps

    steps.run_step("launch", jobs["a"].pk)
    deliver_all(recording)
    assert workflow.status == "running"
    workflow.cancel()
    deliver_all(recording)
    statuses = {name: job.status for name, job in jobs_of(workflow).items()}
    assert statuses == {"a": "completed", "b": "cancelled"}
    assert workflow.status == "cancelled"


def test_a_workflow_and_its_jobs_are_their_owners(recording, mock_host):
    alice = User.objects.create_user("alice")
    bob = User.objects.create_user("bob")
    workflow = Workflow.objects.submit(diamond(mock_host), user=alice)
    assert {job.created_by for job in workflow.jobs.all()} == {alice}
    assert list(owned_by(Workflow.objects.all(), alice)) == [workflow]
    assert list(owned_by(Workflow.objects.all(), bob)) == []
    bob.user_permissions.add(Permission.objects.get(codename="view_all_jobs"))
    bob = User.objects.get(pk=bob.pk)
    assert list(owned_by(Workflow.objects.all(), bob)) == [workflow]


def test_the_admin_lists_workflows_and_links_each_node_read_only(client, recording, mock_host):
    admin_user = User.objects.create_superuser("root", password="pw")
    client.force_login(admin_user)
    workflow = Workflow.objects.submit(diamond(mock_host), user=admin_user)
    Workflow.objects.submit(diamond(mock_host))
    changelist = reverse("admin:container_manager_workflow_changelist")
    with CaptureQueriesContext(connection) as two:
        page = client.get(changelist)
    assert page.status_code == 200 and page.content.count(b"etl") >= 2
    for _ in range(3):
        Workflow.objects.submit(diamond(mock_host))
    with CaptureQueriesContext(connection) as five:
        client.get(changelist)
    assert len(five) == len(two)  # the statuses come with the rows: no query per row
    assert b"pending" in page.content
    change = client.get(reverse("admin:container_manager_workflow_change", args=[workflow.pk]))
    assert change.status_code == 200
    for name, job in jobs_of(workflow).items():
        job_page = reverse("admin:container_manager_containerjob_change", args=[job.pk])
        assert f'<td>{name}</td><td><a href="{job_page}">'.encode() in change.content
    assert b"left, right" in change.content  # what join waits for
    assert b'name="_save"' not in change.content  # read-only
    assert client.get(reverse("admin:container_manager_workflow_add")).status_code == 403


def test_the_workflow_row_keeps_no_environment_value(recording, mock_host):
    spec = diamond(mock_host, environment_vars={"TOKEN": "s3cr3t-Value", "MODE": "fast"})
    workflow = Workflow.objects.submit(spec)
    kept = Workflow.objects.get(pk=workflow.pk).spec
    assert kept["nodes"]["join"]["environment_vars"] == {"TOKEN": "********", "MODE": "********"}
    assert "s3cr3t-Value" not in str(kept)
    assert spec["nodes"]["join"]["environment_vars"]["TOKEN"] == "s3cr3t-Value"  # not mutated
    assert "s3cr3t-Value" in jobs_of(workflow)["join"].override_environment  # the job runs with it
