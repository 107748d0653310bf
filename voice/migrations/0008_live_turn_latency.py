"""The live turns' latencies as plain rows (voice.LiveTurnLatency), for the Analytics page."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('retell_config', '0011_agent_elevenlabs_tool_key'),
        ('tenants', '0006_company_rate_limits'),
        ('voice', '0007_scenariorun_variant'),
    ]

    operations = [
        migrations.CreateModel(
            name='LiveTurnLatency',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('dialog_engine', models.CharField(blank=True, max_length=16)),
                ('response_id', models.BigIntegerField()),
                ('started_at', models.DateTimeField(help_text="When the request arrived (the turn's started_at).")),
                ('first_chunk_ms', models.FloatField(blank=True, null=True)),
                ('complete_ms', models.FloatField(blank=True, null=True)),
                ('agent', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='retell_config.agent')),
                ('call', models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='turn_latencies', to='voice.call')),
                ('company', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, to='tenants.company')),
            ],
            options={
                'verbose_name': 'live turn latency',
                'indexes': [models.Index(fields=['company', 'started_at', 'agent', 'dialog_engine', 'first_chunk_ms', 'complete_ms', 'call'], name='voice_turn_latency_company_at')],
                'constraints': [models.UniqueConstraint(fields=('call', 'response_id'), name='voice_turn_latency_once')],
            },
        ),
    ]
