"""The workflow's graph on its admin page: the layout, the SVG, escaping, statements per page."""

import random
import re
from collections import Counter
from datetime import UTC, datetime
from itertools import pairwise

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from container_manager.admin import workflow_graph as graph
from container_manager.admin.workflow_graph import GraphNode
from container_manager.models import Workflow
from tests.test_workflow_objects import jobs_of, node
from tests.test_workflows import deliver_all

SHARDS = {"completed": 6, "failed": 3, "running": 3}
NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
DIAMOND = [("start", "left"), ("start", "right"), ("left", "join"), ("right", "join")]


def boxes(names, status="completed"):
    return [GraphNode(name=n, status=status, url=f"/job/{n}/", duration="0:00:01") for n in names]


def etl(quick, failing, slow, name="nightly-etl"):
    """A diamond whose ``transform`` fails on ``failing``, so ``load`` is skipped; a handler on
    its failure, a cleanup after ``load`` always, and an array of 12 on ``slow``."""
    return {
        "name": name,
        "nodes": {
            "extract": node(host=quick.name),
            "transform": node(host=failing.name, depends_on=["extract"]),
            "validate": node(host=quick.name, depends_on=["extract"]),
            "load": node(host=quick.name, depends_on=["transform", "validate"]),
            "page-oncall": node(
                host=quick.name, depends_on=[{"node": "transform", "on": "failure"}]
            ),
            "shards": node(host=slow.name, array_size=12, depends_on=["validate"]),
            "report": node(host=quick.name, depends_on=["shards"]),
            "cleanup": node(host=quick.name, depends_on=[{"node": "load", "on": "always"}]),
        },
    }


def change_page(client, workflow):
    return client.get(reverse("admin:container_manager_workflow_change", args=[workflow.pk]))


@pytest.fixture
def operator(client, db):
    user = User.objects.create_superuser("root", password="pw")
    client.force_login(user)
    return user


# -- layout --------------------------------------------------------------------


def test_a_diamond_has_three_layers_and_the_longest_path_wins():
    assert graph.layers("abcd", []) == {"a": 0, "b": 0, "c": 0, "d": 0}
    layer = graph.layers(["join", "left", "right", "start"], DIAMOND)
    assert layer == {"start": 0, "left": 1, "right": 1, "join": 2}
    # a shortcut start -> join does not pull join up: the longest path decides
    assert graph.layers(["join", "left", "right", "start"], [*DIAMOND, ("start", "join")]) == layer
    assert graph.order(layer, DIAMOND) == [["start"], ["left", "right"], ["join"]]


def test_the_layout_is_the_same_whatever_order_the_rows_come_in():
    rng = random.Random(29)
    names = [f"n{i:03d}" for i in range(120)]
    edges = sorted({(a, b) for a, b in (sorted(rng.sample(names, 2)) for _ in range(300))})
    first = graph.order(graph.layers(names, edges), edges)
    for _ in range(5):
        rng.shuffle(names)
        rng.shuffle(edges)
        assert graph.order(graph.layers(names, edges), edges) == first
    assert sorted(n for column in first for n in column) == sorted(names)


def test_the_barycenter_pass_uncrosses_two_parallel_chains():
    # by name alone, a1 -> z2 and b1 -> y2 would cross; after the pass they run side by side
    edges = [("a1", "z2"), ("b1", "y2"), ("z2", "z3"), ("y2", "y3")]
    columns = graph.order(graph.layers(["a1", "b1", "y2", "z2", "y3", "z3"], edges), edges)
    assert columns == [["a1", "b1"], ["z2", "y2"], ["z3", "y3"]]


def test_a_chain_of_a_thousand_nodes_needs_no_recursion_and_keeps_its_order():
    names = [f"n{i:04d}" for i in range(1000)]
    edges = [(a, b, "success") for a, b in pairwise(names)]
    layer = graph.layers(reversed(names), [(a, b) for a, b, _ in edges])
    assert [layer[n] for n in names] == list(range(1000))
    svg = graph.draw(boxes(names), edges, "chain")
    height = int(re.search(r'height="(\d+)"', svg).group(1))
    assert height == graph.BOX_H + 2 * graph.MARGIN  # one row: it scrolls sideways
    assert svg.count("marker-end=") == 999 and svg.count('<a href="/job/') == 1000


def test_an_edge_passing_behind_a_column_is_fainter_than_edges_between_neighbours():
    edges = [(a, b, "success") for a, b in [*DIAMOND, ("start", "join")]]
    svg = graph.draw(boxes(["join", "left", "right", "start"]), edges, "diamond")
    assert svg.count("marker-end=") == 5 and svg.count('stroke-opacity="0.35"') == 1


def test_a_wide_layer_wraps_so_the_drawing_stays_at_most_rows_boxes_tall():
    names = [f"leaf{i:04d}" for i in range(999)]
    edges = [("root", name, "success") for name in names]
    svg = graph.draw(boxes(["root", *names]), edges, "fan")
    height = int(re.search(r'height="(\d+)"', svg).group(1))
    assert height == graph.ROWS * (graph.BOX_H + graph.GAP_Y) - graph.GAP_Y + 2 * graph.MARGIN
    columns = Counter(re.findall(r'<rect x="(\d+)" y="\d+" width="184"', svg))
    assert max(columns.values()) == graph.ROWS and len(columns) == 1 + 999 // graph.ROWS + 1


# -- drawing -------------------------------------------------------------------


