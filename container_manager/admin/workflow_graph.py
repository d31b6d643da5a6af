"""A workflow's graph for its admin page: a layered layout computed here and drawn as inline SVG.

Three statements whatever the size (nodes, edges, the arrays' children by status); no script.
The SVG is built as text, every value that is not one of our numbers through ``html.escape``.
"""

from __future__ import annotations

import math
import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from html import escape
from typing import Any

from django.db.models import Count
from django.urls import reverse
from django.utils.safestring import SafeString, mark_safe

from container_manager.admin._display import format_duration
from container_manager.models import ContainerJob, JobDependency
from container_manager.rules import array_edges
from container_manager.rules import status as st

#: While the workflow is live its page reloads this often, so the graph shows live states.
RELOAD_SECONDS = 5
#: At most this many boxes are stacked in one column; a wider layer wraps into more columns.
ROWS = 8
BOX_W, BOX_H, GAP_X, GAP_Y, MARGIN = 184, 72, 72, 14, 12
#: Characters of a node's name drawn in its box; the whole name is in the box's title.
NAME_CHARS = 22
#: Characters of the third line that fit a box at its font; a longer line is squeezed in.
LINE_CHARS = 30
#: The label of an edge on which each child waits for the child of the same index.
CHILD_BY_CHILD = "n_to_n"
#: Fill, border and text colour, and a symbol, per status: the status is also written out.
STYLES = {
    st.PENDING: ("#e8eaf6", "#303f9f", "#303f9f", "\u2026"),
    st.LAUNCHING: ("#e3f2fd", "#0d47a1", "#0d47a1", "\u25b6"),
    st.RUNNING: ("#e3f2fd", "#0d47a1", "#0d47a1", "\u25b6"),
    st.COMPLETED: ("#e8f5e9", "#1b5e20", "#1b5e20", "\u2713"),
    st.FAILED: ("#ffebee", "#b71c1c", "#b71c1c", "\u2717"),
    st.TIMEOUT: ("#ffebee", "#b71c1c", "#b71c1c", "\u2717"),
    st.CANCELLED: ("#fff3e0", "#8d4a00", "#8d4a00", "\u2298"),
    st.SKIPPED: ("#f5f5f5", "#757575", "#616161", "\u21b7"),
}
#: Stroke colour and dash pattern per edge condition; conditions but ``success`` are labelled.
EDGE_STYLES = {
    st.SUCCESS: ("#757575", ""),
    st.FAILURE: ("#b71c1c", "6 4"),
    st.ALWAYS: ("#6a1b9a", "2 3"),
}
#: The array progress bar's segments: children in these statuses, in this colour.
BAR = (
    ((st.COMPLETED,), "#43a047"),
    ((st.FAILED, st.TIMEOUT), "#e53935"),
    ((st.LAUNCHING, st.RUNNING), "#42a5f5"),
)
_PLACEHOLDER = uuid.UUID(int=0)


@dataclass(frozen=True)
class GraphNode:
    """One box: a workflow node's job (an array parent stands for its whole array)."""

    name: str
    status: str
    url: str
    #: How long it ran (so far, while live), as ``0:01:15``; empty when it has not started.
    duration: str
    #: Children per status of an array node; None for a single job.
    children: dict[str, int] | None = None
    size: int = 0


def page_context(workflow: Any, now: datetime) -> dict[str, Any]:
    """What the workflow's change page adds: the graph, and whether it reloads (still live)."""
    nodes, edges = load(workflow, now)
    title = f"The graph of {workflow}: {len(nodes)} nodes, {len(edges)} edges"
    return {
        "cm_graph": draw(nodes, edges, title),
        "cm_reload_seconds": RELOAD_SECONDS if workflow.status in st.LIVE else None,
    }


