"""Settings of the functions project, every one read from an environment variable.

With no environment at all it runs locally: SQLite file, local dispatch, DEBUG on. Deployed
(Lambda, Cloud Run, a cloud dispatch backend or a remote database) DEBUG defaults to off.
docs/configuration.md lists the variables.
"""

import json
import os
from pathlib import Path
from typing import Any

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

#: Short names accepted by CM_DISPATCH_BACKEND; anything else is taken as a dotted path.
DISPATCH_BACKENDS = {
    "local": "container_manager.dispatch.local.LocalBackend",
    "worker": "container_manager.dispatch.worker.WorkerBackend",
    "immediate": "container_manager.dispatch.immediate.ImmediateBackend",
    "cloudtasks": "container_manager.dispatch.cloudtasks.CloudTasksBackend",
    "sqs": "container_manager.dispatch.sqs.SQSBackend",
}

#: Short names of the dispatch backends that only run deployed.
CLOUD_DISPATCH_BACKENDS = frozenset({"cloudtasks", "sqs"})
#: Database hosts that mean "this machine".
LOCAL_HOSTS = frozenset({"", "localhost", "127.0.0.1", "::1"})
#: Runs of one statement on a connection before psycopg prepares it (direct connections only).
PREPARE_THRESHOLD = 5
#: The port PgBouncer listens on by default: a DATABASE_URL with it is taken as pooled.
PGBOUNCER_PORT = 6432
#: The key local development runs with; a system check refuses it whenever DEBUG is off.
DEVELOPMENT_SECRET_KEY = "insecure-local-development-key"


def env_bool(name: str, default: bool) -> bool:
    """Read a boolean environment variable ("1", "true", "yes", "on" are true)."""
    value = os.environ.get(name)
    return default if value is None else value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str = "") -> list[str]:
    """Read a comma-separated environment variable as a list, blanks dropped."""
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def dispatch_settings(name: str) -> dict[str, Any]:
    """``CONTAINER_MANAGER["DISPATCH"]`` for a short backend name or a dotted path."""
    backend = DISPATCH_BACKENDS.get(name, name)
    options = _dispatch_options(name)
    extra = os.environ.get("CM_DISPATCH_OPTIONS")
    if extra:
        try:
            options.update(json.loads(extra))
        except (ValueError, TypeError, AttributeError) as exc:
            raise ImproperlyConfigured(
                f"CM_DISPATCH_OPTIONS must be a JSON object: {exc}"
            ) from None
    return {"BACKEND": backend, "OPTIONS": options}


def _dispatch_options(name: str) -> dict[str, Any]:
    """Backend options from the CM_* variables; unset ones are left to the backend's defaults."""
    if name in {"local", "worker"}:
        return {
            "WORKERS": int(os.environ.get("CM_LOCAL_WORKERS", "4")),
            "SWEEP_INTERVAL": float(os.environ.get("CM_SWEEP_INTERVAL", "30")),
        }
    if name == "cloudtasks":
        options = {
            "PROJECT": os.environ.get("CM_CLOUDTASKS_PROJECT"),
            "LOCATION": os.environ.get("CM_CLOUDTASKS_LOCATION"),
            "QUEUE": os.environ.get("CM_CLOUDTASKS_QUEUE"),
            "TARGET_BASE_URL": os.environ.get("CM_STEP_BASE_URL"),
            "SERVICE_ACCOUNT_EMAIL": os.environ.get("CM_OIDC_SERVICE_ACCOUNT"),
            "AUDIENCE": os.environ.get("CM_OIDC_AUDIENCE"),
        }
        # Without a service account to mint OIDC tokens, pushes are signed with the HMAC secret.
        options["SIGN_WITH_HMAC"] = not options["SERVICE_ACCOUNT_EMAIL"] and bool(
            os.environ.get("CM_HMAC_SECRET")
        )
        return {key: value for key, value in options.items() if value not in (None, "")}
    if name == "sqs":
        options = {
            "QUEUE_URL": os.environ.get("CM_SQS_QUEUE_URL"),
            "REGION": os.environ.get("AWS_REGION"),
            "ENDPOINT_URL": os.environ.get("CM_SQS_ENDPOINT_URL"),
        }
        return {key: value for key, value in options.items() if value}
    return {}


