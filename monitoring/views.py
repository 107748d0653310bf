"""The Live Debug Console and Analytics pages (admin views: staff session, the admin's look).

Thin: pick the company (`?company=`, one the user may view; else the first by name), parse
the filters, call the selectors, render. Both pages only read: they write no activity line
and no audit entry (a console that logged its own viewing would feed itself).
"""

from __future__ import annotations

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse

from tenants.models import Company
from voice.views import error_response

from . import charts
from .selectors import analytics, console

# Kinds offered in the console's kind filter (any other kind may be typed).
KNOWN_KINDS = ("webhook", "webhook.received", "webhook.rejected", "webhook.processed", "webhook.given_up", "function",
               "appointment", "delivery", "sync_all", "agent_update", "retell", "twilio")


def _company(request: HttpRequest, companies: QuerySet[Company]) -> Company:
    wanted = request.GET.get("company", "")
    if wanted:
        company = companies.filter(pk=wanted).first() if wanted.isdigit() else None
        if company is None:
            raise Http404("No such company.")
        return company
    company = companies.order_by("name").first()
    if company is None:
        raise PermissionDenied("You are not a member of any company.")
    return company


def _context(request: HttpRequest, company: Company, title: str, companies, **extra) -> dict:
    return {**admin.site.each_context(request), "title": title, "company": company,
            "companies": list(companies.order_by("name")), **extra}


# --- Live Debug Console ---------------------------------------------------------------------------
def console_page(request: HttpRequest) -> HttpResponse:
    companies = console.console_companies(request.user)
    company = _company(request, companies)
    lines = console.console_lines(user=request.user, company=company)
    agents = list(console.console_agents(user=request.user, company=company).values("pk", "name", "agent_id"))
    return TemplateResponse(request, "monitoring/console.html", _context(
        request, company, "Live Debug Console", companies, lines=lines, agents=agents, kinds=KNOWN_KINDS,
        levels=console.LEVELS, socket_path=reverse("monitoring-console-socket-path"),
        first_screen=console.FIRST_SCREEN))


def _json_company(request: HttpRequest) -> Company | JsonResponse:
    """The console's company for a JSON read, or the JSON error that says why there is none."""
    try:
        return _company(request, console.console_companies(request.user))
    except Http404:
        return error_response(404, "not_found", "No such company, or you may not view its activity log.")
    except PermissionDenied as exc:
        return error_response(403, "forbidden", str(exc))


def console_lines(request: HttpRequest) -> JsonResponse:
    """GET ?company=&kind=&level=&agent=&call_id=&after=&limit= -> {"lines": [line, ...]} oldest
    first (the newest `limit`, default 100, at most 500; only ids above `after` when given).
    400 {"error": {"code": "bad_filter", ...}} for a filter that names nothing valid; 404
    {"error": {"code": "not_found", ...}} for a company the user may not view."""
    company = _json_company(request)
    if isinstance(company, JsonResponse):
        return company
    try:
        line_filter = console.line_filter_parse(user=request.user, company=company, params=request.GET)
    except ValueError as exc:
        return error_response(400, "bad_filter", str(exc))
    after, limit = request.GET.get("after", "0"), request.GET.get("limit", str(console.FIRST_SCREEN))
    if not after.isdigit() or not limit.isdigit():
        return error_response(400, "bad_filter", "after and limit are whole numbers.")
    return JsonResponse({"lines": console.console_lines(user=request.user, company=company, line_filter=line_filter,
                                                        after_id=int(after), limit=int(limit))})


def console_line(request: HttpRequest, pk: int) -> JsonResponse:
    """GET -> monitoring.selectors.console.line_debug's shape; 404 for a line the user may not see."""
    company = _json_company(request)
    if isinstance(company, JsonResponse):
        return company
    debug = console.line_debug(user=request.user, company=company, line_id=pk)
    if debug is None:
        return error_response(404, "not_found", "No such line in this company's activity log.")
    response = JsonResponse(debug, json_dumps_params={"ensure_ascii": False})
    response["Cache-Control"] = "no-store"
    return response


def socket_path_placeholder(request: HttpRequest) -> HttpResponse:
    """The console's WebSocket lives at this path (config.routing); a plain HTTP GET is told so."""
    return error_response(426, "upgrade_required", "This is the console's WebSocket: open it with a WebSocket client.")


# --- Analytics --------------------------------------------------------------------------------------
def analytics_page(request: HttpRequest) -> HttpResponse:
    companies = analytics.analytics_companies(request.user)
    company = _company(request, companies)
    error = ""
    try:
        span = analytics.range_parse(company=company, first=request.GET.get("first", ""),
                                     last=request.GET.get("last", ""))
    except ValueError as exc:
        error = str(exc)
        span = analytics.range_parse(company=company)
    user, days = request.user, span.days
    with analytics.aggregate_session():
        turns = analytics.turn_latency(user=user, span=span)
        sections = [
            ("Webhooks", [
                charts.webhooks_per_event_type(analytics.webhooks_per_event_type(user=user, span=span), days),
                charts.webhook_results(analytics.webhook_results(user=user, span=span)),
                charts.webhook_latency(analytics.webhook_latency(user=user, span=span), days),
            ]),
            ("Calls", [
                charts.calls_per_day(analytics.calls_per_day(user=user, span=span), days),
                charts.call_outcomes(analytics.call_outcomes(user=user, span=span)),
                charts.call_durations(analytics.call_durations(user=user, span=span)),
                charts.booking_conversion(analytics.booking_conversion(user=user, span=span)),
                charts.turn_latency(turns["agents"], "Live-turn latency per agent (ms)"),
                charts.turn_latency(turns["engines"], "Live-turn latency per dialog engine (ms)"),
            ]),
        ]
    return TemplateResponse(request, "monitoring/analytics.html", _context(
        request, company, "Analytics", companies, span=span, error=error, sections=sections))


def _view(fn):
    return admin.site.admin_view(fn)


urlpatterns = [
    path("console/", _view(console_page), name="monitoring-console"),
    path("console/lines/", _view(console_lines), name="monitoring-console-lines"),
    path("console/lines/<int:pk>/", _view(console_line), name="monitoring-console-line"),
    path("console/socket/", _view(socket_path_placeholder), name="monitoring-console-socket-path"),
    path("analytics/", _view(analytics_page), name="monitoring-analytics"),
]
