"""Test support for pushes: a local OIDC issuer (keys made here, certs served on loopback).

Nothing here calls Google: tokens are signed with a key generated for the test run.
"""

import datetime
import http.server
import json
import threading
import time

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

SERVICE_ACCOUNT = "tasks@project.iam.gserviceaccount.com"
AUDIENCE = "https://cm.example.com/cm/"
HMAC_SECRET = "test-hmac-secret"


class LocalIssuer:
    """An RSA key with a self-signed certificate, its certs JSON served over HTTP on loopback."""

    def __init__(self, kid="test-key-1"):
        self.kid = kid
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.certs = {kid: _certificate_pem(self.key)}
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        self.certs_url = f"http://127.0.0.1:{self._server.server_port}/certs"

    def token(self, key=None, **overrides):
        """A Google-style ID token; ``overrides`` replace claims (``None`` drops one)."""
        from google.auth import crypt, jwt

        now = int(time.time())
        claims = {
            "iss": "https://accounts.google.com",
            "aud": AUDIENCE,
            "email": SERVICE_ACCOUNT,
            "email_verified": True,
            "sub": "1234567890",
            "iat": now,
            "exp": now + 600,
        }
        claims.update(overrides)
        claims = {k: v for k, v in claims.items() if v is not None}
        pem = (key or self.key).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        signer = crypt.RSASigner.from_string(pem, key_id=self.kid)
        return jwt.encode(signer, claims).decode()

    def close(self):
        self._server.shutdown()

    def _handler(self):
        body = json.dumps(self.certs).encode()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's name
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Cache-Control", "public, max-age=60")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        return Handler


def auth_settings(issuer):
    """The AUTH setting that trusts ``issuer`` and the test HMAC secret."""
    return {
        "HMAC_SECRET": HMAC_SECRET,
        "HMAC_MAX_AGE": 300,
        "OIDC_AUDIENCES": [AUDIENCE],
        "OIDC_SERVICE_ACCOUNTS": [SERVICE_ACCOUNT],
        "OIDC_CERTS_URL": issuer.certs_url,
    }


def push_settings(settings, issuer, **extra):
    """Recording dispatch and auth trusting ``issuer``; returns the recording backend.

    ``extra`` adds CONTAINER_MANAGER keys. The certificate cache is cleared so that
    ``issuer``'s keys are fetched anew.
    """
    from container_manager import dispatch
    from container_manager.web import auth
    from tests.conftest import FAST_STEPS

    auth._certs.clear()
    settings.CONTAINER_MANAGER = {
        **FAST_STEPS,
        "DISPATCH": {"BACKEND": "tests.backends.RecordingBackend"},
        "AUTH": auth_settings(issuer),
        **extra,
    }
    return dispatch.get_backend()


def _certificate_pem(key):
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test issuer")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM).decode()
