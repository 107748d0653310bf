"""The experiments' admin: created from an agent's page (the agent's "Prompt A/B testing" links),
variants edited inline while a draft, and Start, Stop and Promote buttons that call the services.
The change page shows the results first: the minimum sample, per variant the calls, every metric
with its interval, the p-value and per-turn latency, and the charts."""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponseNotAllowed, HttpResponseRedirect
from django.urls import path, reverse
from django.utils.html import format_html

from audit.actor import Actor
from retell_config.models import Agent
from tenants.admin import TenantAdmin

from . import charts, selectors, services
from .models import Experiment, Variant


class AgentFilter(admin.SimpleListFilter):
    """The agents the user may see (never another company's)."""

    title = "agent"
    parameter_name = "agent"

    def lookups(self, request, model_admin):
        return [(a.pk, a.name) for a in Agent.objects.restrict(request.user, "view").order_by("name")]

    def queryset(self, request, queryset):
        value = self.value()
        return queryset.filter(agent_id=value) if value and value.isdigit() else queryset


class VariantInline(admin.StackedInline):
    model = Variant
    extra = 2
    min_num = 2
    fields = ["name", "weight", "source_version", "begin_message", "general_prompt", "custom_instructions",
              "voice_id", "elevenlabs_voice_id", "dialog_engine", "retell_agent_version"]
    readonly_fields = ["retell_agent_version"]

    def _draft(self, obj) -> bool:
        return obj is None or obj.status == Experiment.Status.DRAFT

    def get_readonly_fields(self, request, obj=None):
        return self.fields if not self._draft(obj) else self.readonly_fields

    def get_extra(self, request, obj=None, **kwargs):
        return self.extra if obj is None else 0

    def has_add_permission(self, request, obj=None) -> bool:
        return self._draft(obj) and self.parent_admin_may("add", request, obj)

    def has_change_permission(self, request, obj=None) -> bool:
        return self._draft(obj) and self.parent_admin_may("change", request, obj)

    def has_delete_permission(self, request, obj=None) -> bool:
        return self._draft(obj) and self.parent_admin_may("change", request, obj)

    def has_view_permission(self, request, obj=None) -> bool:
        return self.parent_admin_may("view", request, obj)

    def parent_admin_may(self, action: str, request, obj) -> bool:
        parent = self.admin_site._registry[Experiment]
        if action == "add" and obj is None:
            return parent.has_add_permission(request)
        return getattr(parent, f"has_{'view' if action == 'view' else 'change'}_permission")(request, obj)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        field = super().formfield_for_foreignkey(db_field, request, **kwargs)
        if db_field.name == "source_version":
            parent = getattr(request, "_tenant_admin_obj", None)
            from retell_config.models import PromptVersion

            versions = PromptVersion.objects.restrict(request.user, "view").select_related("agent")
            agent_id = parent.agent_id if parent is not None else request.GET.get("agent")
            field.queryset = versions.filter(agent_id=agent_id) if str(agent_id or "").isdigit() else versions.none()
            field.label_from_instance = lambda v: f"v{v.number} — {v.note or v.created_at:%Y-%m-%d %H:%M}"
        return field


