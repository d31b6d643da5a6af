"""Every example in the package's docstrings runs, against a real database where it needs one."""

import doctest
import importlib
import pkgutil
import time
from datetime import timedelta

import pytest
from django.utils import timezone

import container_manager

MODULES = sorted(
    name
    for _, name, _ in pkgutil.walk_packages(container_manager.__path__, "container_manager.")
    if ".migrations" not in name and not name.endswith((".docker",))
)


def _examples(module_name):
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != "django_tasks":
            raise
        return []  # Django 5.2 without the tasks backport: container_manager.tasks cannot load
    finder = doctest.DocTestFinder(exclude_empty=True)
    return [t for t in finder.find(module) if t.examples]


CASES = [(name, test.name) for name in MODULES for test in _examples(name)]


def test_models_document_every_public_method():
    from container_manager import models

    for model in (
        models.ContainerJob,
        models.ExecutorHost,
        models.EnvironmentVariableTemplate,
        models.ContainerExecution,
        models.JobManager,
        models.JobQuerySet,
    ):
        assert model.__doc__ and len(model.__doc__) > 80, model
        for attr, value in vars(model).items():
            if attr.startswith("_") or not callable(value) and not isinstance(value, property):
                continue
            if isinstance(value, type):
                continue
            assert getattr(value, "__doc__", None), f"{model.__name__}.{attr} has no docstring"


@pytest.mark.parametrize(("module_name", "test_name"), CASES)
def test_docstring_examples(module_name, test_name, transactional_db, immediate, make_mock_host):
    test = next(t for t in _examples(module_name) if t.name == test_name)
    from container_manager.models import (
        ContainerExecution,
        ContainerJob,
        EnvironmentVariableTemplate,
        ExecutorHost,
    )

    test.globs.update(
        ContainerJob=ContainerJob,
        ContainerExecution=ContainerExecution,
        EnvironmentVariableTemplate=EnvironmentVariableTemplate,
        ExecutorHost=ExecutorHost,
        docker_host=make_mock_host(name="docstring-mock"),
        time=time,
        timezone=timezone,
        timedelta=timedelta,
    )
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    result = runner.run(test, out=lambda text: pytest.fail(text, pytrace=False))
    assert result.attempted > 0
