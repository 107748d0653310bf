"""Migrations that rewrite rows: run forwards (and back) on a database holding old rows."""

from datetime import datetime, timezone

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = [("voice", "0007_scenariorun_variant")]
AFTER = [("voice", "0009_backfill_live_turn_latency")]


def migrate(targets) -> MigrationExecutor:
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return MigrationExecutor(connection)


@pytest.mark.django_db(transaction=True)
def test_the_turns_already_recorded_become_latency_rows_and_going_back_drops_only_them():
    # given: calls whose turns exist only in Call.live_turns
    old = migrate(BEFORE).loader.project_state(BEFORE).apps
    company = old.get_model("tenants", "Company").objects.create(name="Alt", slug="alt")
    agent = old.get_model("retell_config", "Agent").objects.create(company=company, agent_id="agent_old",
                                                                    name="Alt Agent", dialog_engine="openai")
    call_model = old.get_model("voice", "Call")
    started = datetime(2026, 3, 20, 9, 0, tzinfo=timezone.utc)
    turns = [{"response_id": 1, "started_at": 1_790_000_001.5, "first_chunk_ms": 210.5, "complete_ms": 990.0},
             {"response_id": 2, "started_at": 1_790_000_007.0, "first_chunk_ms": None, "complete_ms": None,
              "superseded": True},
             {"response_id": 3, "first_chunk_ms": 90.0, "complete_ms": 400.0},  # no started_at: the call's start
             "not a turn"]
    call = call_model.objects.create(company=company, agent=agent, call_id="call_old", live_turns=turns,
                                     started_at=started)
    bare = call_model.objects.create(company=company, call_id="call_bare")

    try:
        # when: the migrations run
        new = migrate(AFTER).loader.project_state(AFTER).apps

        # then: one row per turn, as the turn says, under the call's agent and its engine
        rows = new.get_model("voice", "LiveTurnLatency").objects.order_by("response_id")
        assert [(r.call_id, r.company_id, r.agent_id, r.dialog_engine, r.response_id, r.started_at,
                 r.first_chunk_ms, r.complete_ms) for r in rows] == [
            (call.pk, company.pk, agent.pk, "openai", 1, datetime.fromtimestamp(1_790_000_001.5, tz=timezone.utc),
             210.5, 990.0),
            (call.pk, company.pk, agent.pk, "openai", 2, datetime.fromtimestamp(1_790_000_007, tz=timezone.utc),
             None, None),
            (call.pk, company.pk, agent.pk, "openai", 3, started, 90.0, 400.0)]
        assert not rows.filter(call_id=bare.pk).exists()

        # when: reversed, the rows go and the turns stay on the call
        back = migrate(BEFORE).loader.project_state(BEFORE).apps
        assert back.get_model("voice", "Call").objects.get(pk=call.pk).live_turns == turns
    finally:
        migrate(migrate(AFTER).loader.graph.leaf_nodes())
