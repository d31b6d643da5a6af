"""The Prometheus endpoint (``cm/metrics/``): job figures derived from rows, plus ``counters``.

A scrape costs two queries whatever the table size: live jobs from their rows, finished ones
from the tallies their final moves updated (``JobTally``). prometheus-client is imported
only when a scrape comes.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from django.db.models import Count, DurationField, ExpressionWrapper, F, Q, Sum
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.utils.module_loading import import_string
from django.views.decorators.csrf import csrf_exempt

from container_manager.conf import setting
from container_manager.models import ContainerJob, JobTally
from container_manager.models.tallies import ALL_TIME, BOUNDS, RUN, WAIT, bucket_of
from container_manager.rules import status as st
from container_manager.telemetry import counters
from container_manager.web.auth import AuthError
from container_manager.web.errors import error

#: Bucket bounds (seconds) of the submit-to-start and run-time histograms.
JOB_BUCKETS = BOUNDS
_LE = tuple(f"le_{bound}" for bound in BOUNDS)


class JobCollector:
    """Jobs by status and host, and time-to-start and run-time histograms over a window.

    The histograms are gauge histograms of the jobs of the last
    ``METRICS_WINDOW_HOURS``, from the start of the 5-minute bucket that holds the
    window's start: they can go down, so read them with ``histogram_quantile``
    directly, not through ``rate()``. Finished jobs are read from the tallies, so a
    scrape costs the same at any number of jobs.
    """

    def __init__(self, now: Any = None):
        self.now = now

    def collect(self) -> Iterator[Any]:
        """Yield the metric families; two queries, whatever the number of jobs."""
        since = _window_start(self.now or timezone.now())
        rows = [*_live_rows(since), *_tally_rows(since)]
        yield from _status_families(rows)
        yield from _histogram_families(rows)


class ProcessCollector:
    """What this process counted in ``counters``: steps, sweep findings, failed sends."""

    def collect(self) -> Iterator[Any]:
        """Yield the metric families; no query."""
        from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily

        seconds = HistogramMetricFamily(
            "cm_step_duration_seconds", "Time a step took in this process.", labels=["step"]
        )
        for step, (counts, total) in sorted(counters.STEP_SECONDS.snapshot().items()):
            bounds = [*(str(b) for b in counters.STEP_BUCKETS), "+Inf"]
            cumulative = [sum(counts[: n + 1]) for n in range(len(counts))]
            seconds.add_metric([step], list(zip(bounds, cumulative, strict=True)), total)
        yield seconds
        for name, doc, labels, tally in (
            ("cm_step_outcomes", "Steps run in this process, by their answer ('error': raised).",
             ["step", "outcome"], counters.STEP_OUTCOMES),
            ("cm_sweep_found", "Jobs this process's sweeps found due and sent again.",
             ["kind"], counters.SWEEP_FOUND),
            ("cm_dispatch_send_failures", "Step messages this process failed to send.",
             ["step"], counters.SEND_FAILURES),
        ):  # fmt: skip
            family = CounterMetricFamily(name, doc, labels=labels)
            for values, amount in sorted(tally.snapshot().items()):
                family.add_metric(list(values), amount)
            yield family


@csrf_exempt
def metrics_view(request: HttpRequest) -> HttpResponse:
    """The metrics in Prometheus text format, for a caller that ``METRICS_AUTH`` accepts.

    Refusals are JSON (``web.errors``); it changes nothing, so it needs no CSRF token.
    """
    if request.method not in ("GET", "HEAD"):
        response = error(405, f"method {request.method} not allowed here")
        response["Allow"] = "GET, HEAD"
        return response
    try:
        import_string(setting("METRICS_AUTH"))(request)
    except AuthError as exc:
        return error(exc.status, exc.reason)
    from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4, CollectorRegistry, generate_latest

    registry = CollectorRegistry(auto_describe=False)
    registry.register(JobCollector())
    registry.register(ProcessCollector())
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_PLAIN_0_0_4)


def _status_families(rows: list[_Row]) -> Iterator[Any]:
    from prometheus_client.core import GaugeMetricFamily

    jobs = GaugeMetricFamily("cm_jobs", "Jobs by status and host.", labels=["status", "host"])
    cost = GaugeMetricFamily(
        "cm_jobs_estimated_cost",
        "Sum of the jobs' estimated cost, by host and currency.",
        labels=["host", "currency"],
    )
    counts: dict[tuple[str, str], int] = {}
    costs: dict[tuple[str, str], float] = {}
    for row in rows:
        if row.kind in (WAIT, RUN) or not row.jobs:
            continue
        counts[row.kind, row.host] = counts.get((row.kind, row.host), 0) + row.jobs
        if row.cost is not None and row.currency:
            costs[row.host, row.currency] = costs.get((row.host, row.currency), 0.0) + row.cost
    for labels, n in sorted(counts.items()):
        jobs.add_metric(list(labels), n)
    for labels, amount in sorted(costs.items()):
        cost.add_metric(list(labels), amount)
    yield jobs
    yield cost


def _histogram_families(rows: list[_Row]) -> Iterator[Any]:
    from prometheus_client.core import GaugeHistogramMetricFamily

    window = f"jobs of the last {setting('METRICS_WINDOW_HOURS')} h"
    families = {
        WAIT: GaugeHistogramMetricFamily(
            "cm_job_submit_to_start_seconds",
            f"Time from submit to container start, {window}, by host.",
            labels=["host"],
        ),
        RUN: GaugeHistogramMetricFamily(
            "cm_job_run_seconds", f"Time from start to finish, {window}, by host.", labels=["host"]
        ),
    }
    merged: dict[tuple[str, str], list[int]] = {}
    hosts = set()
    for row in rows:
        if row.kind in families:
            into = merged.setdefault((row.kind, row.host), [0] * (len(BOUNDS) + 2))
            for n, value in enumerate([row.jobs, row.micros, *row.le]):
                into[n] += value
            if row.seen:
                hosts.add(row.host)
    # A host with any job started or finished in the window has both histograms.
    for kind in (WAIT, RUN):
        for host in sorted(hosts):
            count, micros, *le = merged.get((kind, host), [0] * (len(BOUNDS) + 2))
            families[kind].add_metric([host], _buckets(le, count), micros / 1_000_000)
    yield families[WAIT]
    yield families[RUN]


class _Row(NamedTuple):
    """One grouped row of either query, in the tallies' terms."""

    host: str
    kind: str
    currency: str
    jobs: int
    micros: int
    seen: int
    cost: float | None
    le: list[int]


