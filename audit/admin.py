import functools
import json
import operator

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.http import HttpResponseNotAllowed, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from tenants.admin import TenantAdmin

from .actor import Actor
from .models import ActivityLogEntry, AuditEntry, Delivery, DeliveryAttempt, WebhookReceipt
from .deliveries import deliveries_retry
from .receipts import UNSTORABLE


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


class ReceiptAttentionFilter(admin.SimpleListFilter):
    """Receipts a person should look at: processing given up, failing and retried, stored without
    what its checks found, or stored or processed with fields cleaned or dropped."""

    title = "needs attention"
    parameter_name = "attention"
    FAILED = Q(status=WebhookReceipt.Status.FAILED)
    CHOICES = {
        "given_up": ("Processing given up", FAILED & Q(next_attempt_at=None)),
        "retrying": ("Failing, will be retried", FAILED & ~Q(next_attempt_at=None)),
        "unstorable": ("Stored without its fields", Q(error_code=UNSTORABLE)),
        "cleaned": ("Fields cleaned or dropped", ~Q(notes=[])),
    }

    def lookups(self, request, model_admin):
        return [("any", "Any of these"), *((key, label) for key, (label, _) in self.CHOICES.items())]

    def queryset(self, request, queryset):
        if self.value() == "any":
            return queryset.filter(functools.reduce(operator.or_, (q for _, q in self.CHOICES.values())))
        if self.value() in self.CHOICES:
            return queryset.filter(self.CHOICES[self.value()][1])
        return queryset


@admin.register(WebhookReceipt)
class WebhookReceiptAdmin(ReadOnlyTenantAdmin):
    list_display = ["received_at", "company", "provider", "kind", "event_type", "call_id", "status", "error_code",
                    "remote_addr"]
    list_filter = [ReceiptAttentionFilter, "provider", "status", "kind", "event_type"]
    search_fields = ["call_id", "dedupe_key", "error_code"]
    date_hierarchy = "received_at"
    list_select_related = ["company"]
    fields = ["received_at", "company", "provider", "endpoint", "query", "remote_addr", "status", "error_code",
              "error_message", "notes_list", "kind", "event_type", "call_id", "dedupe_key", "attempts",
              "next_attempt_at", "processed_at", "headers_table", "body_shown", "body_truncated_shown"]
    readonly_fields = fields

    @admin.display(description="body truncated")
    def body_truncated_shown(self, receipt: WebhookReceipt) -> str:
        # Said as a sentence: the field's own help text would speak of the size limit on every receipt.
        if not receipt.body_truncated:
            return "No: the whole body is stored."
        limit = settings.WEBHOOK_MAX_BODY_BYTES
        return (f"Yes: the request was larger than the size limit (WEBHOOK_MAX_BODY_BYTES, {limit} bytes); "
                f"only its first {len(receipt.body)} bytes are stored.")

    @admin.display(description="notes")
    def notes_list(self, receipt: WebhookReceipt):
        if not receipt.notes:
            return "—"
        return format_html("<ul>{}</ul>", format_html_join("", "<li>{}</li>", ((note,) for note in receipt.notes)))

    @admin.display(description="headers")
    def headers_table(self, receipt: WebhookReceipt):
        rows = [format_html("<tr><th>{}</th><td><code>{}</code></td></tr>", name, value)
                for name, value in sorted(receipt.headers.items())]
        return format_html("<table>{}</table>", format_html("".join(["{}"] * len(rows)), *rows)) if rows else "—"

    @admin.display(description="body")
    def body_shown(self, receipt: WebhookReceipt):
        text = receipt.body_text
        try:
            text = json.dumps(json.loads(text), indent=2, ensure_ascii=False)
        except ValueError:
            pass
        return format_html('<pre style="white-space: pre-wrap; max-height: 40em; overflow: auto">{}</pre>', text)