def test_boxes_say_status_and_time_in_words_and_conditional_edges_are_labelled():
    nodes = [
        GraphNode("start", "completed", "/a/", "0:00:02"),
        GraphNode("left", "failed", "/b/", "0:00:01"),
        GraphNode("notify", "running", "/c/", "0:00:04"),
        GraphNode("join", "skipped", "/d/", ""),
        GraphNode("shards", "running", "/e/", "0:01:00", SHARDS, 12),
    ]  # fmt: skip
    edges = [
        ("start", "left", "success"), ("left", "notify", "failure"), ("left", "join", "success"),
        ("join", "shards", "always"),
    ]  # fmt: skip
    svg = graph.draw(nodes, edges, "etl")
    assert "\u2717 failed</text>" in svg and "\u21b7 skipped</text>" in svg
    assert "did not run</text>" in svg and "running for 0:00:04</text>" in svg
    assert ">on failure</text>" in svg and ">always</text>" in svg
    assert svg.count('marker-end="url(#cm-arrow-success)"') == 2
    assert '<a href="/e/" class="cm-node cm-node-running"' in svg
    assert "running \u00b7 0:01:00<" in svg
    assert "6 ok, 3 failed, 3 running of 12</text>" in svg
    # the bar: 6 / 12 of 168 px green, then 3 / 12 red, then 3 / 12 blue
    assert re.findall(r'width="(\d+)" height="6" fill="(#\w+)"', svg) == [
        ("168", "#e0e0e0"), ("84", "#43a047"), ("42", "#e53935"), ("42", "#42a5f5"),
    ]  # fmt: skip


def test_every_text_is_escaped_and_long_names_are_cut_in_the_box_not_the_title():
    evil = '<script>alert("x")</script>'
    long = "a" * 40
    svg = graph.draw(
        [GraphNode(evil, "pending", '/x/"onmouseover="bad', ""), *boxes([long])],
        [(evil, long, "failure")],
        f"graph of {evil}",
    )
    assert "<script>" not in svg and 'onmouseover="bad' not in svg
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in svg
    assert f">{'a' * 21}\u2026</text>" in svg and f"<title>{long}: " in svg


# -- the page --------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_page_draws_the_graph_with_live_states_and_links(
    client, operator, recording, mock_host, make_mock_host
):
    failing = make_mock_host(name="failing", exit_code=3)
    spec = etl(mock_host, failing, mock_host, name="<script>alert(1)</script>")
    workflow = Workflow.objects.submit(spec, user=operator)
    live = change_page(client, workflow).content.decode()
    assert '<meta http-equiv="refresh" content="5">' in live and live.count("waiting</text>") == 7
    deliver_all(recording)
    page = change_page(client, workflow).content.decode()
    assert page.count('class="cm-graph"><svg') == 1
    assert "http-equiv" not in page  # finished: no reload
    assert "<script>alert(1)" not in page and "&lt;script&gt;alert(1)" in page
    jobs = jobs_of(workflow)
    for name, status in {"transform": "failed", "load": "skipped", "cleanup": "completed"}.items():
        url = reverse("admin:container_manager_containerjob_change", args=[jobs[name].pk])
        assert f'<a href="{url}" class="cm-node cm-node-{status}"' in page
    assert ">on failure</text>" in page and "12 ok, 0 failed, 0 running of 12</text>" in page


@pytest.mark.django_db(transaction=True)
def test_the_page_costs_the_same_statements_for_3_and_60_nodes(
    client, operator, recording, mock_host
):
    def spec(size):
        host = mock_host.name
        nodes = {"start": node(host=host), "shards": node(host=host, array_size=3)}
        after = ["start", "shards"]
        nodes.update({f"n{i}": node(host=host, depends_on=after) for i in range(size)})
        return {"nodes": nodes}

    small, big = Workflow.objects.submit(spec(1)), Workflow.objects.submit(spec(58))
    assert big.jobs.filter(array_parent__isnull=True).count() == 60
    change_page(client, small)  # fills the content-type cache
    counts = []
    for workflow in (small, big):
        with CaptureQueriesContext(connection) as page:
            assert change_page(client, workflow).status_code == 200
        with CaptureQueriesContext(connection) as drawn:
            graph.load(workflow, NOW)
        counts.append((len(page), len(drawn)))
    assert counts[0] == counts[1] and counts[0][1] == 3  # nodes, edges, array children


@pytest.mark.django_db(transaction=True)
def test_an_n_to_n_edge_is_drawn_child_by_child_and_long_counts_fit_their_box(recording, mock_host):
    # ``recording``: no step runs, none is left running into the teardown's flush.
    host = mock_host.name
    first = node(host=host, array_size=1000)
    middle = node(host=host, array_size=1000, depends_on=[{"node": "first", "type": "n_to_n"}])
    spec = {
        "nodes": {"first": first, "middle": middle, "last": node(host=host, depends_on=["middle"])}
    }
    workflow = Workflow.objects.submit(spec)
    nodes, edges = graph.load(workflow, NOW)
    # The parents are not linked (children are), yet the graph shows the stage order.
    assert ("first", "middle", "success n_to_n") in edges
    assert graph.layers([n.name for n in nodes], [(a, b) for a, b, _ in edges]) == {
        "first": 0, "middle": 1, "last": 2,
    }  # fmt: skip
    svg = graph.draw(nodes, edges, "stages")
    assert ">n_to_n</text>" in svg
    assert (
        'textLength="168" lengthAdjust="spacingAndGlyphs">0 ok, 0 failed, 0 running of 1000' in svg
    )
