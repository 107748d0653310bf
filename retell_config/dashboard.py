"""The "Retell Webhook Configuration" admin page (/admin/retell-webhook-configuration/),
as the seed draws it, and its sub-pages: thin views over the selectors and services.

Every view works in one company (`?company=` or the form's `company`, always one the
user belongs to) and checks the user's role and agent grants before it acts; a viewer
sees every control disabled, a member limited to some agents sees only those.
"""

from __future__ import annotations

import json

import phonenumbers
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Prefetch
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed, JsonResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.http import urlencode
from django.views.decorators.http import require_POST

from audit.actor import Actor
from tenants.models import Company

from . import selectors, services
from .forms import CustomFunctionForm, ImportForm, PromptForm, WebhookForm
from .models import Agent, CustomFunction, SyncRun, WebhookConfig, WebhookEvent
from .protocols import retell_api

EVENT_HELP = {
    "call_started": "Triggered when call begins",
    "call_ended": "Triggered when call completes",
    "call_analyzed": "Triggered after call analysis",
    "transcript_updated": "Triggered on each transcript update",
    "call_transferred": "Triggered on call transfer",
}


# --- helpers --------------------------------------------------------------------------------
def _company(request: HttpRequest) -> Company:
    companies = selectors.companies_for(request.user, "view")
    wanted = request.POST.get("company") or request.GET.get("company")
    if wanted:
        company = companies.filter(pk=wanted).first() if str(wanted).isdigit() else None
        if company is None:
            raise Http404("No such company.")
        return company
    company = companies.order_by("name").first()
    if company is None:
        raise PermissionDenied("You are not a member of any company.")
    return company


def _url(name: str, company: Company, *args, **query) -> str:
    return reverse(f"retell-{name}", args=args) + "?" + urlencode({"company": company.pk, **query})


def _require(allowed: bool, what: str) -> None:
    if not allowed:
        raise PermissionDenied(f"Your role or grants do not allow you to {what}.")


def _agent(request: HttpRequest, company: Company, pk: int, action: str) -> Agent:
    rows = (selectors.agents_changeable if action == "change" else selectors.agents_visible)(
        user=request.user, company=company)
    agent = rows.filter(pk=pk).first()
    if agent is None:
        if action == "change" and selectors.agents_visible(user=request.user, company=company).filter(pk=pk).exists():
            raise PermissionDenied("You may not change this agent.")
        raise Http404("No such agent in this company.")
    return agent


def _run_message(request: HttpRequest, company: Company, text: str, run: SyncRun | None) -> None:
    if run is None:
        messages.success(request, text)
        return
    from django.utils.html import format_html

    messages.success(request, format_html('{} <a href="{}">{} #{}</a>', text, _url("run", company, run.pk),
                                          run.get_kind_display(), run.pk))


def _context(request: HttpRequest, company: Company, title: str, **extra) -> dict:
    return {**admin.site.each_context(request), "title": title, "company": company, **extra}