def log_settings(log_format: str, level: str) -> dict[str, Any]:
    """Django's LOGGING: text or one JSON object per line, with the job id and step on each."""
    formats = {
        "text": {"format": "%(levelname)s %(name)s %(message)s"},
        "json": {"()": "container_manager.telemetry.logging.JsonFormatter"},
    }
    request_formats = {
        "text": {"format": "%(levelname)s %(name)s %(message)s [job %(job_id)s]"},
        "json": formats["json"],
    }
    if log_format not in formats:
        raise ImproperlyConfigured(f"CM_LOG_FORMAT must be 'text' or 'json', not {log_format!r}")
    handler = {
        "class": "logging.StreamHandler",
        "formatter": log_format,
        "filters": ["step_context"],
    }
    logger = {"handlers": ["console"], "level": level}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {
            "step_context": {"()": "container_manager.telemetry.logging.StepContextFilter"},
            "job_id": {"()": "container_manager.telemetry.logging.JobIdFilter"},
        },
        "formatters": {log_format: formats[log_format], "request": request_formats[log_format]},
        "handlers": {
            "console": handler,
            # Every unhandled exception of a request, with its traceback and the job id
            # when the request names one; Django alone would only mail the empty ADMINS.
            "request_errors": {
                **handler,
                "level": "ERROR",
                "formatter": "request",
                "filters": ["step_context", "job_id"],
            },
        },
        "loggers": {
            "container_manager": logger,
            "functions": dict(logger),
            "django.request": {"handlers": ["request_errors"]},
        },
    }


def deployed() -> bool:
    """True when this process runs deployed: on Lambda or Cloud Run (their own variables say
    so), with a cloud dispatch backend, or with a database that is not on this machine."""
    if os.environ.get("AWS_LAMBDA_FUNCTION_NAME") or os.environ.get("K_SERVICE"):
        return True
    if os.environ.get("CM_DISPATCH_BACKEND", "local") in CLOUD_DISPATCH_BACKENDS:
        return True
    url = os.environ.get("DATABASE_URL")
    if not url:
        return False
    database = dj_database_url.parse(url)
    local = (
        database["ENGINE"] == "django.db.backends.sqlite3" or database.get("HOST") in LOCAL_HOSTS
    )
    return not local


def transaction_pooled(database: dict[str, Any]) -> bool:
    """True when the connection goes through a transaction pooler (PgBouncer's
    ``pool_mode = transaction``, RDS Proxy): ``CM_DB_POOLER=transaction`` says so, ``none`` says
    not; unset, a PostgreSQL URL on PgBouncer's port 6432 does."""
    mode = os.environ.get("CM_DB_POOLER", "").strip().lower()
    if mode not in {"", "transaction", "none"}:
        raise ImproperlyConfigured(f"CM_DB_POOLER must be 'transaction' or 'none', not {mode!r}")
    if database["ENGINE"] != "django.db.backends.postgresql":
        return False
    if mode:
        return mode == "transaction"
    return str(database.get("PORT") or "") == str(PGBOUNCER_PORT)


def postgres_options(pooled: bool) -> dict[str, Any]:
    """Connection OPTIONS for PostgreSQL, directly or through a transaction pooler.

    Direct, the session starts in UTC (``options``), so Django sends no ``SET TIME ZONE``, and
    statements are bound on the server and prepared once a connection has run them
    ``PREPARE_THRESHOLD`` times (psycopg's own default; Django turns preparing off unless
    asked): the engine's hot statements are fixed text, and planning them took most of the
    database's time per job (``docs/configuration.md``, "Prepared statements"). A
    pooler refuses that startup parameter (PgBouncer: "unsupported startup parameter") and
    hands each transaction to any server connection, so psycopg must not prepare statements
    (a statement prepared on one server connection is unknown on the next). The server's own
    time zone should then be UTC (RDS's default): otherwise Django sets it once per client
    connection, which PgBouncer replays on each server connection and RDS Proxy pins.
    """
    if pooled:
        return {"prepare_threshold": None}
    return {
        "options": "-c TimeZone=UTC",
        "server_side_binding": True,
        "prepare_threshold": PREPARE_THRESHOLD,
    }


def _static_storage(kind: str, debug: bool) -> dict[str, Any]:
    if kind == "whitenoise":
        # The manifest (hashed names, long cache) needs `collectstatic` first: deployments run
        # it before packaging. In debug, files are served straight from the apps instead.
        name = "CompressedStaticFilesStorage" if debug else "CompressedManifestStaticFilesStorage"
        return {"BACKEND": f"whitenoise.storage.{name}"}
    if kind == "s3":
        bucket = os.environ.get("CM_STATIC_BUCKET")
        if not bucket:
            raise ImproperlyConfigured("CM_STATIC_BUCKET must be set when CM_STATIC_STORAGE=s3")
        return {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {"bucket_name": bucket, "location": "static", "querystring_auth": False},
        }
    raise ImproperlyConfigured(f"CM_STATIC_STORAGE must be 'whitenoise' or 's3', not {kind!r}")


