"""Webhook endpoints have owners: an owned endpoint gets the events of jobs its owner may view."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("container_manager", "0011_schedule_owner"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name="webhookendpoint",
            name="owner",
            field=models.ForeignKey(
                blank=True,
                help_text="Gets the events of the jobs this user may view; empty: every job's (operator).",
                null=True,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="webhook_endpoints",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
    ]
