"""The admin's webhook tester and function simulator pages (under the Retell Webhook
Configuration page): thin views over voice.tester.

The pages are admin views; their actions are JSON endpoints the pages call with fetch:
answers `{"error": {"code", "message"}}` with 400 (bad input), 403 (the user's role or grants
do not allow sending: a viewer may look, not send), 404 (no such company, agent or function
for this user). Every view works in one company (`?company=`), as the dashboard's do.
"""

from __future__ import annotations

import functools
import json

from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse

from audit.actor import Actor
from retell_config import selectors as config_selectors
from retell_config.dashboard import _company, _context, _view
from retell_config.models import Agent, CustomFunction
from tenants.models import Company

from . import tester
from .views import error_response


def json_errors(view=None, *, method: str = "GET"):
    """A JSON endpoint answering `method`: another method, refusals, unknown rows and missing
    rights answer as JSON errors."""
    if view is None:
        return functools.partial(json_errors, method=method)

    @functools.wraps(view)
    def wrapper(request, *args, **kwargs):
        if request.method != method:
            response = error_response(405, "method_not_allowed", f"Only {method} is accepted here.")
            response["Allow"] = method
            return response
        try:
            return view(request, *args, **kwargs)
        except tester.TesterRefused as exc:
            return error_response(exc.status, exc.code, exc.message)
        except Http404 as exc:
            return error_response(404, "not_found", str(exc) or "Not found.")
        except PermissionDenied as exc:
            return error_response(403, "forbidden", str(exc) or "You may not do this.")
    return wrapper


def _body(request: HttpRequest) -> dict:
    try:
        data = json.loads(request.body or b"{}")
    except ValueError:
        raise tester.TesterRefused("bad_json", "The request body is not JSON.") from None
    if not isinstance(data, dict):
        raise tester.TesterRefused("bad_json", "The request body must be a JSON object.")
    return data


def _pk(value) -> int:
    return int(value) if isinstance(value, int) or (isinstance(value, str) and value.isdigit()) else 0


def _agent_to_send(request: HttpRequest, company: Company, pk) -> Agent:
    """An agent the user may send tests for (may change); 403 when only visible, 404 when not."""
    agent = config_selectors.agents_changeable(user=request.user, company=company).filter(pk=_pk(pk)).first()
    if agent is None:
        if config_selectors.agents_visible(user=request.user, company=company).filter(pk=_pk(pk)).exists():
            raise PermissionDenied("Your role or grants let you look at this agent's tests, not send them.")
        raise Http404("No such agent in this company.")
    return agent


def _agent_seen(request: HttpRequest, company: Company, pk) -> Agent:
    agent = config_selectors.agents_visible(user=request.user, company=company).filter(pk=_pk(pk)).first()
    if agent is None:
        raise Http404("No such agent in this company.")
    return agent


def _function(request: HttpRequest, company: Company, pk) -> CustomFunction:
    function = (CustomFunction.objects.restrict(request.user, "view").filter(company=company, pk=_pk(pk))
                .prefetch_related("agents").first())
    if function is None:
        raise Http404("No such function in this company.")
    return function


# --- webhook tester -------------------------------------------------------------------------
def tester_page(request: HttpRequest) -> HttpResponse:
    company = _company(request)
    agents = list(config_selectors.agents_visible(user=request.user, company=company).order_by("name"))
    sendable = set(config_selectors.agents_changeable(user=request.user, company=company).values_list("pk", flat=True))
    functions = list(CustomFunction.objects.restrict(request.user, "view").filter(company=company).order_by("name"))
    wanted = _pk(request.GET.get("agent"))
    return TemplateResponse(request, "voice/tester.html", _context(
        request, company, "Webhook Tester", agents=agents, sendable_ids=sorted(sendable),
        selected_agent=wanted if any(a.pk == wanted for a in agents) else (agents[0].pk if agents else None),
        events=tester.EVENT_CHOICES, functions=functions,
        targets=tester.tester_targets(company=company, agents=agents),
        urls={"sample": reverse("voice-tester-sample") + f"?company={company.pk}",
              "send": reverse("voice-tester-send") + f"?company={company.pk}"}))


@json_errors
def tester_sample(request: HttpRequest) -> JsonResponse:
    """GET ?agent=<pk>&event=<event>&function=<pk>: {"body": the sample (indented JSON text),
    "call_id", "url": where it would go by default}."""
    company = _company(request)
    agent = _agent_seen(request, company, request.GET.get("agent"))
    event = request.GET.get("event", "call_started")
    function = (_function(request, company, request.GET.get("function"))
                if event == tester.FUNCTION_EVENT else None)
    call_id = tester.new_test_call_id()
    body = tester.webhook_sample(agent=agent, event=event, function=function, call_id=call_id)
    if function is not None:
        url = function.url
    else:
        config = config_selectors.webhook_config_get(company=company)
        url = agent.webhook_url or (config.url if config.applies_to(agent) else "") or tester.this_server_urls()["events"]
    return JsonResponse({"body": json.dumps(body, indent=2, ensure_ascii=False), "call_id": call_id, "url": url})