def load(workflow: Any, now: datetime) -> tuple[list[GraphNode], list[tuple[str, str, str]]]:
    """The workflow's nodes and its edges ``(dependency, dependent, condition)`` by node name.

    Three statements whatever the number of nodes: the nodes' jobs, the edges between them,
    and (only when there is an array) its children counted by parent and status. The
    ``n_to_n`` edges between arrays, whose rows join their children, come from the
    workflow's document (``child_edges``).
    """
    rows = list(
        workflow.jobs.filter(array_parent__isnull=True)
        .order_by()
        .values_list("pk", "workflow_node", "status", "started_at", "completed_at", "array_size")
    )
    names = {pk: name for pk, name, *_ in rows}
    edges = [
        (names[dep], names[job], condition)
        for job, dep, condition in JobDependency.objects.filter(job__workflow=workflow)
        .order_by()
        .values_list("job_id", "depends_on_id", "condition")
        if job in names and dep in names
    ]
    edges += child_edges(workflow.spec or {}, set(names.values()))
    arrays = [pk for pk, *_, size in rows if size is not None]
    counts: dict[Any, dict[str, int]] = defaultdict(dict)
    if arrays:
        children = ContainerJob.objects.filter(array_parent__in=arrays).order_by()
        for parent, status, n in children.values_list("array_parent", "status").annotate(
            n=Count("pk")
        ):
            counts[parent][status] = n
    url = reverse("admin:container_manager_containerjob_change", args=[_PLACEHOLDER])
    nodes = [
        GraphNode(
            name=name,
            status=status,
            url=url.replace(str(_PLACEHOLDER), str(pk)),
            duration=span(started, completed, now),
            children=dict(counts[pk]) if size is not None else None,
            size=size or 0,
        )
        for pk, name, status, started, completed, size in rows
    ]
    return nodes, edges


def child_edges(spec: dict[str, Any], names: set[str]) -> list[tuple[str, str, str]]:
    """The ``n_to_n`` edges between array nodes, from the workflow's document (no query).

    Their rows join child to child (``rules.array_edges``), so the nodes' own edges miss them;
    drawn as ``(dependency, dependent, "<condition> n_to_n")``.

    >>> child_edges({"nodes": {"b": {"depends_on": [{"node": "a", "type": "n_to_n"}]}}},
    ...     {"a", "b"})
    [('a', 'b', 'success n_to_n')]
    """
    found = []
    for name, body in spec.get("nodes", {}).items():
        items = body.get("depends_on", []) if isinstance(body, dict) else []
        for item in items:
            per_child = isinstance(item, dict) and item.get("type") == array_edges.N_TO_N
            if per_child and name in names and item.get("node") in names:
                kind = f"{item.get('on', st.SUCCESS)} {array_edges.N_TO_N}"
                found.append((item["node"], name, kind))
    return found


def layers(names: Iterable[str], edges: Iterable[tuple[str, str]]) -> dict[str, int]:
    """Each node's layer: the number of edges on the longest path from a root to it.

    Edges are ``(dependency, dependent)``; no recursion, so a chain of any length is fine.

    >>> layers("abcd", [("a", "b"), ("a", "c"), ("b", "d"), ("c", "d"), ("a", "d")])
    {'a': 0, 'b': 1, 'c': 1, 'd': 2}
    """
    layer = dict.fromkeys(sorted(names), 0)
    after: dict[str, list[str]] = defaultdict(list)
    waiting = dict.fromkeys(layer, 0)
    for dep, job in edges:
        after[dep].append(job)
        waiting[job] += 1
    ready = [name for name, n in waiting.items() if n == 0]
    while ready:
        name = ready.pop()
        for job in after[name]:
            layer[job] = max(layer[job], layer[name] + 1)
            waiting[job] -= 1
            if waiting[job] == 0:
                ready.append(job)
    return layer


def order(layer: dict[str, int], edges: Iterable[tuple[str, str]]) -> list[list[str]]:
    """The nodes of each layer, top to bottom: by name, then one barycenter pass down and one up.

    A node moves towards the mean position of its neighbours in the layers before it (going
    down) and after it (going up), which removes most crossings; a node without such neighbours
    keeps its place, and ties keep the order they had, so the same graph always comes out the same.

    >>> order({"a": 0, "b": 0, "x": 1, "y": 1}, [("a", "y"), ("b", "x")])
    [['a', 'b'], ['y', 'x']]
    """
    columns: list[list[str]] = [[] for _ in range(max(layer.values(), default=-1) + 1)]
    for name in sorted(layer):
        columns[layer[name]].append(name)
    before: dict[str, list[str]] = defaultdict(list)
    after: dict[str, list[str]] = defaultdict(list)
    for dep, job in edges:
        before[job].append(dep)
        after[dep].append(job)
    position = {name: i for column in columns for i, name in enumerate(column)}
    sweeps = [(range(1, len(columns)), before), (range(len(columns) - 2, -1, -1), after)]
    for indexes, neighbours in sweeps:
        for i in indexes:
            columns[i].sort(
                key=lambda n, near=neighbours: (_mean(n, near[n], position), position[n])
            )
            position.update((name, k) for k, name in enumerate(columns[i]))
    return columns


