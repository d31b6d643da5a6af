"""Follow the Docker engines' event streams and send ``harvest`` when a job's container dies.

Started by the local dispatch backend; each stream reconnects after a break and catches up.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

from django.db import close_old_connections, connections

from container_manager.conf import setting
from container_manager.engine import flow
from container_manager.executors.base import LABEL_INSTANCE, LABEL_JOB_ID, LABEL_MANAGED

if TYPE_CHECKING:
    from django.db.models import QuerySet

    from container_manager.dispatch.base import DispatchBackend
    from container_manager.models import ExecutorHost

logger = logging.getLogger(__name__)

#: The container events that mean "it stopped" (``oom`` comes just before its ``die``).
WATCHED_EVENTS = ("die", "oom")
#: Seconds between two looks for Docker hosts added, edited or switched off.
HOST_REFRESH_SECONDS = 10.0
#: Backoff between reconnections after a stream broke (seconds): first, then at most.
RECONNECT_FIRST_SECONDS = 0.5
RECONNECT_MAX_SECONDS = 30.0


def followed_hosts() -> QuerySet[ExecutorHost]:
    """The hosts whose engines a ``DockerEventWatcher`` follows: every active Docker host."""
    from container_manager.models import ExecutorHost

    return ExecutorHost.objects.filter(executor_type="docker", is_active=True)


class DockerEventWatcher:
    """Follow the engine of every active Docker host, one thread per engine; send to ``backend``.

    Hosts with the same engine (connection and config) share one follower, so each ``die``
    is read, and its job harvested, once. ``followers`` maps each host id to its follower.

    ``close`` closes the streams and returns at once: the threads are daemons that end as
    soon as their stream does, so they never hold up a shutdown.
    """

    def __init__(self, backend: DispatchBackend, refresh_seconds: float = HOST_REFRESH_SECONDS):
        self.backend = backend
        self.refresh_seconds = refresh_seconds
        self.followers: dict[int, EngineFollower] = {}
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        """Start following (the hosts are read in the watcher's thread)."""
        with self._lock:
            if self._thread is not None or self._stopping.is_set():
                return
            self._thread = threading.Thread(target=self._run, name="cm-docker-events", daemon=True)
        self._thread.start()

    def close(self, timeout: float = 5.0) -> None:
        """Close every stream and wait up to ``timeout`` seconds for the threads to end."""
        self._stopping.set()
        with self._lock:
            followers = list({id(f): f for f in self.followers.values()}.values())
            self.followers.clear()
            thread = self._thread
        for follower in followers:
            follower.close()
        for follower in followers:
            follower.join(timeout)
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def _run(self) -> None:
        try:
            while not self._stopping.is_set():
                try:
                    close_old_connections()
                    self._refresh()
                except Exception:  # noqa: BLE001 - the database may be away for a moment
                    logger.warning("docker events: reading the hosts failed", exc_info=True)
                self._stopping.wait(self.refresh_seconds)
        finally:
            connections.close_all()

    def _refresh(self) -> None:
        hosts = {host.pk: host for host in followed_hosts()}
        with self._lock:
            if self._stopping.is_set():
                return
            for host_id, follower in list(self.followers.items()):
                host = hosts.get(host_id)
                if host is None or _engine(host) != follower.engine:
                    follower.drop_host(host_id)
                    del self.followers[host_id]
            by_engine = {follower.engine: follower for follower in self.followers.values()}
            for host_id, host in hosts.items():
                if host_id in self.followers:
                    continue
                follower = by_engine.get(_engine(host))
                if follower is None:
                    follower = by_engine[_engine(host)] = EngineFollower(host, self.backend)
                    follower.start()
                else:
                    follower.add_host(host)
                self.followers[host_id] = follower


class EngineFollower(threading.Thread):
    """One engine's event stream: ``harvest`` on ``die`` and ``oom`` of this deployment's jobs.

    It serves ``host`` and any host added with ``add_host`` (the same engine). After each
    (re)connection it sends ``harvest`` for every job running on those hosts, which
    catches the containers that died while no stream was open; a harvest of a job still
    running changes nothing. ``connected`` is set while a stream is open, ``caught_up`` once that
    catch-up was sent too. Messages go to
    ``backend``, the one that started the follower, never to one built anew at shutdown.
    """

    def __init__(self, host: ExecutorHost, backend: DispatchBackend):
        super().__init__(name=f"cm-docker-events-{host.pk}", daemon=True)
        self.host = host
        self.backend = backend
        self.engine = _engine(host)
        self.host_ids = {host.pk}
        self.connected = threading.Event()
        self.caught_up = threading.Event()
        self.connections = 0
        self._stopping = threading.Event()
        self._stream: Any = None
        self._lock = threading.Lock()

    def add_host(self, host: ExecutorHost) -> None:
        """Serve another host of the same engine: its containers' events are in this stream."""
        with self._lock:
            self.host_ids.add(host.pk)
            if self.connected.is_set():
                flow.mark_following(host.pk, True)

    def drop_host(self, host_id: int) -> None:
        """Stop serving ``host_id``; the stream closes with the last host."""
        with self._lock:
            self.host_ids.discard(host_id)
            flow.mark_following(host_id, False)
            last = not self.host_ids
        if last:
            self.close()

    def close(self) -> None:
        """Stop following: the open stream is closed, which ends the thread."""
        self._stopping.set()
        self._close_stream()

    def break_stream(self) -> None:
        """Close the open stream as an engine restart would; the follower reconnects."""
        self._close_stream()

    def run(self) -> None:
        delay = RECONNECT_FIRST_SECONDS
        try:
            while not self._stopping.is_set():
                if self._follow_once():
                    delay = RECONNECT_FIRST_SECONDS
                else:
                    delay = min(delay * 2, RECONNECT_MAX_SECONDS)
                self._stopping.wait(delay)
        finally:
            connections.close_all()

    def _follow_once(self) -> bool:
        """Open, catch up, read until the stream ends; False if it could not be opened."""
        try:
            client, stream = self._open()
        except Exception as exc:  # noqa: BLE001 - engine away: try again later
            logger.warning("docker events of host %s: cannot connect: %s", self.host.name, exc)
            return False
        with self._lock:
            self._stream = stream
        if self._stopping.is_set():
            self._close_stream()
        try:
            self.connections += 1
            self._mark_following(True)
            self._catch_up()
            self.caught_up.set()
            for event in stream:
                self._on_event(event)
        except Exception as exc:  # noqa: BLE001 - a broken stream is reconnected
            if not self._stopping.is_set():
                logger.warning("docker events of host %s: stream broke: %s", self.host.name, exc)
        finally:
            self.caught_up.clear()
            self._mark_following(False)
            self._close_stream()
            client.close()
        return True

    def _open(self) -> tuple[Any, Any]:
        from container_manager.executors.factory import ExecutorFactory

        filters = {
            "type": "container",
            "event": list(WATCHED_EVENTS),
            "label": [f"{LABEL_MANAGED}=true", f"{LABEL_INSTANCE}={setting('INSTANCE')}"],
        }
        return ExecutorFactory().get_executor(self.host).event_stream(filters)

    def _catch_up(self) -> None:
        from container_manager.engine import sweep

        close_old_connections()
        with self._lock:
            host_ids = list(self.host_ids)
        messages = sweep.catch_up(host_ids)
        close_old_connections()
        self.backend.send_many(messages)

    def _on_event(self, event: dict[str, Any]) -> None:
        actor = event.get("Actor") or {}
        job_id = (actor.get("Attributes") or {}).get(LABEL_JOB_ID)
        if not job_id:
            return
        flow.note_stopped(actor.get("ID") or event.get("id") or "")
        self.backend.send("harvest", str(job_id), 0.0)

    def _mark_following(self, following: bool) -> None:
        with self._lock:
            for host_id in self.host_ids:
                flow.mark_following(host_id, following)
            if following:
                self.connected.set()
            else:
                self.connected.clear()

    def _close_stream(self) -> None:
        with self._lock:
            stream, self._stream = self._stream, None
        if stream is not None:
            try:
                stream.close()
            except Exception:  # noqa: BLE001 - closing a stream the engine already dropped
                logger.debug("closing the docker event stream failed", exc_info=True)


def _engine(host: ExecutorHost) -> tuple[Any, ...]:
    return (host.connection_string, host.tls_enabled, host.tls_verify, str(host.executor_config))
