"""HTML fragments shared by the admin pages: status badges, log blocks, masked environment text.

Every fragment is built with ``format_html`` so stored text is always escaped.
"""

from __future__ import annotations

from datetime import timedelta

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from container_manager.rules import status as st
from container_manager.rules.logtext import LogSlice, is_truncated
from container_manager.rules.secrets import mask_env_text


def status_badge(job) -> SafeString:
    """The job's status as a badge that ``live.js`` keeps current while the job is live."""
    return format_html(
        '<span class="cm-status cm-status-{}" data-cm-job="{}" data-cm-status="{}"'
        ' data-cm-live="{}">{}</span>',
        job.status,
        job.pk,
        job.status,
        "1" if job.status in st.LIVE else "0",
        job.get_status_display(),
    )


def live_field(job, field: str, value: object) -> SafeString:
    """A cell ``live.js`` rewrites (``exit_code`` or ``duration``) when the job's status moves."""
    html = '<span data-cm-job-field="{}" data-cm-field="{}">{}</span>'
    return format_html(html, job.pk, field, value)


def format_duration(value: timedelta | None) -> str:
    """``1:02:03`` without microseconds, or ``-`` when there is none.

    >>> format_duration(timedelta(seconds=3723.4)), format_duration(None)
    ('1:02:03', '-')
    """
    if value is None:
        return "-"
    return str(timedelta(seconds=int(value.total_seconds())))


def log_block(text: str) -> SafeString:
    """A log in a ``<pre>``, with a visible "log truncated" badge when it was capped."""
    if not text:
        return empty_note("(empty)")
    badge = _truncated_badge() if is_truncated(text) else ""
    return format_html('{}<pre class="cm-log">{}</pre>', badge, text)


def followed_log_block(stream: str, piece: LogSlice | None) -> SafeString:
    """A live job's output so far, in a ``<pre>`` that ``live.js`` extends from its offset.

    ``piece`` is None when the platform could not be read: the block starts empty at offset
    0 and the page catches up on a later read.
    """
    if piece is None:
        note = empty_note("(live output cannot be read now)")
        return format_html("{}{}", note, _followed_pre(stream, 0, ""))
    note = "" if piece.text else empty_note("(no output yet)")
    badge = _truncated_badge() if piece.skipped else ""
    return format_html("{}{}{}", note, badge, _followed_pre(stream, piece.offset, piece.text))


def empty_note(text: str) -> SafeString:
    """A quiet note standing where there is nothing to show."""
    return format_html('<span class="cm-empty">{}</span>', text)


def masked_env_block(text: str) -> SafeString:
    """``KEY=value`` text in a ``<pre>`` with secret-looking values masked."""
    if not (text or "").strip():
        return format_html('<span class="cm-empty">{}</span>', "(none)")
    return format_html('<pre class="cm-env">{}</pre>', mask_env_text(text))


def cost_text(job) -> str:
    """The job's estimated cost with its currency, ``free``, or ``-`` when unknown.

    >>> from decimal import Decimal
    >>> from container_manager.models import ContainerJob
    >>> cost_text(ContainerJob(estimated_cost=Decimal("0.012300"), cost_currency="EUR"))
    '0.012300 EUR'
    >>> cost_text(ContainerJob(estimated_cost=Decimal(0))), cost_text(ContainerJob())
    ('free', '-')
    """
    if job.estimated_cost is None:
        return "-"
    if not job.estimated_cost and not job.cost_currency:
        return "free"
    return f"{job.estimated_cost} {job.cost_currency}".strip()


def timeline_block(executions) -> SafeString:
    """One bar per attempt, a segment per phase sized by its share, and the times below it."""
    from container_manager.engine.timings import timeline

    if not executions:
        return format_html('<span class="cm-empty">{}</span>', "(not launched yet)")
    parts = []
    for execution in executions:
        phases = execution.phases()
        segments = timeline(phases)
        label = ", ".join(f"{s['name']} {s['seconds']:g} s" for s in segments) or "no phases yet"
        bar = format_html_join(
            "",
            '<span class="cm-phase cm-phase-{}" style="width:{}%" title="{}: {} to {}, {} s">'
            "</span>",
            (
                (s["name"], s["percent"], s["name"], s["from"], s["to"], f"{s['seconds']:g}")
                for s in segments
            ),
        )
        times = format_html_join(
            "", "<li>{}: {}</li>", ((name, at.isoformat()) for name, at in phases)
        )
        platform = format_html_join(
            "", "<li>{} (platform): {}</li>", sorted(execution.platform_times.items())
        )
        parts.append(
            format_html(
                '<div class="cm-attempt"><strong>attempt {}</strong>'
                '<div class="cm-timeline" role="img" aria-label="{}">{}</div>'
                '<ul class="cm-times">{}{}</ul></div>',
                execution.attempt,
                label,
                bar,
                times,
                platform,
            )  # fmt: skip
        )
    return format_html_join("", "{}", ((part,) for part in parts))


def _truncated_badge() -> SafeString:
    return format_html('<span class="cm-badge cm-truncated">{}</span>', "log truncated")


def _followed_pre(stream: str, offset: int, text: str) -> SafeString:
    html = '<pre class="cm-log" data-cm-log="{}" data-cm-offset="{}">{}</pre>'
    return format_html(html, stream, offset, text)
