"""Environment variable text (``KEY=value`` lines): parse it, validate it, write it back.

Used by templates and by a job's ``override_environment``.
"""

import re

from django.core.exceptions import ValidationError

from container_manager.rules.secretrefs import validate_references

_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
#: Characters written as an escape inside double quotes: every line boundary that
#: ``str.splitlines()`` knows, the quote and the backslash. ``parse_env_text`` reads them back.
_ESCAPES = {
    "\\": "\\", '"': '"', "\n": "n", "\r": "r", "\v": "v", "\f": "f",
    "\x1c": "x1c", "\x1d": "x1d", "\x1e": "x1e", "\x85": "x85",
    "\u2028": "u2028", "\u2029": "u2029",
}  # fmt: skip
_UNESCAPE = re.compile(r"\\(x[0-9a-f]{2}|u[0-9a-f]{4}|.)")
_NAMED = {"n": "\n", "r": "\r", "v": "\v", "f": "\f"}


def parse_env_text(text: str) -> dict[str, str]:
    """Parse ``KEY=value`` lines into a dict; later lines win.

    Blank lines and lines starting with ``#`` are ignored; the first ``=``
    splits key from value, so values may hold ``=``; a value wrapped in
    matching single or double quotes loses them; inside double quotes a
    backslash escapes the next character, and ``\\n``, ``\\r``, ``\\v``, ``\\f``,
    ``\\xHH`` and ``\\uHHHH`` stand for those characters. Raises ``ValidationError`` naming the
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
        if not is_valid_name(key):
            raise ValidationError(
                f"line {number}: {key[:40]!r} is not a valid variable name "
                "(letters, digits and _, not starting with a digit)"
            )
        result[key] = _unquote(value.strip())
    return result


def is_valid_name(name: object) -> bool:
    """True for a variable name: letters, digits and ``_``, not starting with a digit.

    >>> is_valid_name("LOG_LEVEL"), is_valid_name("A\\n"), is_valid_name("1A")
    (True, False, False)
    """
    return isinstance(name, str) and _KEY.fullmatch(name) is not None


def validate_env_text(text: str) -> None:
    """Field validator: raise ``ValidationError`` if ``text`` does not parse or a value written
    as a secret reference (``secret:...``, see ``rules.secretrefs``) is malformed.

    >>> validate_env_text("TOKEN=secret:env:CM_SECRET_TOKEN\\nMODE=fast")
    >>> validate_env_text("TOKEN=secret:file:../etc/passwd")
    Traceback (most recent call last):
    ...
    django.core.exceptions.ValidationError: ["TOKEN: secret:file:<file name> needs a plain file \
name (no '/', not '..')."]
    """
    validate_references(parse_env_text(text))


def format_env_text(variables: dict[str, str]) -> str:
    """Write a dict back as ``KEY=value`` lines that ``parse_env_text`` reads the same.

    A value that would not survive as it is (padding, a leading quote, a line
    boundary, a backslash) is written in double quotes with escapes.

    >>> env = {"A": "1", "B": "two words", "C": ' padded ', "D": "x\\rINJECTED=1"}
    >>> print(format_env_text(env))
    A=1
    B=two words
    C=" padded "
    D="x\\rINJECTED=1"
    >>> parse_env_text(format_env_text(env)) == env
    True
    """
    lines = []
    for key, value in variables.items():
        if not is_valid_name(key):
            raise ValidationError(f"{key!r} is not a valid variable name")
        text = str(value)
        if _needs_quotes(text):
            text = '"' + "".join(_escape(char) for char in text) + '"'
        lines.append(f"{key}={text}")
    return "\n".join(lines)


def _needs_quotes(text: str) -> bool:
    return text != text.strip() or text[:1] == "'" or any(char in _ESCAPES for char in text)


def _escape(char: str) -> str:
    code = _ESCAPES.get(char)
    return char if code is None else "\\" + code


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == "'":
        return value[1:-1]
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return _UNESCAPE.sub(_unescape, value[1:-1])
    return value


def _unescape(match: re.Match) -> str:
    code = match.group(1)
    if len(code) > 1:
        return chr(int(code[1:], 16))
    return _NAMED.get(code, code)
