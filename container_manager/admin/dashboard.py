"""The admin dashboard: counts by status, jobs finished per hour, load, cost and start times.

One query per figure; the hourly chart is SVG drawn on the server (deployments have no internet).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from statistics import median
from typing import Any

import django
from django.db.models import Count, Q, Sum
from django.db.models.functions import TruncDate, TruncHour
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.utils import timezone

from container_manager.models import ContainerExecution, ContainerJob, ExecutorHost
from container_manager.rules import status as st

HOURS = 24
#: Days of cost shown, and the most attempts the start-time medians are taken from.
COST_DAYS = 14
MEDIAN_SAMPLE = 2_000
#: Size of the hourly chart's drawing area, in SVG units.
CHART_WIDTH, CHART_HEIGHT, CHART_MARGIN = 720, 180, 28


def status_counts() -> list[dict[str, Any]]:
    """Every status with its number of jobs, in the status machine's order (one query)."""
    rows = ContainerJob.objects.order_by().values("status").annotate(n=Count("pk"))
    found = dict(rows.values_list("status", "n"))
    return [
        {"status": value, "label": label, "count": found.get(value, 0)}
        for value, label in st.STATUS_CHOICES
    ]


def finished_per_hour(now: datetime | None = None) -> list[dict[str, Any]]:
    """Jobs that finished in each of the last 24 hours, completed apart from the rest (one query).

    Oldest hour first; hours are those of the current time zone.
    """
    now = timezone.localtime(now or timezone.now())
    start = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=HOURS - 1)
    buckets = {
        start + timedelta(hours=n): {"hour": start + timedelta(hours=n), "completed": 0, "other": 0}
        for n in range(HOURS)
    }
    rows = (
        ContainerJob.objects.filter(status__in=st.TERMINAL, completed_at__gte=start)
        .annotate(hour=TruncHour("completed_at"))
        .order_by()
        .values_list("hour", "status")
        .annotate(n=Count("pk"))
    )
    for hour, status, count in rows:
        bucket = buckets.get(hour)
        if bucket is not None:
            bucket["completed" if status == st.COMPLETED else "other"] += count
    return list(buckets.values())


def host_load() -> list[ExecutorHost]:
    """Hosts with ``running``, ``pending``, ``current_job_count``, ``load_percent`` (one query)."""
    hosts = list(
        ExecutorHost.objects.annotate(
            running=Count("jobs", filter=Q(jobs__status=st.RUNNING)),
            pending=Count("jobs", filter=Q(jobs__status=st.PENDING)),
        ).order_by("name")
    )
    for host in hosts:
        capacity = max(host.max_concurrent_jobs, 1)
        host.load_percent = min(100, round(100 * host.current_job_count / capacity))
    return hosts


def cost_summary(now: datetime | None = None) -> dict[str, list[dict[str, Any]]]:
    """Estimated cost of the jobs finished in the last ``COST_DAYS``, per day and per host.

    One grouped query; a sum never mixes currencies. Days are newest first.
    """
    since = (now or timezone.now()) - timedelta(days=COST_DAYS)
    rows = (
        ContainerJob.objects.filter(completed_at__gte=since, estimated_cost__isnull=False)
        .annotate(day=TruncDate("completed_at"))
        .order_by()
        .values_list("day", "docker_host__name", "cost_currency")
        .annotate(total=Sum("estimated_cost"), n=Count("pk"))
    )
    per_day: dict[tuple[Any, str], dict[str, Any]] = {}
    per_host: dict[tuple[str, str], dict[str, Any]] = {}
    for day, host, currency, total, count in rows:
        for table, key, label in (
            (per_day, (day, currency), day),
            (per_host, (host, currency), host),
        ):
            row = table.setdefault(
                key, {"label": label, "currency": currency, "total": 0, "jobs": 0}
            )
            row["total"] += total
            row["jobs"] += count
    return {
        "days": sorted(per_day.values(), key=lambda r: (r["label"], r["currency"]), reverse=True),
        "hosts": sorted(per_host.values(), key=lambda r: (r["label"], r["currency"])),
    }


