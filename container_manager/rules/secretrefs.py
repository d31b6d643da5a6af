"""Secret references: an environment value ``secret:<reference>`` names a secret, not its value.

Pure parsing: which reference kinds exist, their syntax, and the errors a malformed one gets.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.core.exceptions import ValidationError

#: What starts a secret reference; a literal value cannot start with it.
PREFIX = "secret:"

#: The reference kinds, by the name capabilities, errors and docs use.
AWS_SECRETS_MANAGER = "aws-secretsmanager"
AWS_SSM = "aws-ssm"
GCP_SECRET_MANAGER = "gcp-secretmanager"
WORKER_ENV = "env"
WORKER_FILE = "file"
KINDS = (AWS_SECRETS_MANAGER, AWS_SSM, GCP_SECRET_MANAGER, WORKER_ENV, WORKER_FILE)

#: The syntax each kind is written in, for error messages and docs.
SYNTAX = {
    AWS_SECRETS_MANAGER: "secret:arn:aws:secretsmanager:<region>:<account>:secret:<name>"
    "[:<json-key>[:<version-stage>[:<version-id>]]]",
    AWS_SSM: "secret:arn:aws:ssm:<region>:<account>:parameter/<name>",
    GCP_SECRET_MANAGER: "secret:projects/<project>/secrets/<secret>/versions/<version|latest>",
    WORKER_ENV: "secret:env:<NAME>",
    WORKER_FILE: "secret:file:<file name>",
}

_PARTITION = r"aws(?:-[a-z]+)*"
_REGION = r"[a-z]{2}(?:-[a-z]+)+-\d+"
_ACCOUNT = r"\d{12}"
_SM = re.compile(
    rf"arn:{_PARTITION}:secretsmanager:{_REGION}:{_ACCOUNT}:secret:[A-Za-z0-9/_+=.@-]{{1,512}}"
)
_SSM = re.compile(
    rf"arn:{_PARTITION}:ssm:(?P<region>{_REGION}):{_ACCOUNT}:parameter/"
    r"(?P<name>[A-Za-z0-9_.-]+(?:/[A-Za-z0-9_.-]+)*)"
)
_GCP = re.compile(
    r"(?P<secret>projects/[a-z0-9][a-z0-9.:-]{0,62}/secrets/[A-Za-z0-9_-]{1,255})"
    r"/versions/(?P<version>[A-Za-z0-9_-]{1,63})"
)
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SM_EXTRA = re.compile(r"[A-Za-z0-9_.+=@/-]*")


@dataclass(frozen=True)
class SecretRef:
    """A parsed reference: its kind and the text after ``secret:`` (what the platform reads).

    ``secret_id`` is the part that names the secret (the Secrets Manager ARN without its
    json-key and version fields, the SSM parameter name, the GCP secret's resource name, the
    variable or file name); ``json_key``, ``version_stage`` and ``version`` select within it.
    """

    kind: str
    text: str
    secret_id: str
    json_key: str = ""
    version_stage: str = ""
    version: str = ""

    @property
    def region(self) -> str:
        """The AWS region of an ARN reference ("" for other kinds)."""
        return self.text.split(":")[3] if self.text.startswith("arn:") else ""

    @property
    def value_from(self) -> str:
        """The reference as ECS ``valueFrom`` takes it: a Secrets Manager ARN with a json-key,
        version stage or id spells out all three fields (``name:key::``)."""
        if self.kind == AWS_SECRETS_MANAGER and (
            self.json_key or self.version_stage or self.version
        ):
            return f"{self.secret_id}:{self.json_key}:{self.version_stage}:{self.version}"
        return self.text


def is_reference(value: object) -> bool:
    """True when ``value`` is written as a secret reference (whether well-formed or not).

    >>> is_reference("secret:env:CM_SECRET_TOKEN"), is_reference("hunter2")
    (True, False)
    """
    return isinstance(value, str) and value.startswith(PREFIX)


def parse(value: str) -> SecretRef | None:
    """The reference ``value`` is written as; None for an ordinary value.

    Raises ``ValueError`` saying which syntax a malformed reference breaks; the message never
    repeats the value.

    >>> parse("secret:arn:aws:ssm:eu-west-1:123456789012:parameter/app/db").secret_id
    '/app/db'
    >>> parse("secret:projects/p1/secrets/api-key/versions/latest").secret_id
    'projects/p1/secrets/api-key'
    >>> parse("secret:env:CM_SECRET_TOKEN").kind, parse("plain") is None
    ('env', True)
    >>> parse("secret:nope")
    Traceback (most recent call last):
    ...
    ValueError: not a secret reference: expected one of secret:arn:aws:secretsmanager:..., \
