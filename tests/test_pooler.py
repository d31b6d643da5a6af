"""Behind a pooler in transaction mode (PgBouncer, RDS Proxy) a server connection serves whichever
client's transaction comes next: the package must leave nothing on it after a transaction.

docs/configuration.md ("Behind a connection pooler") lists what the settings turn off; this
searches the package's SQL (keywords in capitals, as the package writes them) for the session
state a pooler cannot carry.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "container_manager"

#: Statements whose effect outlives their transaction, with the reason each is refused.
SESSION_STATE = {
    r"\bpg_(try_)?advisory_(unlock|lock)(_shared)?\s*\(": "session lock: pg_advisory_xact_lock",
    r"""["'(]\s*SET\s+(?!LOCAL\b)(SESSION\s+)?\w+""": "session parameter: SET LOCAL instead",
    r"\bset_config\s*\([^)]*,\s*(false|FALSE)\s*\)": "set_config(..., false) is session-wide",
    r"\bLISTEN\s+\w+": "LISTEN waits on one server connection",
    r"\bPREPARE\s+\w+": "a prepared statement exists on one server connection",
    r"\bDECLARE\s+\w+\s+.*CURSOR\b": "a cursor may outlive its transaction (WITH HOLD)",
    r"\bCREATE\s+(TEMP|TEMPORARY)\b": "a temporary table lives as long as the session",
}


def offences(text: str) -> list[str]:
    """The session-state statements in a piece of source, with the reason each is refused."""
    return [
        f"{match.group(0)!r}: {reason}"
        for pattern, reason in SESSION_STATE.items()
        for match in re.finditer(pattern, text)
    ]


@pytest.mark.parametrize(
    "source",
    [
        'cursor.execute("SELECT pg_advisory_lock(%s)", [key])',
        "cursor.execute('SET statement_timeout = 5000')",
        'cursor.execute("SET SESSION search_path TO x")',
        "cursor.execute(\"SELECT set_config('TimeZone', 'UTC', false)\")",
        'cursor.execute("LISTEN jobs")',
        'cursor.execute("PREPARE claim AS SELECT 1")',
        'cursor.execute("DECLARE c CURSOR WITH HOLD FOR SELECT 1")',
        'cursor.execute("CREATE TEMP TABLE t (id int)")',
    ],
)
def test_each_kind_of_session_state_is_found(source):
    assert offences(source)


@pytest.mark.parametrize(
    "source",
    [
        'cursor.execute("SELECT pg_advisory_xact_lock(%s)", [key])',
        'cursor.execute("SET LOCAL statement_timeout = 5000")',
        'f"UPDATE {jobs} SET status = %s WHERE id = %s"',
        "cursor.execute(\"SELECT set_config('x.y', '1', true)\")",
    ],
)
def test_transaction_scoped_statements_pass(source):
    assert not offences(source)


def test_the_package_keeps_no_session_state_on_the_connection():
    found = {
        str(path.relative_to(PACKAGE)): hits
        for path in sorted(PACKAGE.rglob("*.py"))
        if (hits := offences(path.read_text()))
    }
    assert not found, found
