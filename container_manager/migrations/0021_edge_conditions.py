# Edge conditions (issue 29, item 2): JobDependency.condition and the skipped status.

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('container_manager', '0020_workflows'),
    ]

    operations = [
        migrations.AddField(
            model_name='jobdependency',
            name='condition',
            field=models.CharField(choices=[('success', 'success'), ('failure', 'failure'), ('always', 'always')], default='success', help_text='On which end of the job it waits for the edge fires: success, failure (failed or timed out) or always.', max_length=7),
        ),
        migrations.AlterField(
            model_name='containerexecution',
            name='status',
            field=models.CharField(choices=[('pending', 'Pending'), ('launching', 'Launching'), ('running', 'Running'), ('completed', 'Completed'), ('failed', 'Failed'), ('timeout', 'Timeout'), ('cancelled', 'Cancelled'), ('skipped', 'Skipped')], default='launching', help_text='How the attempt ended.', max_length=20),
        ),
        migrations.AlterField(
            model_name='containerjob',
            name='status',
            field=models.CharField(choices=[('pending', 'Pending'), ('launching', 'Launching'), ('running', 'Running'), ('completed', 'Completed'), ('failed', 'Failed'), ('timeout', 'Timeout'), ('cancelled', 'Cancelled'), ('skipped', 'Skipped')], default='pending', help_text='Current status. pending -> launching -> running -> completed/failed/timeout; cancelled from any live status; skipped from pending (a workflow node whose edges cannot fire). Terminal statuses never change.', max_length=20),
        ),
        migrations.AddIndex(
            model_name='jobdependency',
            index=models.Index(condition=models.Q(('condition', 'success'), _negated=True), fields=['depends_on', 'job'], name='cjobdep_conditional_idx'),
        ),
    ]
