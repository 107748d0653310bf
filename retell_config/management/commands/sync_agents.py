from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from audit.actor import Actor
from retell_config.services import sync_all
from tenants.models import Company

from ._runs import run_and_report


class Command(BaseCommand):
    help = ("Sync with Retell: pull agents, Retell LLMs and phone numbers, take what only Retell changed, "
            "report drift field by field (local changes are kept).")

    def add_arguments(self, parser):
        parser.add_argument("--company", help="Only this company (slug); default: every active company.")

    def handle(self, *args, company, **options):
        companies = Company.objects.filter(is_active=True).order_by("name")
        if company:
            companies = companies.filter(slug=company)
            if not companies:
                raise CommandError(f"No active company with slug {company}.")
        failed = 0
        for row in companies:
            self.stdout.write(self.style.MIGRATE_HEADING(row.name))
            with transaction.atomic():
                run = sync_all(actor=Actor.system("manage.py sync_agents"), company=row)
            failed += run_and_report(self, run).status == "failed"
        if failed:
            raise CommandError(f"{failed} sync(s) failed.")
