"""functions/settings.py read in a fresh process under a given environment.

No environment means the local defaults; each CM_* variable lands in its CONTAINER_MANAGER key.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CLEAN = {
    k: v for k, v in os.environ.items() if not k.startswith(("CM_", "DJANGO_", "DATABASE_", "AWS_"))
}


def load(**env):
    """The functions settings a fresh process sees with only ``env`` set; or its error text."""
    code = (
        "import json; from functions import settings as s; print(json.dumps({"
        "'DEBUG': s.DEBUG, 'CM': s.CONTAINER_MANAGER, 'DB': s.DATABASES['default'],"
        "'HOSTS': s.ALLOWED_HOSTS, 'STATIC': s.STORAGES['staticfiles']['BACKEND'],"
        "'MIDDLEWARE': s.MIDDLEWARE}, default=str))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env={**CLEAN, **env}, capture_output=True, text=True
    )
    return json.loads(out.stdout) if out.returncode == 0 else out.stderr


def test_no_environment_keeps_the_local_defaults():
    s = load()
    assert s["DEBUG"] is True
    assert s["DB"]["ENGINE"] == "django.db.backends.sqlite3"
    assert s["DB"]["OPTIONS"]["transaction_mode"] == "IMMEDIATE"
    assert s["CM"]["DISPATCH"] == {
        "BACKEND": "container_manager.dispatch.local.LocalBackend",
        "OPTIONS": {"WORKERS": 4, "SWEEP_INTERVAL": 30.0},
    }
    assert s["CM"]["INSTANCE"] == "default" and s["CM"]["API_TOKENS"] == []
    assert s["STATIC"] == "whitenoise.storage.CompressedStaticFilesStorage"
    assert s["MIDDLEWARE"][1] == "whitenoise.middleware.WhiteNoiseMiddleware"


def test_sqs_deployment():
    s = load(
        DJANGO_DEBUG="0",
        DJANGO_SECRET_KEY="k",
        DJANGO_ALLOWED_HOSTS="a.example, b.example",
        DATABASE_URL="postgres://u:p@db:5432/cm",
        CM_DISPATCH_BACKEND="sqs",
        CM_SQS_QUEUE_URL="https://sqs.eu-west-1.amazonaws.com/1/steps",
        AWS_REGION="eu-west-1",
        CM_API_TOKENS="t1,t2",
        CM_HMAC_SECRET="h",
        CM_INSTANCE="prod",
    )
    assert s["DEBUG"] is False and s["HOSTS"] == ["a.example", "b.example"]
    assert s["DB"]["ENGINE"] == "django.db.backends.postgresql" and "TEST" not in s["DB"]
    assert s["CM"]["DISPATCH"] == {
        "BACKEND": "container_manager.dispatch.sqs.SQSBackend",
        "OPTIONS": {
            "QUEUE_URL": "https://sqs.eu-west-1.amazonaws.com/1/steps",
            "REGION": "eu-west-1",
        },
    }
    assert s["CM"]["API_TOKENS"] == ["t1", "t2"] and s["CM"]["INSTANCE"] == "prod"
    assert s["CM"]["AUTH"]["HMAC_SECRET"] == "h"
    assert s["STATIC"] == "whitenoise.storage.CompressedManifestStaticFilesStorage"


def test_cloudtasks_deployment():
    s = load(
        DJANGO_SECRET_KEY="k",
        CM_DISPATCH_BACKEND="cloudtasks",
        CM_CLOUDTASKS_PROJECT="p",
        CM_CLOUDTASKS_LOCATION="europe-west1",
        CM_CLOUDTASKS_QUEUE="steps",
        CM_STEP_BASE_URL="https://cm.example/cm/",
        CM_OIDC_SERVICE_ACCOUNT="pusher@p.iam.gserviceaccount.com",
        CM_OIDC_AUDIENCE="https://cm.example/cm/",
    )
    assert s["CM"]["DISPATCH"] == {
        "BACKEND": "container_manager.dispatch.cloudtasks.CloudTasksBackend",
        "OPTIONS": {
            "PROJECT": "p",
            "LOCATION": "europe-west1",
            "QUEUE": "steps",
            "TARGET_BASE_URL": "https://cm.example/cm/",
            "SERVICE_ACCOUNT_EMAIL": "pusher@p.iam.gserviceaccount.com",
            "AUDIENCE": "https://cm.example/cm/",
            "SIGN_WITH_HMAC": False,
        },
    }
    assert s["CM"]["AUTH"]["OIDC_SERVICE_ACCOUNTS"] == ["pusher@p.iam.gserviceaccount.com"]
    assert s["CM"]["AUTH"]["OIDC_AUDIENCES"] == ["https://cm.example/cm/"]


def test_dotted_path_and_json_options():
    s = load(CM_DISPATCH_BACKEND="tests.backends.RecordingBackend", CM_DISPATCH_OPTIONS='{"A": 1}')
    assert s["CM"]["DISPATCH"] == {
        "BACKEND": "tests.backends.RecordingBackend",
        "OPTIONS": {"A": 1},
    }


@pytest.mark.parametrize(
    "env, named",
    [
        ({"DJANGO_DEBUG": "off"}, "DJANGO_SECRET_KEY"),
        ({"CM_DISPATCH_OPTIONS": "[1]"}, "CM_DISPATCH_OPTIONS"),
        ({"CM_STATIC_STORAGE": "ftp"}, "CM_STATIC_STORAGE"),
        ({"CM_STATIC_STORAGE": "s3"}, "CM_STATIC_BUCKET"),
    ],
)
def test_bad_configuration_names_the_variable(env, named):
    assert named in load(**env)


@pytest.mark.parametrize(
    "env",
    [
        {"AWS_LAMBDA_FUNCTION_NAME": "cm"},
        {"K_SERVICE": "cm"},
        {"CM_DISPATCH_BACKEND": "sqs", "CM_SQS_QUEUE_URL": "https://sqs.invalid/1/q"},
        {"CM_DISPATCH_BACKEND": "cloudtasks"},
        {"DATABASE_URL": "postgres://u:p@db.internal:5432/cm"},
    ],
)
def test_deployed_processes_default_to_debug_off(env):
    assert "DJANGO_SECRET_KEY" in load(**env)  # closed: no key, no start
    s = load(DJANGO_SECRET_KEY="k", **env)
    assert s["DEBUG"] is False


def test_local_databases_keep_debug_on():
    for url in ("postgres://u:p@127.0.0.1:5432/cm", "postgres://u:p@localhost/cm", "sqlite:///x"):
        assert load(DATABASE_URL=url)["DEBUG"] is True
    assert load(K_SERVICE="cm", DJANGO_DEBUG="1")["DEBUG"] is True


def check(*args, **env):
    return subprocess.run(
        [sys.executable, "manage.py", "check", *args], cwd=REPO, capture_output=True, text=True,
        env={**CLEAN, "DJANGO_SETTINGS_MODULE": "functions.settings", **env},
    )  # fmt: skip


def test_development_key_with_debug_off_fails_the_check():
    out = check(DJANGO_DEBUG="0", DJANGO_SECRET_KEY="insecure-local-development-key")
    assert out.returncode != 0 and "container_manager.E006" in out.stderr
    assert check().returncode == 0


def test_deploy_check_is_clean_with_deployed_settings():
    out = check(
        "--deploy", "--fail-level", "WARNING",
        AWS_LAMBDA_FUNCTION_NAME="cm", DJANGO_SECRET_KEY="x" * 60 + "-Deployed-Key-0123456789",
        DJANGO_ALLOWED_HOSTS="cm.example.com",
    )  # fmt: skip
    # Left to the operator of the domain, as docs/configuration.md explains: HSTS for every
    # subdomain and the browsers' preload list cannot be undone quickly.
    remaining = sorted(set(re.findall(r"\(security\.(W\d+)\)", out.stderr)))
    assert remaining == ["W005", "W021"], out.stderr
    assert "ERRORS" not in out.stderr


def test_connections_are_kept_across_steps_by_default_and_postgres_starts_in_utc():
    local = load()["DB"]
    assert (local["CONN_MAX_AGE"], local["CONN_HEALTH_CHECKS"]) == (600, True)
    pg = load(DATABASE_URL="postgres://u:p@db:5432/x", DATABASE_CONN_MAX_AGE="0", DJANGO_DEBUG="1")[
        "DB"
    ]
    assert pg["CONN_MAX_AGE"] == 0 and pg["OPTIONS"]["options"] == "-c TimeZone=UTC"
    off = load(DATABASE_CONN_HEALTH_CHECKS="0")["DB"]
    assert off["CONN_HEALTH_CHECKS"] is False


def test_an_admin_request_loads_neither_the_api_views_nor_the_steps(tmp_path):
    """Views are named lazily, the steps load at the first hook call: the admin pays for itself."""
    code = (
        "import sys; from django.core.wsgi import get_wsgi_application;"
        "from wsgiref.util import setup_testing_defaults; app = get_wsgi_application();"
        "env = {'PATH_INFO': '/admin/login/', 'HTTP_HOST': 'localhost'};"
        "setup_testing_defaults(env); status = [];"
        "b''.join(app(env, lambda s, h, exc_info=None: status.append(s)));"
        "names = ('web.api.jobs', 'web.api.schedules', 'web.endpoints', 'web.metrics',"
        " 'web.openapi', 'engine.steps', 'engine.delivery');"
        "import json; print(json.dumps([status[0][:3],"
        " [n for n in names if 'container_manager.' + n in sys.modules]]))"
    )
    env = {"DJANGO_SETTINGS_MODULE": "functions.settings",
           "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}"}  # fmt: skip
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env={**CLEAN, **env}, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == ["200", []]


def test_behind_a_transaction_pooler_no_session_state_is_kept_on_the_connection():
    """PgBouncer's port, or CM_DB_POOLER=transaction (RDS Proxy on 5432): no startup options
    (PgBouncer refuses them), no prepared statements, no server-side cursors; directly, the
    statements are bound on the server and prepared."""
    for env in (
        {"DATABASE_URL": "postgres://u:p@127.0.0.1:6432/x"},
        {"DATABASE_URL": "postgres://u:p@proxy:5432/x", "CM_DB_POOLER": "transaction"},
    ):
        db = load(DJANGO_DEBUG="1", **env)["DB"]
        assert db["OPTIONS"] == {"prepare_threshold": None}, env
        assert db["DISABLE_SERVER_SIDE_CURSORS"] is True, env
    direct = load(DATABASE_URL="postgres://u:p@127.0.0.1:6432/x", CM_DB_POOLER="none")["DB"]
    assert direct["OPTIONS"] == {
        "options": "-c TimeZone=UTC", "server_side_binding": True, "prepare_threshold": 5
    }  # fmt: skip
    assert direct["DISABLE_SERVER_SIDE_CURSORS"] is False
    assert "CM_DB_POOLER must be 'transaction' or 'none'" in load(CM_DB_POOLER="session")


@pytest.mark.django_db
def test_a_request_through_the_middleware_warns_of_nothing(client, recwarn):
    client.get("/cm/api/openapi.json")
    assert [str(w.message) for w in recwarn] == []
