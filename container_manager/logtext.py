"""Container log text: strip the runtime's timestamps, cap a stream at a size with a marker."""

import re

TRUNCATION_MARKER = "[container_manager: log truncated, {dropped} earlier bytes dropped]\n"

_TIMESTAMP = re.compile(
    r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2})? ?", re.MULTILINE
)


def strip_timestamps(text: str) -> str:
    """Remove the RFC 3339 timestamp the runtime put at the start of each line.

    >>> strip_timestamps("2024-01-02T03:04:05.123456789Z hello\\n2024-01-02T03:04:06Z world\\n")
    'hello\\nworld\\n'
    >>> strip_timestamps("no stamp here")
    'no stamp here'
    """
    return _TIMESTAMP.sub("", text)


def cap_log(text: str, max_bytes: int) -> str:
    """Keep the last ``max_bytes`` bytes of ``text``, with a visible marker when cut.

    >>> cap_log("abcdef", 10)
    'abcdef'
    >>> cap_log("line1\\nline2\\n", 6)
    '[container_manager: log truncated, 6 earlier bytes dropped]\\nline2\\n'
    """
    data = text.encode("utf-8")
    if len(data) <= max_bytes:
        return text
    kept = data[len(data) - max_bytes :]
    dropped = len(data) - len(kept)
    return TRUNCATION_MARKER.format(dropped=dropped) + kept.decode("utf-8", errors="ignore")


def is_truncated(text: str) -> bool:
    """Tell whether ``cap_log`` cut this text.

    >>> is_truncated(cap_log("x" * 20, 5))
    True
    """
    return text.startswith(TRUNCATION_MARKER.split("{", 1)[0])
