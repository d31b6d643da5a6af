# Workflows as one object (issue 29, item 1): the Workflow row and a job's node of one.

import django.db.models.deletion
import uuid
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('container_manager', '0019_webhook_test_events'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name='containerjob',
            name='workflow_node',
            field=models.CharField(blank=True, default='', editable=False, help_text="The node's name in its workflow, unique there.", max_length=63),
        ),
        migrations.CreateModel(
            name='Workflow',
            fields=[
                ('id', models.UUIDField(default=uuid.uuid4, editable=False, primary_key=True, serialize=False)),
                ('name', models.CharField(blank=True, default='', max_length=200)),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('spec', models.JSONField(help_text='The document as submitted, environment values masked (the jobs hold them).')),
                ('cancel_requested_at', models.DateTimeField(blank=True, help_text='When a cancel of the whole workflow was asked for.', null=True)),
                ('created_by', models.ForeignKey(blank=True, help_text='Who submitted the workflow; its jobs are theirs too.', null=True, on_delete=django.db.models.deletion.SET_NULL, to=settings.AUTH_USER_MODEL)),
            ],
            options={
                'ordering': ['-created_at'],
            },
        ),
        migrations.AddField(
            model_name='containerjob',
            name='workflow',
            field=models.ForeignKey(blank=True, db_index=False, editable=False, help_text='The workflow this job is a node of (Workflow.objects.submit).', null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='jobs', to='container_manager.workflow'),
        ),
        migrations.AddField(
            model_name='idempotencykey',
            name='workflow',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='container_manager.workflow'),
        ),
        migrations.AddConstraint(
            model_name='containerjob',
            constraint=models.UniqueConstraint(condition=models.Q(('workflow__isnull', False)), fields=('workflow', 'workflow_node'), name='cjob_workflow_node_unique'),
        ),
        migrations.AddIndex(
            model_name='workflow',
            index=models.Index(fields=['created_by', '-created_at'], name='cwf_owner_list_idx'),
        ),
    ]
