"""Django's own ``tests/tasks`` suite run against ``ContainerTaskBackend``: the tasks contract.

``python -m tests.django_tasks_suite DIR``, DIR holding Django's ``tests/tasks`` from the sdist of
the installed Django (infra/django-tasks-suite.sh fetches it; nothing of it is in this repository).
"""

from __future__ import annotations

import os
import sys
import unittest
from collections.abc import Iterator
from importlib import import_module
from pathlib import Path
from typing import Any

import django
from django.tasks import task_backends
from django.test import SimpleTestCase, TransactionTestCase
from django.test.runner import DiscoverRunner

from tests.django_tasks_settings import HELD_HOST, IMAGE, RUNNING_HOST

#: The host each of Django's own backends is replaced by ours on, in every ``TASKS`` entry.
SUBSTITUTES = {
    "django.tasks.backends.dummy.DummyBackend": HELD_HOST,
    "django.tasks.backends.immediate.ImmediateBackend": RUNNING_HOST,
}
OUR_BACKEND = "container_manager.tasks.ContainerTaskBackend"
#: Test classes whose ``setUp`` only empties DummyBackend's store (``clear()``); here each
#: test's rows are flushed after it instead, so that ``setUp`` is not called.
CLEAR_DUMMY_STORE = {
    "tasks.test_dummy_backend.DummyBackendTestCase",
    "tasks.test_tasks.TaskTestCase",
}

_DUMMY_CLASS = "asserts that the backend is Django's DummyBackend (isinstance, empty OPTIONS)"
_IMMEDIATE_CLASS = "asserts that the backend is Django's ImmediateBackend"
_BOTH_CLASSES = "asserts that the backends are Django's DummyBackend and ImmediateBackend"
_DUMMY_STORE = (
    "reads or changes DummyBackend's in-memory list (results, clear()); ours keeps a result "
    "in its job's row, which get_result() and refresh() read"
)
_SYNC_REFRESH = (
    "calls the synchronous refresh() inside a coroutine: only an in-memory store can be read "
    "there; a database read raises SynchronousOnlyOperation (arefresh() is the async API)"
)
_FINISHED_AT_ENQUEUE = (
    "expects the result enqueue() returns to be finished: ImmediateBackend runs the task "
    "inside enqueue(); ours returns the result as enqueued (READY) and runs the task when "
    "the transaction commits (refresh() then reads it)"
)
_EXCEPTION_IN_CALLER = (
    "expects the task's exception in the caller (log record exc_info) and the finished result "
    "from enqueue(): ImmediateBackend runs the task there; ours reports it in result.errors"
)
_INTERRUPT_IN_CALLER = (
    "expects KeyboardInterrupt to leave enqueue(): ImmediateBackend runs the task in the "
    "caller; ours runs it in a container, where the interrupt is the task's error "
    "(tests/test_tasks.py)"
)
_BEFORE_COMMIT = (
    "expects the task to run inside the caller's transaction; ours launches it when the "
    "transaction commits, by design (a rolled-back enqueue never runs)"
)
_NO_GET_RESULT = "expects get_result() and refresh() to be unsupported; ours supports them"
_NO_RUN_AFTER = "expects run_after to be refused; ours supports it (supports_defer)"
_CUSTOM_BACKENDS = (
    "tests the framework's base classes with the suite's own example backends; "
    "ContainerTaskBackend is not involved"
)

