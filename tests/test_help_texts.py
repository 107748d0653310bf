"""Django renders help_text unescaped: a placeholder like <token> would vanish as a tag."""

import re

from django.apps import apps

PLACEHOLDER = re.compile(r"<[a-z_]+>")


def test_no_help_text_holds_an_angle_bracket_placeholder():
    offenders = [f"{model._meta.label}.{field.name}: {field.help_text}"
                 for model in apps.get_models() for field in model._meta.get_fields()
                 if PLACEHOLDER.search(str(getattr(field, "help_text", "")))]
    assert offenders == []
