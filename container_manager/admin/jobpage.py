"""The job page's answer first: the outcome (status, final reason, result, exception, exit code,
duration, cost), the retry note, what happened instead of a launch, the labelled attempt timeline.

Every fragment is built with ``format_html``: stored text is always escaped.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from container_manager.admin import _display as show
from container_manager.engine.timings import timeline
from container_manager.rules import status as st
from container_manager.rules.logtext import strip_timestamps
from container_manager.rules.taskwire import read_error

#: Why a job cannot be retried, by status; a job not named here may be retried.
NOT_RETRYABLE = {
    st.PENDING: "it has not run yet",
    st.LAUNCHING: "it is launching",
    st.RUNNING: "it is running",
    st.COMPLETED: "it completed",
}


def outcome_block(job: Any, may_retry: bool, links: SafeString | str) -> SafeString:
    """The answer to "what happened": facts in one row, the final reason, the result (a job with
    ``returns_result``), the exception, retry.

    ``may_retry`` is whether the viewer may retry jobs; ``links`` the "retry of / retried
    as" links ("-" when there are none).
    """
    facts = format_html_join(
        "",
        '<div class="cm-fact"><dt>{}</dt><dd>{}</dd></div>',
        (
            ("status", show.status_badge(job)),
            ("exit code", show.live_field(job, "exit_code", _exit_code(job))),
            ("duration", show.live_field(job, "duration", _duration(job))),
            ("estimated cost", show.cost_text(job)),
            _attempts(job),
            ("ended", human_time(job.completed_at) if job.completed_at else "-"),
        ),
    )  # fmt: skip
    parts = [format_html('<dl class="cm-facts">{}</dl>', facts)]
    if job.last_error:
        label = "final reason" if job.status in st.TERMINAL else "last error"
        parts.append(
            format_html('<p class="cm-reason"><strong>{}:</strong> {}</p>', label, job.last_error)
        )
    if job.result is not None:
        result = '<p class="cm-result"><strong>result:</strong> <code>{}</code></p>'
        parts.append(format_html(result, job.result))
    raised = task_exception(job)
    if raised is not None:
        parts.append(_exception_block(*raised))
    if links != "-":
        parts.append(format_html('<p class="cm-links">{}</p>', links))
    parts.append(format_html('<p class="cm-retry-note">{}</p>', retry_note(job, may_retry)))
    return format_html(
        '<div class="cm-outcome" id="cm-outcome">{}</div>',
        format_html_join("", "{}", ((p,) for p in parts)),
    )


def retry_note(job: Any, may_retry: bool) -> str:
    """What the retry button does, or why there is none.

    >>> from container_manager.models import ContainerJob
    >>> retry_note(ContainerJob(status="running"), True)
    'Retry is offered once the job has failed, timed out or been cancelled: it is running.'
    """
    if job.status in NOT_RETRYABLE:
        why = NOT_RETRYABLE[job.status]
        return f"Retry is offered once the job has failed, timed out or been cancelled: {why}."
    if job.workflow_id is not None:
        return (
            f"This job is node {job.workflow_node!r} of a workflow: resume the workflow (its "
            "page's Resume button) to re-run it with the nodes after it."
        )
    if not may_retry:
        return "You may view this job but not retry it."
    return (
        "Retry submits a new job with the same request; this job and its history stay as they are."
    )


def task_exception(job: Any) -> tuple[str, str, str] | None:
    """``(exception class, message, traceback)`` a finished task reported, or None.

    The task runner writes the exception on stderr (Fargate's log driver may mix it into
    stdout); a job that is no task, or one still running, has none.
    """
    if job.status not in st.TERMINAL:
        return None
    for stream in (job.stderr_log, job.stdout_log):
        raised = read_error(strip_timestamps(stream or ""))
        if raised is not None:
            trace = raised["traceback"].strip()
            message = trace.splitlines()[-1] if trace else ""
            return raised["exception_class_path"], message, trace
    return None


def launch_note(job: Any) -> SafeString:
    """What stands in the timeline of a job that has no attempt: what is true of it."""
    reason = f": {job.last_error}" if job.last_error else ""
    if job.is_array_parent:
        text = "array parent: runs no container; each child is a job of its own"
    elif job.status in st.TERMINAL:
        text = f"{job.get_status_display().lower()} before launch{reason}"
    elif job.run_after and job.run_after > timezone.now():
        text = f"waits to launch until {human_time(job.run_after)}"
    elif job.depends_on.exclude(status=st.COMPLETED).exists():
        text = "waits for its dependencies to complete"
    else:
        text = f"not launched yet{reason}"
    return show.empty_note(text)


def timeline_block(job: Any, executions: list[Any]) -> SafeString:
    """Per attempt: a bar of its phases, then each phase, its time and the time since the last."""
    if not executions:
        return launch_note(job)
    return format_html_join("", "{}", ((_attempt_block(execution),) for execution in executions))


def human_time(at: datetime, day: bool = True) -> str:
    """``at`` in the current time zone, to the second: ``2026-12-07 15:19:04`` (or ``15:19:04``).

    >>> from datetime import UTC
    >>> human_time(datetime(2026, 12, 7, 15, 19, 4, 711289, tzinfo=UTC))
    '2026-12-07 15:19:04'
    """
    local = timezone.localtime(at) if timezone.is_aware(at) else at
    return local.strftime("%Y-%m-%d %H:%M:%S" if day else "%H:%M:%S")


def human_seconds(seconds: float) -> str:
    """A span as people say it.

    >>> human_seconds(0.0284), human_seconds(4.25), human_seconds(75), human_seconds(3725)
    ('28 ms', '4.2 s', '1 min 15 s', '1 h 2 min')
    """
    if seconds < 1:
        return f"{round(seconds * 1000)} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {int(seconds % 60)} s"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60)} min"


def children_url(parent_id: Any, status: str | None = None) -> str:
    """The job list filtered to an array's children (in one status)."""
    url = f"{reverse('admin:container_manager_containerjob_changelist')}?array_parent={parent_id}"
    return f"{url}&status__exact={status}" if status else url


