"""Admin of environment variable templates: names shown, secret-looking values masked.

Users with change permission edit the real text (they must be able to); every other view masks.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.core.exceptions import ValidationError
from django.http import HttpRequest
from django.utils.html import format_html_join

from container_manager.admin import _display as show
from container_manager.models import EnvironmentVariableTemplate
from container_manager.rules.secrets import is_secret_name


@admin.register(EnvironmentVariableTemplate)
class EnvironmentVariableTemplateAdmin(admin.ModelAdmin):
    """Templates listed by variable names; values are shown only in the edit form."""

    list_display = ("name", "description", "variable_names", "updated_at")
    search_fields = ("name", "description")
    readonly_fields = ("variables_masked", "created_by", "created_at", "updated_at")

    class Media:
        css = {"all": ("container_manager/admin/admin.css",)}

    def get_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        text = "environment_variables_text"
        if obj is not None and not self.has_change_permission(request, obj):
            text = "variables_masked"
        fields = ["name", "description", text]
        return fields + ["created_by", "created_at", "updated_at"] if obj else fields

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        if not change:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)

    @admin.display(description="variables")
    def variable_names(self, template: EnvironmentVariableTemplate) -> str:
        try:
            names = list(template.get_environment_variables_dict())
        except ValidationError:
            return "(does not parse)"
        if not names:
            return "-"
        return format_html_join(
            ", ", "{}{}", ((name, " (secret)" if is_secret_name(name) else "") for name in names)
        )

    @admin.display(description="environment variables")
    def variables_masked(self, template: EnvironmentVariableTemplate) -> str:
        return show.masked_env_block(template.environment_variables_text)
