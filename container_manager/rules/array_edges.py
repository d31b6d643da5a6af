"""The names and rules of array dependencies (AWS Batch's ``N_TO_N`` and ``SEQUENTIAL``).

Pure checks shared by ``create_job``, the JSON API and the workflow document.
"""

from __future__ import annotations

from typing import Any

from container_manager.rules import status as st

#: An edge type: child ``i`` of the dependent array waits for child ``i`` of the dependency.
N_TO_N = "n_to_n"
#: The edge types a ``depends_on`` item may name; without one, an edge joins the jobs whole.
EDGE_TYPES = (N_TO_N,)
#: An array's order: its children run side by side (the default), or each after the one before.
PARALLEL = "parallel"
SEQUENTIAL = "sequential"
ARRAY_ORDERS = (PARALLEL, SEQUENTIAL)


def edge_type_error(value: Any) -> str | None:
    """What is wrong with an edge's ``type``, or None.

    >>> edge_type_error("n_to_n"), edge_type_error("N_TO_N")
    (None, "'type' must be n_to_n.")
    """
    if value in EDGE_TYPES:
        return None
    return f"'type' must be {' or '.join(EDGE_TYPES)}."


def typed_item_error(item: dict[str, Any]) -> str | None:
    """What is wrong with a ``depends_on`` object ``{job, on, type}`` (``on``, ``type`` optional).

    >>> typed_item_error({"job": "a", "type": "n_to_n"}), typed_item_error({"job": "a", "type": 1})
    (None, "'type' must be n_to_n.")
    >>> typed_item_error({"id": "a"})
    'must be {"job": <job or id>, "on": <condition>, "type": "n_to_n"}, on and type optional.'
    """
    if "job" not in item or set(item) - {"job", "on", "type"}:
        return (
            'must be {"job": <job or id>, "on": <condition>, "type": "n_to_n"}, on and type '
            "optional."
        )
    if item.get("on", st.SUCCESS) not in st.EDGE_CONDITIONS:
        return f"'on' must be one of {', '.join(st.EDGE_CONDITIONS)}."
    return edge_type_error(item["type"]) if "type" in item else None


def n_to_n_error(size: int | None, dependency_size: int | None, dependency: str) -> str | None:
    """Why an array of ``size`` cannot wait ``n_to_n`` for ``dependency`` (of its size), or None.

    A size is None for a job that is not an array parent.

    >>> n_to_n_error(5, 5, "job a"), n_to_n_error(None, 5, "job a")
    (None, 'an n_to_n edge needs array_size on this job.')
    >>> n_to_n_error(4, 5, "job a")
    'an n_to_n edge joins arrays of the same size: job a has 5 children, this job 4.'
    """
    if size is None:
        return "an n_to_n edge needs array_size on this job."
    if dependency_size is None:
        return f"an n_to_n edge waits for an array: {dependency} is not an array parent."
    if size != dependency_size:
        return (
            f"an n_to_n edge joins arrays of the same size: {dependency} has {dependency_size} "
            f"children, this job {size}."
        )
    return None


def array_order_error(order: Any, array_size: Any) -> str | None:
    """What is wrong with ``array_order`` for a job of ``array_size``, or None.

    >>> array_order_error(None, None), array_order_error("sequential", 3)
    (None, None)
    >>> array_order_error("sequential", None)
    'needs array_size: only an array has an order.'
    >>> array_order_error("random", 3)
    'must be one of parallel, sequential.'
    """
    if order is None:
        return None
    if order not in ARRAY_ORDERS:
        return f"must be one of {', '.join(ARRAY_ORDERS)}."
    if array_size is None:
        return "needs array_size: only an array has an order."
    return None