# -- helpers --------------------------------------------------------------------


def _attempts(job: Any) -> tuple[str, str]:
    if job.is_array_parent:
        return "children", str(job.array_size)
    return "attempts", f"{job.attempt_count} of {job.max_attempts}"


def _duration(job: Any) -> str:
    return show.format_duration(job.runtime_duration)


def _exit_code(job: Any) -> str:
    return "-" if job.exit_code is None else str(job.exit_code)


def _exception_block(path: str, message: str, trace: str) -> SafeString:
    return format_html(
        '<div class="cm-exception"><strong>exception:</strong> <code>{}</code> {}'
        '<details><summary>traceback</summary><pre class="cm-log">{}</pre></details></div>',
        path, message, trace,
    )  # fmt: skip


def _attempt_block(execution: Any) -> SafeString:
    phases = execution.phases()
    segments = timeline(phases)
    first_day = phases[0][1].date() if phases else None
    rows = [(phases[0][0], human_time(phases[0][1]), "", "", "")] if phases else []
    for (name, at), segment in zip(phases[1:], segments, strict=True):
        rows.append(
            (
                name,
                human_time(at, day=at.date() != first_day),
                segment["name"],
                segment["name"],
                human_seconds(segment["seconds"]),
            )
        )
    total = sum(segment["seconds"] for segment in segments)
    label = ", ".join(f"{s['name']} {human_seconds(s['seconds'])}" for s in segments)
    bar = format_html_join(
        "",
        '<span class="cm-phase cm-phase-{}" style="width:{}%" title="{}: {} to {}, {}"></span>',
        (
            (s["name"], s["percent"], s["name"], s["from"], s["to"], human_seconds(s["seconds"]))
            for s in segments
        ),
    )
    table = format_html_join(
        "",
        '<tr><th scope="row">{}</th><td>{}</td>'
        '<td><span class="cm-key cm-phase-{}"></span>{} {}</td></tr>',
        rows,
    )
    return format_html(
        '<div class="cm-attempt"><strong>attempt {}</strong> <span class="cm-quiet">{} from submit'
        ' to the last phase</span><div class="cm-timeline" role="img" aria-label="{}">{}</div>'
        '<table class="cm-phases"><thead><tr><th scope="col">phase</th><th scope="col">at</th>'
        '<th scope="col">since the phase before</th></tr></thead><tbody>{}</tbody></table>{}</div>',
        execution.attempt, human_seconds(total), label or "no phases yet", bar, table,
        _platform_times(execution.platform_times),
    )  # fmt: skip


def _platform_times(times: dict[str, str]) -> SafeString | str:
    if not times:
        return ""
    shown = sorted((datetime.fromisoformat(at), name) for name, at in times.items())
    items = format_html_join(", ", "{} {}", ((name, human_time(at)) for at, name in shown))
    return format_html('<p class="cm-quiet">the platform\'s own times: {}</p>', items)
