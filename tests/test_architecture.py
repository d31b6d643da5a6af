"""The package's shape: layers as packages, no import cycle, no import against the layers.

The import graph is read from the source by ``benchmarks/import_graph.py``: module-level,
``TYPE_CHECKING``, in-function and ``importlib`` imports. One upward call is allowed, by name.
"""

import tomllib
from pathlib import Path

from setuptools import find_packages

from benchmarks import import_graph

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "container_manager"
#: At most this many modules directly in the package; the rest live in their layer's package.
MAX_TOP_LEVEL_MODULES = 15
#: No module longer than this.
MAX_MODULE_LINES = 800


def test_module_level_imports_have_no_cycle_and_follow_the_layers():
    edges = import_graph.graph({"module"})
    assert import_graph.cycles(edges) == []
    assert import_graph.against(edges) == []


def test_only_the_listed_call_runs_up_the_layers():
    edges = import_graph.graph(import_graph.ALL_KINDS)
    assert set(import_graph.against(edges)) == import_graph.ALLOWED_UPWARD


def test_no_cycle_nor_import_against_the_layers_of_any_kind_but_the_listed_call():
    edges = import_graph.without_allowed(import_graph.graph(import_graph.ALL_KINDS))
    assert import_graph.cycles(edges) == []
    assert import_graph.against(edges) == []


def test_importlib_seams_are_counted_and_none_runs_up():
    seams = import_graph.graph({"importlib"})
    assert seams["urls"] >= {"web.endpoints", "web.api.jobs"}  # the URLconf's lazy views
    assert import_graph.against(seams) == []


def test_executors_import_no_model():
    edges = import_graph.graph(import_graph.ALL_KINDS)
    executors = {name for name in edges if name.startswith("executors")}
    assert {name for name in executors if "models" in edges[name]} == set()


def test_rules_and_telemetry_are_pure():
    edges = import_graph.graph(import_graph.ALL_KINDS)
    bottom = {name for name in edges if name.split(".")[0] in {"rules", "telemetry", "net"}}
    assert {(a, b) for a in bottom for b in edges[a] if b.split(".")[0] == "models"} == set()


def test_few_modules_at_the_top_level():
    top = sorted(path.name for path in PACKAGE.glob("*.py"))
    assert len(top) <= MAX_TOP_LEVEL_MODULES, top


def test_no_module_is_too_long():
    long = {
        str(path.relative_to(ROOT)): lines
        for path in PACKAGE.rglob("*.py")
        if "migrations" not in path.parts
        and (lines := len(path.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert long == {}


def test_the_wheel_holds_the_app_and_not_the_functions_project():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    include = config["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = set(find_packages(str(ROOT), include=include))
    assert "container_manager" in packages and "container_manager.executors" in packages
    assert {"container_manager.engine.steps", "container_manager.web.api"} <= packages
    assert not any(name.split(".")[0] in {"functions", "tests", "benchmarks"} for name in packages)
    assert (ROOT / "functions" / "handlers.py").is_file()  # still in the repository


def test_the_reusable_app_forces_no_dependency_of_the_functions_project():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    project = config["project"]
    core = " ".join(project["dependencies"])
    assert "dj-database-url" not in core and "whitenoise" not in core
    extras = project["optional-dependencies"]
    assert {"dj-database-url>=2.1", "whitenoise>=6.6"} == set(extras["functions"])
    assert "functions" in extras["demo"][0] and "functions" in extras["dev"][0]
    bundle = (ROOT / "infra" / "lambda-bundle.sh").read_text()
    assert "EXTRAS=aws,postgres,functions" in bundle
