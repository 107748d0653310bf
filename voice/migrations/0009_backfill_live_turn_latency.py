"""Fill voice.LiveTurnLatency from the turns already recorded in Call.live_turns.

The engine that answered an old turn was not recorded: its agent's setting at migration time
stands in for it. A call whose agent is unknown keeps its rows without an agent (the chart
leaves them out, as it left out such calls before). Reversing drops nothing but the rows."""

from django.db import migrations
from django.utils import timezone

from voice.turns import turn_latency_fields

BATCH = 500


def backfill(apps, schema_editor):
    Call = apps.get_model("voice", "Call")
    LiveTurnLatency = apps.get_model("voice", "LiveTurnLatency")
    calls = (Call.objects.exclude(live_turns=[]).select_related("agent").order_by("pk")
             .only("pk", "company_id", "agent", "live_turns", "started_at", "created_at"))
    rows = []
    for call in calls.iterator(chunk_size=BATCH):
        turns = call.live_turns if isinstance(call.live_turns, list) else []
        fallback = call.started_at or call.created_at or timezone.now()
        by_response = {}
        for turn in turns:
            fields = turn_latency_fields(turn, fallback_started_at=fallback)
            if fields is not None:
                by_response[fields["response_id"]] = fields
        engine = call.agent.dialog_engine if call.agent is not None else ""
        rows += [LiveTurnLatency(company_id=call.company_id, call_id=call.pk, agent_id=call.agent_id,
                                 dialog_engine=engine, **fields) for fields in by_response.values()]
        if len(rows) >= BATCH * 20:
            LiveTurnLatency.objects.bulk_create(rows, ignore_conflicts=True)
            rows = []
    LiveTurnLatency.objects.bulk_create(rows, ignore_conflicts=True)


def drop_rows(apps, schema_editor):
    apps.get_model("voice", "LiveTurnLatency").objects.all().delete()


class Migration(migrations.Migration):

    dependencies = [("voice", "0008_live_turn_latency")]

    operations = [migrations.RunPython(backfill, drop_rows)]
