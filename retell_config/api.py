"""REST API resources of retell_config (/api/v1/): agents (read, change, deploy, sync), custom
functions, prompt versions (list, diff, roll back) and sync runs.

Every write is the service the admin's configuration page and the JSON-RPC gateway call
(retell_config.services), so the same rights, drift rules and audit entries apply; what has to
reach Retell becomes a SyncRun, answered 202 and executed by Celery after the commit.
Conventions: api.base.
"""

from __future__ import annotations

import django_filters
from django.db import transaction
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, OpenApiTypes, extend_schema, extend_schema_view
from rest_framework import exceptions, serializers, status
from rest_framework.decorators import action
from rest_framework.response import Response

from api.filters import TenantFilterSet
from api.base import TenantViewSet, WritableViewSet
from api.errors import ApiError, conflict
from api.schema import Error
from api.serializers import OptionalURLField, TenantSerializer
from tenants.models import Company

from . import selectors, services
from .client import circuit_for
from .models import Agent, CustomFunction, PromptVersion, SyncRun


def _retell_reachable(company: Company) -> None:
    """Refuse a change that must reach Retell while the company's circuit is open, as the gateway does."""
    state = circuit_for(company.pk).state()
    if state.status == "disconnected":
        raise ApiError(status.HTTP_503_SERVICE_UNAVAILABLE, "retell_disconnected",
                       "Retell is disconnected for this company (circuit open): "
                       f"{state.last_error or 'repeated failures'}. Try again later.",
                       ) from None


# --- sync runs ----------------------------------------------------------------------------------
class SyncRunSerializer(TenantSerializer):
    percent = serializers.IntegerField(read_only=True, help_text="0-100; 100 once finished.")

    class Meta:
        model = SyncRun
        fields = ["id", "company", "kind", "status", "requested_by", "params", "total", "done", "percent", "outcome",
                  "drift", "errors", "created_at", "started_at", "finished_at"]
        read_only_fields = fields


class SyncRunFilter(TenantFilterSet):
    class Meta:
        model = SyncRun
        fields = ["company", "kind", "status"]


@extend_schema_view(
    list=extend_schema(summary="List sync runs", description="Pushes to and pulls from Retell, newest first."),
    retrieve=extend_schema(summary="Read a sync run", description="Progress, outcome per agent, drift, errors."),
)
class SyncRunViewSet(TenantViewSet):
    model = SyncRun
    serializer_class = SyncRunSerializer
    filterset_class = SyncRunFilter
    ordering = ("-created_at", "-id")
    http_method_names = ["get", "head", "options"]


def _accepted(run: SyncRun | None, request) -> Response:
    data = SyncRunSerializer(run, context={"request": request}).data if run is not None else None
    return Response({"sync_run": data}, status=status.HTTP_202_ACCEPTED)


class QueuedRunSerializer(serializers.Serializer):
    sync_run = SyncRunSerializer(allow_null=True, help_text="The run that takes the change to Retell; follow it "
                                                            "at /api/v1/sync-runs/{id}/.")


# --- agents ---------------------------------------------------------------------------------------
class AgentSerializer(TenantSerializer):
    prompt_version = serializers.SerializerMethodField(help_text="The number of the current prompt version; 0 "
                                                                 "before the first tracked change.")
    custom_functions = serializers.SerializerMethodField(help_text="The names of the functions linked to it.")
    unresolved_drift = serializers.SerializerMethodField(
        help_text="Per field a sync found changed on Retell and a push would overwrite: {local, remote, "
                  "can_take_remote}. A PATCH of such a field needs `drift` to say which side wins.")

    class Meta:
        model = Agent
        fields = ["id", "company", "agent_id", "name", "phone_numbers", "response_engine", "llm_id", "dialog_engine",
                  "language", "voice_id", "voice_speed", "elevenlabs_voice_id", "voice_stability",
                  "voice_similarity_boost", "begin_message", "general_prompt", "custom_instructions", "webhook_url",
                  "prompt_version", "custom_functions", "unresolved_drift", "synced_at", "created_at", "updated_at"]
        read_only_fields = fields

    def get_prompt_version(self, agent: Agent) -> int:
        return agent.prompt_versions.order_by("-number").values_list("number", flat=True).first() or 0

    def get_custom_functions(self, agent: Agent) -> list[str]:
        return sorted(agent.custom_functions.values_list("name", flat=True))

    def get_unresolved_drift(self, agent: Agent) -> dict[str, dict]:
        return selectors.drift_conflicts(agent)


