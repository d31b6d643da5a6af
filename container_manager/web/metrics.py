"""The Prometheus endpoint (``cm/metrics/``): job figures derived from rows, plus ``counters``.

A scrape costs two queries whatever the table size; serverless instances come and go, so what
matters is read from the rows. prometheus-client is imported only when a scrape comes.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Count, DurationField, ExpressionWrapper, F, Q, Sum
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.utils.module_loading import import_string
from django.views.decorators.csrf import csrf_exempt

from container_manager.conf import setting
from container_manager.models import ContainerJob
from container_manager.telemetry import counters
from container_manager.web.auth import AuthError
from container_manager.web.errors import error

#: Bucket bounds (seconds) of the submit-to-start and run-time histograms.
JOB_BUCKETS = (1, 2, 5, 10, 20, 30, 60, 90, 120, 300, 600, 1800, 3600, 4 * 3600)


class JobCollector:
    """Jobs by status and host, and time-to-start and run-time histograms over a window.

    The histograms are gauge histograms of the jobs of the last
    ``METRICS_WINDOW_HOURS``: they can go down, so read them with
    ``histogram_quantile`` directly, not through ``rate()``.
    """

    def __init__(self, now: Any = None):
        self.now = now

    def collect(self) -> Iterator[Any]:
        """Yield the metric families; two queries."""
        yield from _status_families()
        yield from _histogram_families(self.now or timezone.now())


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


def _status_families() -> Iterator[Any]:
    from prometheus_client.core import GaugeMetricFamily

    jobs = GaugeMetricFamily("cm_jobs", "Jobs by status and host.", labels=["status", "host"])
    cost = GaugeMetricFamily(
        "cm_jobs_estimated_cost",
        "Sum of the jobs' estimated cost, by host and currency.",
        labels=["host", "currency"],
    )
    rows = (
        ContainerJob.objects.order_by()
        .values_list("docker_host__name", "status", "cost_currency")
        .annotate(n=Count("pk"), cost=Sum("estimated_cost"))
    )
    counts: dict[tuple[str, str], int] = {}
    costs: dict[tuple[str, str], float] = {}
    for host, status, currency, n, amount in rows:
        counts[status, host] = counts.get((status, host), 0) + n
        if amount is not None and currency:
            costs[host, currency] = costs.get((host, currency), 0.0) + float(amount)
    for labels, n in sorted(counts.items()):
        jobs.add_metric(list(labels), n)
    for labels, amount in sorted(costs.items()):
        cost.add_metric(list(labels), amount)
    yield jobs
    yield cost


def _histogram_families(now: datetime) -> Iterator[Any]:
    from prometheus_client.core import GaugeHistogramMetricFamily

    since = now - timedelta(hours=setting("METRICS_WINDOW_HOURS"))
    window = f"jobs of the last {setting('METRICS_WINDOW_HOURS')} h"
    wait = GaugeHistogramMetricFamily(
        "cm_job_submit_to_start_seconds",
        f"Time from submit to container start, {window}, by host.",
        labels=["host"],
    )
    run = GaugeHistogramMetricFamily(
        "cm_job_run_seconds", f"Time from start to finish, {window}, by host.", labels=["host"]
    )
    for row in _histogram_rows(since):
        host = row["docker_host__name"]
        wait.add_metric([host], _buckets(row, "wait"), row["wait_sum"])
        run.add_metric([host], _buckets(row, "run"), row["run_sum"])
    yield wait
    yield run


def _histogram_rows(since: datetime) -> list[dict[str, Any]]:
    """One grouped query: per host, a count per bucket and a sum for both histograms."""
    duration = DurationField()
    started = Q(started_at__gte=since)
    finished = Q(completed_at__gte=since, started_at__isnull=False)
    aggregates: dict[str, Any] = {
        "wait_sum": Sum("wait", filter=started),
        "run_sum": Sum("run", filter=finished),
        "wait_inf": Count("pk", filter=started),
        "run_inf": Count("pk", filter=finished),
    }
    for bound in JOB_BUCKETS:
        limit = timedelta(seconds=bound)
        aggregates[f"wait_{bound}"] = Count("pk", filter=started & Q(wait__lte=limit))
        aggregates[f"run_{bound}"] = Count("pk", filter=finished & Q(run__lte=limit))
    rows = (
        ContainerJob.objects.filter(Q(started_at__gte=since) | Q(completed_at__gte=since))
        .annotate(
            wait=ExpressionWrapper(F("started_at") - F("created_at"), output_field=duration),
            run=ExpressionWrapper(F("completed_at") - F("started_at"), output_field=duration),
        )
        .order_by()
        .values("docker_host__name")
        .annotate(**aggregates)
    )
    return [{**row, **_seconds(row)} for row in rows]


def _seconds(row: dict[str, Any]) -> dict[str, float]:
    return {
        name: row[name].total_seconds() if row[name] is not None else 0.0
        for name in ("wait_sum", "run_sum")
    }


def _buckets(row: dict[str, Any], kind: str) -> list[tuple[str, float]]:
    """Cumulative ``(le, count)`` pairs, ``+Inf`` last, as Prometheus wants them.

    >>> row = {"wait_1": 1, **{f"wait_{b}": 2 for b in JOB_BUCKETS[1:]}, "wait_inf": 3}
    >>> _buckets(row, "wait")[:2], _buckets(row, "wait")[-1]
    ([('1', 1), ('2', 2)], ('+Inf', 3))
    """
    pairs = [(str(bound), row[f"{kind}_{bound}"]) for bound in JOB_BUCKETS]
    return [*pairs, ("+Inf", row[f"{kind}_inf"])]
