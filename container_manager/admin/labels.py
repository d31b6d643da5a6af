"""Job labels in the admin: the job list's filter by ``key=value`` and the labels on a job page.

The filter is the API's (``models.labels.with_label``), served by ``cm_label_kv_idx``.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html_join
from django.utils.http import urlencode

from container_manager.models import JobLabel
from container_manager.models.labels import with_label
from container_manager.rules.labels import parse_selector

#: The most label choices the filter offers; any other works as ``?label=key=value``.
MAX_CHOICES = 20


class LabelFilter(admin.SimpleListFilter):
    """Jobs carrying one label, given as ``?label=key=value`` (the choices: the first pairs)."""

    title = "label"
    parameter_name = "label"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        pairs = JobLabel.objects.order_by("key", "value").values_list("key", "value").distinct()
        choices = [f"{key}={value}" for key, value in pairs[:MAX_CHOICES]]
        if self.value() and self.value() not in choices:
            choices.append(self.value())
        return [(choice, choice) for choice in choices]

    def queryset(self, request: HttpRequest, queryset: Any) -> Any:
        if self.value() is None:
            return queryset
        try:
            key, value = parse_selector(self.value())
        except ValueError:
            return queryset.none()
        return with_label(queryset, key, value)


def labels_html(labels: dict[str, str]) -> str:
    """A job's labels as ``key=value`` chips, each a link to the job list filtered by it."""
    if not labels:
        return "-"
    jobs = reverse("admin:container_manager_containerjob_changelist")
    pairs = [f"{key}={value}" for key, value in sorted(labels.items())]
    return format_html_join(
        " ", '<a class="cm-label" href="{}?{}">{}</a>',
        ((jobs, urlencode({"label": pair}), pair) for pair in pairs),
    )  # fmt: skip