def draw(nodes: list[GraphNode], edges: list[tuple[str, str, str]], title: str) -> SafeString:
    """The SVG of the graph: a box per node linking to its job, an arrow per edge.

    Layers run left to right; a layer of more than ``ROWS`` nodes wraps into more columns, so
    the drawing is never taller than ``ROWS`` boxes and a wide graph scrolls sideways in its
    own box. Every text is escaped.
    """
    layer = layers((node.name for node in nodes), ((a, b) for a, b, _ in edges))
    at = _places(order(layer, [(a, b) for a, b, _ in edges]))
    width = max((x for x, _ in at.values()), default=MARGIN) + BOX_W + MARGIN
    height = max((y for _, y in at.values()), default=MARGIN) + BOX_H + MARGIN
    markers = "".join(
        f'<marker id="cm-arrow-{condition}" viewBox="0 0 10 10" refX="10" refY="5" '
        f'markerWidth="7" markerHeight="7" orient="auto-start-reverse">'
        f'<path d="M0,0 L10,5 L0,10 z" fill="{colour}"/></marker>'
        for condition, (colour, _) in EDGE_STYLES.items()
    )
    arrows = "".join(_edge(at[a], at[b], on) for a, b, on in edges)
    boxes = "".join(_box(node, *at[node.name]) for node in nodes)
    # Built as text for speed (format_html per attribute was 0.4 s at 1,000 nodes); every
    # value that is not a number of ours goes through html.escape.
    return mark_safe(
        f'<div class="cm-graph"><svg xmlns="http://www.w3.org/2000/svg" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" role="group" '
        'aria-labelledby="cm-graph-title" font-family="system-ui, sans-serif">'
        f'<title id="cm-graph-title">{escape(title)}</title><defs>{markers}</defs>'
        f"<g>{arrows}</g><g>{boxes}</g></svg></div>"
    )


def span(started: datetime | None, completed: datetime | None, now: datetime) -> str:
    """How long a node ran (until ``now`` while it runs); empty when it has not started.

    >>> from datetime import timedelta
    >>> t = datetime(2026, 12, 7, 12, 0, 0)
    >>> span(t, t + timedelta(seconds=75), t), span(t, None, t + timedelta(seconds=3))
    ('0:01:15', '0:00:03')
    >>> span(None, None, t)
    ''
    """
    if started is None:
        return ""
    return format_duration((completed or now) - started)


def time_words(status: str, duration: str) -> str:
    """What a job's box says of its time.

    >>> time_words("completed", "0:01:15"), time_words("running", "0:00:03")
    ('ran 0:01:15', 'running for 0:00:03')
    >>> time_words("pending", ""), time_words("skipped", "")
    ('waiting', 'did not run')
    """
    if not duration:
        return "waiting" if status in st.LIVE else "did not run"
    return f"running for {duration}" if status in st.LIVE else f"ran {duration}"


def array_text(children: dict[str, int], size: int) -> str:
    """An array node's progress in words.

    >>> array_text({"completed": 9, "failed": 2, "running": 1}, 12)
    '9 ok, 2 failed, 1 running of 12'
    """
    done, failed, running = (sum(children.get(s, 0) for s in group) for group, _ in BAR)
    return f"{done} ok, {failed} failed, {running} running of {size}"


# -- helpers --------------------------------------------------------------------


def _mean(name: str, near: list[str], position: dict[str, int]) -> float:
    """The mean position of ``near`` (a node without neighbours keeps its own)."""
    if not near:
        return position[name]
    return sum(position[n] for n in near) / len(near)


def _places(columns: list[list[str]]) -> dict[str, tuple[int, int]]:
    """Each node's top-left corner: layers left to right, wrapped every ``ROWS`` boxes."""
    wrapped = []
    for column in columns:
        per = math.ceil(len(column) / math.ceil(len(column) / ROWS))
        wrapped.extend(column[i : i + per] for i in range(0, len(column), per))
    tallest = max((len(column) for column in wrapped), default=0)
    at = {}
    for i, column in enumerate(wrapped):
        top = MARGIN + (tallest - len(column)) * (BOX_H + GAP_Y) // 2
        for k, name in enumerate(column):
            at[name] = (MARGIN + i * (BOX_W + GAP_X), top + k * (BOX_H + GAP_Y))
    return at