DEBUG = env_bool("DJANGO_DEBUG", not deployed())
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY") or (DEVELOPMENT_SECRET_KEY if DEBUG else "")
if not SECRET_KEY:
    raise ImproperlyConfigured(
        "DJANGO_SECRET_KEY must be set when DEBUG is off (DJANGO_DEBUG unset defaults to off "
        "on Lambda, Cloud Run, with a cloud dispatch backend or a remote database)"
    )
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1")
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS")
# API Gateway, function URLs, Cloud Run and load balancers end TLS in front of the app.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = not DEBUG
# HTTPS only, once deployed: redirects, HSTS (a year; subdomains left to the operator).
SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", not DEBUG)
SECURE_HSTS_SECONDS = int(
    os.environ.get("DJANGO_SECURE_HSTS_SECONDS", "0" if DEBUG else "31536000")
)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = False

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "container_manager",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "functions.urls"
WSGI_APPLICATION = "functions.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL") or f"sqlite:///{BASE_DIR / 'db.sqlite3'}",
        # Kept across steps, requests and events: a new connection per step cost more than the
        # step (issue 13). close_old_connections() still closes broken and aged ones.
        conn_max_age=int(os.environ.get("DATABASE_CONN_MAX_AGE", "600")),
        conn_health_checks=env_bool("DATABASE_CONN_HEALTH_CHECKS", True),
    )
}
pooled = transaction_pooled(DATABASES["default"])
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    DATABASES["default"].setdefault("OPTIONS", {}).update(postgres_options(pooled))
    # Behind a transaction pooler a server-side cursor (DECLARE ... WITH HOLD) would outlive
    # its transaction on a server connection the next transaction may not get.
    DATABASES["default"]["DISABLE_SERVER_SIDE_CURSORS"] = pooled
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Worker threads write concurrently: take the write lock up front and wait for it.
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    # Tests run worker threads: an in-memory database would lock instead of waiting.
    # One file per test process, so two runs in one checkout do not share it.
    DATABASES["default"]["TEST"] = {"NAME": str(BASE_DIR / f"test-db-{os.getpid()}.sqlite3")}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# API Gateway's default URL puts the stage first (/aws/...) and the app sees paths without it.
# Django would add the prefix to a relative STATIC_URL only if it were known at first use, which
# on Lambda may be a scheduled event: so the prefix is configured and STATIC_URL is absolute.
FORCE_SCRIPT_NAME = os.environ.get("DJANGO_FORCE_SCRIPT_NAME") or None
STATIC_URL = (
    os.environ.get("DJANGO_STATIC_URL") or f"{(FORCE_SCRIPT_NAME or '').rstrip('/')}/static/"
)
STATIC_ROOT = BASE_DIR / "staticfiles"
# collectstatic keeps only the hashed names the manifest serves: WhiteNoise indexes every file
# under STATIC_ROOT when the process starts, so half the files is half that part of a cold start.
WHITENOISE_KEEP_ONLY_HASHED_FILES = True


STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": _static_storage(os.environ.get("CM_STATIC_STORAGE", "whitenoise"), DEBUG),
}


CONTAINER_MANAGER = {
    "INSTANCE": os.environ.get("CM_INSTANCE", "default"),
    "DISPATCH": dispatch_settings(os.environ.get("CM_DISPATCH_BACKEND", "local")),
    "AUTH": {
        "HMAC_SECRET": os.environ.get("CM_HMAC_SECRET", ""),
        "OIDC_AUDIENCES": env_list("CM_OIDC_AUDIENCE"),
        "OIDC_SERVICE_ACCOUNTS": env_list("CM_OIDC_SERVICE_ACCOUNT"),
    },
    "API_TOKENS": env_list("CM_API_TOKENS"),
    # Executor types whose stop events the deployment receives (Terraform wires them up).
    "PLATFORM_EVENTS": env_list("CM_PLATFORM_EVENTS"),
    # Non-public networks webhooks may reach (an on-premises receiver); empty: public only.
    "WEBHOOK_ALLOWED_NETWORKS": env_list("CM_WEBHOOK_ALLOWED_NETWORKS"),
}

LOGGING = log_settings(
    os.environ.get("CM_LOG_FORMAT", "text"), os.environ.get("CM_LOG_LEVEL", "WARNING")
)