class ExperimentForm(forms.ModelForm):
    class Meta:
        model = Experiment
        fields = "__all__"
        widgets = {"starts_at": forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
                   "ends_at": forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M")}


@admin.register(Experiment)
class ExperimentAdmin(TenantAdmin):
    form = ExperimentForm
    list_display = ["name", "agent", "status", "primary_metric", "started_at", "stopped_at"]
    list_filter = ["status", AgentFilter]
    list_select_related = ["agent", "company"]
    search_fields = ["name", "agent__name"]
    inlines = [VariantInline]
    fieldsets = [
        (None, {"fields": ["company", "agent", "name", "status"]}),
        ("What decides", {"fields": ["primary_metric", "baseline", "minimum_detectable_effect"]}),
        ("When", {"fields": ["starts_at", "ends_at", "started_at", "stopped_at"]}),
        ("Outcome", {"fields": ["winner", "promoted_version", "retell_error"]}),
    ]
    readonly_fields = ["status", "started_at", "stopped_at", "winner", "promoted_version", "retell_error"]

    def get_readonly_fields(self, request, obj=None):
        readonly = list(super().get_readonly_fields(request, obj))
        return [*readonly, "agent"] if obj is not None else readonly

    def has_delete_permission(self, request, obj=None) -> bool:
        # A running experiment is stopped first, so Retell's split and the assignment end with it.
        if obj is not None and obj.status == Experiment.Status.RUNNING:
            return False
        return super().has_delete_permission(request, obj)

    def get_changeform_initial_data(self, request) -> dict:
        initial = super().get_changeform_initial_data(request)
        agent_id = str(initial.get("agent", ""))
        agent = Agent.objects.restrict(request.user, "change").filter(pk=agent_id).first() \
            if agent_id.isdigit() else None
        if agent is not None:
            initial["company"] = agent.company_id
            initial.setdefault("name", f"{agent.name}: prompt test")
        return initial

    def save_formset(self, request, form, formset, change) -> None:
        actor = Actor.from_request(request)
        for variant in formset.save(commit=False):
            variant.company_id = form.instance.company_id
            services.variant_save(actor=actor, variant=variant)
        for variant in formset.deleted_objects:
            from audit.services import instance_delete

            instance_delete(actor=actor, instance=variant)

    # --- results and buttons ----------------------------------------------------------------------
    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = dict(extra_context or {})
        experiment = self.get_object(request, object_id) if object_id else None
        if experiment is not None:
            results = selectors.experiment_results(experiment=experiment)
            extra_context.update(
                results=results, primary_chart=charts.primary_chart(results),
                latency_chart=charts.latency_chart(results), may_act=self.has_change_permission(request, experiment),
                Status=Experiment.Status)
        return super().change_view(request, object_id, form_url, extra_context)

    def get_urls(self):
        info = self.opts.app_label, self.opts.model_name
        wrap = self.admin_site.admin_view
        return [path("<path:object_id>/start/", wrap(self.start_view), name="%s_%s_start" % info),
                path("<path:object_id>/stop/", wrap(self.stop_view), name="%s_%s_stop" % info),
                path("<path:object_id>/promote/", wrap(self.promote_view), name="%s_%s_promote" % info),
                path("<path:object_id>/scenarios/", wrap(self.scenarios_view), name="%s_%s_scenarios" % info),
                *super().get_urls()]

    def _act(self, request, object_id, act, done: str):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        experiment = self.get_object(request, object_id)
        if not self.has_change_permission(request, experiment):
            raise PermissionDenied("You may look at this experiment, not change it.")
        try:
            act(Actor.from_request(request), experiment)
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
        else:
            messages.success(request, done.format(name=experiment.name))
        return HttpResponseRedirect(reverse("admin:experiments_experiment_change", args=[experiment.pk]))

    def start_view(self, request, object_id):
        return self._act(request, object_id, lambda actor, e: services.experiment_start(actor=actor, experiment=e),
                         "{name} is running: its agent's calls are split between its variants.")

    def stop_view(self, request, object_id):
        return self._act(request, object_id, lambda actor, e: services.experiment_stop(actor=actor, experiment=e),
                         "{name} is stopped: calls hear the agent's live prompt again.")

    def scenarios_view(self, request, object_id):
        return self._act(request, object_id,
                         lambda actor, e: services.experiment_scenarios_run(actor=actor, experiment=e),
                         "The saved scenarios of {name}'s agent are running against each variant; the pass "
                         "rates appear in the results as the runs finish.")

    def promote_view(self, request, object_id):
        def promote(actor, experiment):
            variant = experiment.variants.filter(pk=request.POST.get("variant") or 0).first()
            if variant is None:
                raise ValidationError("Choose one of this experiment's variants to promote.")
            services.experiment_promote(actor=actor, experiment=experiment, variant=variant)

        return self._act(request, object_id, promote,
                         "{name} is closed: the promoted variant is now the agent's live prompt.")


def agent_experiments_links(agent: Agent):
    """The agent page's links to its experiments (retell_config.admin shows them)."""
    if agent is None or agent.pk is None:
        return "Save the agent first."
    count = Experiment.objects.filter(agent=agent).count()
    running = Experiment.objects.filter(agent=agent, status=Experiment.Status.RUNNING).first()
    return format_html(
        '<a href="{}?agent={}">Experiments of this agent ({})</a> · <a href="{}?agent={}">Add an experiment</a>{}',
        reverse("admin:experiments_experiment_changelist"), agent.pk, count,
        reverse("admin:experiments_experiment_add"), agent.pk,
        format_html(' · running: <a href="{}">{}</a>', reverse("admin:experiments_experiment_change",
                                                              args=[running.pk]), running.name) if running else "")
