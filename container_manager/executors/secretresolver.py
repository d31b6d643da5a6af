"""Secret references at launch: passed by name where the platform resolves them, else resolved here.

The resolver is ``SECRET_RESOLVER``; the built-in one reads restricted worker variables and
files, AWS Secrets Manager and SSM Parameter Store. Values live only in the launch's memory.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from django.utils.module_loading import import_string

from container_manager.conf import setting
from container_manager.executors.exceptions import ExecutorError
from container_manager.rules import secretrefs
from container_manager.rules.secretrefs import SecretRef

#: The built-in resolver, ``SECRET_RESOLVER``'s default.
DEFAULT_RESOLVER = "container_manager.executors.secretresolver.resolve"

#: Where each kind can be used, for the errors of the platforms that cannot.
WHERE = {
    secretrefs.AWS_SECRETS_MANAGER: "Fargate passes it to the task; Docker, Scaleway and the "
    "mock executor resolve it at launch",
    secretrefs.AWS_SSM: "Fargate passes it to the task; Docker, Scaleway and the mock executor "
    "resolve it at launch",
    secretrefs.GCP_SECRET_MANAGER: "only Cloud Run resolves it (elsewhere, only a "
    "SECRET_RESOLVER that handles it)",
    secretrefs.WORKER_ENV: "only Docker, Scaleway and the mock executor resolve it, in the worker",
    secretrefs.WORKER_FILE: "only Docker, Scaleway and the mock executor resolve it, in the worker",
}

_RETRYABLE_AWS = {
    "ThrottlingException", "InternalServiceError", "InternalServerError", "ServiceUnavailable",
    "RequestLimitExceeded", "TooManyUpdates",
}  # fmt: skip


#: botocore logs every response body at DEBUG, a secret's value included: under this logger.
BODY_LOGGER = "botocore.parsers"


class SecretRefused(Exception):
    """A resolver's refusal; its message names the rule broken, never a value."""


def resolve(ref: SecretRef) -> str:
    """The built-in ``SECRET_RESOLVER``: the value ``ref`` names, read now.

    ``env``: a worker variable whose name starts with ``SECRET_ENV_PREFIX``. ``file``: a plain
    file name inside ``SECRET_FILES_DIR`` (None refuses them). AWS Secrets Manager
    (``get_secret_value``, json-key and version fields honoured) and SSM Parameter Store
    (``get_parameter`` with decryption) through boto3 and the worker's AWS credentials, in the
    reference's region. GCP references are refused: only Cloud Run resolves them.
    """
    if ref.kind == secretrefs.WORKER_ENV:
        return _worker_env(ref.secret_id)
    if ref.kind == secretrefs.WORKER_FILE:
        return _worker_file(ref.secret_id)
    if ref.kind == secretrefs.AWS_SECRETS_MANAGER:
        return _secrets_manager(ref)
    if ref.kind == secretrefs.AWS_SSM:
        return _ssm(ref)
    raise SecretRefused(f"the built-in resolver cannot read it: {WHERE[ref.kind]}")


def resolver_kinds() -> frozenset[str]:
    """The reference kinds ``SECRET_RESOLVER`` may resolve, from the settings alone.

    The built-in resolver's: ``env``, the AWS kinds, and ``file`` once ``SECRET_FILES_DIR`` is
    set. A custom resolver's ``secret_kinds`` attribute, else every kind (it decides at launch).
    """
    path = setting("SECRET_RESOLVER")
    if path == DEFAULT_RESOLVER:
        kinds = {secretrefs.WORKER_ENV, secretrefs.AWS_SECRETS_MANAGER, secretrefs.AWS_SSM}
        if setting("SECRET_FILES_DIR"):
            kinds.add(secretrefs.WORKER_FILE)
        return frozenset(kinds)
    try:
        resolver = import_string(path)
    except ImportError:
        return frozenset(secretrefs.KINDS)  # the launch says why it cannot be imported
    return frozenset(getattr(resolver, "secret_kinds", secretrefs.KINDS))


def unsupported(name: str, kind: str, platform: str) -> str:
    """Why variable ``name``'s reference of ``kind`` cannot be used on ``platform``.

    >>> unsupported("TOKEN", "env", "fargate")
    'TOKEN: a secret reference of kind env cannot be used on fargate: only Docker, Scaleway \
and the mock executor resolve it, in the worker'
    """
    return f"{name}: a secret reference of kind {kind} cannot be used on {platform}: {WHERE[kind]}"


def unsupported_references(environment: dict[str, str], kinds: frozenset[str]) -> dict[str, str]:
    """``{variable: kind}`` for each reference in ``environment`` whose kind is not in ``kinds``."""
    refs = secretrefs.references(environment)
    return {name: ref.kind for name, ref in refs.items() if ref.kind not in kinds}


def platform_references(
    environment: dict[str, str], kinds: frozenset[str], platform: str
) -> tuple[dict[str, str], dict[str, SecretRef]]:
    """Split ``environment`` into plain values and the references the platform resolves itself.

    Raises a non-retryable ``ExecutorError`` naming the first variable whose reference's kind
    the platform cannot resolve.
    """
    refused = unsupported_references(environment, kinds)
    if refused:
        name, kind = next(iter(refused.items()))
        raise ExecutorError(unsupported(name, kind, platform), retryable=False)
    refs = secretrefs.references(environment)
    return {k: v for k, v in environment.items() if k not in refs}, refs