class AgentChangeSerializer(serializers.Serializer):
    """The fields the configuration page (and the gateway's updateAgent) edit."""

    name = serializers.CharField(max_length=200, required=False)
    general_prompt = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)
    begin_message = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)
    custom_instructions = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)
    voice_id = serializers.CharField(max_length=128, required=False,
                                     help_text="A voice Retell offers the company (its voice list).")
    voice_speed = serializers.FloatField(min_value=0.5, max_value=2.0, required=False)
    elevenlabs_voice_id = serializers.CharField(max_length=64, required=False, allow_blank=True)
    voice_stability = serializers.FloatField(min_value=0, max_value=1, required=False)
    voice_similarity_boost = serializers.FloatField(min_value=0, max_value=1, required=False)
    language = serializers.ChoiceField(choices=Agent.Language.choices, required=False)
    webhook_url = OptionalURLField(max_length=200, required=False, allow_blank=True)
    note = serializers.CharField(max_length=300, required=False, allow_blank=True, default="",
                                 help_text="What changed and why, kept with a new prompt version.")
    drift = serializers.DictField(child=serializers.ChoiceField(choices=services.DRIFT_SIDES), required=False,
                                  help_text='Per unresolved drift field, "local" (ours wins) or "remote" (Retell\'s).')

    def validate(self, attrs):
        if not set(attrs) - {"note", "drift"}:
            raise serializers.ValidationError("Name at least one field to change.")
        return attrs


class AgentDeploySerializer(serializers.Serializer):
    functions = serializers.ListField(child=serializers.CharField(max_length=64), required=False,
                                      help_text="Names of the company's functions to link first; empty: the "
                                                "functions already linked to the agent.")


class CompanyRef(serializers.Serializer):
    company = serializers.PrimaryKeyRelatedField(queryset=Company.objects.none())

    def get_fields(self):
        fields = super().get_fields()
        fields["company"].queryset = Company.objects.restrict(getattr(self.context.get("request"), "user", None),
                                                              "view")
        return fields


class AgentFilter(TenantFilterSet):
    class Meta:
        model = Agent
        fields = ["company", "language", "response_engine"]


DRIFT_CONFLICT = OpenApiResponse(Error, description="drift_conflict: Retell changed a field since the last sync; "
                                                    "say in `drift` which side wins.")


@extend_schema_view(
    list=extend_schema(summary="List agents", description="A member limited to some agents sees only those."),
    retrieve=extend_schema(summary="Read an agent"),
    partial_update=extend_schema(
        summary="Change an agent", request=AgentChangeSerializer,
        responses={200: AgentSerializer, 409: DRIFT_CONFLICT},
        description="As the configuration page saves it: a change of prompt, greeting or instructions is a new "
                    "prompt version; the agent is then pushed to Retell (see /sync-runs/). 409 drift_conflict "
                    "when a sync found a field changed on Retell and `drift` does not say which side wins."),
)
class AgentViewSet(TenantViewSet):
    model = Agent
    serializer_class = AgentSerializer
    filterset_class = AgentFilter
    lookup_field = "agent_id"
    lookup_value_regex = r"[A-Za-z0-9_-]+"
    ordering = ("name", "id")
    http_method_names = ["get", "post", "patch", "head", "options"]
    extra_errors = {"partial_update": [409, 503], "deploy": [503], "sync": [503]}

    def partial_update(self, request, *args, **kwargs):
        body = AgentChangeSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = dict(body.validated_data)
        note, drift = data.pop("note", ""), data.pop("drift", {})
        with transaction.atomic():
            agent = self.locked_object(if_match_required=True)
            _retell_reachable(agent.company)
            try:
                agent, _version, _run = services.agent_update(actor=self.actor, agent=agent, fields=data, note=note,
                                                               drift=drift)
            except services.DriftConflict as exc:
                raise conflict("drift_conflict", str(exc), drift=exc.fields) from None
            except services.Conflict as exc:
                raise conflict("version_conflict", str(exc)) from None
        return self.row_response(self.refreshed(agent))

    @extend_schema(summary="Deploy the agent's custom functions", request=AgentDeploySerializer,
                   responses={202: QueuedRunSerializer},
                   description="Writes the functions linked to the agent (and those named, linked first) into its "
                               "Retell LLM, as the configuration page's Deploy does.")
    @action(detail=True, methods=["post"], required="change")
    def deploy(self, request, agent_id=None):
        body = AgentDeploySerializer(data=request.data)
        body.is_valid(raise_exception=True)
        with transaction.atomic():
            agent = self.locked_object(if_match_required=False)
            _retell_reachable(agent.company)
            functions = None
            names = body.validated_data.get("functions")
            if names is not None:
                functions = list(CustomFunction.objects.filter(company=agent.company, name__in=names))
                missing = sorted(set(names) - {f.name for f in functions})
                if missing:
                    raise exceptions.ValidationError({"functions": [f"No function {missing[0]} in this company."]})
            run = services.custom_functions_deploy(actor=self.actor, company=agent.company, agents=[agent],
                                                   functions=functions)
        return _accepted(run, request)

    @extend_schema(summary="Sync all agents of a company with Retell", request=CompanyRef,
                   responses={202: QueuedRunSerializer},
                   description="Pulls agents, their LLMs and numbers; takes what only Retell changed and records "
                               "the rest as drift. Touches every agent: a member limited to some agents may not.")
    @action(detail=False, methods=["post"], required="change")
    def sync(self, request):
        body = CompanyRef(data=request.data, context=self.get_serializer_context())
        body.is_valid(raise_exception=True)
        company = body.validated_data["company"]
        if not selectors.role_allows_in(request.user, company, Agent, "change"):
            raise exceptions.PermissionDenied(f"Your role may not change the agents of {company.name}.")
        _retell_reachable(company)
        return _accepted(services.sync_all(actor=self.actor, company=company), request)


