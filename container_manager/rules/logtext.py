"""Container log text: strip the runtime's timestamps, cap a stream at a size with a marker.

Readers follow a stream by byte offsets (``slice_log``) that count the bytes a cap dropped too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError

TRUNCATION_MARKER = "[container_manager: log truncated, {dropped} earlier bytes dropped]\n"
#: Where a reader's answer came from: read from the platform now, stored at harvest, or nothing.
LIVE, STORED, NONE = "live", "stored", "none"
#: The query parameters a reader passes back: the bytes of each stream it already has.
OFFSET_PARAMETERS = ("stdout_offset", "stderr_offset")
#: The largest offset a reader may give (a signed 64-bit integer, as OpenAPI's int64).
MAX_OFFSET = 2**63 - 1

_TIMESTAMP = re.compile(
    r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2})? ?", re.MULTILINE
)
_MARKER = re.compile(r"\[container_manager: log truncated, (\d+) earlier bytes dropped\]\n")


@dataclass(frozen=True)
class LogSlice:
    """Part of one output stream from a byte offset: what a reader following it gets next.

    Offsets count UTF-8 bytes from the start of the execution's stream, the bytes the
    ``LOG_MAX_BYTES`` cap dropped included, so an offset stays valid while the text
    grows and once it is stored.
    """

    #: The bytes from the asked offset (or from the oldest byte kept, when ``skipped``).
    text: str
    #: Where the next read starts: just after ``text``.
    offset: int
    #: Bytes between the asked offset and ``text`` that the cap dropped: lost to this reader.
    skipped: int
    #: Bytes after ``text`` known now but left for the next read by the size bound.
    remaining: int


@dataclass(frozen=True)
class JobLogs:
    """A job's stdout and stderr as a reader following them sees them, with where they came from.

    >>> done = JobLogs("completed", STORED, slice_log("hi\\n", 0, 10), slice_log("", 0, 10))
    >>> done.complete, done.as_json()["stdout_offset"]
    (True, 3)
    """

    status: str
    #: ``LIVE``, ``STORED`` or ``NONE``.
    source: str
    stdout: LogSlice
    stderr: LogSlice

    @property
    def complete(self) -> bool:
        """True when the stored text was returned to its end: nothing more will come."""
        return self.source == STORED and not self.stdout.remaining and not self.stderr.remaining

    def as_json(self) -> dict[str, Any]:
        """The fields the API and the admin answer; ``clean_output``: stdout without timestamps."""
        return {
            "stdout": self.stdout.text,
            "stderr": self.stderr.text,
            "clean_output": strip_timestamps(self.stdout.text),
            "truncated": bool(self.stdout.skipped or self.stderr.skipped),
            "stdout_offset": self.stdout.offset,
            "stderr_offset": self.stderr.offset,
            "complete": self.complete,
            "source": self.source,
        }


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

    The cut falls on a character boundary, so the marker counts the dropped bytes exactly.

    >>> cap_log("abcdef", 10)
    'abcdef'
    >>> cap_log("line1\\nline2\\n", 6)
    '[container_manager: log truncated, 6 earlier bytes dropped]\\nline2\\n'
    >>> cap_log("aé", 1)  # é is two bytes: it is kept whole or dropped whole
    '[container_manager: log truncated, 3 earlier bytes dropped]\\n'
    """
    data = text.encode("utf-8")
    if len(data) <= max_bytes:
        return text
    dropped = _boundary(data, len(data) - max_bytes)
    return TRUNCATION_MARKER.format(dropped=dropped) + data[dropped:].decode("utf-8")


def is_truncated(text: str) -> bool:
    """Tell whether ``cap_log`` cut this text.

    >>> is_truncated(cap_log("x" * 20, 5)), is_truncated("x")
    (True, False)
    """
    return _MARKER.match(text) is not None


def slice_log(text: str, offset: int, max_bytes: int) -> LogSlice:
    """``text`` (as ``cap_log`` left it) from byte ``offset`` on, at most ``max_bytes`` of it.

    A bounded slice ends after its last whole line when it holds one. An offset at or past
    the end (a running execution's text that has not grown yet, or a container already
    gone) gives no text and keeps the offset.

    >>> slice_log("one\\ntwo\\n", 4, 100)
    LogSlice(text='two\\n', offset=8, skipped=0, remaining=0)
    >>> slice_log(cap_log("one\\ntwo\\n", 4), 0, 100)
    LogSlice(text='two\\n', offset=8, skipped=4, remaining=0)
    >>> slice_log("one\\ntwo\\n", 0, 6)
    LogSlice(text='one\\n', offset=4, skipped=0, remaining=4)
    >>> slice_log("one\\n", 9, 100)
    LogSlice(text='', offset=9, skipped=0, remaining=0)
    """
    marker = _MARKER.match(text)
    dropped = int(marker.group(1)) if marker else 0
    body = text[marker.end() if marker else 0 :].encode("utf-8")
    if offset >= dropped + len(body):
        return LogSlice("", offset, 0, 0)
    start = _boundary(body, max(offset - dropped, 0))
    end = _bounded_end(body, start, max_bytes)
    return LogSlice(
        text=body[start:end].decode("utf-8"),
        offset=dropped + end,
        skipped=dropped + start - offset,
        remaining=len(body) - end,
    )


def read_offsets(query: Any) -> dict[str, int]:
    """``stdout_offset`` and ``stderr_offset`` of a request's query (0 when absent).

    Raises ``ValidationError`` naming a parameter that is not a whole number of bytes.

    >>> read_offsets({"stdout_offset": "42"})
    {'stdout_offset': 42, 'stderr_offset': 0}
    """
    offsets = {}
    for name in OFFSET_PARAMETERS:
        value = query.get(name) or "0"
        if not (value.isascii() and value.isdigit()) or int(value) > MAX_OFFSET:
            raise ValidationError({name: [f"{name}: must be a whole number of bytes, 0 or more."]})
        offsets[name] = int(value)
    return offsets


def _boundary(data: bytes, index: int) -> int:
    """The first UTF-8 character boundary of ``data`` at or after ``index``."""
    while index < len(data) and data[index] & 0xC0 == 0x80:
        index += 1
    return index


def _bounded_end(body: bytes, start: int, max_bytes: int) -> int:
    """Where a slice from ``start`` ends: at most ``max_bytes`` on, after a whole line if it can."""
    limit = start + max_bytes
    if limit >= len(body):
        return len(body)
    newline = body.rfind(b"\n", start, limit)
    if newline >= 0:
        return newline + 1
    end = limit
    while end > start and body[end] & 0xC0 == 0x80:
        end -= 1
    # A bound smaller than one character still moves the reader on by that character.
    return end if end > start else _boundary(body, start + 1)
