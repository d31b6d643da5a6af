"""An image the Docker engine cannot get is the job's fault, never "host unreachable".

docker-py's errors are made from HTTP answers as the engine sends them (status and JSON
``message``), through docker-py's own ``create_api_error_from_http_exception``; the engine
itself is a stub, so these run without one. The real engine: ``test_docker_e2e.py``.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import docker.errors
import pytest
import requests

from container_manager.executors.docker import DockerExecutor
from container_manager.executors.exceptions import ExecutorConnectionError, ImagePullError
from container_manager.executors.types import LaunchRequest

IMAGE = "no-such-image:2"
REQUEST = LaunchRequest("job", 1, "key-1", IMAGE, command=("true",))


def engine_answer(status: int, message: str) -> docker.errors.APIError:
    """The docker-py error for an engine answer of ``status`` with this JSON ``message``."""
    response = requests.Response()
    response.status_code = status
    response._content = json.dumps({"message": message}).encode()
    try:
        response.raise_for_status()
    except requests.HTTPError as http_error:
        try:
            docker.errors.create_api_error_from_http_exception(http_error)
        except docker.errors.APIError as error:
            return error
    raise AssertionError(f"HTTP {status} raised nothing")


class StubEngine:
    """Has no container and no image; ``pull`` fails with ``pull_error``."""

    def __init__(self, pull_error: Exception):
        self.pulled: list[str] = []
        self.containers = SimpleNamespace(get=self._no_container, create=self._no_image)
        self.images = SimpleNamespace(pull=self._pull)
        self._pull_error = pull_error

    def _no_container(self, name):
        raise engine_answer(404, f"No such container: {name}")

    def _no_image(self, **kwargs):
        raise engine_answer(404, f"No such image: {kwargs['image']}")

    def _pull(self, image):
        self.pulled.append(image)
        raise self._pull_error


def executor_on(monkeypatch, engine: StubEngine, auto_pull: bool = True) -> DockerExecutor:
    host = SimpleNamespace(
        name="docker-1", host_type="unix", connection_string="unix:///stub.sock",
        tls_enabled=False, tls_verify=False, auto_pull_images=auto_pull, executor_config={},
    )  # fmt: skip
    monkeypatch.setattr(DockerExecutor, "client", property(lambda self: engine))
    return DockerExecutor(host)


@pytest.mark.parametrize(
    ("status", "message"),
    [
        (404, "pull access denied for no-such-image, repository does not exist or may require "
              "'docker login': denied: requested access to the resource is denied"),
        (404, "manifest for no-such-image:2 not found: manifest unknown: manifest unknown"),
        (500, 'Get "https://registry-1.docker.io/v2/": dial tcp: lookup registry-1.docker.io '
              "on 10.255.255.53:53: no such host"),
        (500, "Head \"https://registry-1.docker.io/v2/library/no-such-image/manifests/2\": "
              "toomanyrequests: You have reached your pull rate limit."),
    ],
)  # fmt: skip
def test_a_pull_the_engine_refuses_is_the_jobs_fault_naming_the_image(monkeypatch, status, message):
    engine = StubEngine(engine_answer(status, message))
    with pytest.raises(ImagePullError) as caught:
        executor_on(monkeypatch, engine).launch_job(REQUEST)
    error = caught.value
    assert not isinstance(error, ExecutorConnectionError)
    assert error.retryable  # another attempt, counted against max_attempts
    assert str(error) == f"image '{IMAGE}' could not be pulled on host 'docker-1': {message}"
    assert engine.pulled == [IMAGE]


def test_an_engine_gone_during_the_pull_is_the_host_unreachable(monkeypatch):
    engine = StubEngine(requests.exceptions.ConnectionError("Connection aborted."))
    with pytest.raises(ExecutorConnectionError, match="cannot reach Docker host 'docker-1'"):
        executor_on(monkeypatch, engine).launch_job(REQUEST)


def test_a_missing_image_on_a_host_that_does_not_pull_is_the_jobs_fault(monkeypatch):
    engine = StubEngine(AssertionError("never pulled"))
    with pytest.raises(ImagePullError) as caught:
        executor_on(monkeypatch, engine, auto_pull=False).launch_job(REQUEST)
    assert str(caught.value) == (
        f"image '{IMAGE}' not found on host 'docker-1', which does not pull images "
        f"(auto_pull_images is off): No such image: {IMAGE}"
    )
    assert engine.pulled == []