# --- custom functions --------------------------------------------------------------------------------
class CustomFunctionSerializer(TenantSerializer):
    agents = serializers.SlugRelatedField(
        slug_field="agent_id", many=True, required=False, queryset=Agent.objects.none(),
        help_text="The Retell agent ids it is linked to (those you can see; links to others are kept).")

    class Meta:
        model = CustomFunction
        fields = ["id", "company", "name", "description", "parameters", "url", "method", "query_params",
                  "speak_during_execution", "speak_after_execution", "execution_message", "timeout_ms",
                  "args_at_root", "agents", "deployed_at", "created_at", "updated_at"]
        read_only_fields = ["deployed_at", "created_at", "updated_at"]

    def _user(self):
        return getattr(self.context.get("request"), "user", None)

    def get_fields(self):
        fields = super().get_fields()
        fields["agents"].child_relation.queryset = Agent.objects.restrict(self._user(), "view")
        return fields

    def to_representation(self, instance):
        data = super().to_representation(instance)
        visible = self.context.setdefault(
            "_visible_agents", set(Agent.objects.restrict(self._user(), "view").values_list("pk", flat=True)))
        data["agents"] = sorted(a.agent_id for a in instance.agents.all() if a.pk in visible)
        return data


class CustomFunctionFilter(TenantFilterSet):
    agent = django_filters.CharFilter(field_name="agents__agent_id", help_text="Linked to this Retell agent id.")

    class Meta:
        model = CustomFunction
        fields = ["company", "name", "agent"]


@extend_schema_view(
    list=extend_schema(summary="List custom functions"),
    retrieve=extend_schema(summary="Read a custom function"),
    create=extend_schema(summary="Add a custom function",
                         description="`parameters` is a JSON Schema with type object at the top, checked as the "
                                     "admin checks it; `agents` links it (deploy to push it to Retell)."),
    update=extend_schema(summary="Replace a custom function"),
    partial_update=extend_schema(summary="Change a custom function"),
    destroy=extend_schema(summary="Delete a custom function", description="It is unlinked from every agent: you "
                                                                          "must be allowed to change each."),
)
class CustomFunctionViewSet(WritableViewSet):
    model = CustomFunction
    serializer_class = CustomFunctionSerializer
    filterset_class = CustomFunctionFilter
    ordering = ("name", "id")

    def get_queryset(self):
        return super().get_queryset().prefetch_related("agents").distinct()

    def perform_add(self, company, data):
        data = dict(data)
        agents = data.pop("agents", None)
        function = CustomFunction(**{**data, "company": company})
        return services.custom_function_save(actor=self.actor, function=function, agents=agents)

    def perform_change(self, obj, data):
        data = dict(data)
        agents = data.pop("agents", None)
        for name, value in data.items():
            if name != "company":
                setattr(obj, name, value)
        return services.custom_function_save(actor=self.actor, function=obj, agents=agents)

    def perform_remove(self, obj) -> None:
        services.custom_function_delete(actor=self.actor, function=obj)


