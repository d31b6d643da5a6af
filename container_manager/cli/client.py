"""The HTTP client of ``cm``: JSON requests to a deployment's API with its bearer token.

Redirects are refused, not followed, so the token goes nowhere but the configured URL.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from typing import Any

#: Seconds one request may take, connecting included.
REQUEST_TIMEOUT = 30.0
#: Longest text of a non-JSON error answer that is shown.
MAX_TEXT_SHOWN = 500

Query = Sequence[tuple[str, str]]


class ApiError(Exception):
    """The API answered an error status; ``body`` is its JSON error object.

    ``retry_after`` is the answer's ``Retry-After`` in seconds, when it gave one.
    """

    def __init__(self, status: int, body: dict[str, Any], retry_after: float | None = None):
        super().__init__(f"{status} {body.get('error', '')}")
        self.status = status
        self.body = body
        self.retry_after = retry_after


class Unreachable(Exception):
    """The server could not be reached or did not answer (refused, DNS, TLS, timeout)."""


class Client:
    """Requests to the API under ``api_root`` (ending in ``/``) with ``token``.

    ``debug``, when given, receives one line per request and per answer, the token
    replaced by ``***``.
    """

    def __init__(
        self, api_root: str, token: str, debug: Callable[[str], None] | None = None
    ) -> None:
        self.api_root = api_root
        self._token = token
        self._debug = debug
        self._opener = urllib.request.build_opener(_NoRedirect())

    def get(self, path: str, query: Query = ()) -> Any:
        """GET ``path`` (relative to the API root) with ``query``; the decoded JSON answer."""
        return self.request("GET", path, query=query)

    def post(self, path: str, body: Any = None, headers: dict[str, str] | None = None) -> Any:
        """POST ``body`` as JSON to ``path``; the decoded JSON answer."""
        return self.request("POST", path, body=body, headers=headers)

    def patch(self, path: str, body: Any) -> Any:
        """PATCH ``body`` as JSON to ``path``; the decoded JSON answer."""
        return self.request("PATCH", path, body=body)

    def delete(self, path: str) -> Any:
        """DELETE ``path``; the decoded JSON answer, None for an empty one."""
        return self.request("DELETE", path)

    def request(
        self,
        method: str,
        path: str,
        query: Query = (),
        body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        """Send one request; the decoded JSON answer (None when empty).

        Raises ``ApiError`` for an answer of status 300 or more, ``Unreachable`` when none came.
        """
        url = self.api_root + path + (f"?{urllib.parse.urlencode(query)}" if query else "")
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(url, data=data, method=method)
        request.add_header("Accept", "application/json")
        request.add_header("User-Agent", "cm (container_manager CLI)")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        for name, value in (headers or {}).items():
            request.add_header(name, value)
        self._say(f"> {method} {url}" + (f" {data.decode()}" if data else ""))
        request.add_header("Authorization", f"Bearer {self._token}")
        started = time.monotonic()
        try:
            with self._opener.open(request, timeout=REQUEST_TIMEOUT) as response:
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as exc:
            self._say(f"< {exc.code} in {_ms(started)} ms")
            raise _api_error(exc) from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            reason = getattr(exc, "reason", exc)
            self._say(f"< no answer in {_ms(started)} ms: {reason}")
            raise Unreachable(f"cannot reach {self.api_root}: {reason}") from None
        self._say(f"< {status} in {_ms(started)} ms")
        return json.loads(raw) if raw.strip() else None

    def _say(self, line: str) -> None:
        if self._debug is not None:
            self._debug(line.replace(self._token, "***") if self._token else line)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Answer a redirect as the error it is here: following it would carry the token along."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _api_error(exc: urllib.error.HTTPError) -> ApiError:
    """The ``ApiError`` of an HTTP error answer, its body decoded when it is a JSON object."""
    raw = exc.read()
    try:
        body = json.loads(raw)
    except ValueError:
        body = None
    if not isinstance(body, dict):
        text = raw.decode("utf-8", "replace").strip()[:MAX_TEXT_SHOWN]
        body = {"error": text or exc.reason}
    if 300 <= exc.code < 400:
        location = exc.headers.get("Location", "?")
        body = {"error": f"the server redirects to {location}; set the URL to where it points"}
    retry_after = None
    with contextlib.suppress(ValueError):
        retry_after = float(exc.headers.get("Retry-After", ""))
    return ApiError(exc.code, body, retry_after)


def _ms(started: float) -> int:
    return round((time.monotonic() - started) * 1000)
