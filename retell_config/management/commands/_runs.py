"""Shared by the commands that start Retell runs: execute inline and print the outcome."""

from retell_config.models import SyncRun
from retell_config.services import sync_run_execute


def run_and_report(command, run: SyncRun) -> SyncRun:
    run = sync_run_execute(run_id=run.pk)  # inline; a worker that gets the queued task finds it done
    style = command.style.SUCCESS if run.status == SyncRun.Status.SUCCEEDED else command.style.WARNING
    command.stdout.write(style(f"{run.get_kind_display()} #{run.pk}: {run.status} ({run.done}/{run.total})"))
    for agent_id, outcome in run.outcome.items():
        detail = f" — {outcome['detail']}" if outcome.get("detail") else ""
        command.stdout.write(f"  {agent_id}: {outcome['status']}{detail}")
        for field, values in run.drift.get(agent_id, {}).items():
            command.stdout.write(f"      drift {field}: local {values['local']!r} / remote {values['remote']!r}")
    for error in run.errors:
        command.stdout.write(command.style.ERROR(f"  error: {error}"))
    return run
