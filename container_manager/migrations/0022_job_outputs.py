# Outputs to dependents (issue 29, item 3): ContainerJob.returns_result and ContainerJob.result.

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('container_manager', '0021_edge_conditions'),
    ]

    operations = [
        migrations.AddField(
            model_name='containerjob',
            name='result',
            field=models.TextField(blank=True, editable=False, help_text='Its result as JSON text, stored when a job with returns_result completes.', null=True),
        ),
        migrations.AddField(
            model_name='containerjob',
            name='returns_result',
            field=models.BooleanField(default=False, help_text='The last line of its stdout is its result, JSON, given to the jobs that depend on it as CM_INPUT_<NODE>; without one it ends failed (docs/workflows.md).'),
        ),
    ]