def resolve_environment(environment: dict[str, str], platform: str) -> dict[str, str]:
    """``environment`` with every reference replaced by its value, through ``SECRET_RESOLVER``.

    For the executors that hand the container its environment themselves. The copy returned
    is the only place the values live; a failure raises an ``ExecutorError`` naming the
    variable, the reference kind and why (an AWS error code, a broken rule), never a value.
    """
    refs = secretrefs.references(environment)
    if not refs:
        return dict(environment)
    resolver = _resolver()
    resolved = dict(environment)
    for name, ref in refs.items():
        resolved[name] = _resolve_one(resolver, name, ref, platform)
    return resolved


def _resolver() -> Callable[[SecretRef], str]:
    path = setting("SECRET_RESOLVER")
    try:
        return import_string(path)
    except ImportError as exc:
        raise ExecutorError(
            f"SECRET_RESOLVER: {path!r} cannot be imported: {exc}", retryable=False
        ) from None


def _resolve_one(
    resolver: Callable[[SecretRef], str], name: str, ref: SecretRef, platform: str
) -> str:
    head = f"{name}: its secret reference of kind {ref.kind} was not resolved on {platform}"
    try:
        value = resolver(ref)
    except SecretRefused as exc:
        raise ExecutorError(f"{head}: {exc}", retryable=False) from None
    except Exception as exc:  # noqa: BLE001 - any resolver failure, told without its text
        # The exception's own text may quote what it read: only its kind is told.
        raise ExecutorError(f"{head}: {_failure(exc)}", retryable=_retryable(exc)) from None
    if not isinstance(value, str):
        raise ExecutorError(f"{head}: the resolver answered {type(value).__name__}, not text")
    return value


def _failure(exc: Exception) -> str:
    code = _aws_code(exc)
    return f"AWS answered {code}" if code else type(exc).__name__


def _retryable(exc: Exception) -> bool:
    code = _aws_code(exc)
    if code:
        return code in _RETRYABLE_AWS
    return type(exc).__module__.startswith(("botocore", "urllib3")) or isinstance(exc, OSError)


def _aws_code(exc: Exception) -> str:
    response: Any = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return ""
    return str(response.get("Error", {}).get("Code", ""))


def _worker_env(name: str) -> str:
    prefix = setting("SECRET_ENV_PREFIX") or ""
    if not prefix or not name.startswith(prefix):
        raise SecretRefused(
            f"worker variable {name} does not start with SECRET_ENV_PREFIX {prefix!r}"
        )
    value = os.environ.get(name)
    if value is None:
        raise SecretRefused(f"worker variable {name} is not set")
    return value


def _worker_file(name: str) -> str:
    directory = setting("SECRET_FILES_DIR")
    if not directory:
        raise SecretRefused("file references are refused: SECRET_FILES_DIR is not set")
    root = Path(directory).resolve()
    path = (root / name).resolve()
    # The name is plain (rules.secretrefs); a symbolic link out of the directory is refused too.
    if path.parent != root or not path.is_file():
        raise SecretRefused(f"no file {name} in SECRET_FILES_DIR")
    try:
        return path.read_text(encoding="utf-8").removesuffix("\n")
    except (OSError, UnicodeDecodeError) as exc:
        raise SecretRefused(f"file {name} cannot be read as text ({type(exc).__name__})") from None


class _UnloggedBodies(logging.Filter):
    """Drops ``BODY_LOGGER``'s records made by a thread while it reads a secret."""

    def __init__(self) -> None:
        super().__init__()
        self.reading = threading.local()

    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(self.reading, "active", False)


_BODIES = _UnloggedBodies()
logging.getLogger(BODY_LOGGER).addFilter(_BODIES)


@contextmanager
def _unlogged() -> Iterator[None]:
    """While inside, this thread's AWS answers are not logged (other threads' still are)."""
    _BODIES.reading.active = True
    try:
        yield
    finally:
        _BODIES.reading.active = False


def _aws_client(service: str, region: str) -> Any:
    import boto3

    # The endpoint comes from the AWS chain too (AWS_ENDPOINT_URL: a VPC endpoint, moto).
    return boto3.session.Session().client(service, region_name=region)


def _secrets_manager(ref: SecretRef) -> str:
    kwargs = {"SecretId": ref.secret_id}
    if ref.version_stage:
        kwargs["VersionStage"] = ref.version_stage
    if ref.version:
        kwargs["VersionId"] = ref.version
    with _unlogged():
        answer = _aws_client("secretsmanager", ref.region).get_secret_value(**kwargs)
    text = answer.get("SecretString")
    if text is None:
        raise SecretRefused("the secret is binary; only text secrets are passed as variables")
    if not ref.json_key:
        return text
    try:
        document = json.loads(text)
    except ValueError:
        raise SecretRefused(f"the secret is not JSON, so it has no key {ref.json_key}") from None
    if not isinstance(document, dict) or ref.json_key not in document:
        raise SecretRefused(f"the secret's JSON has no key {ref.json_key}")
    item = document[ref.json_key]
    return item if isinstance(item, str) else json.dumps(item)


def _ssm(ref: SecretRef) -> str:
    with _unlogged():
        answer = _aws_client("ssm", ref.region).get_parameter(
            Name=ref.secret_id, WithDecryption=True
        )
    return answer["Parameter"]["Value"]
