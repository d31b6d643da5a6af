"""SQLite made safe for a web process and a worker side by side: WAL and a long busy timeout.

``prepare_connection`` runs on every new SQLite connection; what a connection cannot be given
once open (``transaction_mode``) is named by a system check with ``REQUIRED_OPTIONS``.
"""

from __future__ import annotations

import logging
import sqlite3
from typing import Any

logger = logging.getLogger(__name__)

#: How long a connection waits for another process's write lock, in milliseconds.
BUSY_TIMEOUT_MS = 30_000
#: The OPTIONS a SQLite database needs in settings: a write transaction takes the lock when it
#: begins (a deferred one that reads first gets "database is locked" at once when it writes).
REQUIRED_OPTIONS: dict[str, Any] = {"transaction_mode": "IMMEDIATE"}


def prepare_connection(sender: Any, connection: Any, **kwargs: Any) -> None:
    """On a new SQLite connection: wait up to ``BUSY_TIMEOUT_MS`` for locks, journal in WAL.

    The ``connection_created`` receiver. WAL lets readers go on while one process writes;
    it is a property of the file, so it is set once. Other vendors are left alone.
    """
    if connection.vendor != "sqlite":
        return
    raw = connection.connection
    if raw.execute("PRAGMA busy_timeout").fetchone()[0] < BUSY_TIMEOUT_MS:
        raw.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    if raw.execute("PRAGMA journal_mode").fetchone()[0] in {"wal", "memory"}:
        return
    try:
        raw.execute("PRAGMA journal_mode = WAL")
    except sqlite3.OperationalError:
        logger.warning("could not switch the SQLite database to WAL", exc_info=True)


def missing_options(database: dict[str, Any]) -> dict[str, Any]:
    """The ``REQUIRED_OPTIONS`` a SQLite database's settings lack or set otherwise; {} if none.

    >>> missing_options({"ENGINE": "django.db.backends.sqlite3", "OPTIONS": {"timeout": 60}})
    {'transaction_mode': 'IMMEDIATE'}
    >>> missing_options({"ENGINE": "django.db.backends.sqlite3", "OPTIONS": REQUIRED_OPTIONS})
    {}
    >>> missing_options({"ENGINE": "django.db.backends.postgresql"})
    {}
    """
    if not database.get("ENGINE", "").endswith("sqlite3"):
        return {}
    options = database.get("OPTIONS") or {}
    return {
        key: value
        for key, value in REQUIRED_OPTIONS.items()
        if str(options.get(key, "")).upper() != str(value).upper()
    }
