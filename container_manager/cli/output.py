"""What ``cm`` prints: JSON for scripts, aligned tables and ``key: value`` lists for people.

Errors go to stderr with the server's message and each field it names, the token never shown.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from typing import Any, TextIO

#: A table column: its header and how a row's cell is read from the object.
Column = tuple[str, Callable[[dict[str, Any]], Any]]


def print_json(value: Any, stream: TextIO | None = None) -> None:
    """``value`` as indented JSON, one document."""
    (stream or sys.stdout).write(json.dumps(value, indent=2, ensure_ascii=False) + "\n")


def table(rows: Sequence[dict[str, Any]], columns: Sequence[Column]) -> str:
    """``rows`` as a table with a header, columns aligned, missing values as ``-``.

    >>> print(table([{"id": 1, "name": "a"}, {"id": 22}], [("ID", lambda r: r["id"]),
    ...                                                      ("NAME", lambda r: r.get("name"))]))
    ID  NAME
    1   a
    22  -
    """
    cells = [[header for header, _ in columns]]
    cells += [[cell(read(row)) for _, read in columns] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    return "\n".join(
        "  ".join(text.ljust(width) for text, width in zip(line, widths, strict=True)).rstrip()
        for line in cells
    )


def fields(obj: dict[str, Any], names: Sequence[str]) -> str:
    """``name: value`` lines of ``obj``'s ``names`` that have a value; objects as ``k=v, …``.

    >>> print(fields({"id": 1, "labels": {"team": "a"}, "error": None}, ["id", "labels", "error"]))
    id:      1
    labels:  team=a
    """
    shown = [(name, obj[name]) for name in names if obj.get(name) not in (None, "", {}, [])]
    width = max((len(name) for name, _ in shown), default=0) + 2
    return "\n".join(f"{name + ':':<{width}}{cell(value)}" for name, value in shown)


def cell(value: Any) -> str:
    """A value as a table cell or a ``fields`` value: ``-`` for none, one line.

    >>> cell(None), cell(True), cell({"a": "1", "b": "2"}), cell("2026-12-07T15:04:05.123+00:00")
    ('-', 'yes', 'a=1,b=2', '2026-12-07 15:04:05')
    """
    if value is None or value == "":
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict):
        return ",".join(f"{key}={val}" for key, val in value.items())
    if isinstance(value, list):
        return ", ".join(cell(item) for item in value)
    text = str(value)
    if len(text) >= 19 and text[4] == "-" and text[10] == "T":
        return text[:10] + " " + text[11:19]  # an ISO 8601 time, to the second
    return text.replace("\n", " ")


def error_lines(status: int, body: dict[str, Any]) -> list[str]:
    """The lines of an API error: the status and message, then each field named and why.

    >>> error_lines(400, {"error": "invalid input", "fields": {"limit": ["limit: 1 to 200"]}})
    ['cm: error 400: invalid input', '  limit: 1 to 200']
    >>> error_lines(409, {"error": "job is running", "fields": {"status": "status: not failed"}})
    ['cm: error 409: job is running', '  status: not failed']
    """
    lines = [f"cm: error {status}: {body.get('error') or 'no message'}"]
    named = body.get("fields")
    if isinstance(named, dict):
        for name, messages in named.items():
            for message in messages if isinstance(messages, list) else [messages]:
                text = str(message)
                lines.append(f"  {text}" if text.startswith(f"{name}:") else f"  {name}: {text}")
    return lines


def redact(text: str, secret: str | None) -> str:
    """``text`` with ``secret`` replaced by ``***``.

    >>> redact("token abc refused", "abc"), redact("no secret", None)
    ('token *** refused', 'no secret')
    """
    return text.replace(secret, "***") if secret else text