#: Tests (``module.Class.method``) or classes (``module.Class``) skipped, with the reason.
SKIPPED = {
    "tasks.test_custom_backend.CustomBackendTestCase": _CUSTOM_BACKENDS,
    "tasks.test_custom_backend.CustomTaskTestCase": _CUSTOM_BACKENDS,
    **{
        f"tasks.test_dummy_backend.DummyBackendTestCase.{name}": reason
        for name, reason in (
            ("test_using_correct_backend", _DUMMY_CLASS),
            ("test_enqueue_task", _DUMMY_STORE),
            ("test_enqueue_task_async", _DUMMY_STORE),
            ("test_refresh_result", _DUMMY_STORE),
            ("test_refresh_result_async", _DUMMY_STORE),
            ("test_clear", _DUMMY_STORE),
        )
    },
    "tasks.test_dummy_backend.DummyBackendTransactionTestCase."
    "test_doesnt_wait_until_transaction_commit_by_default": _DUMMY_STORE,
    **{
        f"tasks.test_immediate_backend.ImmediateBackendTestCase.{name}": reason
        for name, reason in (
            ("test_using_correct_backend", _IMMEDIATE_CLASS),
            ("test_enqueue_task", _FINISHED_AT_ENQUEUE),
            ("test_enqueue_task_async", _FINISHED_AT_ENQUEUE),
            ("test_catches_exception", _EXCEPTION_IN_CALLER),
            ("test_throws_keyboard_interrupt", _INTERRUPT_IN_CALLER),
            ("test_complex_exception", _FINISHED_AT_ENQUEUE),
            ("test_complex_return_value", _FINISHED_AT_ENQUEUE),
            ("test_result", _FINISHED_AT_ENQUEUE),
            ("test_result_async", _FINISHED_AT_ENQUEUE),
            ("test_cannot_get_result", _NO_GET_RESULT),
            ("test_cannot_refresh_result", _NO_GET_RESULT),
            ("test_cannot_pass_run_after", _NO_RUN_AFTER),
            ("test_successful_task_no_none_in_logs", _FINISHED_AT_ENQUEUE),
            ("test_takes_context", _FINISHED_AT_ENQUEUE),
            ("test_context", _FINISHED_AT_ENQUEUE),
        )
    },
    "tasks.test_immediate_backend.ImmediateBackendTransactionTestCase."
    "test_doesnt_wait_until_transaction_commit_by_default": _BEFORE_COMMIT,
    **{
        f"tasks.test_tasks.TaskTestCase.{name}": reason
        for name, reason in (
            ("test_using_correct_backend", _DUMMY_CLASS),
            ("test_enqueue_task", _DUMMY_STORE),
            ("test_enqueue_task_async", _DUMMY_STORE),
            ("test_refresh_result", _SYNC_REFRESH),
            ("test_get_backend", _BOTH_CLASSES),
            ("test_task_error_invalid_exception", _FINISHED_AT_ENQUEUE),
            ("test_task_error_unknown_module", _FINISHED_AT_ENQUEUE),
        )
    },
}


def main(argv: list[str]) -> int:
    """Run the suite found in ``argv[0]``; the exit code is 1 if any test failed, else 0."""
    if len(argv) != 1 or not (Path(argv[0]) / "tasks").is_dir():
        sys.stderr.write("usage: python -m tests.django_tasks_suite DIR (DIR/tasks: the suite)\n")
        return 2
    sys.path.insert(0, str(Path(argv[0]).resolve()))
    os.environ["DJANGO_SETTINGS_MODULE"] = "tests.django_tasks_settings"
    django.setup()
    _substitute_backends()
    return 1 if SuiteRunner(verbosity=2, interactive=False).run_tests([]) else 0


class SuiteRunner(DiscoverRunner):
    """Django's test runner on the adapted suite, with a summary line of its own."""

    def build_suite(self, *args: Any, **kwargs: Any) -> unittest.TestSuite:
        """Every test class of Django's ``tasks`` package, adapted (see ``build_suite``)."""
        return build_suite(SKIPPED)

    def suite_result(self, suite: Any, result: unittest.TestResult, **kwargs: Any) -> int:
        """Django's count of failures, after the summary line."""
        _summarise(result)
        return super().suite_result(suite, result, **kwargs)


