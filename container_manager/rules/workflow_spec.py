"""The rules of a workflow document: its name, its nodes' names and edges, each node's job fields.

``Workflow.objects.submit`` checks a spec here before writing anything; the API reads the same.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError

from container_manager.rules import array_edges, contract
from container_manager.rules import status as st
from container_manager.rules.secrets import MASK

#: A node's name: a letter, then letters, digits, ``_`` or ``-``; 63 characters at most.
NODE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,62}")
#: The keys of a workflow document.
TOP_KEYS = ("name", "nodes")
#: The key of a node naming the nodes it waits for (node names, not job ids).
DEPENDS_ON = "depends_on"
#: The keys of a ``depends_on`` item written as an object: ``{"node": "a", "on": "failure"}``
#: (and, between arrays, ``"type": "n_to_n"``: ``rules.array_edges``).
EDGE_KEYS = ("node", "on")
#: How many node names a cycle message shows at most.
SHOWN_CYCLE = 10


@dataclass(frozen=True)
class Node:
    """One checked node: its name, its job fields (as ``contract.from_json`` returns them), the
    nodes it waits for and, for each of them, the condition of its edge (``success`` …)."""

    name: str
    fields: dict[str, Any]
    depends_on: tuple[str, ...]
    conditions: tuple[str, ...] = ()
    #: The ``n_to_n`` edges' nodes: this array's child ``i`` waits for child ``i`` of each.
    n_to_n: frozenset[str] = frozenset()

    def edges(self) -> list[tuple[str, str]]:
        """``(node waited for, condition)`` for each node it waits for."""
        conditions = self.conditions or (st.SUCCESS,) * len(self.depends_on)
        return list(zip(self.depends_on, conditions, strict=True))


def check(spec: Any, max_nodes: int) -> tuple[str, list[Node]]:
    """The workflow's name and its nodes, dependencies before dependents; a ValidationError if bad.

    Every error is a field named ``name``, ``nodes`` or ``nodes.<node>.<field>``, its message
    starting with that name. Nothing here reads the database.

    >>> name, nodes = check({"name": "etl", "nodes": {"b": {"docker_image": "x",
    ...     "depends_on": ["a"]}, "a": {"docker_image": "x"}}}, 10)
    >>> name, [node.name for node in nodes]
    ('etl', ['a', 'b'])
    >>> check({"nodes": {"a": {"docker_image": "x", "depends_on": ["a"]}}}, 10)
    Traceback (most recent call last):
    ...
    django.core.exceptions.ValidationError: {'nodes': ['nodes: a cycle: a -> a (each waits...']}
    """
    if not isinstance(spec, dict):
        raise ValidationError("a workflow must be a JSON object with name and nodes")
    shown = (contract.shown(str(key)) for key in spec)
    errors = {key: [f"{key}: unknown field."] for key in shown if key not in TOP_KEYS}
    name = spec.get("name", "")
    problem = contract.BY_NAME["name"].error(name)
    if problem:
        errors["name"] = [f"name: {problem}"]
    raw = spec.get("nodes")
    problem = _nodes_error(raw, max_nodes)
    if problem:
        errors["nodes"] = [f"nodes: {problem}"]
    if errors:
        raise ValidationError(errors)
    nodes = {}
    for node_name, body in raw.items():
        node, node_errors = _node(node_name, body, raw)
        errors.update(node_errors)
        nodes[node_name] = node
    if errors:
        raise ValidationError(errors)
    return name, _ordered(nodes)


def _nodes_error(raw: Any, max_nodes: int) -> str | None:
    if not isinstance(raw, dict) or not raw:
        return "must be an object of at least one node, name to job spec."
    if len(raw) > max_nodes:
        return f"at most {max_nodes} nodes (WORKFLOW_MAX_NODES), not {len(raw)}."
    bad = [str(name) for name in raw if not isinstance(name, str) or not NODE_NAME.fullmatch(name)]
    if bad:
        return (
            f"{contract.shown(bad[0])!r} is not a node name (a letter, then letters, digits, "
            "_ or -; 63 characters at most)."
        )
    return None


def _node(name: str, body: Any, nodes: dict[str, Any]) -> tuple[Node | None, dict[str, list[str]]]:
    """The node ``name`` checked, or None and its errors, each named ``nodes.<name>.<field>``."""
    prefix = f"nodes.{name}"
    if not isinstance(body, dict):
        return None, {prefix: [f"{prefix}: must be an object (a job spec)."]}
    fields = {key: value for key, value in body.items() if key != DEPENDS_ON}
    errors: dict[str, list[str]] = {}
    edges, problem = _edges(body.get(DEPENDS_ON, []))
    if problem:
        errors[f"{prefix}.{DEPENDS_ON}"] = [f"{prefix}.{DEPENDS_ON}: {problem}"]
    depends_on = list(edges)
    unknown = [d for d in depends_on if d not in nodes]
    if unknown:
        errors[f"{prefix}.{DEPENDS_ON}"] = [
            f"{prefix}.{DEPENDS_ON}: no node {contract.shown(unknown[0])!r} in this workflow."
        ]
    n_to_n = frozenset() if problem or unknown else _n_to_n(body.get(DEPENDS_ON, []))
    problem = _n_to_n_error(body, n_to_n, nodes)
    if problem:
        errors[f"{prefix}.{DEPENDS_ON}"] = [f"{prefix}.{DEPENDS_ON}: {problem}"]
    if not isinstance(fields.get("docker_image"), str) or not fields["docker_image"].strip():
        errors[f"{prefix}.docker_image"] = [f"{prefix}.docker_image: an image is required."]
    try:
        fields = contract.from_json(fields)
    except ValidationError as exc:
        errors.update(prefixed(exc, prefix))
    if errors:
        return None, errors
    return Node(name, fields, tuple(edges), tuple(edges.values()), n_to_n), {}


def _edges(raw: Any) -> tuple[dict[str, str], str | None]:
    """A node's ``depends_on`` as node name to edge condition, or an empty dict and the problem.

    An item is a node name (the edge fires on ``success``) or ``{"node": <name>, "on":
    "success" | "failure" | "always"}``, with ``"type": "n_to_n"`` between arrays (read by
    ``_n_to_n``); a node named twice keeps its last condition.

    >>> _edges(["a", {"node": "b", "on": "failure"}])
    ({'a': 'success', 'b': 'failure'}, None)
    >>> _edges([{"node": "b", "on": "never"}])[1]
    "item 1: 'on' must be one of success, failure, always."
    """
    if not isinstance(raw, list):
        return {}, "must be a list of node names or {node, on} objects."
    edges: dict[str, str] = {}
    for number, item in enumerate(raw, 1):
        if isinstance(item, str):
            edges[item] = st.SUCCESS
            continue
        if not isinstance(item, dict) or not isinstance(item.get("node"), str):
            return {}, f"item {number}: must be a node name or an object with a node name."
        if set(item) - {*EDGE_KEYS, "type"}:
            return {}, f"item {number}: only the keys {' and '.join(EDGE_KEYS)} (and type)."
        condition = item.get("on", st.SUCCESS)
        if condition not in st.EDGE_CONDITIONS:
            return {}, f"item {number}: 'on' must be one of {', '.join(st.EDGE_CONDITIONS)}."
        if "type" in item and array_edges.edge_type_error(item["type"]):
            return {}, f"item {number}: {array_edges.edge_type_error(item['type'])}"
        edges[item["node"]] = condition
    return edges, None


def _n_to_n(raw: list[Any]) -> frozenset[str]:
    """The nodes a checked ``depends_on`` waits for ``n_to_n`` (a node named twice: its last item).

    >>> sorted(_n_to_n(["a", {"node": "b", "type": "n_to_n"}, {"node": "a", "type": "n_to_n"}]))
    ['a', 'b']
    """
    kinds = {}
    for item in raw:
        name = item if isinstance(item, str) else item["node"]
        kinds[name] = None if isinstance(item, str) else item.get("type")
    return frozenset(name for name, kind in kinds.items() if kind == array_edges.N_TO_N)


def _n_to_n_error(body: dict[str, Any], n_to_n: frozenset[str], nodes: dict) -> str | None:
    """Why this node cannot wait ``n_to_n`` for one of ``n_to_n``: not arrays of one size."""
    for name in sorted(n_to_n):
        size, other = body.get("array_size"), nodes[name]
        dependency = other.get("array_size") if isinstance(other, dict) else None
        problem = array_edges.n_to_n_error(size, dependency, f"node {name!r}")
        if problem:
            return problem
    return None


def prefixed(exc: ValidationError, prefix: str) -> dict[str, list[str]]:
    """``exc``'s errors with each field and message renamed ``<prefix>.<field>``.

    >>> prefixed(ValidationError({"cpu_limit": "cpu_limit: too big."}), "nodes.a")
    {'nodes.a.cpu_limit': ['nodes.a.cpu_limit: too big.']}
    """
    if not hasattr(exc, "error_dict"):
        return {prefix: [f"{prefix}: {message}" for message in exc.messages]}
    renamed = {}
    for field, messages in exc.message_dict.items():
        name = f"{prefix}.{field}"
        renamed[name] = [
            f"{prefix}.{m}" if m.startswith(f"{field}: ") else f"{name}: {m}" for m in messages
        ]
    return renamed


def _ordered(nodes: dict[str, Node]) -> list[Node]:
    """The nodes, each after every node it waits for; a cycle is a ValidationError naming it."""
    done: dict[str, None] = {}
    state: dict[str, str] = {}
    for start in nodes:
        if start in state:
            continue
        # Depth first without recursion: a path of 1,000 nodes cannot exhaust the stack.
        path, iterators = [start], [iter(nodes[start].depends_on)]
        state[start] = "open"
        while path:
            upstream = next(iterators[-1], None)
            if upstream is None:
                state[path[-1]] = "done"
                done[path.pop()] = None
                iterators.pop()
            elif state.get(upstream) == "open":
                _cycle(path[path.index(upstream) :] + [upstream])
            elif upstream not in state:
                state[upstream] = "open"
                path.append(upstream)
                iterators.append(iter(nodes[upstream].depends_on))
    return [nodes[name] for name in done]


def _cycle(names: list[str]) -> None:
    """Raise the error naming the nodes of a cycle, each waiting for the next."""
    shown = names if len(names) <= SHOWN_CYCLE else [*names[:SHOWN_CYCLE], "…"]
    raise ValidationError(
        {"nodes": f"nodes: a cycle: {' -> '.join(shown)} (each waits for the next)."}
    )


def stored(spec: dict[str, Any]) -> dict[str, Any]:
    """``spec`` as the workflow row keeps it: each node's environment values masked.

    The values live on the node's job, masked wherever it is shown; the workflow keeps the
    names only, so its document is never a second copy of a secret.

    >>> stored({"name": "w", "nodes": {"a": {"docker_image": "x",
    ...     "environment_vars": {"TOKEN": "s3cret"}}}})["nodes"]["a"]["environment_vars"]
    {'TOKEN': '********'}
    """
    nodes = {}
    for name, body in spec["nodes"].items():
        variables = body.get("environment_vars")
        if isinstance(variables, dict):
            body = {**body, "environment_vars": dict.fromkeys(variables, MASK)}
        nodes[name] = body
    return {**spec, "nodes": nodes}
