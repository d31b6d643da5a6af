"""HTML fragments shared by the admin pages: status badges, log blocks, masked environment text.

Every fragment is built with ``format_html`` so stored text is always escaped.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from container_manager.rules import status as st
from container_manager.rules.logtext import LogSlice, is_truncated
from container_manager.rules.secrets import mask_env, mask_env_text


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


def key_values(values: dict[str, Any]) -> SafeString:
    """A mapping as a two-column table, secret-looking values masked (``rules.secrets.mask_env``).

    A value that is not text is shown as compact JSON.
    """
    if not values:
        return empty_note("(none)")
    rows = (
        (key, value if isinstance(value, str) else json.dumps(value, sort_keys=True))
        for key, value in sorted(mask_env(values).items())
    )
    body = format_html_join("", '<tr><th scope="row">{}</th><td>{}</td></tr>', rows)
    return format_html('<table class="cm-kv"><tbody>{}</tbody></table>', body)


def _truncated_badge() -> SafeString:
    return format_html('<span class="cm-badge cm-truncated">{}</span>', "log truncated")


def _followed_pre(stream: str, offset: int, text: str) -> SafeString:
    html = (
        '<label class="cm-follow"><input type="checkbox" data-cm-follow="{}" checked> follow'
        ' (keep the end in view)</label><pre class="cm-log" data-cm-log="{}" data-cm-offset="{}">'
        "{}</pre>"
    )
    return format_html(html, stream, stream, offset, text)
