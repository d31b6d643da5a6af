"""The workflow admin page with its graph against the same page without it, at 1,000 nodes.

Two shapes of 1,000 nodes, submitted with ``Workflow.objects.submit`` and left pending (the
recording dispatch backend keeps every message): ``wide`` (a root, 997 nodes after it, a join
after all of them, and an array of 100 after the root) and ``chain`` (each node after the
one before). Rounds alternate the page with the graph and without it (``page_context``
replaced by an empty one); then ``page_context`` alone (its three statements, the layout and the
SVG); medians, their ratio, statements, HTML size and the load average.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import IMAGE, REPO, write_result  # noqa: E402

NODES = 1000


def main() -> None:
    """Parse flags, set Django up, submit both shapes, time the page, write the results."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database-url", default="sqlite:////tmp/cm-bench-graph.sqlite3")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    _setup(args.database_url)
    from django.contrib.auth.models import User

    from container_manager.models import ExecutorHost, Workflow

    User.objects.filter(username="bench-graph").delete()
    user = User.objects.create_superuser("bench-graph", password="pw")
    host, _ = ExecutorHost.objects.get_or_create(
        name="bench-graph", defaults={"executor_type": "mock", "connection_string": "mock://"}
    )
    runs = {}
    for shape in ("wide", "chain"):
        began = time.perf_counter()
        workflow = Workflow.objects.submit(spec(shape, host.name), user=user)
        submit_s = round(time.perf_counter() - began, 2)
        runs[shape] = {"submit_s": submit_s, **measure(workflow, user, args.rounds)}
        print(shape, runs[shape], flush=True)  # noqa: T201 - a benchmark's output
    write_result("workflow_graph", {"nodes": NODES, "rounds": args.rounds, "runs": runs})


def spec(shape: str, host: str) -> dict[str, Any]:
    """A workflow document of ``NODES`` nodes of the given shape on ``host``."""

    def job(**fields: Any) -> dict[str, Any]:
        return {"docker_image": IMAGE, "command": "true", "host": host, **fields}

    if shape == "chain":
        nodes = {"n0000": job()}
        nodes.update({f"n{i:04d}": job(depends_on=[f"n{i - 1:04d}"]) for i in range(1, NODES)})
        return {"name": "bench-chain", "nodes": nodes}
    middle = [f"shard-{i:03d}" for i in range(NODES - 3)]
    nodes = {"extract": job(), "fanout": job(array_size=100, depends_on=["extract"])}
    nodes.update({name: job(depends_on=["extract"]) for name in middle})
    nodes["merge"] = job(depends_on=middle)
    return {"name": "bench-wide", "nodes": nodes}


def measure(workflow: Any, user: Any, rounds: int) -> dict[str, Any]:
    """Alternated rounds of the page with and without the graph: ms, statements, bytes, load."""
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from container_manager import clock
    from container_manager.admin import workflow_graph

    client = Client()
    client.force_login(user)
    url = f"/admin/container_manager/workflow/{workflow.pk}/change/"
    real = workflow_graph.page_context
    sides: dict[str, dict[str, Any]] = {"graph": {"ms": []}, "without": {"ms": []}}
    loads = [os.getloadavg()[0]]
    for _ in range(rounds):
        for side in sides:
            workflow_graph.page_context = real if side == "graph" else lambda *a: {}
            client.get(url, secure=True)  # warm-up of this side
            with CaptureQueriesContext(connection) as queries:
                began = time.perf_counter()
                response = client.get(url, secure=True)
                sides[side]["ms"].append((time.perf_counter() - began) * 1000)
            assert response.status_code == 200, response.status_code
            sides[side].update(statements=len(queries), html_bytes=len(response.content))
        loads.append(os.getloadavg()[0])
    workflow_graph.page_context = real
    alone = []
    for _ in range(rounds):
        began = time.perf_counter()
        real(workflow, clock.now())
        alone.append((time.perf_counter() - began) * 1000)
    sides["graph_alone"] = {"ms": alone}
    for side in sides.values():
        side["ms_median"] = round(statistics.median(side["ms"]), 1)
        side["ms"] = [round(ms, 1) for ms in side["ms"]]
    ratio = sides["graph"]["ms_median"] / sides["without"]["ms_median"]
    return {**sides, "ratio": round(ratio, 2), "load_1min": [round(x, 2) for x in loads]}


def _setup(database_url: str) -> None:
    """Django on ``functions.settings`` with the recording backend: nothing is launched."""
    os.environ["DJANGO_SETTINGS_MODULE"] = "functions.settings"
    os.environ["DATABASE_URL"] = database_url
    os.environ["CM_DISPATCH_BACKEND"] = "tests.backends.RecordingBackend"
    os.environ["CM_LOG_LEVEL"] = "ERROR"
    os.environ["DJANGO_DEBUG"] = "0"
    os.environ["DJANGO_ALLOWED_HOSTS"] = "testserver"
    os.environ.setdefault("DJANGO_SECRET_KEY", "benchmark-only")
    sys.path.insert(0, str(REPO))
    import django

    django.setup()
    from django.core.management import call_command
    from django.test.utils import override_settings

    # The admin's pages name static files: plain names, no collectstatic manifest needed.
    plain = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}
    override_settings(STORAGES={"default": plain, "staticfiles": plain}).enable()
    call_command("migrate", verbosity=0, interactive=False)


if __name__ == "__main__":
    main()
