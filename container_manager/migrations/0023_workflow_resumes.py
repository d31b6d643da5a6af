# Resume of a workflow (issue 29, item 5): the record of each resume.

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('container_manager', '0022_job_outputs'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='WorkflowResume',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('at', models.DateTimeField(default=django.utils.timezone.now, help_text='When it was resumed.')),
                ('nodes', models.JSONField(help_text='The nodes re-run: [{"node": name, "job": old job id, "retry": new job id}].')),
                ('count', models.PositiveIntegerField(help_text='How many nodes were re-run.')),
                ('user', models.ForeignKey(blank=True, help_text='Who resumed it; empty for trusted code.', null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                ('workflow', models.ForeignKey(help_text='The workflow resumed.', on_delete=django.db.models.deletion.CASCADE, related_name='resumes', to='container_manager.workflow')),
            ],
            options={
                'ordering': ['workflow', 'at', 'pk'],
                'indexes': [models.Index(fields=['workflow', 'at'], name='cwf_resume_idx')],
            },
        ),
    ]
