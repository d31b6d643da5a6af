"""An array parent's children at a glance: counts per status and a grid of cells, one per child,
coloured by status and linking to its page; and the note on a job list filtered to the children.

The grid costs two queries whatever the array's size: the counts (one aggregate) and the
first ``GRID_CELLS`` children (one bounded list, served by ``cjob_array_index_unique``).
"""

from __future__ import annotations

import uuid
from typing import Any

from django.core.exceptions import ValidationError
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from container_manager.admin.jobpage import children_url
from container_manager.models import ContainerJob
from container_manager.rules import array_limits

#: At most this many children are drawn as cells; the rest are in the filtered job list.
GRID_CELLS = 1000
_PLACEHOLDER = uuid.UUID(int=0)


def grid(parent: ContainerJob, counts: dict[str, int]) -> SafeString:
    """Counts per status (each a link to those children), then one cell per child in index order.

    ``counts`` is ``engine.workflows.status_counts(parent)``: the caller has it already.
    """
    chips = format_html_join(
        "",
        '<li class="cm-count cm-status-{}"><a href="{}"><span class="cm-count-n">{}</span> '
        '<span class="cm-count-label">{}</span></a></li>',
        ((status, children_url(parent.pk, status), n, status) for status, n in counts.items() if n),
    )
    rows = parent.array_children.order_by("array_index").values_list("pk", "array_index", "status")
    url = reverse("admin:container_manager_containerjob_change", args=[_PLACEHOLDER])
    cells = format_html_join(
        "",
        '<a class="cm-cell cm-status-{}" href="{}" title="child {}: {}">'
        '<span class="visually-hidden">child {}: {}</span></a>',
        (
            (status, url.replace(str(_PLACEHOLDER), str(pk)), index, status, index, status)
            for pk, index, status in rows[:GRID_CELLS]
        ),
    )
    shown = min(sum(counts.values()), GRID_CELLS)
    more = ""
    if sum(counts.values()) > GRID_CELLS:
        more = format_html(
            '<p class="cm-quiet">The first {} children are drawn; <a href="{}">all {} in the job '
            "list</a>.</p>",
            shown, children_url(parent.pk), sum(counts.values()),
        )  # fmt: skip
    return format_html(
        '<div class="cm-array">{}<ul class="cm-counts cm-array-counts">{}</ul>'
        '<div class="cm-grid" aria-label="children by index">{}</div>{}</div>',
        limits_note(parent),
        chips,
        cells,
        more,
    )


def limits_note(parent: ContainerJob) -> SafeString:
    """The array's ``max_parallel`` and ``tolerated_failures`` in words; empty if it has neither.

    >>> str(limits_note(ContainerJob(array_size=10, max_parallel=3, tolerated_failures="10%")))
    '<p class="cm-quiet cm-array-limits">at most 3 children at once; tolerates 10% failed (1 of 10)</p>'
    """  # noqa: E501
    parts = []
    if parent.max_parallel is not None:
        parts.append(f"at most {parent.max_parallel} children at once")
    allowed = array_limits.allowed_failures(parent.tolerated_failures, parent.array_size or 0)
    if allowed is not None:
        parts.append(
            f"tolerates {parent.tolerated_failures} failed ({allowed} of {parent.array_size})"
        )
    if not parts:
        return SafeString("")
    return format_html('<p class="cm-quiet cm-array-limits">{}</p>', "; ".join(parts))


def filtered_note(request: HttpRequest) -> dict[str, Any]:
    """Context for a job list filtered to an array's children: the parent, and the unfiltered URL.

    Empty when the list is not filtered by ``array_parent`` (or names no job).
    """
    value = request.GET.get("array_parent")
    if not value:
        return {}
    try:
        parent = ContainerJob.objects.only("pk", "name", "array_size").filter(pk=value).first()
    except ValidationError:
        return {}
    if parent is None:
        return {}
    kept = request.GET.copy()
    kept.pop("array_parent")
    kept.pop("p", None)
    clear = reverse("admin:container_manager_containerjob_changelist")
    return {
        "cm_array_parent": parent,
        "cm_array_parent_url": reverse(
            "admin:container_manager_containerjob_change", args=[parent.pk]
        ),
        "cm_clear_url": f"{clear}?{kept.urlencode()}" if kept else clear,
    }
