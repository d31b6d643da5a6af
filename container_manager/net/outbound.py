"""The guarded outbound HTTP client: public addresses only, under one deadline.

Each address a host name resolves to is checked (``net.addresses``) and the socket connects
to the address that was checked. Connecting, sending and reading the answer's headers end
by the deadline: a receiver that drips its answer cannot hold the caller past it.
"""

from __future__ import annotations

import http.client
import io
import socket
import time
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from container_manager.net import addresses


class Deadline:
    """A point in time by which a whole exchange (every hop of it) must be over.

    >>> Deadline(60).left() > 59
    True
    >>> Deadline(0).left()
    Traceback (most recent call last):
    ...
    TimeoutError: timed out (deadline passed)
    """

    def __init__(self, seconds: float) -> None:
        self.ends = time.monotonic() + seconds

    def left(self) -> float:
        """Seconds left; ``TimeoutError`` once none are."""
        left = self.ends - time.monotonic()
        if left <= 0:
            raise TimeoutError("timed out (deadline passed)")
        return left


class Answer(NamedTuple):
    """The head of an answer: status code, reason phrase, ``Location`` header (or "")."""

    status: int
    reason: str
    location: str


def post(url: str, body: bytes, headers: dict[str, str], deadline: Deadline) -> Answer:
    """POST ``body`` to ``url`` and read the head of the answer.

    Connecting (address by address), sending, and reading the status line and
    headers all end by ``deadline`` (``TimeoutError`` otherwise); the body of
    the answer is not read, redirects are not followed (a caller that follows one
    calls ``post`` again: the hop is checked the same way). Only addresses that
    ``addresses.refusal`` lets through, given ``WEBHOOK_ALLOWED_NETWORKS``, are
    connected to; ``addresses.RefusedAddress`` (an ``OSError``) when every address
    of the host is refused, before any packet is sent to it. Raises ``OSError``,
    ``ValueError`` (a bad URL or setting) or ``http.client.HTTPException`` (a
    malformed answer) when there is no answer.
    """
    parts = urlsplit(url)
    kinds = {"http": _Connection, "https": _TLSConnection}
    if parts.scheme not in kinds or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {url!r}")
    kind = kinds[parts.scheme]
    connection = kind(parts.hostname, parts.port or kind.default_port, deadline)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        connection.connect()
        connection.request("POST", target, body=body, headers=headers)
        with connection.getresponse() as response:
            return Answer(response.status, response.reason, response.getheader("Location", ""))
    finally:
        connection.close()


# -- helpers --------------------------------------------------------------------


class _InTime:
    """For an ``HTTPConnection``: each socket operation waits only for the deadline's time left."""

    def __init__(self, host: str, port: int | None, deadline: Deadline) -> None:
        super().__init__(host, port, timeout=deadline.left())
        self.deadline = deadline
        # ``connect`` and ``getresponse`` call these two.
        self._create_connection = self._connect
        self.response_class = self._response

    def send(self, data: Any) -> None:
        """Send (part of) the request with the time left."""
        self.sock.settimeout(self.deadline.left())
        super().send(data)

    def _connect(self, address: tuple[str, int], *_: Any) -> socket.socket:
        """Try the host's allowed addresses in turn, each with the time left; the first answers.

        The socket connects to the very address that was checked: no second lookup.
        """
        host, port = address
        allowed = addresses.allowed_networks()
        error: OSError | None = None
        refused = ""
        found = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)
        for family, kind, proto, _name, target in found:
            reason = addresses.refusal(target[0], allowed)
            if reason:
                refused = refused or reason
                continue
            sock = socket.socket(family, kind, proto)
            try:
                sock.settimeout(self.deadline.left())
                sock.connect(target)
                sock.settimeout(self.deadline.left())  # for a TLS handshake that follows
            except OSError as exc:
                sock.close()
                error = exc
                continue
            return sock
        if error is None and refused:
            raise addresses.RefusedAddress(addresses.message(host, refused))
        raise error or OSError(f"no address found for {host!r}")

    def _response(self, sock: socket.socket, **kwargs: Any) -> http.client.HTTPResponse:
        return http.client.HTTPResponse(_DeadlineSocket(sock, self.deadline), **kwargs)


class _Connection(_InTime, http.client.HTTPConnection):
    """HTTP under a deadline."""


class _TLSConnection(_InTime, http.client.HTTPSConnection):
    """HTTPS under a deadline (certificates checked; the handshake has the time left)."""


class _DeadlineSocket:
    """What ``HTTPResponse`` reads the answer from: the socket, read under the deadline."""

    def __init__(self, sock: socket.socket, deadline: Deadline) -> None:
        self._sock, self._deadline = sock, deadline

    def makefile(self, mode: str) -> io.BufferedReader:
        """A buffered reader of the socket (``mode`` is always ``"rb"``)."""
        return io.BufferedReader(_DeadlineReader(self._sock, self._deadline))


class _DeadlineReader(io.RawIOBase):
    """Each read waits for the time left, not for a fresh timeout: a drip cannot extend it."""

    def __init__(self, sock: socket.socket, deadline: Deadline) -> None:
        super().__init__()
        self._sock, self._deadline = sock, deadline

    def readable(self) -> bool:
        """Always: this is a reader."""
        return True

    def readinto(self, buffer: Any) -> int:
        """Receive into ``buffer`` what arrives within the time left; 0 at the end."""
        self._sock.settimeout(self._deadline.left())
        return self._sock.recv_into(buffer)
