import json

from django.contrib import admin
from django.utils.html import format_html

from tenants.admin import TenantAdmin

from .models import ActivityLogEntry, AuditEntry


class ReadOnlyTenantAdmin(TenantAdmin):
    """Rows that are written by the services only: nobody edits them, not even a superuser."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyTenantAdmin):
    list_display = ["created_at", "company", "actor_label", "actor_kind", "action", "object_type", "object_repr"]
    list_filter = ["action", "actor_kind", "object_type"]
    search_fields = ["object_repr", "actor_label", "object_id", "request_id"]
    date_hierarchy = "created_at"
    list_select_related = ["company"]
    fields = ["created_at", "company", "actor_kind", "actor_label", "action", "object_type", "object_id",
              "object_repr", "changes_table", "request_id", "ip"]
    readonly_fields = fields

    @admin.display(description="changes")
    def changes_table(self, entry: AuditEntry):
        if not entry.changes:
            return "—"
        rows = [format_html("<tr><th>{}</th><td><code>{}</code></td><td><code>{}</code></td></tr>",
                            name, json.dumps(change.get("before")), json.dumps(change.get("after")))
                for name, change in entry.changes.items()]
        return format_html("<table><tr><th>field</th><th>before</th><th>after</th></tr>{}</table>",
                           format_html("".join(["{}"] * len(rows)), *rows))


@admin.register(ActivityLogEntry)
class ActivityLogEntryAdmin(ReadOnlyTenantAdmin):
    list_display = ["created_at", "company", "level", "kind", "message"]
    list_filter = ["level", "kind"]
    search_fields = ["message"]
    date_hierarchy = "created_at"
    list_select_related = ["company"]
    fields = ["created_at", "company", "level", "kind", "message", "data"]
    readonly_fields = fields
