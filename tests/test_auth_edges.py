"""Push authentication edges: non-finite HMAC timestamps, quiet OIDC errors, certificate fetches.

The certificate endpoints are local servers that answer 500 or never answer; the clock is injected.
"""

import http.server
import json
import logging
import socket
import threading

import pytest
from django.urls import reverse

from container_manager.models import ContainerJob, UsedSignature
from container_manager.web import auth
from container_manager.web.auth import AuthError, CertCache, sign_request
from tests.push_support import AUDIENCE, push_settings

pytestmark = pytest.mark.django_db


@pytest.fixture
def job(settings, issuer, mock_host):
    push_settings(settings, issuer)
    return ContainerJob.objects.create_job(image="x", docker_host=mock_host)


def launch(client, headers, body=None):
    url = reverse("container_manager:step", args=["launch"])
    return client.post(url, body, content_type="application/json", headers=headers)


@pytest.mark.parametrize("stamp", ["nan", "NaN", "inf", "-inf", "1e400", "", "soon"])
def test_only_finite_hmac_timestamps_pass(client, job, stamp):
    body = json.dumps({"job_id": str(job.pk)}).encode()
    headers = sign_request("POST", reverse("container_manager:step", args=["launch"]), body)
    headers["X-CM-Timestamp"] = stamp
    signature = auth._digest(b"test-hmac-secret", stamp, "POST", "/cm/steps/launch/", body)
    headers["X-CM-Signature"] = signature
    response = launch(client, headers, body)
    assert response.status_code == 401 and "finite" in response.json()["error"]
    assert ContainerJob.objects.get(pk=job.pk).status == "pending"
    assert UsedSignature.objects.count() == 0


def test_oidc_errors_echo_neither_the_token_nor_the_audiences(client, job, issuer, caplog):
    caplog.set_level(logging.INFO)
    body = json.dumps({"job_id": str(job.pk)})
    garbage = "x" * 60_000
    for token in (garbage, garbage + ".y.z", issuer.token(aud="https://other.example/")):
        response = launch(client, {"Authorization": f"Bearer {token}"}, body)
        assert response.status_code == 401
        text = response.content.decode() + caplog.text
        assert token[:40] not in text and AUDIENCE not in text
        assert len(response.content) < 200
    assert ContainerJob.objects.get(pk=job.pk).status == "pending"


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


class CountingServer:
    """A loopback HTTP server answering ``status`` with ``body``, counting requests."""

    def __init__(self, status, body=b"{}"):
        self.requests = 0
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's name
                outer.requests += 1
                self.send_response(status)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/certs"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class SilentServer:
    """Accepts connections, never answers until ``release()``; ``accepted`` set on each accept."""

    def __init__(self):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/certs"
        self.accepted = threading.Event()
        self.released = threading.Event()
        self.connections = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while not self.released.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections.append(conn)
            self.accepted.set()

    def release(self):
        self.released.set()
        for conn in self.connections:
            conn.close()
        self.sock.close()


def test_failed_fetch_is_remembered_for_a_while(settings):
    settings.CONTAINER_MANAGER = {"AUTH": {"OIDC_CERTS_FAILURE_TTL": 30}}
    server, clock = CountingServer(500), Clock()
    cache = CertCache(clock=clock)
    try:
        for _ in range(3):
            with pytest.raises(AuthError) as excinfo:
                cache.get(server.url)
            assert excinfo.value.status == 503
        assert server.requests == 1
        clock.now += 31
        with pytest.raises(AuthError):
            cache.get(server.url)
        assert server.requests == 2
    finally:
        server.close()


def test_good_certificates_are_kept_for_their_max_age(settings):
    server, clock = CountingServer(200, b'{"kid": "pem"}'), Clock()
    cache = CertCache(clock=clock)
    try:
        assert cache.get(server.url) == cache.get(server.url) == {"kid": "pem"}
        assert server.requests == 1
        clock.now += 301  # no Cache-Control: 300 s
        cache.get(server.url)
        assert server.requests == 2
    finally:
        server.close()


def test_a_silent_endpoint_times_out_and_stalls_no_other_request(settings):
    settings.CONTAINER_MANAGER = {"AUTH": {"OIDC_CERTS_TIMEOUT": 0.2}}
    silent, good = SilentServer(), CountingServer(200, b'{"kid": "pem"}')
    cache = CertCache(clock=Clock())
    try:
        with pytest.raises(AuthError) as excinfo:
            cache.get(silent.url)
        assert excinfo.value.status == 503 and "Timeout" in excinfo.value.reason
        settings.CONTAINER_MANAGER = {"AUTH": {"OIDC_CERTS_TIMEOUT": 600}}
        cache.clear()
        cache.get(good.url)
        stalled = threading.Thread(target=lambda: pytest.raises(AuthError, cache.get, silent.url))
        silent.accepted.clear()
        stalled.start()
        assert silent.accepted.wait(30)
        answered = []
        other = threading.Thread(target=lambda: answered.append(cache.get(good.url)))
        other.start()
        other.join(30)  # a generous bound: a held lock would block it until the fetch ends
        assert answered == [{"kid": "pem"}] and stalled.is_alive()
    finally:
        silent.release()
        stalled.join(30)
        good.close()
