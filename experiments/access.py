"""Which experiments a membership limited to granted agents may act on: those of its agents
(the same rule as an agent's calls and prompt versions, voice.access)."""

from django.db.models import Q

from tenants.models import limited_scope_register
from voice.access import seen_agents

from .models import Experiment, Variant


def register_limited_scopes() -> None:
    limited_scope_register(Experiment, lambda user: Q(agent__in=seen_agents(user).pks))
    limited_scope_register(Variant, lambda user: Q(experiment__agent__in=seen_agents(user).pks))
