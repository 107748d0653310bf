from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from audit.actor import Actor
from retell_config.models import Agent
from retell_config.services import custom_functions_deploy
from tenants.models import Company

from ._runs import run_and_report


class Command(BaseCommand):
    help = ("Deploy each agent's custom functions into its Retell LLM (tools this product does not manage "
            "are left alone).")

    def add_arguments(self, parser):
        parser.add_argument("--company", help="Only this company (slug); default: every active company.")
        parser.add_argument("--agent", help="Only this agent (Retell agent id).")

    def handle(self, *args, company, agent, **options):
        companies = Company.objects.filter(is_active=True).order_by("name")
        if company:
            companies = companies.filter(slug=company)
            if not companies:
                raise CommandError(f"No active company with slug {company}.")
        if agent:
            found = Agent.objects.filter(agent_id=agent, company__in=companies).first()
            if found is None:
                raise CommandError(f"No agent {agent}" + (f" in {company}." if company else "."))
            companies = companies.filter(pk=found.company_id)
        failed = 0
        for row in companies:
            agents = list(Agent.objects.filter(company=row, **({"agent_id": agent} if agent else {})).order_by("name"))
            if not agents:
                continue
            self.stdout.write(self.style.MIGRATE_HEADING(row.name))
            with transaction.atomic():
                run = custom_functions_deploy(actor=Actor.system("manage.py deploy_functions"), company=row,
                                              agents=agents)
            failed += run_and_report(self, run).status == "failed"
        if failed:
            raise CommandError(f"{failed} deployment(s) failed.")
