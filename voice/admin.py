import json

from django.contrib import admin
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from audit.admin import ReadOnlyTenantAdmin

from .models import Call


@admin.register(Call)
class CallAdmin(ReadOnlyTenantAdmin):
    """Calls are assembled from provider events only; nobody edits them."""

    list_display = ["call_id", "company", "agent", "from_number", "to_number", "status", "started_at",
                    "duration_seconds", "disconnection_reason", "last_event"]
    list_filter = ["status", "direction", "source", "last_event"]
    search_fields = ["call_id", "from_number", "to_number"]
    date_hierarchy = "created_at"
    list_select_related = ["company", "agent"]
    fields = ["call_id", "company", "source", "agent", "call_type", "direction", "from_number", "to_number",
              "status", "started_at", "ended_at", "duration_ms", "disconnection_reason", "transcript",
              "transcript_turns", "recording_url", "analysis", "cost", "latency", "dynamic_variables", "metadata",
              "attachments", "last_event", "events", "live_turns_table", "created_at", "updated_at"]
    readonly_fields = fields

    @admin.display(description="live conversation (the socket's turns)")
    def live_turns_table(self, call: Call):
        if not call.live_turns:
            return "—"
        rows = [format_html(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            turn.get("response_id"), "reminder" if turn.get("reminder") else "reply",
            _ms(turn.get("first_chunk_ms")), _ms(turn.get("complete_ms")), turn.get("content") or "—",
            _outcome(turn))
            for turn in call.live_turns]
        return format_html(
            "<table><tr><th>#</th><th>kind</th><th>first chunk</th><th>complete</th><th>agent said</th>"
            "<th>tools / outcome</th></tr>{}</table>", format_html_join("", "{}", ((row,) for row in rows)))


def _ms(value) -> str:
    return "—" if value is None else f"{value:.0f} ms"


def _outcome(turn: dict):
    """The tools a turn ran (name, arguments, result) and how it ended."""
    lines = [format_html("{}({}) → {}", tool.get("name", ""),
                         json.dumps(tool.get("arguments", {}), ensure_ascii=False),
                         json.dumps(tool.get("result", ""), ensure_ascii=False)[:300])
             for tool in turn.get("tool_calls", [])]
    lines += [label for label, on in (("superseded", turn.get("superseded")), ("ends the call", turn.get("end_call")),
                                      (f"transfer to {turn.get('transfer_number')}", turn.get("transfer_number")))
              if on]
    return format_html_join(mark_safe("<br>"), "{}", ((line,) for line in lines)) or "—"
