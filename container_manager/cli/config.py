"""Where ``cm`` finds its deployment and token: the environment, else a profile of its config file.

``CM_URL`` and ``CM_TOKEN``, else ``[profile]`` of ``$XDG_CONFIG_HOME/cm/config.toml``
(``~/.config/cm/config.toml``), which ``cm login`` writes with mode 0600.
"""

from __future__ import annotations

import json
import math
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: The profile used when neither ``--profile`` nor ``CM_PROFILE`` names one.
DEFAULT_PROFILE = "default"
#: Seconds before the first poll of a job, and the longest wait between polls (``CM_POLL_*``).
POLL_INTERVAL = 1.0
POLL_MAX = 10.0

_PROFILE_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class ConfigError(Exception):
    """The configuration is missing or wrong; the message says which value and where."""


@dataclass(frozen=True)
class Settings:
    """The deployment ``cm`` talks to: the API root (ending in ``api/``) and the token."""

    api_root: str
    token: str = field(repr=False)


def config_path(environ: Mapping[str, str]) -> Path:
    """The config file: ``$XDG_CONFIG_HOME/cm/config.toml``, ``~/.config/cm/config.toml`` without.

    >>> str(config_path({"XDG_CONFIG_HOME": "/x"}))
    '/x/cm/config.toml'
    """
    base = environ.get("XDG_CONFIG_HOME") or str(Path(environ.get("HOME", "~")) / ".config")
    return Path(base).expanduser() / "cm" / "config.toml"


def api_root(url: str) -> str:
    """The API root of a deployment's URL: where ``container_manager.urls`` is mounted, + ``api/``.

    The URL may name the API root itself.

    >>> api_root("https://example.com/cm"), api_root("http://h:8000/cm/api/")
    ('https://example.com/cm/api/', 'http://h:8000/cm/api/')
    >>> api_root("example.com/cm")
    Traceback (most recent call last):
    ...
    container_manager.cli.config.ConfigError: url: must start with http:// or https://
    """
    if not re.match(r"^https?://[^/\s]+", url):
        raise ConfigError("url: must start with http:// or https://")
    root = url.rstrip("/")
    return (root if root.endswith("/api") else f"{root}/api") + "/"


def load(profile: str | None, environ: Mapping[str, str]) -> Settings:
    """The deployment: ``CM_URL`` and ``CM_TOKEN``, else those of ``profile`` in the config file.

    ``profile`` None: ``CM_PROFILE``, else ``default``; a profile named but absent is an error.

    The file's token is used only with the file's URL: ``CM_URL`` naming another deployment
    needs ``CM_TOKEN`` too, so a token never goes to a server it was not issued for.
    """
    name = profile or environ.get("CM_PROFILE") or DEFAULT_PROFILE
    path = config_path(environ)
    section = read(path).get(name, {})
    if not isinstance(section, dict) or (profile and not section):
        raise ConfigError(f"profile: no [{name}] in {path}; run: cm login --profile {name} URL")
    url = environ.get("CM_URL") or section.get("url")
    if not url:
        raise ConfigError(f"url: set CM_URL, or run: cm login URL (writes {path})")
    root = api_root(str(url))
    token = environ.get("CM_TOKEN")
    if not token and section.get("url") and api_root(str(section["url"])) == root:
        token = section.get("token")
    if not token:
        raise ConfigError(f"token: set CM_TOKEN, or run: cm login {url}")
    return Settings(root, str(token))


def read(path: Path) -> dict[str, Any]:
    """The config file's tables, empty when there is no file; a ``ConfigError`` when unreadable."""
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        return {}
    except (OSError, tomllib.TOMLDecodeError) as exc:
        # The file holds tokens: name the problem, never quote the content.
        raise ConfigError(f"config: cannot read {path}: {type(exc).__name__}") from None


def save(path: Path, profile: str, url: str, token: str) -> None:
    """Write ``url`` and ``token`` as ``[profile]`` of ``path``, keeping the other profiles.

    The file is replaced whole, made with mode 0600 (its directory 0700) before the token is
    written to it.
    """
    if not _PROFILE_NAME.match(profile):
        raise ConfigError("profile: letters, digits, - and _ only (at most 64)")
    tables = read(path)
    tables[profile] = {**tables.get(profile, {}), "url": url, "token": token}
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(_toml(tables))
        os.chmod(temporary, 0o600)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def poll_intervals(environ: Mapping[str, str]) -> tuple[float, float]:
    """``(first, longest)`` seconds between polls: ``CM_POLL_INTERVAL``, ``CM_POLL_MAX``.

    >>> poll_intervals({}), poll_intervals({"CM_POLL_INTERVAL": "0.5", "CM_POLL_MAX": "0.1"})
    ((1.0, 10.0), (0.5, 0.5))
    """
    first = _seconds(environ, "CM_POLL_INTERVAL", POLL_INTERVAL)
    return first, max(first, _seconds(environ, "CM_POLL_MAX", POLL_MAX))


def _seconds(environ: Mapping[str, str], name: str, default: float) -> float:
    text = environ.get(name)
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and 0 < value <= 3600):
        raise ConfigError(f"{name}: must be a number of seconds from 0 (excluded) to 3600")
    return value


def _toml(tables: dict[str, Any]) -> str:
    """TOML text of tables of scalars (a JSON string is a valid TOML basic string)."""
    lines = []
    for name, table in tables.items():
        lines.append(f"[{_key(name)}]")
        lines += [f"{_key(key)} = {json.dumps(value)}" for key, value in table.items()]
        lines.append("")
    return "\n".join(lines)


def _key(name: str) -> str:
    """A TOML key: bare when it may be, else quoted.

    >>> _key("default"), _key("my profile")
    ('default', '"my profile"')
    """
    return name if _PROFILE_NAME.match(name) else json.dumps(name)