# --- prompt versions -----------------------------------------------------------------------------
class PromptVersionSerializer(TenantSerializer):
    agent = serializers.SlugRelatedField(slug_field="agent_id", read_only=True, help_text="Its Retell agent id.")
    rolled_back_from = serializers.PrimaryKeyRelatedField(read_only=True, allow_null=True)

    class Meta:
        model = PromptVersion
        fields = ["id", "company", "agent", "number", "general_prompt", "begin_message", "custom_instructions",
                  "author_label", "note", "rolled_back_from", "created_at"]
        read_only_fields = fields


class DiffLine(serializers.Serializer):
    text = serializers.CharField()
    kind = serializers.ChoiceField(choices=["add", "del", "hunk", "same"])


class DiffPart(serializers.Serializer):
    field = serializers.CharField()
    label = serializers.CharField()
    lines = DiffLine(many=True)


class PromptDiffSerializer(serializers.Serializer):
    old = PromptVersionSerializer(allow_null=True)
    new = PromptVersionSerializer()
    parts = DiffPart(many=True, help_text="Per text, a unified diff from old to new; empty lines: unchanged.")


class RollbackSerializer(serializers.Serializer):
    prompt_version = PromptVersionSerializer(allow_null=True, help_text="The new version (null: the texts were "
                                                                        "already those of the version).")
    sync_run = SyncRunSerializer(allow_null=True)


class PromptVersionFilter(TenantFilterSet):
    agent = django_filters.CharFilter(field_name="agent__agent_id", help_text="A Retell agent id.")

    class Meta:
        model = PromptVersion
        fields = ["company", "agent"]


@extend_schema_view(
    list=extend_schema(summary="List prompt versions", description="Newest first; filter by agent."),
    retrieve=extend_schema(summary="Read a prompt version"),
)
class PromptVersionViewSet(TenantViewSet):
    model = PromptVersion
    serializer_class = PromptVersionSerializer
    filterset_class = PromptVersionFilter
    select_related = ("company", "agent")
    ordering = ("-created_at", "-id")
    http_method_names = ["get", "post", "head", "options"]
    extra_errors = {"rollback": [409, 503], "diff": [400]}

    @extend_schema(summary="Compare a prompt version with another", responses={200: PromptDiffSerializer},
                   parameters=[OpenApiParameter("against", OpenApiTypes.INT, description="The id of the version "
                                                "to compare with (of the same agent); default: the one before.")])
    @action(detail=True, methods=["get"])
    def diff(self, request, pk=None):
        new = self.get_object()
        against = request.query_params.get("against")
        versions = self.get_queryset().filter(agent_id=new.agent_id)
        if against is not None:
            if not against.isdigit():
                raise exceptions.ValidationError({"against": ["A prompt version id."]})
            old = versions.filter(pk=int(against)).first()
            if old is None:
                raise exceptions.ValidationError({"against": ["No such version of this agent."]})
        else:
            old = versions.filter(number__lt=new.number).order_by("-number").first()
        empty = PromptVersion(number=0, general_prompt="", begin_message="", custom_instructions="")
        context = self.get_serializer_context()
        return Response({"old": PromptVersionSerializer(old, context=context).data if old else None,
                         "new": PromptVersionSerializer(new, context=context).data,
                         "parts": selectors.prompt_diff(old or empty, new)})

    @extend_schema(summary="Roll back to a prompt version", request=None,
                   responses={200: RollbackSerializer, 409: DRIFT_CONFLICT},
                   description="Makes the version's texts current again, as a new version, and pushes the agent "
                               "to Retell. You must be allowed to change the agent.")
    @action(detail=True, methods=["post"])
    def rollback(self, request, pk=None):
        with transaction.atomic():
            version = self.locked_object(if_match_required=False)
            if not selectors.agents_changeable(user=request.user, company=version.company).filter(
                    pk=version.agent_id).exists():
                raise exceptions.PermissionDenied("You may not change this agent.")
            _retell_reachable(version.company)
            try:
                _agent, new, run = services.prompt_rollback(actor=self.actor, version=version)
            except services.DriftConflict as exc:
                raise conflict("drift_conflict", str(exc), drift=exc.fields) from None
        context = self.get_serializer_context()
        return Response({"prompt_version": PromptVersionSerializer(new, context=context).data if new else None,
                         "sync_run": SyncRunSerializer(run, context=context).data if run else None})
