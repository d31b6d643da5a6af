"""Environment variable templates: named sets of variables that jobs start from.

A job's own overrides are laid over its template's variables.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

from container_manager.rules.envtext import parse_env_text, validate_env_text


class EnvironmentVariableTemplate(models.Model):
    """
    Template for reusable environment variable configurations across jobs.

    Provides a way to define and reuse common environment variable sets,
    promoting consistency and reducing duplication in job configurations.

    Format (parsed by ``get_environment_variables_dict``):
        - One variable per line: ``KEY=VALUE``; the first ``=`` splits, so
          values may contain ``=``
        - Lines starting with ``#`` are comments; empty lines are ignored
        - A value wrapped in matching quotes loses them: ``KEY="two words"``
        - Keys are letters, digits and ``_``, not starting with a digit;
          anything else is a validation error naming the line

    Variable Resolution:
        A job's environment is the template's variables overlaid with the
        job's ``override_environment``, resolved when the job launches, so
        editing a template changes jobs that have not launched yet.

    Example Usage:
        >>> env_template = EnvironmentVariableTemplate.objects.create(
        ...     name="python-production",
        ...     description="Production Python application environment",
        ...     environment_variables_text='''
        ... # application
        ... PYTHONPATH=/app
        ... ENV=production
        ... DEBUG=False
        ... DATABASE_URL=postgresql://user:pass@db:5432/app?sslmode=require
        ... GREETING="Hello World"
        ... ''',
        ... )
        >>> env_dict = env_template.get_environment_variables_dict()
        >>> env_dict["ENV"], env_dict["DEBUG"], env_dict["GREETING"]
        ('production', 'False', 'Hello World')
        >>> env_dict["DATABASE_URL"]
        'postgresql://user:pass@db:5432/app?sslmode=require'
        >>> job = ContainerJob.objects.create_job(
        ...     image="alpine:latest", command="env", docker_host=docker_host,
        ...     environment_template="python-production",
        ...     environment_vars={"DEBUG": "True"},
        ... )
        >>> job.get_all_environment_variables()["DEBUG"]
        'True'

    Security Considerations:
        Template text is stored in plain text in the database. Keep secrets in
        a secret manager; the admin masks values whose names look secret.
    """

    name = models.CharField(max_length=100, unique=True, help_text="Unique template name.")
    description = models.TextField(blank=True, default="", help_text="What the template is for.")
    environment_variables_text = models.TextField(
        blank=True,
        default="",
        validators=[validate_env_text],
        help_text=(
            "One KEY=value per line. '#' starts a comment line, blank lines are ignored, "
            "values may contain '=' and may be quoted."
        ),
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="Who created the template.",
    )

    class Meta:
        ordering = ["name"]
        verbose_name = "environment variable template"

    def __str__(self) -> str:
        return self.name

    def get_environment_variables_dict(self) -> dict[str, str]:
        """Parse ``environment_variables_text`` into ``{KEY: value}``."""
        return parse_env_text(self.environment_variables_text)
