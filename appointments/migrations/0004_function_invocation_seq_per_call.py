# A custom-function result is reused only for a retry of the call's latest request, so an
# invocation is now claimed by its number in the call (company, call_id, seq) instead of
# by (company, call_id, name, args_hash), which reused answers for ever.

from django.db import migrations, models


def number_per_call(apps, schema_editor):
    """Existing rows get 1, 2, 3, ... per (company, call) in the order they were made."""
    FunctionInvocation = apps.get_model("appointments", "FunctionInvocation")
    rows = FunctionInvocation.objects.order_by("company_id", "call_id", "created_at", "pk").only(
        "pk", "company_id", "call_id")
    batch, call, seq = [], None, 0
    for row in rows.iterator(chunk_size=2000):
        if (row.company_id, row.call_id) != call:
            call, seq = (row.company_id, row.call_id), 0
        seq += 1
        row.seq = seq
        batch.append(row)
        if len(batch) >= 2000:
            FunctionInvocation.objects.bulk_update(batch, ["seq"])
            batch = []
    FunctionInvocation.objects.bulk_update(batch, ["seq"])


def keep_first_per_call_and_args(apps, schema_editor):
    """Going back: the old constraint allows one row per (company, call, function, arguments)."""
    FunctionInvocation = apps.get_model("appointments", "FunctionInvocation")
    seen, later = set(), []
    for row in FunctionInvocation.objects.order_by("seq", "pk").only(
            "pk", "company_id", "call_id", "name", "args_hash").iterator(chunk_size=2000):
        key = (row.company_id, row.call_id, row.name, row.args_hash)
        if key in seen:
            later.append(row.pk)
        seen.add(key)
    FunctionInvocation.objects.filter(pk__in=later).delete()


class Migration(migrations.Migration):

    dependencies = [
        ('appointments', '0003_restrict_service_and_resource_deletion'),
        ('tenants', '0004_help_texts_without_angle_brackets'),
    ]

    operations = [
        migrations.AlterModelOptions(
            name='functioninvocation',
            options={'ordering': ['-created_at', '-seq']},
        ),
        migrations.AddField(
            model_name='functioninvocation',
            name='seq',
            field=models.PositiveIntegerField(null=True, help_text="1 for the call's first request, then 2, 3, ...", verbose_name='no. in call'),
        ),
        migrations.AddField(
            model_name='functioninvocation',
            name='retries_answered',
            field=models.PositiveIntegerField(default=0, help_text="Repeats of this request answered with this stored result (Retell's retries)."),
        ),
        migrations.RunPython(number_per_call, migrations.RunPython.noop),
        migrations.AlterField(
            model_name='functioninvocation',
            name='seq',
            field=models.PositiveIntegerField(help_text="1 for the call's first request, then 2, 3, ...", verbose_name='no. in call'),
        ),
        migrations.RemoveConstraint(
            model_name='functioninvocation',
            name='function_invocation_once_per_call_and_args',
        ),
        migrations.RunPython(migrations.RunPython.noop, keep_first_per_call_and_args),
        migrations.AddConstraint(
            model_name='functioninvocation',
            constraint=models.UniqueConstraint(fields=('company', 'call_id', 'seq'), name='function_invocation_seq_per_call'),
        ),
    ]
