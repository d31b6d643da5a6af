"""Tell which environment variable names look secret and mask their values for display.

Used by the admin, log messages and exports; patterns come from ``SECRET_NAME_PATTERNS``.
"""

from __future__ import annotations

import fnmatch
import re
from typing import Any

from django.core.exceptions import ValidationError

from container_manager.conf import setting
from container_manager.rules import secretrefs
from container_manager.rules.taskwire import PAYLOAD_ENV

#: What a masked value is shown as.
MASK = "********"
#: Names masked whatever ``SECRET_NAME_PATTERNS`` says: a Django task's arguments.
ALWAYS_SECRET = frozenset({PAYLOAD_ENV})

# The password runs to the last "@" of the word: one written with a raw "@" is masked whole.
_URL_PASSWORD = re.compile(r"(?P<head>[a-z][a-z0-9+.-]*://[^:/\s]*:)[^\s]+(?P<at>@)", re.I)


def is_secret_name(name: str) -> bool:
    """True when ``name`` matches ``SECRET_NAME_PATTERNS`` (case-insensitive) or is a task payload.

    >>> is_secret_name("AWS_SECRET_ACCESS_KEY"), is_secret_name("api_token")
    (True, True)
    >>> is_secret_name("DEBUG"), is_secret_name("CM_TASK_PAYLOAD")
    (False, True)
    """
    upper = str(name).upper()
    return upper in ALWAYS_SECRET or any(
        fnmatch.fnmatchcase(upper, p.upper()) for p in setting("SECRET_NAME_PATTERNS")
    )


def mask_env(variables: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``variables`` with secret-looking values masked; nested dicts are masked too.

    Passwords written inside URLs (``scheme://user:password@host``) are masked whatever the name.
    A well-formed secret reference (``secret:...``, ``rules.secretrefs``) is shown: it names a
    secret, it does not hold one, and seeing which secret a job reads helps; a value that only
    starts like one is masked as any other.

    >>> mask_env({"DEBUG": "1", "DB_PASSWORD": "hunter2", "URL": "postgres://u:pw@db/x"})
    {'DEBUG': '1', 'DB_PASSWORD': '********', 'URL': 'postgres://u:********@db/x'}
    >>> mask_env({"API_TOKEN": "secret:env:CM_SECRET_API", "DB_PASS": "secret:hunter2"})
    {'API_TOKEN': 'secret:env:CM_SECRET_API', 'DB_PASS': '********'}
    """
    return {key: _mask_value(key, value) for key, value in variables.items()}


def mask_env_text(text: str) -> str:
    """``KEY=value`` text with secret-looking values masked; comments and layout kept.

    >>> print(mask_env_text("# db\\nAPI_KEY=abc\\nMODE=fast"))
    # db
    API_KEY=********
    MODE=fast
    """
    return "\n".join(_mask_line(line) for line in (text or "").split("\n"))


def unmask_env_text(edited: str, stored: str) -> str:
    """``KEY=value`` text edited from its masked form, with each value left masked put back.

    A line whose value is still exactly what ``mask_env_text`` showed for that variable gets
    the stored line back; any other line still holding ``MASK`` is a ``ValidationError``
    naming the line (a value never shown cannot be partly edited). Other lines are kept.

    >>> stored = "API_KEY=abc\\nURL=pg://u:pw@db/x\\nMODE=slow"
    >>> print(unmask_env_text(mask_env_text(stored).replace("slow", "fast"), stored))
    API_KEY=abc
    URL=pg://u:pw@db/x
    MODE=fast
    >>> unmask_env_text("NEW_TOKEN=********", stored)
    Traceback (most recent call last):
    ...
    django.core.exceptions.ValidationError: ['line 1: NEW_TOKEN holds the mask ********: ...']
    """
    kept = {key: line for line in (stored or "").split("\n") if (key := _line_key(line))}
    lines = []
    for number, line in enumerate((edited or "").split("\n"), start=1):
        key = _line_key(line) if MASK in line else None
        if key:
            original = kept.get(key)
            if original is None or _line_value(_mask_line(original)) != _line_value(line):
                raise ValidationError(
                    f"line {number}: {key} holds the mask {MASK}: type its whole value "
                    "(a stored value is kept only while its line is left as shown)"
                )
            line = original
        lines.append(line)
    return "\n".join(lines)


def mask_url(text: str) -> str:
    """``text`` with the password of every URL in it masked.

    >>> mask_url("tcp://admin:p@ss@docker.example:2376")
    'tcp://admin:********@docker.example:2376'
    """
    return _URL_PASSWORD.sub(rf"\g<head>{MASK}\g<at>", text)


def _mask_value(key: str, value: Any) -> Any:
    if isinstance(value, dict):
        return mask_env(value)
    if isinstance(value, list):
        return [_mask_value(key, item) for item in value]
    if isinstance(value, str) and secretrefs.well_formed(value.strip()):
        return value
    if is_secret_name(key):
        return MASK
    if isinstance(value, str):
        return mask_url(value)
    return value


def _mask_line(line: str) -> str:
    key = _line_key(line)
    if key is None:
        return line
    head, value = line.split("=", 1)
    return f"{head}={_mask_value(key, value)}"


def _line_key(line: str) -> str | None:
    """The variable a ``KEY=value`` line sets; None for comments, blanks and other lines."""
    stripped = line.strip()
    if not stripped or stripped.startswith("#") or "=" not in stripped:
        return None
    return stripped.split("=", 1)[0].strip()


def _line_value(line: str) -> str:
    return line.split("=", 1)[1].strip()