def _window_start(now: datetime) -> datetime:
    """The start of the bucket holding ``now`` − ``METRICS_WINDOW_HOURS``."""
    since = now - timedelta(hours=setting("METRICS_WINDOW_HOURS"))
    return datetime.fromtimestamp(bucket_of(since.timestamp()), tz=UTC)


def _live_rows(since: datetime) -> list[_Row]:
    """Jobs not finished yet, from their rows (an index on status), their waits since ``since``.

    A live job has no finish time, so only its wait counts, once it started.
    """
    started = Q(started_at__gte=since)
    wait = ExpressionWrapper(F("started_at") - F("created_at"), output_field=DurationField())
    aggregates: dict[str, Any] = {
        "n": Count("pk"),
        "cost": Sum("estimated_cost"),
        "waits": Count("pk", filter=started),
        "wait_sum": Sum("wait", filter=started),
        **{
            f"le_{b}": Count("pk", filter=started & Q(wait__lte=timedelta(seconds=b)))
            for b in BOUNDS
        },
    }
    grouped = (
        ContainerJob.objects.filter(status__in=sorted(st.LIVE))
        .annotate(wait=wait)
        .order_by()
        .values("docker_host__name", "status", "cost_currency")
        .annotate(**aggregates)
    )
    rows = []
    for row in grouped:
        host, le = row["docker_host__name"], [row[f"le_{b}"] for b in BOUNDS]
        cost = float(row["cost"]) if row["cost"] is not None else None
        rows.append(_Row(host, row["status"], row["cost_currency"], row["n"], 0, 0, cost, []))
        waited = row["wait_sum"].total_seconds() if row["wait_sum"] is not None else 0.0
        micros = round(waited * 1_000_000)
        rows.append(_Row(host, WAIT, "", row["waits"], micros, row["waits"], None, le))
    return rows


def _tally_rows(since: datetime) -> list[_Row]:
    """Finished jobs from the tallies: every total, and the buckets from ``since`` on."""
    sums = {name: Sum(name) for name in ("jobs", "micros", "seen", "cost", *_LE)}
    grouped = (
        JobTally.objects.filter(Q(bucket=ALL_TIME) | Q(bucket__gte=int(since.timestamp())))
        .order_by()
        .values("host__name", "kind", "currency")
        .annotate(**sums)
    )
    return [
        _Row(
            row["host__name"], row["kind"], row["currency"], row["jobs"], row["micros"],
            row["seen"], float(row["cost"]) if row["cost"] is not None else None,
            [row[n] for n in _LE],
        )
        for row in grouped
    ]  # fmt: skip


def _buckets(le: list[int], count: int) -> list[tuple[str, float]]:
    """Cumulative ``(le, count)`` pairs, ``+Inf`` last, as Prometheus wants them.

    >>> pairs = _buckets([1, *[2] * (len(BOUNDS) - 1)], 3)
    >>> pairs[:2], pairs[-1]
    ([('1', 1), ('2', 2)], ('+Inf', 3))
    """
    return [*((str(bound), n) for bound, n in zip(BOUNDS, le, strict=True)), ("+Inf", count)]
