from audit.actor import Actor
from audit.services import instance_save
from tenants.models import Company
from tenants.validators import normalize_e164

from .models import Agent


def agent_upsert(*, actor: Actor, company: Company, agent_id: str, name: str,
                 phone_numbers: list[str] = ()) -> tuple[Agent, bool]:
    """Create the agent, or bring an existing one of the same company up to these values."""
    agent = Agent.objects.filter(agent_id=agent_id).first()
    created = agent is None
    if created:
        agent = Agent(company=company, agent_id=agent_id)
    elif agent.company_id != company.pk:
        raise ValueError(f"Agent {agent_id} belongs to another company.")
    agent.name = name
    agent.phone_numbers = [normalize_e164(n) for n in phone_numbers]
    return instance_save(actor=actor, instance=agent), created
