"""An index covering the Analytics page's webhook charts."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('audit', '0006_receipt_replays'),
        ('tenants', '0006_company_rate_limits'),
    ]

    operations = [
        migrations.AddIndex(
            model_name='webhookreceipt',
            index=models.Index(fields=['company', 'received_at', 'is_test', 'status', 'error_code', 'event_type', 'processed_at'], name='webhookreceipt_analytics'),
        ),
    ]
