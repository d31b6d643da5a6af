"""Docker executor: run each job attempt as one labelled container on a Docker engine.

Speaks to the engine with docker-py; the only module of the project that imports ``docker``.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import docker
import docker.errors
import docker.tls
import docker.utils
import requests

from container_manager.conf import setting
from container_manager.executors import secretresolver
from container_manager.executors._cloud import LazyClients, pull_failure, sdk_errors
from container_manager.executors.base import (
    EXITED,
    FAILED,
    LABEL_ATTEMPT,
    LABEL_INSTANCE,
    LABEL_JOB_ID,
    LABEL_MANAGED,
    NOT_FOUND,
    RUNNING,
    ContainerExecutor,
)
from container_manager.executors.exceptions import (
    ExecutorConfigurationError,
    ExecutorConnectionError,
    ExecutorError,
    ExecutorResourceError,
    ImagePullError,
)
from container_manager.executors.types import (
    ConfigKey,
    ExecutionState,
    HarvestResult,
    LaunchRequest,
    Network,
    known_times,
)
from container_manager.rules.logtext import cap_log

if TYPE_CHECKING:
    from docker.models.containers import Container

logger = logging.getLogger(__name__)

CONTAINER_PREFIX = "cm-"
DEFAULT_API_TIMEOUT = 60
# How long the loser of a create race waits for the winner's container to appear.
RACE_WAIT_SECONDS = 10.0
#: Seconds ``request_stop`` reads the engine's answer to its stop call before going on (the
#: call only answers once the container has stopped; the engine carries the stop on anyway).
STOP_ANSWER_WAIT = 0.01
# How long a harvest waits for the engine to record ``OOMKilled`` on an exit 137 under a limit
# (only such a harvest waits; a busy engine took more than a second to record it).
OOM_SETTLE_SECONDS = 5.0

_STATUS_MAP = {
    "running": RUNNING,
    "restarting": RUNNING,
    "paused": RUNNING,
    # A created container is one the launch step may still be starting.
    "created": RUNNING,
    "exited": EXITED,
    "dead": FAILED,
    # It is going away and nothing can be harvested from it any more.
    "removing": NOT_FOUND,
}

_TLS_FILE_KEYS = ("tls_ca_cert", "tls_client_cert", "tls_client_key")


class DockerExecutor(ContainerExecutor):
    """Run jobs as containers on one Docker engine (local socket or remote TCP).

    The container of an attempt is named ``cm-<launch key>`` and carries the
    labels of ``ContainerExecutor.labels``, which makes ``launch_job``
    idempotent and lets forgotten containers be found again. The engine refuses a
    second container of that name, so two launches of one key at once share one
    container: the loser of the create adopts the winner's (``concurrent_launch_safe``).

    ``host.executor_config`` keys (all optional):

    ``tls_ca_cert`` (str)
        Path of the CA certificate that signed the engine's certificate.
    ``tls_client_cert``, ``tls_client_key`` (str)
        Paths of the client certificate and its key; give both or neither.
        The three TLS paths are only read when ``host.tls_enabled`` is set,
        and must then name existing files; ``host.tls_verify`` decides
        whether the engine's certificate is checked.
    ``timeout`` (int or float, default 60)
        Seconds one Docker API request may take.
    ``remove_containers`` (bool, default True)
        True: ``cleanup`` removes the container. False: ``cleanup`` only
        kills it if still running, so finished containers stay for inspection.

    Wrong types or missing TLS files raise ``ExecutorConfigurationError``
    naming the key, when the executor is built.
    """

    config_schema = (
        ConfigKey("tls_ca_cert", (str,), "CA certificate path of the engine (with tls_enabled)."),
        ConfigKey("tls_client_cert", (str,), "Client certificate path; give the key too."),
        ConfigKey("tls_client_key", (str,), "Client key path; give the certificate too."),
        ConfigKey("timeout", (int, float), "Seconds one API request may take.", default=60),
        ConfigKey("remove_containers", (bool,), "cleanup removes containers.", default=True),
    )
    capabilities = {
        "supports_resource_limits": True,
        "supports_networking": True,
        "supports_persistent_storage": False,
        "supports_secrets": False,
        "supports_gpu": False,
        "supports_scaling": False,
        "supports_idempotent_launch": True,
        "supports_resource_usage": True,
        "supports_live_logs": True,
    }
    stop_kills_after_grace = True
    concurrent_launch_safe = True
    resolves_secrets = True

    def __init__(self, host: Any):
        super().__init__(host)
        self._validate_config()
        self._clients = LazyClients(lambda _kind: self._build_client())
        # The stopped container this thread's last check_status saw, for the harvest after it.
        self._seen = threading.local()

    @property
    def client(self) -> docker.DockerClient:
        """The engine's client, built on first use and kept for this executor's life."""
        return self._clients.get("docker")

    @property
    def remove_containers(self) -> bool:
        """Whether ``cleanup`` removes containers (True) or only stops them."""
        return bool(self.config.get("remove_containers", True))

    @staticmethod
    def container_name(request: LaunchRequest) -> str:
        """The name of the container of the request's attempt."""
        return f"{CONTAINER_PREFIX}{request.launch_key}"

    def launch_job(self, request: LaunchRequest) -> str:
        """Create and start the attempt's container, or return the one already there."""
        name = self.container_name(request)
        try:
            with self._docker_errors(f"launch of {name}"):
                container = self._find_container(name)
                if container is None:
                    container = self._create_container(request, name)
                self._ensure_started(container, request)
        except ExecutorError as exc:
            if not isinstance(exc, ExecutorConnectionError):
                logger.warning("launch of %s refused: %s", name, exc)
            raise
        logger.info("launched %s as container %s", name, container.short_id)
        return container.id

    def check_status(self, execution_id: str) -> ExecutionState:
        """Map the container's state to running / exited / failed / not-found."""
        with self._docker_errors(f"status of {execution_id}"):
            try:
                container = self.client.containers.get(execution_id)
            except docker.errors.NotFound:
                return NOT_FOUND
        status = _STATUS_MAP.get(container.status)
        if status is None:
            logger.warning("container %s has unknown status %r", execution_id, container.status)
            return FAILED
        # A stopped container's state no longer changes: the harvest that follows reads this.
        self._seen.stopped = container if status in (EXITED, FAILED) else None
        return status

    def get_logs(self, execution_id: str) -> tuple[str, str]:
        """Return ``(stdout, stderr)`` with timestamps, each capped at LOG_MAX_BYTES.

        Live while the container runs. The engine has no byte offsets, so each call reads the
        whole log the engine keeps; readers get only the part after their offset. A container
        gone or being removed (after its harvest stored the logs) has none.
        """
        with self._docker_errors(f"logs of {execution_id}"):
            try:
                container = self.client.containers.get(execution_id)
                return self._read_logs(container)
            except docker.errors.NotFound:
                return "", ""
            except docker.errors.APIError as exc:
                # 409: "dead or marked for removal"; a live read can race the cleanup.
                if exc.status_code != 409:
                    raise
                return "", ""

    def harvest_job(self, execution_id: str) -> HarvestResult | None:
        """The finished container's exit code, logs and final state.

        None when the container is gone; raises ``ExecutorConnectionError``
        when the engine cannot be reached, since a later harvest may still
        succeed. A stopped container has no usage figures: the ones sampled
        while it ran stay. A container this thread's last ``check_status`` saw stopped is
        not looked up again.
        """
        seen, self._seen.stopped = getattr(self._seen, "stopped", None), None
        with self._docker_errors(f"harvest of {execution_id}"):
            try:
                if seen is not None and seen.id == execution_id:
                    container = seen
                else:
                    container = self.client.containers.get(execution_id)
                stdout, stderr = self._read_logs(container)
            except docker.errors.NotFound:
                logger.warning("harvest of %s: container not found", execution_id)
                return None
        memory = (container.attrs.get("HostConfig") or {}).get("Memory") or 0
        state = self._settled_state(container, memory)
        return HarvestResult(
            exit_code=state.get("ExitCode"),
            stdout=stdout,
            stderr=stderr,
            platform_log=_state_summary(container, state),
            created_at=_parse_docker_time(container.attrs.get("Created")),
            started_at=_parse_docker_time(state.get("StartedAt")),
            # No finish time means it still runs (a stop that failed); now is the best bound.
            finished_at=_parse_docker_time(state.get("FinishedAt")) or datetime.now(UTC),
            reason=_state_error(memory // (1024 * 1024), state),
            platform_times=known_times(
                {
                    "Created": _parse_docker_time(container.attrs.get("Created")),
                    "StartedAt": _parse_docker_time(state.get("StartedAt")),
                    "FinishedAt": _parse_docker_time(state.get("FinishedAt")),
                }
            ),  # fmt: skip
        )

    def event_stream(self, filters: dict[str, Any]) -> tuple[docker.DockerClient, Any]:
        """Open the engine's event stream on a client of its own: ``(client, stream)``.

        The stream yields decoded events and ends when ``stream.close()`` is called from
        another thread or the engine goes away; the caller closes the client after it.
        """
        client = self._build_client()
        with self._docker_errors("event stream"):
            try:
                return client, client.api.events(decode=True, filters=filters)
            except BaseException:
                client.close()
                raise

    def stop(self, execution_id: str) -> bool:
        """Stop the container (SIGTERM, then SIGKILL after STOP_GRACE_SECONDS), keep it."""
        with self._docker_errors(f"stop of {execution_id}"):
            try:
                container = self.client.containers.get(execution_id)
                container.stop(timeout=int(setting("STOP_GRACE_SECONDS")))
            except docker.errors.NotFound:
                return True
        logger.info("stopped container %s", execution_id)
        return True

    def request_stop(self, execution_id: str) -> ExecutionState | None:
        """Ask the engine to stop the container on its own clock, and return without waiting.

        ``POST /containers/{id}/stop?t=<STOP_GRACE_SECONDS>``: the engine sends SIGTERM now
        and SIGKILL when the grace has passed, and answers only once the container has
        stopped; the answer is read for ``STOP_ANSWER_WAIT`` seconds, then left (the engine
        carries on a stop whose caller went away, as seen on Docker 20.10). docker-py's
        ``stop`` would wait for the answer, hence its lower-level ``_post``. ``RUNNING``
        when no answer came in that time (it is stopping), None when it came (it stopped:
        the steps look at it). The steps' check after the grace still kills a container
        the engine did not stop.
        """
        api = self.client.api
        grace = math.ceil(float(setting("STOP_GRACE_SECONDS")))
        timeout = (float(self.config.get("timeout", DEFAULT_API_TIMEOUT)), STOP_ANSWER_WAIT)
        with self._docker_errors(f"stop of {execution_id}"):
            try:
                url = api._url("/containers/{0}/stop", execution_id)
                api._raise_for_status(api._post(url, params={"t": grace}, timeout=timeout))
            except requests.exceptions.ReadTimeout:
                logger.info("asked the engine to stop container %s within %ss", execution_id, grace)
                return RUNNING
            except docker.errors.NotFound:
                return None
        logger.info("container %s stopped", execution_id)
        return None

    def kill(self, execution_id: str) -> None:
        """Send SIGKILL; the container is kept for the harvest."""
        self._signal(execution_id, "SIGKILL")

    def find_launched(self, request: LaunchRequest) -> str | None:
        """The attempt's container by its name, started if a launcher died before starting it."""
        name = self.container_name(request)
        with self._docker_errors(f"lookup of {name}"):
            container = self._find_container(name)
            if container is None:
                return None
            self._ensure_started(container, request)
        return container.id

    def cleanup(self, execution_id: str) -> bool:
        """Remove the container, or only kill it when ``remove_containers`` is False.

        One call by id, with no lookup first: most containers have stopped by now.
        """
        with self._docker_errors(f"cleanup of {execution_id}"):
            try:
                if self.remove_containers:
                    self.client.api.remove_container(execution_id, force=True, v=True)
                else:
                    self.client.api.kill(execution_id)
            except docker.errors.NotFound:
                return True
            except docker.errors.APIError as exc:
                if not _is_harmless_cleanup_error(exc):
                    raise
        return True

    def sample_usage(self, execution_id: str) -> dict[str, float] | None:
        """Peak (or current) memory in bytes and average CPU percent since start."""
        with self._docker_errors(f"usage of {execution_id}"):
            try:
                container = self.client.containers.get(execution_id)
                if container.status != "running":
                    return None
                stats = self._one_shot_stats(container)
            except docker.errors.NotFound:
                return None
        started = _parse_docker_time((container.attrs.get("State") or {}).get("StartedAt"))
        return _usage_from_stats(stats, started)

    def ping(self) -> None:
        """Raise ``ExecutorConnectionError`` if the engine does not answer."""
        with self._docker_errors("ping"):
            self.client.ping()

    def list_managed_containers(self) -> list[dict[str, str]]:
        """Every container this deployment (its ``INSTANCE``) started here, running or not."""
        owned = [LABEL_MANAGED, f"{LABEL_INSTANCE}={setting('INSTANCE')}"]
        with self._docker_errors("listing of managed containers"):
            # The low-level list answers in one request; the high-level one inspects each.
            rows = self.client.api.containers(all=True, filters={"label": owned})
        return [_container_row(row) for row in rows]

    # --- private helpers -------------------------------------------------------

    def _validate_config(self) -> None:
        timeout = self.config.get("timeout", DEFAULT_API_TIMEOUT)
        if timeout <= 0:
            raise ExecutorConfigurationError(
                f"executor_config['timeout']: must be positive, got {timeout}", key="timeout"
            )
        if self.host.tls_enabled:
            self._validate_tls_files()

    def _validate_tls_files(self) -> None:
        for key in _TLS_FILE_KEYS:
            path = self.config.get(key)
            if path and not os.path.isfile(path):
                raise ExecutorConfigurationError(
                    f"executor_config[{key!r}]: file {path} not found", key=key
                )
        cert, key_file = self.config.get("tls_client_cert"), self.config.get("tls_client_key")
        if bool(cert) != bool(key_file):
            missing = "tls_client_key" if cert else "tls_client_cert"
            raise ExecutorConfigurationError(
                f"executor_config[{missing!r}]: needed with the other client TLS file",
                key=missing,
            )

    def _build_client(self) -> docker.DockerClient:
        try:
            return docker.DockerClient(
                base_url=self.host.connection_string,
                tls=self._tls_config(),
                timeout=self.config.get("timeout", DEFAULT_API_TIMEOUT),
            )
        except docker.errors.DockerException as exc:
            raise ExecutorConnectionError(
                f"cannot reach Docker host '{self.host.name}' "
                f"at {self.host.connection_string}: {exc}"
            ) from exc

    def _tls_config(self) -> docker.tls.TLSConfig | bool:
        if not self.host.tls_enabled:
            return False
        cert, key = self.config.get("tls_client_cert"), self.config.get("tls_client_key")
        return docker.tls.TLSConfig(
            client_cert=(cert, key) if cert and key else None,
            ca_cert=self.config.get("tls_ca_cert") or None,
            verify=bool(self.host.tls_verify),
        )

    def _docker_errors(self, action: str) -> AbstractContextManager[None]:
        """Turn docker-py and transport errors into executor errors.

        Callers catch ``NotFound`` inside the block when it means something.
        """
        return sdk_errors(action, self._classify)

    def _classify(self, action: str, exc: Exception) -> ExecutorError | None:
        if isinstance(exc, requests.exceptions.ConnectionError | requests.exceptions.Timeout):
            return ExecutorConnectionError(
                f"{action}: cannot reach Docker host '{self.host.name}': {exc}"
            )
        if isinstance(exc, docker.errors.APIError):
            if exc.is_server_error():
                return ExecutorConnectionError(f"{action}: Docker engine error: {exc}")
            return ExecutorError(f"{action}: {_explain(exc)}", retryable=False)
        if isinstance(exc, docker.errors.DockerException):
            return ExecutorError(f"{action}: {exc}", retryable=False)
        return None

    def _signal(self, execution_id: str, signal: str) -> None:
        with self._docker_errors(f"{signal} to {execution_id}"):
            try:
                self.client.api.kill(execution_id, signal=signal)
            except docker.errors.NotFound:
                return
            except docker.errors.APIError as exc:
                # 409: it stopped between the lookup and the signal.
                if exc.status_code != 409:
                    raise
        logger.info("sent %s to container %s", signal, execution_id)

    def _find_container(self, name: str) -> Container | None:
        try:
            return self.client.containers.get(name)
        except docker.errors.NotFound:
            return None

    def _create_container(self, request: LaunchRequest, name: str) -> Container:
        kwargs = self._create_kwargs(request, name)
        try:
            return self._create_with_pull(request.image, kwargs)
        except docker.errors.APIError as exc:
            if exc.status_code != 409:
                raise
            # A concurrent launch of the same attempt won the name; use its container.
            existing = self._wait_for_container(name)
            if existing is None:
                raise
            logger.info("launch of %s raced with another; reusing its container", name)
            return existing

    def _wait_for_container(self, name: str) -> Container | None:
        # The engine reserves a name before the container can be looked up by it,
        # so the loser of a race briefly sees 409 on create and 404 on get.
        deadline = time.monotonic() + RACE_WAIT_SECONDS
        while True:
            container = self._find_container(name)
            if container is not None or time.monotonic() >= deadline:
                return container
            time.sleep(0.05)

    def _create_kwargs(self, request: LaunchRequest, name: str) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "image": request.image,
            "command": list(request.command) if request.command else None,
            "name": name,
            # Secret references become values here, in this dict only, as the container is made.
            "environment": secretresolver.resolve_environment(
                request.environment, self.platform_name()
            ),
            "working_dir": request.working_directory or None,
            "labels": dict(request.labels),
            "detach": True,
        }
        if request.memory_limit_mb:
            # Equal swap limit: the job gets no swap, so the limit is a real one.
            kwargs["mem_limit"] = kwargs["memswap_limit"] = f"{request.memory_limit_mb}m"
        if request.cpu_limit:
            kwargs["nano_cpus"] = int(request.cpu_limit * 1e9)
        kwargs.update(self._first_network_kwargs(request.networks))
        return kwargs

    def _first_network_kwargs(self, networks: tuple[Network, ...]) -> dict[str, Any]:
        for net in networks:
            self._require_network(net.name)
        if not networks:
            return {}
        first = networks[0]
        endpoint = self.client.api.create_endpoint_config(aliases=list(first.aliases) or None)
        return {"network": first.name, "networking_config": {first.name: endpoint}}

    def _require_network(self, network_name: str) -> None:
        try:
            self.client.networks.get(network_name)
        except docker.errors.NotFound:
            raise ExecutorResourceError(f"network '{network_name}' does not exist") from None

    def _create_with_pull(self, image: str, kwargs: dict[str, Any]) -> Container:
        """Create the container, pulling its image first if the host lacks it and may pull.

        A missing image raises ``ImagePullError`` naming it: the job's fault, not the host's.
        """
        try:
            return self.client.containers.create(**kwargs)
        except docker.errors.ImageNotFound as exc:
            if not self.host.auto_pull_images:
                raise ImagePullError(
                    f"image '{image}' not found on host '{self.host.name}', which does not "
                    f"pull images (auto_pull_images is off): {_explain(exc)}"
                ) from None
        self._pull(image)
        try:
            return self.client.containers.create(**kwargs)
        except docker.errors.ImageNotFound as exc:
            raise self._pull_failed(image, f"not found after the pull: {_explain(exc)}") from None

    def _pull(self, image: str) -> None:
        logger.info("pulling image %s on host %s", image, self.host.name)
        try:
            self.client.images.pull(image)
        except docker.errors.APIError as exc:
            # The engine answered, so the image or its registry is at fault, not the host:
            # 404 for "pull access denied" or "manifest unknown", 500 when the engine
            # could not reach the registry. A transport error still means "unreachable".
            raise self._pull_failed(image, _explain(exc)) from None

    def _pull_failed(self, image: str, detail: str) -> ImagePullError:
        return ImagePullError(pull_failure(image, detail, host=self.host.name))

    def _ensure_started(self, container: Container, request: LaunchRequest) -> None:
        if container.status != "created":
            return
        try:
            self._connect_extra_networks(container, request.networks[1:])
            # Starting a container another launch has just started answers 304: harmless.
            container.start()
        except Exception:
            self._remove_unstarted(container)
            raise

    def _remove_unstarted(self, container: Container) -> None:
        # A container whose start failed would stay "Created" on the engine for good; one that
        # another launch of the key has started meanwhile (a takeover) is that launch's.
        try:
            container.reload()
            if container.status == "created":
                container.remove(force=True, v=True)
        except Exception:  # noqa: BLE001 - the start error is the one worth raising
            logger.warning("could not remove container %s after its start failed", container.name)

    def _connect_extra_networks(self, container: Container, networks: tuple[Network, ...]) -> None:
        attached = set((container.attrs.get("NetworkSettings") or {}).get("Networks") or {})
        for net in networks:
            if net.name in attached:
                continue
            try:
                self.client.api.connect_container_to_network(
                    container.id, net.name, aliases=list(net.aliases) or None
                )
            except docker.errors.NotFound:
                raise ExecutorResourceError(f"network '{net.name}' does not exist") from None
            except docker.errors.APIError as exc:
                # A concurrent launch of the same attempt may have connected it first.
                if "already" not in _explain(exc).lower():
                    raise

    def _read_logs(self, container: Container) -> tuple[str, str]:
        """Stdout and stderr, one request each.

        docker-py's ``logs`` first inspects the container to learn whether it has a TTY,
        which ``container.attrs`` already says; its lower-level ``_get`` and
        ``_get_result_tty`` spare that request.
        """
        limit = int(setting("LOG_MAX_BYTES"))
        api = self.client.api
        url = api._url("/containers/{0}/logs", container.id)
        tty = bool((container.attrs.get("Config") or {}).get("Tty"))

        def read(stream: str) -> str:
            params = {"stdout": 0, "stderr": 0, stream: 1, "timestamps": 1, "tail": "all"}
            raw = api._get_result_tty(False, api._get(url, params=params), tty)
            return cap_log(raw.decode("utf-8", errors="replace"), limit)

        return read("stdout"), read("stderr")

    def _settled_state(self, container: Container, memory: int) -> dict[str, Any]:
        """The container's final state, with ``OOMKilled`` once the engine has recorded it.

        The engine handles a container's exit and its out-of-memory event separately, so
        a container killed at its memory limit (exit 137) can read ``OOMKilled: false``
        for a moment. Only then is the state read again, for up to ``OOM_SETTLE_SECONDS``.
        """
        state = container.attrs.get("State") or {}
        deadline = time.monotonic() + OOM_SETTLE_SECONDS
        while (
            memory and state.get("ExitCode") == 137 and not state.get("OOMKilled")
            and time.monotonic() < deadline
        ):  # fmt: skip
            time.sleep(0.1)
            with self._docker_errors(f"harvest of {container.id}"):
                try:
                    container.reload()
                except docker.errors.NotFound:
                    break
            state = container.attrs.get("State") or {}
        return state

    def _one_shot_stats(self, container: Container) -> dict[str, Any]:
        if docker.utils.version_gte(self.client.api.api_version, "1.41"):
            return container.stats(stream=False, one_shot=True)
        return container.stats(stream=False)