@json_errors(method="POST")
def tester_send(request: HttpRequest) -> JsonResponse:
    """POST {agent, event, function?, url, body}: sent signed (voice.tester.webhook_test_send);
    answers what was sent and what came back."""
    company = _company(request)
    data = _body(request)
    agent = _agent_to_send(request, company, data.get("agent"))
    event = str(data.get("event") or "")
    function = _function(request, company, data.get("function")) if event == tester.FUNCTION_EVENT else None
    if not isinstance(data.get("body"), str) or not isinstance(data.get("url"), str):
        raise tester.TesterRefused("bad_request", "Send {agent, event, url, body} with the body as text.")
    answer = tester.webhook_test_send(actor=Actor.from_request(request), agent=agent, event=event,
                                      body_text=data["body"], url=data["url"], function=function)
    return JsonResponse(answer)


# --- function simulator ---------------------------------------------------------------------
def simulator_page(request: HttpRequest, pk: int) -> HttpResponse:
    company = _company(request)
    function = _function(request, company, pk)
    agents = list(config_selectors.agents_changeable(user=request.user, company=company).order_by("name"))
    own = {a.pk for a in function.agents.all()}
    agents.sort(key=lambda a: (a.pk not in own, a.name))
    schema = config_selectors.custom_function_schema(company=company, name=function.name) or {}
    may_run = config_selectors.role_allows_in(request.user, company, CustomFunction, "change")
    base = f"?company={company.pk}"
    return TemplateResponse(request, "voice/function_simulator.html", _context(
        request, company, f"Function Simulator: {function.name}", function=function, schema=schema,
        sample=json.dumps(tester.sample_args(schema), indent=2, ensure_ascii=False), agents=agents,
        may_run=may_run, url_is_ours=tester.is_this_server(function.url),
        urls={"validate": reverse("voice-simulator-validate", args=[function.pk]) + base,
              "run": reverse("voice-simulator-run", args=[function.pk]) + base}))


@json_errors(method="POST")
def simulator_validate(request: HttpRequest, pk: int) -> JsonResponse:
    """The editor's live check (the same {"errors": [...]} as the function editor's): do these
    arguments match the function's JSON Schema?"""
    company = _company(request)
    function = _function(request, company, pk)
    try:
        args = json.loads(request.body or b"{}")
    except ValueError as exc:
        return JsonResponse({"errors": [f"Not JSON: {exc}"]})
    return JsonResponse({"errors": tester.args_schema_errors(company=company, function=function, args=args)})


@json_errors(method="POST")
def simulator_run(request: HttpRequest, pk: int) -> JsonResponse:
    """POST {mode: "dry_run" | "send", args, agent (send), caller_number?}: the dry run's or the
    signed request's outcome (voice.tester.function_dry_run / function_test_send)."""
    company = _company(request)
    function = _function(request, company, pk)
    data = _body(request)
    if not config_selectors.role_allows_in(request.user, company, CustomFunction, "change"):
        raise PermissionDenied("Your role lets you look at this function, not run it.")
    actor = Actor.from_request(request)
    mode = data.get("mode")
    if mode == "dry_run":
        caller = data.get("caller_number") if isinstance(data.get("caller_number"), str) else ""
        return JsonResponse(tester.function_dry_run(actor=actor, company=company, function=function,
                                                    args=data.get("args"), caller_number=caller[:64]))
    if mode == "send":
        agent = _agent_to_send(request, company, data.get("agent"))
        return JsonResponse(tester.function_test_send(actor=actor, function=function, agent=agent,
                                                      args=data.get("args")))
    raise tester.TesterRefused("bad_mode", 'Choose mode "dry_run" or "send".')


urlpatterns = [
    path("tester/", _view(tester_page), name="voice-tester"),
    path("tester/sample/", _view(tester_sample), name="voice-tester-sample"),
    path("tester/send/", _view(tester_send), name="voice-tester-send"),
    path("functions/<int:pk>/simulate/", _view(simulator_page), name="voice-simulator"),
    path("functions/<int:pk>/simulate/validate/", _view(simulator_validate), name="voice-simulator-validate"),
    path("functions/<int:pk>/simulate/run/", _view(simulator_run), name="voice-simulator-run"),
]
