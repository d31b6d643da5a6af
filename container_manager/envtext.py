"""Environment variable text (``KEY=value`` lines): parse it, validate it, write it back.

Used by templates and by a job's ``override_environment``.
"""

import re

from django.core.exceptions import ValidationError

_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def parse_env_text(text: str) -> dict[str, str]:
    """Parse ``KEY=value`` lines into a dict; later lines win.

    Blank lines and lines starting with ``#`` are ignored; the first ``=``
    splits key from value, so values may hold ``=``; a value wrapped in
    matching single or double quotes loses them (inside double quotes
    ``\\"`` and ``\\\\`` are unescaped). Raises ``ValidationError`` naming the
    line for a line without ``=`` or a key that is not a valid name.

    >>> parse_env_text('''
    ... # a comment
    ... DEBUG=true
    ... DATABASE_URL=postgresql://u:p@h/db?sslmode=require
    ... GREETING="Hello World"
    ... QUOTED='a "b" c'
    ... EMPTY=
    ... ''')
    {'DEBUG': 'true', 'DATABASE_URL': 'postgresql://u:p@h/db?sslmode=require', \
'GREETING': 'Hello World', 'QUOTED': 'a "b" c', 'EMPTY': ''}
    >>> parse_env_text("NOT A LINE")
    Traceback (most recent call last):
    ...
    django.core.exceptions.ValidationError: ["line 1: expected KEY=value, got 'NOT A LINE'"]
    """
    result: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if "=" not in line:
            raise ValidationError(f"line {number}: expected KEY=value, got {line[:40]!r}")
        key, value = line.split("=", 1)
        key = key.strip()
        if not _KEY.match(key):
            raise ValidationError(
                f"line {number}: {key[:40]!r} is not a valid variable name "
                "(letters, digits and _, not starting with a digit)"
            )
        result[key] = _unquote(value.strip())
    return result


def validate_env_text(text: str) -> None:
    """Field validator: raise ``ValidationError`` if ``text`` does not parse."""
    parse_env_text(text)


def format_env_text(variables: dict[str, str]) -> str:
    """Write a dict back as ``KEY=value`` lines that ``parse_env_text`` reads the same.

    >>> env = {"A": "1", "B": "two words", "C": ' padded '}
    >>> parse_env_text(format_env_text(env)) == env
    True
    """
    lines = []
    for key, value in variables.items():
        if not _KEY.match(str(key)):
            raise ValidationError(f"{key!r} is not a valid variable name")
        text = str(value)
        if text != text.strip() or text[:1] in "\"'" or "\n" in text:
            escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
            text = f'"{escaped}"'
        lines.append(f"{key}={text}")
    return "\n".join(lines)


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == "'":
        return value[1:-1]
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return re.sub(r"\\(.)", _unescape, value[1:-1])
    return value


def _unescape(match: re.Match) -> str:
    char = match.group(1)
    return "\n" if char == "n" else char
