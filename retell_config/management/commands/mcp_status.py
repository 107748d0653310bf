from django.core.management.base import BaseCommand, CommandError

from retell_config.client import RetellClient, RetellError
from retell_config.models import Agent, CustomFunction
from retell_config.selectors import last_sync_run, retell_status
from tenants.models import Company

SERVERS = ("retell_config",)


class Command(BaseCommand):
    help = ("Status of a server of this product, as the seed's `mcp:status retell_config`: per company the "
            "Retell API reachability, the status the dashboard shows (the last exchange with Retell and the "
            "circuit), agents, functions deployed and the last sync.")

    def add_arguments(self, parser):
        parser.add_argument("server", choices=SERVERS)
        parser.add_argument("--company", help="Only this company (slug).")
        parser.add_argument("--no-ping", action="store_true", help="Do not call Retell; show the stored state.")

    def handle(self, *args, server, company, no_ping, **options):
        companies = Company.objects.filter(is_active=True).order_by("name")
        if company:
            companies = companies.filter(slug=company)
            if not companies:
                raise CommandError(f"No active company with slug {company}.")
        for row in companies:
            self.stdout.write(self.style.MIGRATE_HEADING(f"{row.name} ({row.slug})"))
            reach = "not checked (--no-ping)"
            if not no_ping:
                try:
                    with RetellClient(row) as client:
                        client.ping()
                    reach = self.style.SUCCESS("reachable")
                except RetellError as exc:
                    reach = self.style.ERROR(f"unreachable: {exc.message}")
            agents = Agent.objects.filter(company=row).count()
            deployed = CustomFunction.objects.filter(company=row, deployed_at__isnull=False).count()
            total = CustomFunction.objects.filter(company=row).count()
            run = last_sync_run(company=row, kind="sync_all")
            self.stdout.write(f"  Retell API:  {reach}")
            # The dashboard's facts, from the same selector (the ping above is one more exchange).
            for label, text in retell_status(row).facts():
                self.stdout.write(f"  {label + ':':<13}{text}")
            self.stdout.write(f"  Agents:      {agents}")
            self.stdout.write(f"  Functions:   {deployed} of {total} deployed")
            self.stdout.write("  Last sync:   " + (f"#{run.pk} {run.status} at {run.created_at:%Y-%m-%d %H:%M:%S} UTC, "
                                                  f"drift on {len(run.drift)} agent(s)" if run else "never"))
