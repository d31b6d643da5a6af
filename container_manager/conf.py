"""Settings of container_manager: one ``CONTAINER_MANAGER`` dict, every key with a default.

Read a value with ``setting("KEY")``; the defaults below are the documented ones.
"""

from typing import Any

from django.conf import settings

DEFAULTS: dict[str, Any] = {
    # Name of this deployment, put on every execution it starts; cleanup touches only its own.
    "INSTANCE": "default",
    # Where steps are sent: a dotted path to a dispatch backend and its options. The default
    # runs steps only in `manage.py process_container_jobs`; other processes just write rows.
    "DISPATCH": {
        "BACKEND": "container_manager.dispatch.worker.WorkerBackend",
        "OPTIONS": {},
    },
    # Who may push steps: Google OIDC and HMAC settings (see container_manager.web.auth).
    "AUTH": {},
    # Bearer tokens accepted by the JSON API; none configured means the API is closed.
    "API_TOKENS": [],
    # Extra executor types: {"my-type": "dotted.path.MyExecutor"}.
    "EXECUTORS": {},
    # Limits applied to every job on top of the model validators.
    "MAX_MEMORY_LIMIT_MB": 2048,
    "MIN_MEMORY_LIMIT_MB": 6,
    "MAX_CPU_LIMIT": 32.0,
    "MAX_TIMEOUT_SECONDS": 7 * 24 * 3600,
    # Launch attempts per job and the backoff between them (seconds).
    "DEFAULT_MAX_ATTEMPTS": 3,
    "RETRY_BACKOFF_BASE": 5.0,
    "RETRY_BACKOFF_MAX": 600.0,
    # How long a launch may take before the sweep takes it over (seconds).
    "LAUNCH_LEASE_SECONDS": 120,
    # A launch still not recorded after this many seconds is looked up on the platform by its
    # launch key and recorded as running if found (never started twice).
    "LAUNCH_RECONCILE_SECONDS": 30,
    # How long a job waits for a host that cannot be reached before it fails (seconds).
    "HOST_UNREACHABLE_TIMEOUT": 3600,
    # Delay between status checks of a running job: starts small, grows to the max.
    "CHECK_DELAY_INITIAL": 0.5,
    "CHECK_DELAY_MAX": 30.0,
    "CHECK_DELAY_FACTOR": 2.0,
    # While the platform pushes stop events (container_manager.events), checks are this far
    # apart (seconds): they only back up events that were lost.
    "CHECK_DELAY_WITH_EVENTS": 60.0,
    # Executor types whose stop events reach this deployment (wired by Terraform):
    # "fargate" (EventBridge to the step queue), "cloudrun" (log sink, Pub/Sub push).
    # Docker needs no entry: the local dispatcher follows the engine's event stream.
    "PLATFORM_EVENTS": [],
    # An event said "stopped" but the platform still said running: harvest again this much later.
    "EVENT_RECHECK_DELAY": 5.0,
    # Resource use of a running job is sampled at most this often (seconds); 0 turns it off.
    "USAGE_SAMPLE_INTERVAL": 10.0,
    # Seconds a job asked to stop (timeout, cancel) is given before it is killed; no step waits.
    "STOP_GRACE_SECONDS": 5,
    # Each of stdout and stderr is kept up to this many bytes (the tail is kept).
    "LOG_MAX_BYTES": 1024 * 1024,
    # How many due jobs one sweep re-sends at most, per kind of work.
    "SWEEP_BATCH_SIZE": 500,
    # Largest JSON payload (task path, args, kwargs) a Django task may carry, in bytes.
    "TASK_PAYLOAD_MAX_BYTES": 8192,
    # A failed task's exception type and message, as its job's last_error, keeps at most this
    # many characters (the full traceback stays in stderr and the TaskResult's errors).
    "TASK_ERROR_MAX_CHARS": 500,
    # A scheduled time the sweep reaches later than this (seconds) counts as missed (see catchup).
    "SCHEDULE_MISFIRE_GRACE_SECONDS": 300,
    # Webhook deliveries: deadline of an attempt, attempts before giving up, backoff between them.
    "WEBHOOK_TIMEOUT_SECONDS": 10.0,
    "WEBHOOK_MAX_ATTEMPTS": 8,
    "WEBHOOK_BACKOFF_BASE": 10.0,
    "WEBHOOK_BACKOFF_MAX": 3600.0,
    # Networks (CIDR strings) webhooks may reach although they are not public (loopback,
    # private, link-local...): an on-premises receiver. Opens them to every endpoint's owner.
    "WEBHOOK_ALLOWED_NETWORKS": [],
    # Price table of the cost estimate: platform -> region (or "default") -> rates, merged
    # over these defaults, taken on 2026-12-01 from the vendors' pages (docs/settings.md).
    "PRICES": {
        "fargate": {
            "default": {
                "currency": "USD",
                "vcpu_hour": 0.04048,
                "gb_hour": 0.004445,
                "minimum_seconds": 60,
            },
        },
        "cloudrun": {
            "default": {
                "currency": "USD",
                "vcpu_second": 0.000018,
                "gb_second": 0.000002,
                "increment_seconds": 0.1,
            },
        },
        "scaleway": {
            "default": {"currency": "EUR", "vcpu_second": 0.00001, "gb_second": 0.000001},
        },
    },
    # What a job that sets no cpu_limit / memory_limit is assumed to use, for its cost.
    "COST_DEFAULT_VCPU": 1.0,
    "COST_DEFAULT_MEMORY_MB": 512,
    # Row-derived metrics (cm/metrics/) and dashboard timings look back this many hours.
    "METRICS_WINDOW_HOURS": 24,
    # Who may scrape cm/metrics/: a dotted path to a callable(request) raising AuthError; the
    # default accepts the API_TOKENS and the tokens of users with container_manager.view_metrics.
    "METRICS_AUTH": "container_manager.web.auth.authenticate_metrics",
    # How long an idempotency key is kept (seconds): a retry within it returns the first
    # submission's job; after it the key may be reused (the sweep deletes expired keys).
    "IDEMPOTENCY_WINDOW_SECONDS": 24 * 3600,
    # Quotas of the JSON API per user token (None turns one off); over one: a 429 with
    # Retry-After. Jobs pending, launching or running per user, array children counted:
    "QUOTA_ACTIVE_JOBS": 1000,
    # Job rows one submission may make (a job is 1, an array of n is n + 1):
    "QUOTA_ROWS_PER_REQUEST": 1000,
    # API requests per user per minute (counted in the database, across processes):
    "QUOTA_REQUESTS_PER_MINUTE": 120,
    # Whether service tokens of API_TOKENS are held to the quotas too (each token on its own).
    "QUOTA_SERVICE_TOKENS": False,
    # Largest array_size create_job accepts (at most 10,000).
    "ARRAY_MAX_SIZE": 10_000,
    # Most nodes one workflow document may have (Workflow.objects.submit, POST api/workflows/).
    "WORKFLOW_MAX_NODES": 1000,
    # Largest result (the last stdout line, JSON) a job with returns_result may store, in bytes.
    "WORKFLOW_OUTPUT_MAX_BYTES": 4096,
    # Most bytes of CM_INPUT_* variables (names and values) one job gets from its dependencies;
    # below Fargate's 8,192-character container overrides, with room for the job's own.
    "WORKFLOW_INPUTS_MAX_BYTES": 6144,
    # Secret references (docs/secrets.md): what resolves a reference at launch on Docker,
    # Scaleway and the mock executor, a dotted path to a callable(SecretRef) -> str.
    "SECRET_RESOLVER": "container_manager.executors.secretresolver.resolve",
    # The built-in resolver reads secret:env:NAME only for worker variables with this prefix,
    # so a job cannot ask for the worker's own DATABASE_URL or cloud credentials.
    "SECRET_ENV_PREFIX": "CM_SECRET_",
    # ... and secret:file:NAME only as a plain file name in this directory; None refuses them.
    "SECRET_FILES_DIR": None,
    # Environment variable names (fnmatch, case-insensitive) whose values are masked for display.
    "SECRET_NAME_PATTERNS": [
        "*KEY*",
        "*SECRET*",
        "*TOKEN*",
        "*PASS*",
        "*_PWD",
        "*CREDENTIAL*",
        "*DSN*",
        "*AUTH*",
        "*_PAT",
        "*JWT*",
        "*PRIVATE*",
        "*CERT*",
        "*COOKIE*",
        "*SESSION*",
        "*SALT*",
    ],  # fmt: skip
}


def setting(name: str) -> Any:
    """Return ``CONTAINER_MANAGER[name]`` or its documented default.

    >>> setting("DEFAULT_MAX_ATTEMPTS")
    3
    """
    configured = getattr(settings, "CONTAINER_MANAGER", {}) or {}
    if name in configured:
        return configured[name]
    return DEFAULTS[name]
