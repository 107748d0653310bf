"""An index of the successful function invocations, for the Analytics page."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('appointments', '0005_test_marks'),
        ('tenants', '0006_company_rate_limits'),
    ]

    operations = [
        migrations.AddIndex(
            model_name='functioninvocation',
            index=models.Index(condition=models.Q(('result__ok', True)), fields=['company', 'name', 'call_id'], name='function_invocation_ok'),
        ),
    ]
