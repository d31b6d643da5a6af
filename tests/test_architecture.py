"""The package's shape: no import cycles, no import against the layers, a wheel of the app only.

The import graph is read from the source by ``benchmarks/import_graph.py``.
"""

import tomllib
from pathlib import Path

from setuptools import find_packages

from benchmarks import import_graph

ROOT = Path(__file__).resolve().parent.parent
#: The one import that runs up the layers: ``ContainerJob.launch()`` / ``harvest()`` run the
#: step in-process, importing the engine's steps inside the method.
ALLOWED_UPWARD = {("models.jobs", "engine.steps")}


def _without_allowed(edges):
    return {
        name: targets - {b for a, b in ALLOWED_UPWARD if a == name}
        for name, targets in edges.items()
    }


def test_module_level_imports_have_no_cycle_and_follow_the_layers():
    edges = import_graph.graph({"module"})
    assert import_graph.cycles(edges) == []
    assert import_graph.against(edges) == []


def test_no_cycle_even_counting_typing_and_in_function_imports():
    edges = import_graph.graph({"module", "typing", "lazy"})
    assert set(import_graph.against(edges)) == ALLOWED_UPWARD
    edges = _without_allowed(edges)
    assert import_graph.cycles(edges) == []
    assert import_graph.against(edges) == []


def test_executors_import_no_model():
    edges = import_graph.graph({"module", "typing", "lazy"})
    executors = {name for name in edges if name.startswith("executors")}
    assert {name for name in executors if "models" in edges[name]} == set()


def test_the_wheel_holds_the_app_and_not_the_functions_project():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    include = config["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = set(find_packages(str(ROOT), include=include))
    assert "container_manager" in packages and "container_manager.executors" in packages
    assert not any(name.split(".")[0] in {"functions", "tests", "benchmarks"} for name in packages)
    assert (ROOT / "functions" / "handlers.py").is_file()  # still in the repository