def build_suite(names: dict[str, str]) -> unittest.TestSuite:
    """Every test class of Django's ``tasks`` package, adapted; raises if a name finds nothing.

    ``names`` maps the tests and classes to skip to the reason. Names that match no test
    (Django changed its suite) are an error, not a silent pass.
    """
    suite, seen = unittest.TestSuite(), set()
    for module in _test_modules():
        for case in vars(module).values():
            if not (
                isinstance(case, type)
                and issubclass(case, SimpleTestCase)
                and case.__module__ == module.__name__
            ):
                continue
            class_id = f"{module.__name__}.{case.__qualname__}"
            seen.add(class_id)
            seen.update(f"{class_id}.{name}" for name in _test_names(case))
            suite.addTests(unittest.defaultTestLoader.loadTestsFromTestCase(_adapted(case, names)))
    stale = sorted((set(names) | CLEAR_DUMMY_STORE) - seen)
    if stale:
        raise LookupError(f"named here, but no such test in this Django: {', '.join(stale)}")
    return suite


def _substitute_backends() -> None:
    """Make ``TASKS`` entries naming Django's dummy or immediate backend name ours.

    Django re-reads ``TASKS`` through ``configure_settings`` on every settings override,
    so class-level and in-test overrides are substituted alike.
    """
    read = task_backends.configure_settings

    def configure_settings(settings: dict[str, Any] | None) -> dict[str, Any]:
        return {alias: _ours(params) for alias, params in read(settings).items()}

    task_backends.configure_settings = configure_settings


def _ours(params: dict[str, Any]) -> dict[str, Any]:
    """One ``TASKS`` entry with Django's dummy or immediate backend replaced by ours."""
    host = SUBSTITUTES.get(params.get("BACKEND"))
    if host is None:
        return params
    return {**params, "BACKEND": OUR_BACKEND, "OPTIONS": {"image": IMAGE, "host": host}}


def _adapted(case: type, names: dict[str, str]) -> type:
    """``case`` with its named tests skipped, on the test database, its two hosts in place."""
    class_id = f"{case.__module__}.{case.__qualname__}"
    if class_id in names:
        named = {"__module__": case.__module__, "__qualname__": case.__qualname__}
        return unittest.skip(names[class_id])(type(case.__name__, (case,), named))

    class Adapted(case, TransactionTestCase):
        # The whole database is flushed after each test, so jobs never leak between tests.
        available_apps = None

        def setUp(self) -> None:
            from container_manager.models import ExecutorHost

            ExecutorHost.objects.create(name=HELD_HOST, executor_type="process",
                                        max_concurrent_jobs=0)  # fmt: skip
            ExecutorHost.objects.create(name=RUNNING_HOST, executor_type="process")
            if class_id not in CLEAR_DUMMY_STORE:
                super().setUp()

    for name in _test_names(case):
        reason = names.get(f"{class_id}.{name}")
        if reason:
            setattr(Adapted, name, unittest.skip(reason)(getattr(case, name)))
    Adapted.__name__, Adapted.__qualname__ = case.__name__, case.__qualname__
    Adapted.__module__ = case.__module__
    return Adapted


def _test_modules() -> Iterator[Any]:
    """Django's ``tasks.test*`` modules, imported from the directory on ``sys.path``."""
    package = import_module("tasks")
    for path in sorted(Path(package.__path__[0]).glob("test*.py")):
        yield import_module(f"tasks.{path.stem}")


def _test_names(case: type) -> list[str]:
    """The names of ``case``'s test methods."""
    return unittest.defaultTestLoader.getTestCaseNames(case)


def _summarise(result: unittest.TestResult) -> None:
    """Write the counts of tests passed, skipped by name, skipped otherwise and failed."""
    reasons = set(SKIPPED.values())
    by_name = sum(1 for _, reason in result.skipped if reason in reasons)
    # A test counts once, however many of its subtests failed.
    failed = len(
        {getattr(test, "test_case", test).id() for test, _ in result.failures + result.errors}
        | {test.id() for test in result.unexpectedSuccesses}
    )
    passed = result.testsRun - len(result.skipped) - failed - len(result.expectedFailures)
    sys.stderr.write(
        f"\nDjango {django.get_version()} tests/tasks against {OUR_BACKEND}: {passed} passed, "
        f"{by_name} skipped by name, {len(result.skipped) - by_name} skipped otherwise, "
        f"{failed} failed\n"
    )


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