secret:arn:aws:ssm:..., secret:projects/.../secrets/.../versions/..., secret:env:<NAME>, \
secret:file:<file name>
    """
    if not is_reference(value):
        return None
    text = value[len(PREFIX) :]
    if text.startswith("arn:") and ":secretsmanager:" in text:
        return _secrets_manager(text)
    if text.startswith("arn:") and ":ssm:" in text:
        return _ssm(text)
    if text.startswith("projects/"):
        return _gcp(text)
    if text.startswith("env:"):
        return _worker_env(text)
    if text.startswith("file:"):
        return _worker_file(text)
    raise ValueError(
        "not a secret reference: expected one of secret:arn:aws:secretsmanager:..., "
        "secret:arn:aws:ssm:..., secret:projects/.../secrets/.../versions/..., "
        "secret:env:<NAME>, secret:file:<file name>"
    )


def well_formed(value: object) -> bool:
    """True when ``value`` is a reference that parses.

    >>> well_formed("secret:env:CM_SECRET_A"), well_formed("secret:?"), well_formed("a")
    (True, False, False)
    """
    try:
        return isinstance(value, str) and parse(value) is not None
    except ValueError:
        return False


def references(variables: dict[str, str]) -> dict[str, SecretRef]:
    """``{name: reference}`` for each variable whose value is a well-formed reference.

    Malformed ones are left out: validation refuses them before they are stored.

    >>> sorted(references({"A": "1", "B": "secret:env:CM_SECRET_B", "C": "secret:?"}))
    ['B']
    """
    found = {}
    for name, value in variables.items():
        try:
            ref = parse(value)
        except ValueError:
            continue
        if ref is not None:
            found[name] = ref
    return found


def value_error(name: str, value: object) -> str | None:
    """What is wrong with variable ``name``'s value as a reference, or None; names the variable.

    >>> value_error("TOKEN", "secret:file:a/b")
    "TOKEN: secret:file:<file name> needs a plain file name (no '/', not '..')."
    """
    if not is_reference(value):
        return None
    try:
        parse(value)
    except ValueError as exc:
        return f"{name}: {exc}."
    return None


def validate_references(variables: dict[str, str]) -> None:
    """Raise ``ValidationError`` with one message per variable holding a malformed reference."""
    errors = [m for name, value in variables.items() if (m := value_error(name, value))]
    if errors:
        raise ValidationError(errors)


def _secrets_manager(text: str) -> SecretRef:
    parts = text.split(":")
    base, extra = ":".join(parts[:7]), parts[7:]
    if not _SM.fullmatch(base) or len(extra) > 3 or not all(map(_SM_EXTRA.fullmatch, extra)):
        raise ValueError(f"a Secrets Manager reference is written {SYNTAX[AWS_SECRETS_MANAGER]}")
    key, stage, version = (*extra, "", "", "")[:3]
    return SecretRef(AWS_SECRETS_MANAGER, text, base, key, stage, version)


def _ssm(text: str) -> SecretRef:
    match = _SSM.fullmatch(text)
    if match is None:
        raise ValueError(f"an SSM parameter reference is written {SYNTAX[AWS_SSM]}")
    name = match.group("name")
    # A hierarchical parameter's ARN drops its leading "/": parameter/app/db is "/app/db".
    return SecretRef(AWS_SSM, text, f"/{name}" if "/" in name else name)


def _gcp(text: str) -> SecretRef:
    match = _GCP.fullmatch(text)
    if match is None:
        raise ValueError(f"a Secret Manager reference is written {SYNTAX[GCP_SECRET_MANAGER]}")
    return SecretRef(
        GCP_SECRET_MANAGER, text, match.group("secret"), version=match.group("version")
    )


def _worker_env(text: str) -> SecretRef:
    name = text[len("env:") :]
    if not _ENV_NAME.fullmatch(name):
        raise ValueError(
            f"{SYNTAX[WORKER_ENV]} needs a variable name "
            "(letters, digits and _, not starting with a digit)"
        )
    return SecretRef(WORKER_ENV, text, name)


def _worker_file(text: str) -> SecretRef:
    name = text[len("file:") :]
    plain = (
        0 < len(name) <= 255 and not any(c in name for c in "/\\\x00") and name not in {".", ".."}
    )
    if not plain:
        raise ValueError(f"{SYNTAX[WORKER_FILE]} needs a plain file name (no '/', not '..')")
    return SecretRef(WORKER_FILE, text, name)
