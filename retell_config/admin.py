import json

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.text import capfirst

from audit.actor import Actor
from audit.admin import ReadOnlyTenantAdmin
from tenants.admin import TenantAdmin
from tenants.selectors import companies_allowing

from . import selectors, services
from .forms import (DRIFT_PREFIX, drift_choice_field, drift_choices_of, elevenlabs_voice_choices,
                    retell_voice_choices)
from .models import Agent, CustomFunction, PromptVersion, SyncRun, WebhookConfig, agent_language_for
from .voices import RETELL_VOICES


def _pushes(fields) -> bool:
    """Does saving these changed fields push the agent to Retell? (A signing secret is not sent.)"""
    return bool(set(fields) - set(services.AGENT_SECRET_FIELDS))


class AgentAdminForm(forms.ModelForm):
    """Asks the service's drift check before a change that pushes is saved (services.drift_check)."""

    conflicts: dict = {}

    def clean(self):
        cleaned = super().clean()
        changed = [name for name in self.changed_data if name in services.AGENT_FIELDS]
        if self.instance.pk and self.conflicts and _pushes(changed):
            try:
                services.drift_check(agent=self.instance, choices=drift_choices_of(cleaned))
            except services.DriftConflict as exc:
                raise forms.ValidationError(str(exc), code="drift_conflict") from None
            except ValidationError as exc:
                raise forms.ValidationError(exc.messages) from None
        return cleaned


def _differs(name: str, new, old) -> bool:
    if name in services.AGENT_SECRET_FIELDS:  # a Secret equals only itself: compare what it holds
        return services.secret_plaintext(new) != services.secret_plaintext(old)
    return new != old


@admin.register(Agent)
class AgentAdmin(TenantAdmin):
    list_display = ["name", "agent_id", "company", "phone_numbers", "response_engine", "synced_at"]
    search_fields = ["name", "agent_id"]
    list_select_related = ["company"]
    readonly_fields = ["synced_at", "elevenlabs_tools_exported_at", "experiments"]
    actions = ["rotate_socket_token"]
    fieldsets = [
        (None, {"fields": ["company", "name", "agent_id", "phone_numbers", "language"]}),
        ("Engine", {"fields": ["response_engine", "llm_id", "dialog_engine"]}),
        ("Retell voice", {"fields": ["voice_id", "voice_speed"]}),
        ("This server's speech (the Twilio path)",
         {"fields": ["elevenlabs_voice_id", "voice_stability", "voice_similarity_boost"]}),
        ("Prompt", {"fields": ["begin_message", "general_prompt", "custom_instructions"]}),
        ("Webhook", {"fields": ["webhook_url", "webhook_secret"]}),
        ("Sync", {"fields": ["synced_at", "elevenlabs_tools_exported_at"]}),
        ("Prompt A/B testing", {"fields": ["experiments"]}),
    ]

    @admin.display(description="experiments")
    def experiments(self, agent):
        from experiments.admin import agent_experiments_links

        return agent_experiments_links(agent)

    def get_readonly_fields(self, request, obj=None):
        readonly = list(super().get_readonly_fields(request, obj))
        return [*readonly, "agent_id"] if obj is not None else readonly

    # --- unresolved drift: the form asks which side wins, as the prompt page does ----------------
    def _conflicts(self, request, obj) -> dict[str, dict]:
        if obj is None or obj.pk is None:
            return {}
        cached = getattr(request, "_agent_drift_conflicts", None)
        if cached is None or cached[0] != obj.pk:
            cached = (obj.pk, selectors.drift_conflicts(obj))
            request._agent_drift_conflicts = cached
        return cached[1]

    def get_fieldsets(self, request, obj=None):
        fieldsets = list(super().get_fieldsets(request, obj))
        conflicts = self._conflicts(request, obj)
        if conflicts:
            fieldsets.insert(0, ("Retell changed this agent since the last sync", {
                "fields": [DRIFT_PREFIX + name for name in conflicts],
                "description": "Saving a change pushes the whole agent to Retell. For each field Retell holds "
                               "differently, say which side wins."}))
        return fieldsets

    def get_form(self, request, obj=None, change=False, **kwargs):
        conflicts = self._conflicts(request, obj)
        kwargs["form"] = type("AgentAdminForm", (AgentAdminForm,), {
            "conflicts": conflicts,
            **{DRIFT_PREFIX + name: drift_choice_field(name, values) for name, values in conflicts.items()}})
        return super().get_form(request, obj, change=change, **kwargs)

    def save_related(self, request, form, formsets, change) -> None:
        request._agent_drift_choices = drift_choices_of(form.cleaned_data)
        super().save_related(request, form, formsets, change)

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        agent = getattr(request, "_tenant_admin_obj", None)
        if db_field.name == "voice_id":
            # The voices Retell offers the agent's company (the catalogue for a new agent).
            voices = selectors.retell_voices(agent.company).voices if agent is not None else list(RETELL_VOICES)
            return forms.ChoiceField(label=capfirst(db_field.verbose_name), help_text=db_field.help_text,
                                     choices=retell_voice_choices(voices, agent.voice_id if agent else ""),
                                     initial=db_field.default)
        if db_field.name == "elevenlabs_voice_id":
            return forms.ChoiceField(label=capfirst(db_field.verbose_name), help_text=db_field.help_text,
                                     required=False,
                                     choices=elevenlabs_voice_choices(agent.elevenlabs_voice_id if agent else ""))
        return super().formfield_for_dbfield(db_field, request, **kwargs)

    def formfield_for_choice_field(self, db_field, request, **kwargs):
        if db_field.name == "language":
            kwargs["choices"] = [("", "The company's language"), *Agent.Language.choices]
        return super().formfield_for_choice_field(db_field, request, **kwargs)

    def get_changeform_initial_data(self, request) -> dict:
        """A new agent starts in the language of its company, when the form knows the company
        (the user's only one, or ?company=ID); otherwise "the company's language", filled on save."""
        initial = super().get_changeform_initial_data(request)
        companies = companies_allowing(user=request.user, model=Agent, action="add")
        chosen = str(initial.get("company", ""))
        if chosen.isdigit():
            company = companies.filter(pk=chosen).first()
        else:
            company = companies.first() if not request.user.is_superuser and len(companies) == 1 else None
        initial.setdefault("language", agent_language_for(company.language) if company else "")
        return initial

    @admin.action(description="Rotate the socket token (the old socket URL stops working)")
    def rotate_socket_token(self, request, queryset) -> None:
        actor = Actor.from_request(request)
        allowed = queryset.model.objects.restrict(request.user, "change")
        rotated = 0
        for agent in queryset.filter(pk__in=allowed.values("pk")):
            services.socket_token_rotate(actor=actor, agent=agent)
            rotated += 1
        messages.success(request, f"Rotated the socket token of {rotated} agent(s); Custom LLM agents get the new "
                                  "URL pushed to Retell.")

    def save_instance(self, request, instance, m2m) -> None:
        if instance.pk is None:
            return super().save_instance(request, instance, m2m)
        # A change goes the way of every other interface: a prompt version, then a push to Retell.
        current = Agent.objects.get(pk=instance.pk)
        fields = {name: getattr(instance, name) for name in services.AGENT_FIELDS
                  if _differs(name, getattr(instance, name), getattr(current, name))}
        services.agent_update(actor=Actor.from_request(request), agent=current, fields=fields,
                              note="Changed in the admin", push=_pushes(fields),
                              drift=getattr(request, "_agent_drift_choices", None))


