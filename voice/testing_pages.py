"""The admin pages of the call simulator and the saved scenarios, beside the Retell Webhook
Configuration page (each agent's Test button opens the simulator).

Thin views: the company, role and agent grants are checked with the configuration page's own
helpers (retell_config.dashboard); a viewer sees the pages, never a button that calls or runs.
"""

from __future__ import annotations

import uuid

from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.views.decorators.http import require_POST

from audit.actor import Actor
from retell_config import selectors as config_selectors
from retell_config.dashboard import _agent, _company, _context, _url

from .models import Scenario, ScenarioRun
from .scenarios import batch_runs, scenario_runs_start


def call_simulator(request: HttpRequest, pk: int) -> HttpResponse:
    """GET: the chat with one agent over the real socket, and the agent's saved scenarios."""
    company = _company(request)
    agent = _agent(request, company, pk, "view")
    may_call = config_selectors.agents_changeable(user=request.user, company=company).filter(pk=agent.pk).exists()
    scenarios = list(Scenario.objects.restrict(request.user, "view").filter(agent=agent).order_by("name"))
    runs = list(ScenarioRun.objects.restrict(request.user, "view").filter(scenario__agent=agent)
                .select_related("scenario").order_by("-created_at")[:10])
    return TemplateResponse(request, "voice/call_simulator.html", _context(
        request, company, f"Call Simulator: {agent.name}", agent=agent, may_call=may_call, scenarios=scenarios,
        runs=runs, socket_path=f"/admin/call-simulator/{agent.pk}/",
        scenario_add=reverse("admin:voice_scenario_add") + f"?agent={agent.pk}&company={company.pk}"))


@require_POST
def scenarios_run(request: HttpRequest, pk: int) -> HttpResponse:
    """POST scenario=<pk>… (or all=1: all of the agent's; draft=1 with the prompt draft's texts: all of
    them against the draft): queue the runs. Answers JSON {"batch", "url", "runs"} to fetch() (Accept: application/json)
    and errors as {"error": {"code", "message"}} (403, 400); a form post is redirected to the run page."""
    company = _company(request)
    wants_json = "application/json" in request.headers.get("Accept", "")
    may_run = config_selectors.agents_changeable(user=request.user, company=company).filter(pk=pk).exists()
    agent = _agent(request, company, pk, "view")
    if not may_run:
        return _refuse(wants_json, 403, "forbidden", "Your role lets you look at this agent's scenarios, not run them.",
                       request, company, agent)
    every = Scenario.objects.restrict(request.user, "view").filter(agent=agent)
    chosen = [value for value in request.POST.getlist("scenario") if value.isdigit()]
    run_all = request.POST.get("all") == "1" or request.POST.get("draft") == "1"
    scenarios = every if run_all else every.filter(pk__in=chosen)
    draft = ({name: request.POST.get(name, "") for name in ScenarioRun.DRAFT_FIELDS}
             if request.POST.get("draft") == "1" else None)
    try:
        runs = scenario_runs_start(actor=Actor.from_request(request), scenarios=list(scenarios.order_by("name")),
                                   prompt_draft=draft, agent=agent)
    except ValidationError as error:
        hint = " Add scenarios to this agent first." if not every.exists() else ""
        return _refuse(wants_json, 400, "no_scenarios" if not scenarios.exists() else "invalid",
                       " ".join(error.messages) + hint, request, company, agent)
    url = _url("scenario-batch", company, runs[0].batch)
    if wants_json:
        return JsonResponse({"batch": str(runs[0].batch), "url": url, "runs": len(runs)}, status=202)
    messages.success(request, f"{len(runs)} scenario run(s) queued.")
    return redirect(url)


def _refuse(wants_json: bool, status: int, code: str, message: str, request, company, agent) -> HttpResponse:
    if wants_json:
        return JsonResponse({"error": {"code": code, "message": message}}, status=status)
    messages.error(request, message)
    return redirect(_url("call-simulator", company, agent.pk))


def scenario_batch(request: HttpRequest, batch: uuid.UUID) -> HttpResponse:
    """The runs started together, with their progress, transcripts and verdicts (?format=json: the
    progress as {"finished", "runs": [{id, scenario, status, progress, total, results, error}]})."""
    company = _company(request)
    runs = [run for run in batch_runs(user=request.user, batch=batch) if run.company_id == company.pk]
    if not runs:
        raise Http404("No such scenario run.")
    if request.GET.get("format") == "json":
        return JsonResponse({"finished": all(r.finished for r in runs), "runs": [_run_json(r) for r in runs]})
    agent = runs[0].scenario.agent
    return TemplateResponse(request, "voice/scenario_batch.html", _context(
        request, company, f"Scenario runs: {agent.name}", agent=agent, runs=runs,
        finished=all(r.finished for r in runs), against=runs[0].against))


def _run_json(run: ScenarioRun) -> dict:
    return {"id": run.pk, "scenario": run.scenario.name, "status": run.status,
            "status_label": run.get_status_display(), "progress": run.progress, "total": run.total,
            "results": run.results, "error": run.error, "transcript": run.transcript, "call_id": run.call_id}


def _view(fn):
    return admin.site.admin_view(fn)


urlpatterns = [
    path("agents/<int:pk>/simulator/", _view(call_simulator), name="retell-call-simulator"),
    path("agents/<int:pk>/scenarios/run/", _view(scenarios_run), name="retell-scenarios-run"),
    path("scenario-runs/<uuid:batch>/", _view(scenario_batch), name="retell-scenario-batch"),
]