def _duration(seconds: int) -> str:
    """A setting's seconds as a person says them: "24 hours", "90 minutes", "0 seconds"."""
    for unit, size in (("hours", 3600), ("minutes", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size} {unit}"
    return f"{seconds} seconds"


def pretty_phone(number: str) -> str:
    try:
        return phonenumbers.format_number(phonenumbers.parse(number, None),
                                          phonenumbers.PhoneNumberFormat.INTERNATIONAL)
    except phonenumbers.NumberParseException:
        return number


# --- the page ----------------------------------------------------------------------------------
def dashboard(request: HttpRequest) -> HttpResponse:
    company = _company(request)
    data = selectors.dashboard(user=request.user, company=company)
    config = data["config"]
    # Shown enabled to who may change every agent: what the services allow for all agents.
    every_agent = selectors.changes_every_agent(request.user, company)
    can_webhook = every_agent and selectors.role_allows_in(request.user, company, WebhookConfig, "change")
    agents = [{"row": a, "phones": [pretty_phone(n) for n in a.phone_numbers],
               "functions": [f.name for f in a.custom_functions.all()],
               "may_change": a.pk in data["changeable_agent_ids"]} for a in data["agents"]]
    form = WebhookForm(agents=Agent.objects.none())
    events = [{"value": value, "help": EVENT_HELP[value], "checked": value in config.events}
              for value in WebhookEvent.values]
    return TemplateResponse(request, "retell_config/dashboard.html", _context(
        request, company, "Retell Webhook Configuration",
        companies=list(selectors.companies_for(request.user, "view").order_by("name")),
        status=data["status"], config=config, form=form, events=events,
        selected_agent_ids=data["selected_agent_ids"],
        secret_mask=config.secret.masked if config.secret else "",
        secret_overlap=_duration(settings.RETELL_WEBHOOK_SECRET_OVERLAP_SECONDS),
        retell_ips=settings.RETELL_WEBHOOK_IPS, trusted_proxies=settings.NUM_PROXIES,
        agents=agents, functions=data["functions"], deployed_count=data["deployed_count"],
        last_sync=data["last_sync"], last_run=data["last_run"],
        can_webhook=can_webhook,
        can_sync=every_agent,
        limited=selectors.limited_in(request.user, company),
        can_functions=selectors.role_allows_in(request.user, company, CustomFunction, "change"),
    ))


@require_POST
def webhook_save(request: HttpRequest) -> HttpResponse:
    company = _company(request)
    # Which agents the webhook may reach is the service's to decide (PermissionDenied: 403).
    _require(selectors.role_allows_in(request.user, company, WebhookConfig, "change"), "change the company's webhook")
    form = WebhookForm(request.POST, agents=selectors.agents_changeable(user=request.user, company=company))
    if form.is_valid():
        try:
            with transaction.atomic():
                config, run = services.webhook_update(
                    actor=Actor.from_request(request), company=company, url=form.cleaned_data["url"],
                    events=form.cleaned_data["events"], apply_to=form.cleaned_data["apply_to"],
                    agents=form.cleaned_data["agents"], secret=form.secret_value())
        except ValidationError as exc:
            for message in exc.messages:
                messages.error(request, f"Webhook not saved: {message}")
        else:
            count = len(run.params["agent_ids"]) if run else 0
            _run_message(request, company, f"Webhook saved: {config.url or 'no URL'}, "
                                           f"{len(config.events)} event(s); deploying to {count} agent(s).", run)
    else:
        for field, errors in form.errors.items():
            messages.error(request, f"Webhook not saved: {form.fields[field].label if field in form.fields else field}: "
                                    + " ".join(errors))
    return redirect(_url("dashboard", company))


@require_POST
def sync(request: HttpRequest) -> HttpResponse:
    company = _company(request)
    _require(selectors.role_allows_in(request.user, company, Agent, "change"), "sync every agent")
    run = services.sync_all(actor=Actor.from_request(request), company=company)
    _run_message(request, company, "Sync with Retell started.", run)
    return redirect(_url("run", company, run.pk))


@require_POST
def agent_deploy(request: HttpRequest, pk: int) -> HttpResponse:
    company = _company(request)
    agent = _agent(request, company, pk, "change")
    _require(selectors.role_allows_in(request.user, company, CustomFunction, "view"), "deploy functions")
    with transaction.atomic():
        run = services.custom_functions_deploy(actor=Actor.from_request(request), company=company, agents=[agent])
    _run_message(request, company, f"Deploying functions to {agent.name}.", run)
    return redirect(_url("dashboard", company))


# --- sync runs --------------------------------------------------------------------------------
RESOLVED = {"local": "Resolved: Retell now holds the local value.",
            "remote": "Resolved: Retell's value was taken.",
            "same": "Resolved: both sides hold the same value now."}


def _shown(value) -> dict:
    """A drift value as the page writes it: text as it is, an empty one as "(empty)", anything
    else as JSON (lists and objects indented, in a block)."""
    if isinstance(value, str):
        return {"text": value or "(empty)", "empty": not value, "block": "\n" in value}
    if value is None:
        return {"text": "(none)", "empty": True, "block": False}
    block = isinstance(value, dict | list) and bool(value)
    return {"text": json.dumps(value, indent=2 if block else None, ensure_ascii=False), "empty": False,
            "block": block}


def _drift_row(field: selectors.DriftField) -> dict:
    if field.resolved:
        state = RESOLVED[field.resolved]
    elif field.pullable:
        state = "Differs."
    elif field.pushable:
        state = "Differs; only Push local settles it (a pull does not take it)."
    else:
        state = "Not on Retell: create the agent there with this id, or delete it here."
    return {"field": field.field, "values": [_shown(field.local), _shown(field.remote)], "state": state,
            "open": not field.resolved, "pullable": field.pullable, "pushable": field.pushable}


def run_detail(request: HttpRequest, pk: int) -> HttpResponse:
    company = _company(request)
    run = selectors.sync_run_get(user=request.user, company=company, run_id=pk)
    if run is None:
        raise Http404("No such run.")
    if request.GET.get("format") == "json":
        return JsonResponse({"status": run.status, "finished": run.finished, "done": run.done, "total": run.total,
                             "percent": run.percent})
    visible = {a.agent_id: a for a in selectors.agents_visible(user=request.user, company=company)}
    changeable = set(selectors.agents_changeable(user=request.user, company=company).values_list("agent_id", flat=True))
    config = selectors.webhook_config_get(company=company)
    rows = []
    for agent_id, outcome in run.outcome.items():
        if agent_id not in visible and not request.user.is_superuser:
            continue
        agent = visible.get(agent_id)
        fields = [_drift_row(f) for f in selectors.drift_fields(drift=run.drift.get(agent_id, {}), agent=agent,
                                                                config=config)]
        may_resolve = agent is not None and agent_id in changeable and run.kind == SyncRun.Kind.SYNC_ALL
        rows.append({"agent_id": agent_id, "agent": agent, "outcome": outcome, "fields": fields,
                     "can_pull": may_resolve and any(f["open"] and f["pullable"] for f in fields),
                     "can_push": may_resolve and any(f["open"] and f["pushable"] for f in fields)})
    return TemplateResponse(request, "retell_config/run.html", _context(
        request, company, f"{run.get_kind_display()} #{run.pk}", run=run, rows=rows))


@require_POST
def drift_resolve(request: HttpRequest, pk: int) -> HttpResponse:
    company = _company(request)
    agent = _agent(request, company, pk, "change")
    direction = request.POST.get("direction", "")
    try:
        with transaction.atomic():
            run = services.drift_resolve(actor=Actor.from_request(request), agent=agent, direction=direction)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return redirect(request.POST.get("next") or _url("dashboard", company))
    _run_message(request, company, f"{agent.name}: " + ("Retell's values taken." if direction == "pull"
                                                        else "local values being pushed."), run)
    return redirect(request.POST.get("next") if (request.POST.get("next") or "").startswith("/admin/")
                    else _url("dashboard", company))


# --- custom functions ----------------------------------------------------------------------------
def functions(request: HttpRequest) -> HttpResponse:
    company = _company(request)
    rows = list(CustomFunction.objects.restrict(request.user, "view").filter(company=company)
                .prefetch_related(Prefetch("agents", queryset=selectors.agents_visible(user=request.user,
                                                                                      company=company)))
                .order_by("name"))
    return TemplateResponse(request, "retell_config/functions.html", _context(
        request, company, "Custom Functions", functions=rows, import_form=ImportForm(),
        can_functions=selectors.role_allows_in(request.user, company, CustomFunction, "change"),
        tool_agents=list(selectors.agents_changeable(user=request.user, company=company).order_by("name")),
        endpoint=selectors.custom_function_endpoint()))


def function_edit(request: HttpRequest, pk: int | None = None) -> HttpResponse:
    company = _company(request)
    rows = CustomFunction.objects.restrict(request.user, "view").filter(company=company)
    function = rows.filter(pk=pk).first() if pk else CustomFunction(company=company,
                                                                    url=selectors.custom_function_endpoint())
    if function is None:
        raise Http404("No such function in this company.")
    may_change = selectors.role_allows_in(request.user, company, CustomFunction, "change" if pk else "add")
    agents = selectors.agents_visible(user=request.user, company=company)
    form = CustomFunctionForm(request.POST or None, instance=function, agents=agents)
    if request.method == "POST":
        _require(may_change, "change custom functions")
        if form.is_valid():
            try:
                # The service keeps the links to agents this user cannot see.
                services.custom_function_save(actor=Actor.from_request(request), function=form.save(commit=False),
                                              agents=form.cleaned_data["agents"])
            except ValidationError as exc:
                form.add_error(None, exc)
            else:
                messages.success(request, f"Saved {function.name}. Deploy it to push it to Retell.")
                return redirect(_url("functions", company))
    if not may_change:
        for field in form.fields.values():
            field.disabled = True
    return TemplateResponse(request, "retell_config/function_edit.html", _context(
        request, company, f"Custom function {function.name}" if pk else "New custom function",
        form=form, function=function, may_change=may_change))


@require_POST
def function_delete(request: HttpRequest, pk: int) -> HttpResponse:
    company = _company(request)
    _require(selectors.role_allows_in(request.user, company, CustomFunction, "delete"), "delete custom functions")
    function = CustomFunction.objects.filter(company=company, pk=pk).first()
    if function is None:
        raise Http404("No such function in this company.")
    services.custom_function_delete(actor=Actor.from_request(request), function=function)
    messages.success(request, f"Deleted {function.name}; it stays on Retell until you deploy again.")
    return redirect(_url("functions", company))


@require_POST
def function_validate(request: HttpRequest) -> JsonResponse:
    """The editor's inline check: is this text a parameters schema Retell accepts?"""
    _company(request)
    try:
        value = json.loads(request.body or b"null")
    except ValueError as exc:
        return JsonResponse({"errors": [f"Not JSON: {exc}"]})
    return JsonResponse({"errors": retell_api.parameters_schema_errors(value)})


def functions_export(request: HttpRequest) -> HttpResponse:
    """A download: GET ?format=backup|retell; POST format=elevenlabs&agent=<pk> (it issues the agent
    a new tool key, so it is a change of the agent)."""
    company = _company(request)
    if request.method == "POST":
        fmt = request.POST.get("format", "")
        if fmt != "elevenlabs":
            return HttpResponseNotAllowed(["GET"])
        wanted = request.POST.get("agent", "")
        agent = _agent(request, company, int(wanted) if wanted.isdigit() else 0, "change")
        with transaction.atomic():
            document = services.functions_export_elevenlabs(actor=Actor.from_request(request), company=company,
                                                            agent=agent)
        filename = f"{company.slug}-{agent.agent_id}-elevenlabs-tools.json"
    else:
        fmt = request.GET.get("format", "backup")
        if fmt == "elevenlabs":
            return HttpResponseNotAllowed(["POST"])
        try:
            document = services.functions_export(company=company, fmt=fmt, user=request.user)
        except ValidationError as exc:
            raise Http404(" ".join(exc.messages)) from None
        filename = f"{company.slug}-functions-{fmt}.json"
    response = HttpResponse(json.dumps(document, indent=2, ensure_ascii=False), content_type="application/json")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    # The ElevenLabs file holds a key: not to be kept by any cache on the way.
    response["Cache-Control"] = "no-store"
    return response


@require_POST
def functions_import(request: HttpRequest) -> HttpResponse:
    company = _company(request)
    _require(selectors.role_allows_in(request.user, company, CustomFunction, "change"), "import custom functions")
    form = ImportForm(request.POST, request.FILES)
    if not form.is_valid():
        for errors in form.errors.values():
            messages.error(request, "Import failed: " + " ".join(errors))
        return redirect(_url("functions", company))
    try:
        counts = services.functions_import(actor=Actor.from_request(request), company=company,
                                           document=form.cleaned_data["document"])
    except ValidationError as exc:
        for message in exc.messages:
            messages.error(request, f"Import failed: {message}")
    else:
        messages.success(request, f"Imported: {len(counts['created'])} created, {len(counts['updated'])} updated, "
                                  f"{len(counts['unchanged'])} unchanged"
                         + (f"; unknown agents skipped: {', '.join(sorted(set(counts['unknown_agents'])))}"
                            if counts["unknown_agents"] else "") + ".")
    return redirect(_url("functions", company))


# --- prompts ---------------------------------------------------------------------------------------
def prompt_edit(request: HttpRequest, pk: int) -> HttpResponse:
    company = _company(request)
    agent = _agent(request, company, pk, "view")
    may_change = selectors.agents_changeable(user=request.user, company=company).filter(pk=agent.pk).exists()
    versions = list(selectors.prompt_versions(agent=agent))
    latest = versions[0].number if versions else 0
    initial = {name: getattr(agent, name) for name in PromptForm.AGENT_FIELDS} | {"base_version": latest}
    form = PromptForm(request.POST or None, initial=initial, agent=agent, voices=selectors.retell_voices(company).voices,
                      conflicts=selectors.drift_conflicts(agent))
    if request.method == "POST":
        _require(may_change, "change this agent")
        if form.is_valid():
            fields = {name: form.cleaned_data[name] for name in PromptForm.AGENT_FIELDS}
            try:
                with transaction.atomic():
                    _, version, run = services.agent_update(
                        actor=Actor.from_request(request), agent=agent, fields=fields,
                        note=form.cleaned_data["note"], base_version=form.cleaned_data["base_version"],
                        drift=form.drift_choices())
            except services.DriftConflict as exc:
                form.add_error(None, f"Not saved: {exc} Choose below, then save again.")
            except services.Conflict as exc:
                form.add_error(None, str(exc))
            except ValidationError as exc:
                form.add_error(None, exc)
            else:
                _run_message(request, company, f"{agent.name} saved"
                             + (f" as prompt version {version.number}" if version else "") + "; pushing to Retell.",
                             run)
                return redirect(_url("prompt", company, agent.pk))
    if not may_change:
        for field in form.fields.values():
            field.disabled = True
    by_number = {v.number: v for v in versions}
    diff = None
    a, b = request.GET.get("a"), request.GET.get("b")
    if a and b and a.isdigit() and b.isdigit() and int(a) in by_number and int(b) in by_number:
        old, new = sorted((by_number[int(a)], by_number[int(b)]), key=lambda v: v.number)
        diff = {"old": old, "new": new, "parts": selectors.prompt_diff(old, new)}
    return TemplateResponse(request, "retell_config/prompt.html", _context(
        request, company, f"Edit Prompt: {agent.name}", agent=agent, form=form, versions=versions,
        may_change=may_change, diff=diff, latest=latest,
        first_change_keeps_current=services.first_change_keeps_current(agent)))


@require_POST
def prompt_rollback(request: HttpRequest, pk: int, version_pk: int) -> HttpResponse:
    company = _company(request)
    agent = _agent(request, company, pk, "change")
    version = selectors.prompt_versions(agent=agent).filter(pk=version_pk).first()
    if version is None:
        raise Http404("No such version of this agent.")
    try:
        with transaction.atomic():
            _, new, run = services.prompt_rollback(actor=Actor.from_request(request), version=version)
    except services.DriftConflict as exc:
        messages.error(request, f"Not rolled back: {exc} Choose on this page (save), then roll back.")
        return redirect(_url("prompt", company, agent.pk))
    _run_message(request, company, f"Rolled back to v{version.number}"
                 + (f" as v{new.number}" if new else " (nothing changed)") + ".", run)
    return redirect(_url("prompt", company, agent.pk))


def _view(fn):
    return admin.site.admin_view(fn)


urlpatterns = [
    path("", _view(dashboard), name="retell-dashboard"),
    path("webhook/", _view(webhook_save), name="retell-webhook"),
    path("sync/", _view(sync), name="retell-sync"),
    path("runs/<int:pk>/", _view(run_detail), name="retell-run"),
    path("agents/<int:pk>/deploy/", _view(agent_deploy), name="retell-agent-deploy"),
    path("agents/<int:pk>/resolve/", _view(drift_resolve), name="retell-resolve"),
    path("agents/<int:pk>/prompt/", _view(prompt_edit), name="retell-prompt"),
    path("agents/<int:pk>/prompt/rollback/<int:version_pk>/", _view(prompt_rollback), name="retell-rollback"),
    path("functions/", _view(functions), name="retell-functions"),
    path("functions/new/", _view(function_edit), name="retell-function-new"),
    path("functions/<int:pk>/", _view(function_edit), name="retell-function"),
    path("functions/<int:pk>/delete/", _view(function_delete), name="retell-function-delete"),
    path("functions/validate/", _view(function_validate), name="retell-function-validate"),
    path("functions/export/", _view(functions_export), name="retell-functions-export"),
    path("functions/import/", _view(functions_import), name="retell-functions-import"),
]