@admin.register(WebhookConfig)
class WebhookConfigAdmin(TenantAdmin):
    list_display = ["company", "url", "events", "apply_to", "deployed_at"]
    list_select_related = ["company"]
    readonly_fields = ["deployed_at"]
    fields = ["company", "url", "events", "secret", "apply_to", "agents", "deployed_at"]
    filter_horizontal = ["agents"]

    def save_instance(self, request, instance, m2m) -> None:
        services.webhook_update(
            actor=Actor.from_request(request), company=instance.company, url=instance.url, events=instance.events,
            apply_to=instance.apply_to, agents=m2m.get("agents", []),
            secret=instance.secret.reveal() if instance.secret is not None else "")


@admin.register(CustomFunction)
class CustomFunctionAdmin(TenantAdmin):
    list_display = ["name", "company", "method", "url", "timeout_ms", "deployed_at"]
    list_select_related = ["company"]
    search_fields = ["name", "description"]
    readonly_fields = ["deployed_at"]
    filter_horizontal = ["agents"]
    fieldsets = [
        (None, {"fields": ["company", "name", "description", "parameters"]}),
        ("Request", {"fields": ["url", "method", "query_params", "args_at_root", "timeout_ms"]}),
        ("Speech", {"fields": ["speak_during_execution", "execution_message", "speak_after_execution"]}),
        ("Deployment", {"fields": ["agents", "deployed_at"]}),
    ]

    def save_instance(self, request, instance, m2m) -> None:
        services.custom_function_save(actor=Actor.from_request(request), function=instance,
                                      agents=m2m.get("agents"))

    def delete_model(self, request, obj) -> None:
        services.custom_function_delete(actor=Actor.from_request(request), function=obj)


@admin.register(PromptVersion)
class PromptVersionAdmin(ReadOnlyTenantAdmin):
    list_display = ["agent", "number", "author_label", "created_at", "note"]
    list_select_related = ["agent", "company"]
    search_fields = ["agent__name", "agent__agent_id", "note"]
    fields = ["company", "agent", "number", "author_label", "created_at", "note", "rolled_back_from",
              "general_prompt", "begin_message", "custom_instructions"]
    readonly_fields = fields


def _json_block(value) -> str:
    return format_html("<pre style='white-space:pre-wrap;margin:0'>{}</pre>", json.dumps(value, indent=2,
                                                                                          ensure_ascii=False))


@admin.register(SyncRun)
class SyncRunAdmin(ReadOnlyTenantAdmin):
    list_display = ["__str__", "company", "kind", "status", "progress", "requested_by", "created_at", "finished_at"]
    list_filter = ["kind", "status"]
    list_select_related = ["company"]
    fields = ["company", "kind", "status", "progress", "requested_by", "params", "created_at", "started_at",
              "finished_at", "outcome_table", "drift_block", "errors"]
    readonly_fields = fields

    @admin.display(description="progress")
    def progress(self, run: SyncRun) -> str:
        return f"{run.done}/{run.total}"

    @admin.display(description="outcome per agent")
    def outcome_table(self, run: SyncRun):
        if not run.outcome:
            return "—"
        rows = format_html_join("", "<tr><td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
                                ((a, o.get("status"), o.get("detail", "")) for a, o in run.outcome.items()))
        return format_html("<table><tr><th>agent</th><th>status</th><th>detail</th></tr>{}</table>", rows)

    @admin.display(description="drift (local vs remote)")
    def drift_block(self, run: SyncRun):
        if not run.drift:
            return "—"
        # The run page shows it field by field, with what is resolved since and the buttons.
        return format_html('<a href="{}?company={}">Open the run page</a>{}', reverse("retell-run", args=[run.pk]),
                           run.company_id, _json_block(run.drift))


# The admin's home page links the Retell Webhook Configuration page.
admin.site.index_template = "admin/voicedesk_index.html"
