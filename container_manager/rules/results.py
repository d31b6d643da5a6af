"""A job's result and its dependents' inputs: the last stdout line as JSON, and the variables
``CM_INPUT_<NAME>`` that carry it to the jobs waiting for it, each bounded in bytes.
"""

from __future__ import annotations

import json
import re
from typing import Any

#: The prefix of the variable that carries a dependency's result to a dependent.
INPUT_PREFIX = "CM_INPUT_"
_NOT_IN_NAME = re.compile(r"[^A-Z0-9_]")


def read_result(output: str, max_bytes: int) -> tuple[str | None, str]:
    """The result in ``output`` (its last non-empty line, JSON, at most ``max_bytes`` in UTF-8)
    as that line's text; or None and why there is none, naming the rule.

    >>> read_result('working\\n{"rows": 3}\\n\\n', 100)
    ('{"rows": 3}', '')
    >>> read_result("done", 100)
    (None, 'returns_result: the last line of stdout is not JSON: done')
    >>> read_result('"' + "x" * 20 + '"', 10)
    (None, 'returns_result: the result is 22 bytes, more than WORKFLOW_OUTPUT_MAX_BYTES (10)')
    """
    line = next((text.strip() for text in reversed(output.splitlines()) if text.strip()), "")
    size = len(line.encode("utf-8", "surrogatepass"))
    if size > max_bytes:
        return None, (
            f"returns_result: the result is {size} bytes, "
            f"more than WORKFLOW_OUTPUT_MAX_BYTES ({max_bytes})"
        )
    if not line:
        return None, "returns_result: stdout has no line to read a JSON result from"
    try:
        json.loads(line, parse_constant=_no_constant)
    except ValueError:
        return None, f"returns_result: the last line of stdout is not JSON: {line[:80]}"
    return line, ""


def input_variable(key: str) -> str:
    """The variable that carries the result of the dependency called ``key`` (its node name,
    else its job name, else its id): upper-cased, each character not a letter, digit or ``_``
    made ``_``.

    >>> input_variable("load-rows"), input_variable("ünïcode 1")
    ('CM_INPUT_LOAD_ROWS', 'CM_INPUT__N_CODE_1')
    """
    return INPUT_PREFIX + _NOT_IN_NAME.sub("_", key.upper())


def input_environment(results: list[tuple[str, str]], max_bytes: int) -> tuple[dict[str, str], str]:
    """The variables for ``(key, result)`` pairs; or ``{}`` and why not, when two keys make one
    variable or the names and values add up to more than ``max_bytes`` (UTF-8) — never cut.

    >>> input_environment([("a", "1"), ("b", "[2]")], 100)
    ({'CM_INPUT_A': '1', 'CM_INPUT_B': '[2]'}, '')
    >>> input_environment([("a", "1"), ("b", "[2]")], 20)[1]
    'inputs: 26 bytes (CM_INPUT_A 12, CM_INPUT_B 14), more than WORKFLOW_INPUTS_MAX_BYTES (20)'
    """
    environment: dict[str, str] = {}
    for key, value in results:
        name = input_variable(key)
        if name in environment:
            return {}, f"inputs: two dependencies give {name}; name them apart"
        environment[name] = value
    sizes = {name: len(f"{name}={value}".encode()) for name, value in environment.items()}
    total = sum(sizes.values())
    if total > max_bytes:
        each = ", ".join(f"{name} {size}" for name, size in sizes.items())
        return {}, (
            f"inputs: {total} bytes ({each}), more than WORKFLOW_INPUTS_MAX_BYTES ({max_bytes})"
        )
    return environment, ""


def as_value(result: str | None) -> Any:
    """A stored result as the JSON value it holds, for the API; None when there is none.

    >>> as_value('{"rows": 3}'), as_value(None)
    ({'rows': 3}, None)
    """
    return None if result is None else json.loads(result)


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")
