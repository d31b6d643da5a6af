"""The estimated cost of a job: its run time × its vCPU and memory × its platform's price.

Rates come from ``CONTAINER_MANAGER["PRICES"]`` or the host's ``executor_config["prices"]``.
"""

from __future__ import annotations

import math
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from container_manager.conf import DEFAULTS, setting

if TYPE_CHECKING:
    from container_manager.models import ContainerJob, ExecutorHost

#: Executor types that cost nothing unless a rate is set (the machine is already paid for).
FREE_TYPES = frozenset({"docker", "mock"})
#: Keys a price entry may have, with the kind of value each takes.
ENTRY_KEYS = {
    "currency": str, "vcpu_second": float, "vcpu_hour": float, "gb_second": float,
    "gb_hour": float, "minimum_seconds": float, "increment_seconds": float,
}  # fmt: skip
CENT = Decimal("0.000001")


def fields(job: ContainerJob, finished: datetime | None) -> dict[str, Any]:
    """The cost fields to store with a harvested job: ``estimated_cost`` and ``cost_currency``.

    Empty when the job's platform has no price (its cost stays unknown).
    """
    found = estimate(job, job.started_at, finished)
    if found is None:
        return {}
    amount, currency = found
    return {"estimated_cost": amount, "cost_currency": currency}


def estimate(
    job: ContainerJob, started: datetime | None, finished: datetime | None
) -> tuple[Decimal, str] | None:
    """``(amount, currency)`` of a run from ``started`` to ``finished``, or None without a price.

    Billed seconds are raised to the entry's ``minimum_seconds`` and rounded up to its
    ``increment_seconds``; vCPU and memory are those of ``resources``.

    >>> from datetime import timedelta
    >>> host = ExecutorHost(executor_type="scaleway", executor_config={"region": "fr-par"})
    >>> job = ContainerJob(docker_host=host, cpu_limit=1.0, memory_limit=2048)
    >>> start = datetime(2024, 1, 1, 12, 0)
    >>> estimate(job, start, start + timedelta(hours=1))
    (Decimal('0.043200'), 'EUR')
    """
    entry = price_entry(job.docker_host)
    if started is None or finished is None:
        return None
    if entry is None:
        return (Decimal(0), "") if job.docker_host.executor_type in FREE_TYPES else None
    seconds = max((finished - started).total_seconds(), float(entry.get("minimum_seconds", 0)))
    increment = float(entry.get("increment_seconds", 0))
    if increment:
        seconds = math.ceil(round(seconds / increment, 6)) * increment
    vcpu, memory_gb = resources(job)
    per_second = vcpu * _rate(entry, "vcpu") + memory_gb * _rate(entry, "gb")
    amount = Decimal(str(seconds)) * per_second
    return amount.quantize(CENT), str(entry.get("currency", "USD"))


def resources(job: ContainerJob) -> tuple[Decimal, Decimal]:
    """``(vCPU, memory in GB)`` a job is billed for: requested, else used where known, else default.

    Fargate bills the task size the request is rounded up to; a megabyte of
    ``memory_limit`` counts as a MiB, as the platforms take it.

    >>> job = ContainerJob(docker_host=ExecutorHost(executor_type="fargate"), cpu_limit=0.3)
    >>> resources(job)
    (Decimal('0.5'), Decimal('1'))
    """
    cpu, memory_mb = job.cpu_limit, job.memory_limit
    if job.docker_host.executor_type == "fargate" and (cpu or memory_mb):
        from container_manager.executors.fargate import fargate_size

        units, memory_mb = fargate_size(cpu, memory_mb)
        cpu = units / 1024
    if cpu is None and job.cpu_usage_percent is not None:
        cpu = job.cpu_usage_percent / 100
    if memory_mb is None and job.max_memory_usage is not None:
        memory_mb = job.max_memory_usage / 2**20
    cpu = setting("COST_DEFAULT_VCPU") if cpu is None else cpu
    memory_mb = setting("COST_DEFAULT_MEMORY_MB") if memory_mb is None else memory_mb
    return Decimal(str(cpu)), Decimal(str(memory_mb)) / 1024


def price_entry(host: ExecutorHost) -> dict[str, Any] | None:
    """The rates that apply on ``host``: its own ``prices``, else its region's, else the default."""
    config = host.executor_config or {}
    if config.get("prices"):
        return config["prices"]
    table = price_table().get(host.executor_type, {})
    return table.get(config.get("region") or "") or table.get("default")


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
