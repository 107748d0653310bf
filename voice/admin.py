import json

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from audit.actor import Actor
from audit.admin import ReadOnlyTenantAdmin
from tenants.admin import TenantAdmin
from tenants.selectors import companies_allowing

from .models import Call, TwilioNumber
from .selectors import twilio_webhook_urls
from .twilio_client import TwilioError
from .twilio_numbers import twilio_number_configure, twilio_number_save, twilio_numbers_pull


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


class PullForm(forms.Form):
    company = forms.ModelChoiceField(queryset=None, help_text="Its Twilio account SID and auth token are used.")

    def __init__(self, *args, companies, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["company"].queryset = companies
        if len(companies) == 1:
            self.fields["company"].initial = companies[0]


@admin.register(TwilioNumber)
class TwilioNumberAdmin(TenantAdmin):
    """A company's Twilio numbers: which agent answers each, with which speech providers; pulled
    from Twilio and configured on it (voice URL and status callback) from here."""

    list_display = ["phone_number", "friendly_name", "company", "agent", "stt_provider", "tts_provider",
                    "points_here", "configured_at"]
    list_select_related = ["company", "agent"]
    search_fields = ["phone_number", "friendly_name"]
    readonly_fields = ["number_sid", "voice_url", "status_callback", "pulled_at", "configured_at"]
    fieldsets = [
        (None, {"fields": ["company", "phone_number", "friendly_name", "agent"]}),
        ("Speech (empty: the company's choice)", {"fields": ["stt_provider", "tts_provider"]}),
        ("On Twilio", {"fields": readonly_fields}),
    ]
    actions = ["configure_on_twilio"]

    @admin.display(boolean=True, description="points here")
    def points_here(self, number: TwilioNumber) -> bool:
        """Does Twilio send this number's calls and status callbacks here (as last pulled or configured)?"""
        return (number.voice_url, number.status_callback) == twilio_webhook_urls()

    def save_instance(self, request, instance, m2m) -> None:
        twilio_number_save(actor=Actor.from_request(request), number=instance)

    @admin.action(description="Configure on Twilio (its calls and status callbacks come here)",
                  permissions=["change"])
    def configure_on_twilio(self, request, queryset) -> None:
        actor = Actor.from_request(request)
        allowed = TwilioNumber.objects.restrict(request.user, "change")
        done = []
        for number in queryset.filter(pk__in=allowed.values("pk")).select_related("company"):
            try:
                twilio_number_configure(actor=actor, number=number)
            except (TwilioError, PermissionDenied) as exc:
                self.message_user(request, f"{number.phone_number}: {getattr(exc, 'message', exc)}", messages.ERROR)
            else:
                done.append(number.phone_number)
        if done:
            voice_url, status_callback = twilio_webhook_urls()
            self.message_user(request, f"Configured on Twilio: {', '.join(done)} (voice URL {voice_url}, status "
                                       f"callback {status_callback}).", messages.SUCCESS)

    def get_urls(self):
        own = [path("pull/", self.admin_site.admin_view(self.pull_view), name="voice_twilionumber_pull")]
        return own + super().get_urls()

    def pull_view(self, request):
        if not self.has_add_permission(request):
            raise PermissionDenied
        companies = companies_allowing(user=request.user, model=TwilioNumber, action="add").filter(is_active=True)
        form = PullForm(request.POST or None, companies=companies)
        if request.method == "POST":
            if not form.is_valid():
                raise Http404("No such company of yours.")
            company = form.cleaned_data["company"]
            try:
                result = twilio_numbers_pull(actor=Actor.from_request(request), company=company)
            except TwilioError as exc:
                self.message_user(request, f"Pulling from Twilio failed: {exc.message}", messages.ERROR)
            else:
                self.message_user(request, f"Pulled the numbers of {company.name} from Twilio: {result.summary}.",
                                  messages.SUCCESS)
            return HttpResponseRedirect(reverse("admin:voice_twilionumber_changelist"))
        context = {**self.admin_site.each_context(request), "opts": self.opts, "form": form,
                   "title": "Pull numbers from Twilio"}
        return TemplateResponse(request, "admin/voice/twilionumber/pull.html", context)
