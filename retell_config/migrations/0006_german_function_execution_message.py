"""The functions seeded for German companies said "One moment, please." in English. Only that
exact seeded text is put into German; whatever an admin typed stays as it is."""

from django.db import migrations

# Frozen here: the seeded texts as they were when this migration was written.
SEEDED_ENGLISH = "One moment, please."
SEEDED_IN = {"de": "Einen Moment, bitte."}


def execution_message_in_company_language(apps, schema_editor) -> None:
    CustomFunction = apps.get_model("retell_config", "CustomFunction")
    for language, text in SEEDED_IN.items():
        CustomFunction.objects.filter(company__language=language, execution_message=SEEDED_ENGLISH).update(
            execution_message=text)


class Migration(migrations.Migration):

    dependencies = [
        ("retell_config", "0005_agent_language_follows_company"),
        ("tenants", "0004_help_texts_without_angle_brackets"),
    ]

    operations = [
        # Backwards leaves the German text: it cannot tell the seeded one from one an admin typed.
        migrations.RunPython(execution_message_in_company_language, migrations.RunPython.noop),
    ]
