import json

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseNotAllowed, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from audit.actor import Actor
from audit.admin import ReadOnlyTenantAdmin, WebhookReceiptAdmin
from audit.models import WebhookReceipt
from tenants.admin import TenantAdmin
from tenants.selectors import companies_allowing

from .models import Call, Scenario, ScenarioRun, TwilioNumber
from .selectors import twilio_webhook_urls
from .services import REPLAYABLE, receipts_replay
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


# --- Receipt replay (the receipts admin of audit, with the processing this app owns) ------------
class ReplayRangeForm(forms.Form):
    since = forms.DateTimeField(help_text="Failed receipts received at or after this time (YYYY-MM-DD HH:MM, UTC).")
    until = forms.DateTimeField(required=False, help_text="…and before this time; empty: until now.")

    def clean(self):
        data = super().clean()
        if data.get("since") and data.get("until") and data["until"] <= data["since"]:
            raise forms.ValidationError("The end of the range must come after its start.")
        return data


admin.site.unregister(WebhookReceipt)


@admin.register(WebhookReceipt)
class ReplayableReceiptAdmin(WebhookReceiptAdmin):
    """Receipts, with Replay: one (its page's button), a selection (the action) or every failed
    one in a time range, each processed again through the worker's path (services.receipt_replay)
    by owners and admins of its company."""

    list_filter = [*WebhookReceiptAdmin.list_filter, "is_test"]
    fields = [*WebhookReceiptAdmin.fields[:WebhookReceiptAdmin.fields.index("status") + 1], "replay_button",
              "replay_count", "replayed_at", "is_test",
              *WebhookReceiptAdmin.fields[WebhookReceiptAdmin.fields.index("status") + 1:]]
    readonly_fields = fields
    actions = ["replay_receipts"]

    def has_replay_permission(self, request, obj=None) -> bool:
        rows = WebhookReceipt.objects.restrict(request.user, "replay")
        return rows.filter(pk=obj.pk).exists() if obj is not None else rows.exists()

    def get_urls(self):
        own = [
            path("replay-failed/", self.admin_site.admin_view(self.replay_range_view),
                 name="audit_webhookreceipt_replay_range"),
            path("<path:object_id>/replay/", self.admin_site.admin_view(self.replay_one_view),
                 name="audit_webhookreceipt_replay"),
        ]
        return own + super().get_urls()

    @admin.display(description="replay")
    def replay_button(self, receipt: WebhookReceipt):
        if receipt.kind != "event" or receipt.status not in REPLAYABLE or receipt.company_id is None:
            return "— (only a verified event receipt can be processed again)"
        return format_html('<button type="submit" formaction="{}" formmethod="post" id="replay-receipt">'
                           'Replay</button> <span class="help">processes it again now, as the worker does</span>',
                           reverse("admin:audit_webhookreceipt_replay", args=[receipt.pk]))

    def _replay(self, request, receipts) -> None:
        allowed = receipts & WebhookReceipt.objects.restrict(request.user, "replay")
        counts = receipts_replay(actor=Actor.from_request(request), receipts=allowed)
        skipped = counts["skipped"] + receipts.count() - allowed.count()
        done = counts["processed"] + counts["failed"]
        text = (f"Replayed {done}: {counts['processed']} processed, {counts['failed']} failed"
                + (f"; {skipped} not replayable (rejected, duplicate, a function call, or busy)" if skipped else "")
                + ".")
        level = messages.SUCCESS if done and not counts["failed"] else messages.WARNING
        self.message_user(request, text if done else "Nothing replayed: only verified event receipts you may "
                                                     "replay are processed again.", level)

    @admin.action(description="Replay the selected receipts (process them again)", permissions=["replay"])
    def replay_receipts(self, request, queryset):
        self._replay(request, queryset)

    def replay_one_view(self, request, object_id):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        receipt = self.get_object(request, object_id)
        if receipt is None:
            raise Http404("No such receipt.")
        if not self.has_replay_permission(request, receipt):
            raise PermissionDenied
        self._replay(request, WebhookReceipt.objects.filter(pk=receipt.pk))
        return HttpResponseRedirect(reverse("admin:audit_webhookreceipt_change", args=[receipt.pk]))

    def replay_range_view(self, request):
        if not self.has_replay_permission(request):
            raise PermissionDenied
        form = ReplayRangeForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            rows = WebhookReceipt.objects.filter(status=WebhookReceipt.Status.FAILED, kind="event",
                                                 received_at__gte=form.cleaned_data["since"])
            if form.cleaned_data.get("until"):
                rows = rows.filter(received_at__lt=form.cleaned_data["until"])
            self._replay(request, rows)
            return HttpResponseRedirect(reverse("admin:audit_webhookreceipt_changelist"))
        context = {**self.admin_site.each_context(request), "opts": self.opts, "form": form,
                   "title": "Replay failed receipts in a time range"}
        return TemplateResponse(request, "admin/audit/webhookreceipt/replay_range.html", context)
