from django.core.management.base import BaseCommand, CommandError

from retell_config.models import Agent
from voice.selectors import agent_socket_url


class Command(BaseCommand):
    help = ("Print the Custom LLM WebSocket URL to give Retell for an agent (by Retell agent id), or for every "
            "agent of a company (--company SLUG). The URL carries the agent's secret socket token.")

    def add_arguments(self, parser):
        parser.add_argument("agent_id", nargs="?")
        parser.add_argument("--company", help="company slug: every agent of it")

    def handle(self, *args, agent_id=None, company=None, **options):
        if bool(agent_id) == bool(company):
            raise CommandError("Name one agent id, or --company SLUG.")
        agents = Agent.objects.select_related("company").order_by("name")
        agents = agents.filter(agent_id=agent_id) if agent_id else agents.filter(company__slug=company)
        if not agents:
            raise CommandError(f"No agent {agent_id}." if agent_id else f"No agents for company {company}.")
        for agent in agents:
            self.stdout.write(f"{agent.agent_id}\t{agent_socket_url(agent)}")
