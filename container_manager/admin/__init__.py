"""Django admin of container_manager: jobs and their attempts, hosts, templates, a dashboard.

Importing this package registers every ModelAdmin with the default admin site.
"""

from container_manager.admin import (  # noqa: F401 - registers them
    environments,
    hosts,
    jobs,
    schedules,
    tokens,
    webhooks,
    workflow_runs,
)
