"""Run saved scenarios over the running server's Retell socket and print a verdict per scenario (for CI).

Each run is the same as the admin's (voice.scenarios.scenario_run_execute), made here, in this
process, one after another: a line per scenario, the failed expectations with their reasons
under it, and exit status 1 when any scenario did not pass.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from audit.actor import Actor
from voice.models import Scenario, ScenarioRun
from voice.scenarios import scenario_run_execute, scenario_runs_start

# run_scenarios' exit statuses: all passed, one failed (or could not be called), nothing to run.
EXIT_PASSED, EXIT_FAILED = 0, 1


class Command(BaseCommand):
    help = ("Run saved scenarios against the running server's Retell LLM socket (the agents' socket URL: "
            "RETELL_LLM_WEBSOCKET_URL, else PUBLIC_BASE_URL; or --url) and print PASS/FAIL per scenario with the "
            "reason of each failed expectation. Exits 1 when a scenario fails or its call cannot be made, 2 when no "
            "scenario matches.")

    def add_arguments(self, parser):
        parser.add_argument("--agent", metavar="AGENT_ID", help="only this agent's scenarios (its Retell agent id)")
        parser.add_argument("--company", metavar="SLUG", help="only this company's scenarios")
        parser.add_argument("--url", metavar="WS_BASE",
                            help="the server's WebSocket base, e.g. ws://127.0.0.1:8000 (default: the agents' "
                                 "configured socket URL)")

    def handle(self, *args, agent=None, company=None, url=None, **options):
        scenarios = Scenario.objects.select_related("agent", "company").filter(company__is_active=True)
        if agent:
            scenarios = scenarios.filter(agent__agent_id=agent)
        if company:
            scenarios = scenarios.filter(company__slug=company)
        scenarios = list(scenarios.order_by("company__slug", "agent__agent_id", "name"))
        if not scenarios:
            raise CommandError("No scenarios match" + (f" agent {agent}" if agent else "")
                               + (f" company {company}" if company else "") + ".", returncode=2)
        base = None
        if url:
            base = url.rstrip("/")
            base = base if base.endswith("/retell-llm") else base + "/retell-llm"
        actor = Actor.system("manage.py run_scenarios")
        failed = 0
        for scenario in scenarios:
            [run] = scenario_runs_start(actor=actor, scenarios=[scenario], enqueue=False)
            run = scenario_run_execute(run_id=run.pk, socket_base=base)
            passed = run.status == ScenarioRun.Status.PASSED
            failed += not passed
            label = {"passed": "PASS", "failed": "FAIL", "error": "ERROR"}.get(run.status, run.status.upper())
            self.stdout.write(f"{label:5} {scenario.company.slug} / {scenario.agent.agent_id} / {scenario.name} "
                              f"({run.progress}/{run.total} lines, call {run.call_id})")
            for result in run.results:
                if not result["passed"]:
                    self.stdout.write(f"      ✗ {result['expectation']}: {result['reason']}")
            if run.error:
                self.stdout.write(f"      {run.error}")
        self.stdout.write(f"{len(scenarios) - failed} passed, {failed} failed.")
        if failed:
            raise SystemExit(EXIT_FAILED)