def _edge(start: tuple[int, int], end: tuple[int, int], condition: str) -> str:
    """A curve from the dependency's right side to the dependent's left, labelled unless success."""
    x1, y1 = start[0] + BOX_W, start[1] + BOX_H // 2
    x2, y2 = end[0], end[1] + BOX_H // 2
    bend = GAP_X // 2
    condition, _, kind = condition.partition(" ")
    colour, dash = EDGE_STYLES[condition]
    on = escape(condition)
    # An edge that passes behind a column of boxes (a skipped layer, a wrapped one) is fainter,
    # so the boxes it passes stay readable and the edges between neighbours stand out.
    faint = ' stroke-opacity="0.35"' if x2 - x1 > GAP_X else ""
    path = (
        f'<path d="M{x1},{y1} C{x1 + bend},{y1} {x2 - bend},{y2} {x2},{y2}" fill="none" '
        f'stroke="{colour}" stroke-width="1.5" stroke-dasharray="{dash or "none"}"{faint} '
        f'marker-end="url(#cm-arrow-{on})"><title>on {on}</title></path>'
    )
    words = [CHILD_BY_CHILD] if kind else []
    if condition != st.SUCCESS:
        words.append("on failure" if condition == st.FAILURE else "always")
    # One line per label above the arrow's end, the last nearest to it.
    return path + "".join(
        f'<text x="{x2 - GAP_X // 2}" y="{y2 - 5 - 12 * (len(words) - 1 - i)}" '
        f'text-anchor="middle" font-size="11" font-weight="600" fill="{colour}" '
        f'stroke="#ffffff" stroke-width="3" paint-order="stroke">{label}</text>'
        for i, label in enumerate(words)
    )


def _box(node: GraphNode, x: int, y: int) -> str:
    """A node's box, a link to its job: its name, status (symbol and word), time, array bar."""
    fill, border, ink, symbol = STYLES.get(node.status, STYLES[st.PENDING])
    short = node.name if len(node.name) <= NAME_CHARS else node.name[: NAME_CHARS - 1] + "\u2026"
    status, third, bar = escape(node.status), escape(time_words(node.status, node.duration)), ""
    line = f"{symbol} {status}"
    if node.children is not None:
        line += f" \u00b7 {escape(node.duration)}" if node.duration else ""
        third = escape(array_text(node.children, node.size))
        bar = _bar(node.children, node.size, x + 8, y + BOX_H - 14)
    said = f"{escape(node.name)}: {status}, {third}"
    return (
        f'<a href="{escape(node.url)}" class="cm-node cm-node-{status}" aria-label="{said}">'
        f'<title>{said}</title><rect x="{x}" y="{y}" width="{BOX_W}" height="{BOX_H}" rx="6" '
        f'fill="{fill}" stroke="{border}" stroke-width="{2 if node.status in st.LIVE else 1.5}"/>'
        f'<text x="{x + 8}" y="{y + 18}" font-size="13" font-weight="700" fill="#212121">'
        f'{escape(short)}</text><text x="{x + 8}" y="{y + 36}" font-size="12" '
        f'font-weight="600" fill="{ink}">{line}</text><text x="{x + 8}" y="{y + 52}" '
        f'font-size="11" fill="#424242"{_fitted(third)}>{third}</text>{bar}</a>'
    )


def _fitted(text: str) -> str:
    """The attributes that squeeze a line too long for a box (4-digit counts) into its width."""
    if len(text) <= LINE_CHARS:
        return ""
    return f' textLength="{BOX_W - 16}" lengthAdjust="spacingAndGlyphs"'


def _bar(children: dict[str, int], size: int, x: int, y: int) -> str:
    """The array's progress: completed, failed and running children as parts of ``size``."""
    width = BOX_W - 16
    parts, left = [f'<rect x="{x}" y="{y}" width="{width}" height="6" fill="#e0e0e0"/>'], x
    for group, colour in BAR:
        share = round(width * sum(children.get(s, 0) for s in group) / max(size, 1))
        if share:
            parts.append(f'<rect x="{left}" y="{y}" width="{share}" height="6" fill="{colour}"/>')
            left += share
    return "".join(parts)
