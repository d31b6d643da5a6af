"""The estimated cost of a job, read from its row: the price arithmetic is ``rules.cost``'s.

``fields`` is what a harvest stores; ``estimate`` and ``resources`` answer for any job row.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from container_manager.models import ContainerJob
from container_manager.rules.cost import billed_size, charge, price_entry


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
    """``(amount, currency)`` of ``job`` run from ``started`` to ``finished``, or None.

    >>> from datetime import timedelta
    >>> host = ExecutorHost(executor_type="scaleway", executor_config={"region": "fr-par"})
    >>> job = ContainerJob(docker_host=host, cpu_limit=1.0, memory_limit=2048)
    >>> start = datetime(2024, 1, 1, 12, 0)
    >>> estimate(job, start, start + timedelta(hours=1))
    (Decimal('0.043200'), 'EUR')
    """
    host = job.docker_host
    entry = price_entry(host.executor_type, host.executor_config)
    return charge(entry, host.executor_type, resources(job), started, finished)


def resources(job: ContainerJob) -> tuple[Decimal, Decimal]:
    """``(vCPU, memory in GB)`` ``job`` is billed for: requested, else used, else the default.

    >>> job = ContainerJob(docker_host=ExecutorHost(executor_type="fargate"), cpu_limit=0.3)
    >>> resources(job)
    (Decimal('0.5'), Decimal('1'))
    """
    used_cpu = None if job.cpu_usage_percent is None else job.cpu_usage_percent / 100
    used_memory = None if job.max_memory_usage is None else job.max_memory_usage / 2**20
    return billed_size(
        job.docker_host.executor_type, job.cpu_limit, job.memory_limit, used_cpu, used_memory
    )