class DeliveryAttemptInline(admin.TabularInline):
    model = DeliveryAttempt
    extra = 0
    can_delete = False
    fields = ["number", "started_at", "url", "duration_ms", "status_code", "error", "response_excerpt",
              "request_headers"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class RetrySinceForm(forms.Form):
    since = forms.DateTimeField(help_text="Every failed or dead delivery created at or after this time "
                                          "(YYYY-MM-DD HH:MM, in UTC) is sent again.")


@admin.register(Delivery)
class DeliveryAdmin(ReadOnlyTenantAdmin):
    """Deliveries are written by the engine only; owners and admins may send failed ones again."""

    list_display = ["created_at", "company", "kind", "status", "attempt_count", "next_attempt_at", "target_url",
                    "short_error"]
    list_filter = ["status", "kind"]
    search_fields = ["idempotency_key", "target_url"]
    date_hierarchy = "created_at"
    list_select_related = ["company"]
    fields = ["company", "kind", "status", "retry_button", "idempotency_key", "target_url", "payload_shown",
              "attempt_count", "max_attempts", "next_attempt_at", "last_error", "created_at", "updated_at",
              "succeeded_at"]
    readonly_fields = fields
    inlines = [DeliveryAttemptInline]
    actions = ["retry_deliveries"]

    def has_retry_permission(self, request, obj=None) -> bool:
        rows = Delivery.objects.restrict(request.user, "retry")
        return rows.filter(pk=obj.pk).exists() if obj is not None else rows.exists()

    def get_urls(self):
        own = [
            path("retry-since/", self.admin_site.admin_view(self.retry_since_view), name="audit_delivery_retry_since"),
            path("<path:object_id>/retry/", self.admin_site.admin_view(self.retry_one_view),
                 name="audit_delivery_retry"),
        ]
        return own + super().get_urls()

    @admin.display(description="error")
    def short_error(self, delivery: Delivery) -> str:
        return delivery.last_error[:80]

    @admin.display(description="payload")
    def payload_shown(self, delivery: Delivery):
        return format_html("<pre>{}</pre>", json.dumps(delivery.payload, indent=2, ensure_ascii=False))

    @admin.display(description="retry")
    def retry_button(self, delivery: Delivery):
        if delivery.status not in (Delivery.Status.FAILED, Delivery.Status.DEAD):
            return "—"
        return format_html('<button type="submit" formaction="{}" formmethod="post">Retry now</button>',
                           reverse("admin:audit_delivery_retry", args=[delivery.pk]))

    def _retry(self, request, deliveries) -> None:
        allowed = deliveries & Delivery.objects.restrict(request.user, "retry")
        count = deliveries_retry(actor=Actor.from_request(request), deliveries=allowed)
        self.message_user(request, f"{count} deliveries queued to be sent again." if count
                          else "Nothing to retry: only failed or dead deliveries you may retry are sent again.",
                          messages.SUCCESS if count else messages.WARNING)

    @admin.action(description="Retry the selected failed or dead deliveries", permissions=["retry"])
    def retry_deliveries(self, request, queryset):
        self._retry(request, queryset)

    def retry_one_view(self, request, object_id):
        delivery = self.get_object(request, object_id)
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.has_retry_permission(request, delivery):
            raise PermissionDenied
        self._retry(request, Delivery.objects.filter(pk=delivery.pk))
        return HttpResponseRedirect(reverse("admin:audit_delivery_change", args=[delivery.pk]))

    def retry_since_view(self, request):
        if not self.has_retry_permission(request):
            raise PermissionDenied
        form = RetrySinceForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            self._retry(request, Delivery.objects.filter(created_at__gte=form.cleaned_data["since"]))
            return HttpResponseRedirect(reverse("admin:audit_delivery_changelist"))
        context = {**self.admin_site.each_context(request), "opts": self.opts, "form": form,
                   "title": "Retry failed and dead deliveries since…"}
        return TemplateResponse(request, "admin/audit/delivery/retry_since.html", context)
