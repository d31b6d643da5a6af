"""HTML fragments shared by the admin pages: status badges, log blocks, masked environment text.

Every fragment is built with ``format_html`` so stored text is always escaped.
"""

from __future__ import annotations

from datetime import timedelta

from django.utils.html import format_html
from django.utils.safestring import SafeString

from container_manager import status as st
from container_manager.logtext import is_truncated
from container_manager.secrets import mask_env_text


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
        return format_html('<span class="cm-empty">{}</span>', "(empty)")
    badge = (
        format_html('<span class="cm-badge cm-truncated">{}</span>', "log truncated")
        if is_truncated(text)
        else ""
    )
    return format_html('{}<pre class="cm-log">{}</pre>', badge, text)


def masked_env_block(text: str) -> SafeString:
    """``KEY=value`` text in a ``<pre>`` with secret-looking values masked."""
    if not (text or "").strip():
        return format_html('<span class="cm-empty">{}</span>', "(none)")
    return format_html('<pre class="cm-env">{}</pre>', mask_env_text(text))
