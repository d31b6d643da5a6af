"""Price arithmetic: run time × vCPU and memory × a platform's rates, and the sizes billed.

Rates come from ``CONTAINER_MANAGER["PRICES"]`` or a host's ``executor_config["prices"]``.
"""

from __future__ import annotations

import math
from datetime import datetime
from decimal import Decimal
from typing import Any

from container_manager.conf import DEFAULTS, setting
from container_manager.executors.exceptions import ExecutorResourceError

#: Executor types that cost nothing unless a rate is set (the machine is already paid for).
FREE_TYPES = frozenset({"docker", "mock"})
#: Keys a price entry may have, with the kind of value each takes.
ENTRY_KEYS = {
    "currency": str, "vcpu_second": float, "vcpu_hour": float, "gb_second": float,
    "gb_hour": float, "minimum_seconds": float, "increment_seconds": float,
}  # fmt: skip
CENT = Decimal("0.000001")
#: Fargate's task sizes: CPU units -> the memory sizes (MiB) each allows.
FARGATE_SIZES: dict[int, list[int]] = {
    256: [512, 1024, 2048],
    512: list(range(1024, 4096 + 1, 1024)),
    1024: list(range(2048, 8192 + 1, 1024)),
    2048: list(range(4096, 16384 + 1, 1024)),
    4096: list(range(8192, 30720 + 1, 1024)),
    8192: list(range(16384, 61440 + 1, 4096)),
    16384: list(range(32768, 122880 + 1, 8192)),
}


def charge(
    entry: dict[str, Any] | None,
    executor_type: str,
    size: tuple[Decimal, Decimal],
    started: datetime | None,
    finished: datetime | None,
) -> tuple[Decimal, str] | None:
    """``(amount, currency)`` of a run of ``size`` (vCPU, GB) from ``started`` to ``finished``.

    None without a price (or a time). Billed seconds are raised to the entry's
    ``minimum_seconds`` and rounded up to its ``increment_seconds``.

    >>> from datetime import timedelta
    >>> start = datetime(2024, 1, 1, 12, 0)
    >>> entry = {"vcpu_hour": 0.36, "gb_hour": 0.18, "currency": "EUR"}
    >>> charge(entry, "scaleway", (Decimal(1), Decimal(2)), start, start + timedelta(hours=1))
    (Decimal('0.720000'), 'EUR')
    """
    if started is None or finished is None:
        return None
    if entry is None:
        return (Decimal(0), "") if executor_type in FREE_TYPES else None
    seconds = max((finished - started).total_seconds(), float(entry.get("minimum_seconds", 0)))
    increment = float(entry.get("increment_seconds", 0))
    if increment:
        seconds = math.ceil(round(seconds / increment, 6)) * increment
    vcpu, memory_gb = size
    per_second = vcpu * _rate(entry, "vcpu") + memory_gb * _rate(entry, "gb")
    amount = Decimal(str(seconds)) * per_second
    return amount.quantize(CENT), str(entry.get("currency", "USD"))


def billed_size(
    executor_type: str,
    cpu: float | None,
    memory_mb: float | None,
    used_cpu: float | None = None,
    used_memory_mb: float | None = None,
) -> tuple[Decimal, Decimal]:
    """``(vCPU, memory in GB)`` billed: requested, else used where known, else the default.

    Fargate bills the task size the request is rounded up to; a megabyte of a memory
    limit counts as a MiB, as the platforms take it.

    >>> billed_size("fargate", 0.3, None)
    (Decimal('0.5'), Decimal('1'))
    """
    if executor_type == "fargate" and (cpu or memory_mb):
        units, memory_mb = fargate_size(cpu, memory_mb)
        cpu = units / 1024
    cpu = used_cpu if cpu is None else cpu
    memory_mb = used_memory_mb if memory_mb is None else memory_mb
    cpu = setting("COST_DEFAULT_VCPU") if cpu is None else cpu
    memory_mb = setting("COST_DEFAULT_MEMORY_MB") if memory_mb is None else memory_mb
    return Decimal(str(cpu)), Decimal(str(memory_mb)) / 1024


def price_entry(executor_type: str, config: dict[str, Any] | None) -> dict[str, Any] | None:
    """The rates for a host of ``executor_type`` and ``config``: its own ``prices``, else its
    region's, else the platform's default."""
    config = config or {}
    if config.get("prices"):
        return config["prices"]
    table = price_table().get(executor_type, {})
    return table.get(config.get("region") or "") or table.get("default")


def fargate_size(cpu_limit: float | None, memory_limit: int | None) -> tuple[int, int] | None:
    """The smallest valid Fargate (CPU units, memory MiB) that fits the job's limits.

    None when the job sets no limit (the task definition's size applies).

    >>> fargate_size(0.5, 512)
    (512, 1024)
    >>> fargate_size(None, 3000)
    (512, 3072)
    >>> fargate_size(None, None) is None
    True
    >>> fargate_size(32, None)
    Traceback (most recent call last):
    ...
    container_manager.executors.exceptions.ExecutorResourceError: no Fargate size has 32 vCPU \
and any memory (largest: 16 vCPU, 120 GiB)
    """
    if cpu_limit is None and memory_limit is None:
        return None
    units = (cpu_limit or 0) * 1024
    for cpu, memories in FARGATE_SIZES.items():
        if cpu < units:
            continue
        fitting = [m for m in memories if m >= (memory_limit or 0)]
        if fitting:
            return cpu, fitting[0]
    memory = f"{memory_limit} MiB" if memory_limit else "any memory"
    raise ExecutorResourceError(
        f"no Fargate size has {cpu_limit or 0:g} vCPU and {memory} (largest: 16 vCPU, 120 GiB)"
    )


def price_table() -> dict[str, dict[str, dict[str, Any]]]:
    """The built-in table with ``PRICES`` merged over it, platform by platform."""
    configured = setting("PRICES") or {}
    platforms = set(DEFAULTS["PRICES"]) | set(configured)
    return {
        name: {**DEFAULTS["PRICES"].get(name, {}), **configured.get(name, {})} for name in platforms
    }


def entry_errors(entry: Any, where: str) -> list[str]:
    """What is wrong with one price entry, each message naming the key and the rule.

    >>> entry_errors({"vcpu_hour": "cheap", "colour": 1}, "PRICES['x']['default']")
    ["PRICES['x']['default']['colour']: unknown key (known: currency, gb_hour, \
gb_second, increment_seconds, minimum_seconds, vcpu_hour, vcpu_second)", \
"PRICES['x']['default']['vcpu_hour']: must be a number >= 0"]
    """
    if not isinstance(entry, dict):
        return [f"{where}: must be a dict of rates"]
    errors = []
    for key in sorted(entry):
        value, kind = entry[key], ENTRY_KEYS.get(key)
        if kind is None:
            errors.append(f"{where}[{key!r}]: unknown key (known: {', '.join(sorted(ENTRY_KEYS))})")
        elif kind is str and not (isinstance(value, str) and len(value) == 3):
            errors.append(f"{where}[{key!r}]: must be a three-letter currency code")
        elif kind is float and not _is_rate(value):
            errors.append(f"{where}[{key!r}]: must be a number >= 0")
    return errors


def _is_rate(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value >= 0


def _rate(entry: dict[str, Any], resource: str) -> Decimal:
    """Per-second rate of ``vcpu`` or ``gb``, from ``*_second`` or ``*_hour``."""
    if entry.get(f"{resource}_second") is not None:
        return Decimal(str(entry[f"{resource}_second"]))
    return Decimal(str(entry.get(f"{resource}_hour", 0))) / 3600