def start_medians(now: datetime | None = None) -> list[dict[str, Any]]:
    """Per host, the median submit-to-start and launch-to-start of the last 24 h (one query).

    Taken from the newest ``MEDIAN_SAMPLE`` attempts whose container start is known,
    which keeps the page fast at any table size.
    """
    since = (now or timezone.now()) - timedelta(hours=HOURS)
    rows = (
        ContainerExecution.objects.filter(container_started_at__gte=since)
        .order_by("-container_started_at")
        .values_list("host__name", "job__created_at", "started_at", "container_started_at")
    )[:MEDIAN_SAMPLE]
    samples: dict[str, tuple[list[float], list[float]]] = {}
    for host, submitted, requested, started in rows:
        waits, launches = samples.setdefault(host or "(deleted host)", ([], []))
        waits.append(max((started - submitted).total_seconds(), 0.0))
        launches.append(max((started - requested).total_seconds(), 0.0))
    return [
        {
            "host": host,
            "attempts": len(waits),
            "submit_to_start": median(waits),
            "launch_to_start": median(launches),
        }
        for host, (waits, launches) in sorted(samples.items())
    ]


def hour_chart(buckets: list[dict[str, Any]]) -> dict[str, Any]:
    """Bar geometry for ``finished_per_hour``: stacked bars, completed at the bottom.

    >>> hour = datetime(2024, 1, 1, 13)
    >>> chart = hour_chart([{"hour": hour, "completed": 3, "other": 1}])
    >>> chart["peak"], chart["bars"][0]["title"]
    (4, '13:00-14:00: 3 completed, 1 failed, timed out or cancelled')
    """
    peak = max((b["completed"] + b["other"] for b in buckets), default=0)
    scale = (CHART_HEIGHT - CHART_MARGIN) / max(peak, 1)
    slot = (CHART_WIDTH - CHART_MARGIN) / max(len(buckets), 1)
    baseline = CHART_HEIGHT - CHART_MARGIN / 2
    bars = []
    for index, bucket in enumerate(buckets):
        completed_h, other_h = bucket["completed"] * scale, bucket["other"] * scale
        start = bucket["hour"]
        bars.append(
            {
                "x": round(CHART_MARGIN + index * slot + 1, 1),
                "width": round(max(slot - 2, 1), 1),
                "completed_y": round(baseline - completed_h, 1),
                "completed_h": round(completed_h, 1),
                "other_y": round(baseline - completed_h - other_h, 1),
                "other_h": round(other_h, 1),
                "label": f"{start:%H}" if index % 3 == 0 else "",
                "label_x": round(CHART_MARGIN + (index + 0.5) * slot, 1),
                "title": (
                    f"{start:%H}:00-{start + timedelta(hours=1):%H}:00: "
                    f"{bucket['completed']} completed, "
                    f"{bucket['other']} failed, timed out or cancelled"
                ),
            }
        )
    return {
        "bars": bars,
        "peak": peak,
        "total": sum(b["completed"] + b["other"] for b in buckets),
        "width": CHART_WIDTH,
        "height": CHART_HEIGHT,
        "baseline": baseline,
        "top": CHART_MARGIN / 2,
        "margin": CHART_MARGIN,
    }


def render(request: HttpRequest, admin_site: Any, opts: Any) -> TemplateResponse:
    """The dashboard page, inside the admin's layout."""
    context = {
        **admin_site.each_context(request),
        "title": "Container jobs dashboard",
        "opts": opts,
        "counts": status_counts(),
        "chart": hour_chart(finished_per_hour()),
        "hosts": host_load(),
        "cost": cost_summary(),
        "medians": start_medians(),
        "cost_days": COST_DAYS,
        # Django 6 draws breadcrumbs as an <ol> (its CSS styles no <div class="breadcrumbs">).
        "cm_ol_breadcrumbs": django.VERSION >= (6, 0),
    }
    return TemplateResponse(request, "admin/container_manager/dashboard.html", context)
