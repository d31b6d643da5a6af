"""The database floor: what a job needs from PostgreSQL, through psycopg alone, nothing else.

Rerun (about a minute at the defaults; K = 1 and 4, three alternated rounds)::

    .venv-bench/bin/python benchmarks/pg_floor.py

Per job three autocommitted statements: the insert, the claim (``UPDATE … WHERE id = (SELECT …
FOR UPDATE SKIP LOCKED LIMIT 1) RETURNING``) and the finish, from K processes with a connection
each, in the database ``cm_bench_floor``. It is a side of ``tasks_db.py`` (``--sides``), which
runs it with the same windows, CPU accounting and alternation as ours and django-tasks-db
(there it is in every round); alone it writes ``results/pg_floor.json``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

TABLE = "cm_floor_job"
SCHEMA = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
    id bigserial PRIMARY KEY,
    status text NOT NULL,
    payload jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    started_at timestamptz,
    finished_at timestamptz
);
CREATE INDEX IF NOT EXISTS cm_floor_job_pending ON {TABLE} (id) WHERE status = 'pending'
"""
INSERT = f"INSERT INTO {TABLE} (status, payload) VALUES ('pending', %s) RETURNING id"
CLAIM = (
    f"UPDATE {TABLE} SET status = 'running', started_at = clock_timestamp() "
    f"WHERE id = (SELECT id FROM {TABLE} WHERE status = 'pending' ORDER BY id "
    "FOR UPDATE SKIP LOCKED LIMIT 1) RETURNING id"
)
FINISH = f"UPDATE {TABLE} SET status = 'completed', finished_at = clock_timestamp() WHERE id = %s"
SPAN = (
    "SELECT extract(epoch FROM min(created_at)), extract(epoch FROM max(finished_at)), "
    f"count(*) FILTER (WHERE status = 'completed') FROM {TABLE}"
)
PAYLOAD = '{"image": "x", "command": "true"}'


def prepare(url: str) -> None:
    """Create the table (once) and empty it."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(SCHEMA)
        connection.execute(f"TRUNCATE {TABLE}")


class FloorWorker:
    """One worker process of the floor: a connection, three statements a job."""

    def __init__(self, url: str, args: Any = None):
        import psycopg

        self.connection = psycopg.connect(url, autocommit=True)

    def prepare(self, mode: str, share: int) -> None:
        """In the queued mode, insert this process's share before the go."""
        if mode == "queued":
            for _ in range(share):
                self.connection.execute(INSERT, (PAYLOAD,))

    def run(self, mode: str, share: int) -> None:
        """Insert (submit mode), claim and finish; then run jobs until none is pending."""
        if mode == "submit":
            for _ in range(share):
                self.connection.execute(INSERT, (PAYLOAD,))
                self._run_one()
        while self._run_one():
            pass

    def _run_one(self) -> bool:
        """Claim the oldest pending job and finish it; False when none was free."""
        row = self.connection.execute(CLAIM).fetchone()
        if row is None:
            return False
        self.connection.execute(FINISH, row)
        return True


def span(url: str) -> tuple[float, float, int]:
    """Epoch seconds of the first insert and the last finish, and the jobs finished."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as connection:
        first, last, done = connection.execute(SPAN).fetchone()
    return float(first), float(last), done


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import tasks_db

    sys.argv[1:1] = ["--sides", "floor", "--k", "1", "4", "--name", "pg_floor"]
    tasks_db.main()