def _parse_docker_time(value: str | None) -> datetime | None:
    """Parse Docker's RFC 3339 nanosecond times; its zero time means "never"."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.year <= 1:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _state_summary(container: Container, state: dict[str, Any]) -> str:
    lines = [
        f"container {container.name} ({container.short_id}): status={state.get('Status')} "
        f"exit_code={state.get('ExitCode')} oom_killed={str(bool(state.get('OOMKilled'))).lower()}",
        f"started_at={state.get('StartedAt')} finished_at={state.get('FinishedAt')}",
    ]
    if state.get("Error"):
        lines.append(f"error={state['Error']}")
    return "\n".join(lines)


def _state_error(memory_limit_mb: int, state: dict[str, Any]) -> str:
    if state.get("OOMKilled"):
        if memory_limit_mb:
            return (
                f"container was killed for exceeding its memory limit "
                f"({memory_limit_mb} MB) (OOMKilled)"
            )
        return "container was killed for running out of memory (OOMKilled)"
    if state.get("Error"):
        return f"docker: {state['Error']}"
    return ""


def _usage_from_stats(stats: dict[str, Any], started: datetime | None) -> dict[str, float] | None:
    memory = stats.get("memory_stats") or {}
    memory_bytes = memory.get("max_usage") or memory.get("usage")
    if not memory_bytes or started is None:
        return None
    total_ns = ((stats.get("cpu_stats") or {}).get("cpu_usage") or {}).get("total_usage") or 0
    # The engine's own read time keeps the average right when clocks differ.
    now = _parse_docker_time(stats.get("read")) or datetime.now(UTC)
    elapsed_ns = (now - started).total_seconds() * 1e9
    cpu_percent = total_ns / elapsed_ns * 100 if elapsed_ns > 0 else 0.0
    # Setup work charged before StartedAt inflates the first samples; never report
    # more than the machine's CPUs could have given.
    cpus = (stats.get("cpu_stats") or {}).get("online_cpus") or os.cpu_count() or 1
    cpu_percent = min(cpu_percent, cpus * 100.0)
    return {"memory_bytes": int(memory_bytes), "cpu_percent": float(cpu_percent)}


def _container_row(row: dict[str, Any]) -> dict[str, str]:
    labels = row.get("Labels") or {}
    names = row.get("Names") or [""]
    return {
        "id": row.get("Id", ""),
        "name": names[0].lstrip("/"),
        "status": row.get("State", ""),
        "job_id": labels.get(LABEL_JOB_ID, ""),
        "attempt": labels.get(LABEL_ATTEMPT, ""),
    }


def _explain(exc: docker.errors.APIError) -> str:
    return str(exc.explanation or exc)


def _is_harmless_cleanup_error(exc: docker.errors.APIError) -> bool:
    text = _explain(exc).lower()
    # Removal already under way, or the container stopped between inspect and kill.
    return exc.status_code == 409 and ("in progress" in text or "is not running" in text)
