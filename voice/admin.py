from django.contrib import admin

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
              "attachments", "last_event", "events", "created_at", "updated_at"]
    readonly_fields = fields