def _start_runs(request, scenarios) -> None:
    """Queue runs of `scenarios` (those of agents the user may change), one batch per company."""
    from retell_config.models import Agent

    from .scenarios import scenario_runs_start

    allowed = Agent.objects.restrict(request.user, "change").values("pk")
    chosen = list(scenarios.filter(agent__in=allowed).select_related("agent").order_by("company_id", "name"))
    skipped = scenarios.count() - len(chosen)
    if not chosen:
        messages.error(request, "None of these scenarios is of an agent you may run calls for.")
        return None
    actor = Actor.from_request(request)
    batches = []
    for company_id in sorted({s.company_id for s in chosen}):
        runs = scenario_runs_start(actor=actor, scenarios=[s for s in chosen if s.company_id == company_id])
        batches.append(runs[0])
    links = format_html_join(", ", '<a href="{}?company={}">{} run(s)</a>', (
        (reverse("retell-scenario-batch", args=[run.batch]), run.company_id,
         sum(1 for s in chosen if s.company_id == run.company_id)) for run in batches))
    messages.success(request, format_html("Scenario runs queued: {}.{}", links,
                                          f" {skipped} skipped: your role may not run their agents." if skipped
                                          else ""))
    if len(batches) == 1:
        return HttpResponseRedirect(reverse("retell-scenario-batch", args=[batches[0].batch])
                                    + f"?company={batches[0].company_id}")
    return None


@admin.register(Scenario)
class ScenarioAdmin(TenantAdmin):
    """Saved scenarios: a caller script and its expectations; run from here or from the Call Simulator."""

    list_display = ["name", "agent", "company", "language", "expect_outcome", "expect_service", "expect_day",
                    "expect_time", "last_run"]
    list_filter = ["language", "expect_outcome", "agent"]
    search_fields = ["name", "script"]
    list_select_related = ["company", "agent"]
    actions = ["run_selected", "run_all_of_agents"]
    fieldsets = [
        (None, {"fields": ["company", "agent", "name", "language", "script"]}),
        ("Expectations", {"fields": ["expect_outcome", "expect_service", "expect_day", "expect_time",
                                     "expect_transfer", "must_say", "must_not_say", "max_turns", "max_latency_ms"],
                          "description": "Checked against the scenario's own call: the appointments it booked, "
                                         "moved or cancelled, and what the agent said. Leave empty what does not "
                                         "matter."}),
    ]

    @admin.display(description="last run")
    def last_run(self, scenario: Scenario) -> str:
        run = scenario.runs.order_by("-created_at").first()
        return run.get_status_display() if run else "—"

    @admin.action(description="Run the selected scenarios", permissions=["change"])
    def run_selected(self, request, queryset):
        return _start_runs(request, queryset)

    @admin.action(description="Run all scenarios of the selected scenarios' agents", permissions=["change"])
    def run_all_of_agents(self, request, queryset):
        agents = queryset.values("agent")
        return _start_runs(request, self.get_queryset(request).filter(agent__in=agents))


@admin.register(ScenarioRun)
class ScenarioRunAdmin(ReadOnlyTenantAdmin):
    list_display = ["scenario", "status", "progress_shown", "against", "triggered_by", "created_at", "batch_link"]
    list_filter = ["status"]
    search_fields = ["scenario__name", "call_id"]
    list_select_related = ["scenario", "company"]
    fields = ["scenario", "company", "status", "progress_shown", "against", "call_id", "results_table", "error",
              "transcript_block", "prompt_draft", "triggered_by", "started_at", "finished_at", "created_at",
              "batch_link"]
    readonly_fields = fields

    @admin.display(description="progress")
    def progress_shown(self, run: ScenarioRun) -> str:
        return f"{run.progress}/{run.total}"

    @admin.display(description="run page")
    def batch_link(self, run: ScenarioRun):
        return format_html('<a href="{}?company={}">open</a>', reverse("retell-scenario-batch", args=[run.batch]),
                           run.company_id)

    @admin.display(description="expectations")
    def results_table(self, run: ScenarioRun):
        if not run.results:
            return "—"
        return format_html("<ul>{}</ul>", format_html_join("", "<li>{} {}: {}</li>", (
            ("✓" if r.get("passed") else "✗", r.get("expectation", ""), r.get("reason", "")) for r in run.results)))

    @admin.display(description="transcript")
    def transcript_block(self, run: ScenarioRun):
        return format_html("<pre>{}</pre>", "\n".join(f"{line.get('role')}: {line.get('text')}"
                                                      for line in run.transcript)) if run.transcript else "—"
