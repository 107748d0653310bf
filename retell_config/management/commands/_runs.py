"""Shared by the commands that start Retell runs: execute inline and print the outcome."""

import json

from retell_config import selectors
from retell_config.models import Agent, SyncRun
from retell_config.services import sync_run_execute


def run_and_report(command, run: SyncRun) -> SyncRun:
    run = sync_run_execute(run_id=run.pk)  # inline; a worker that gets the queued task finds it done
    style = command.style.SUCCESS if run.status == SyncRun.Status.SUCCEEDED else command.style.WARNING
    command.stdout.write(style(f"{run.get_kind_display()} #{run.pk}: {run.status} ({run.done}/{run.total})"))
    config = selectors.webhook_config_get(company=run.company)
    agents = {a.agent_id: a for a in Agent.objects.filter(company=run.company, agent_id__in=list(run.drift))}
    for agent_id, outcome in run.outcome.items():
        detail = f" — {outcome['detail']}" if outcome.get("detail") else ""
        command.stdout.write(f"  {agent_id}: {outcome['status']}{detail}")
        # As the run page names and writes them (selectors.drift_fields): values as JSON.
        for field in selectors.drift_fields(drift=run.drift.get(agent_id, {}), agent=agents.get(agent_id),
                                            config=config):
            local, remote = (json.dumps(value, ensure_ascii=False) for value in (field.local, field.remote))
            command.stdout.write(f"      drift {field.field}: local {local} / remote {remote}")
    for error in run.errors:
        command.stdout.write(command.style.ERROR(f"  error: {error}"))
    return run
