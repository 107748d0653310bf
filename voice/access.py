"""What belongs to an agent: the rows a membership limited to granted agents may act on.

A membership can be limited to granted objects: its member sees the agents django-guardian
grants it (`tenants.models.TenantQuerySet.restrict`). This module tells `restrict()` which
rows of the other models belong to an agent, so that such a member reaches only the rows of
the agents it may view, in the admin, the configuration page, the gateway and any API alike:

- a call belongs to its agent, and so does each live turn's latency row; a prompt version and a saved scenario to its agent, a scenario run
  to its scenario's agent; a Twilio number to the agent that answers it;
- a row that names a call (a webhook receipt, an appointment made in a call, a function
  invocation, a delivery of a call record or of an appointment's confirmation) belongs to the
  call's agent;
- an activity line belongs to every row it names (a call, an agent, a receipt, a delivery, an
  appointment, a sync run), an audit entry to the row it is about;
- a sync run belongs to every agent it names (Sync All names all of them).

A row that belongs to no agent is company-wide (a call without an agent, an appointment booked
in the admin, an activity line or audit entry about a service or the company): the member's
role decides, as it does for every model that belongs to no agent (services, custom functions,
the webhook configuration). A row whose agent cannot be told yet (a receipt or an appointment
of a call not yet known) counts as another agent's until the call is known.

Each scope is a Q over its model that `restrict()` combines with the companies where the
role allows the action; it only says which rows are of agents the user may view. The agents
are read once per `restrict()` (a handful of granted ids), so the scopes nest no further.
"""

from dataclasses import dataclass

from django.db.models import CharField, Exists, F, OuterRef, Q, TextField, Value
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast, Concat

from appointments.backend import CALL_RECORD_KEY_PREFIX, CONFIRM_KEY_PREFIX
from appointments.models import Appointment, FunctionInvocation
from audit.models import ActivityLogEntry, AuditEntry, Delivery, DeliveryAttempt, WebhookReceipt
from retell_config.models import Agent, PromptVersion, SyncRun
from tenants.models import limited_scope_register, user_memberships

from .models import Call, LiveTurnLatency, Scenario, ScenarioRun, TwilioNumber


@dataclass(frozen=True)
class Seen:
    """The agents a user may view in the companies where its membership is limited."""

    pks: tuple[int, ...]


def seen_agents(user) -> Seen:
    limited = [m.company_id for m in user_memberships(user) if m.limited_to_granted_objects]
    return Seen(tuple(Agent.objects.restrict(user, "view").filter(company_id__in=limited)
                      .values_list("pk", flat=True)))


def _as_text(field: str):
    return Cast(field, CharField())


def _of_agent(seen: Seen) -> Q:
    return Q(agent__in=seen.pks)


def _call(seen: Seen) -> Q:
    return Q(agent__isnull=True) | _of_agent(seen)


def _of_call(seen: Seen) -> Q:
    """Rows with a `call` foreign key: seen with their call."""
    return Q(call__agent__isnull=True) | Q(call__agent__in=seen.pks)


def _names_call(seen: Seen) -> Q:
    """Rows with a `call_id`: company-wide without one, else seen with their call."""
    calls = Call.objects.filter(_call(seen), company=OuterRef("company"), call_id=OuterRef("call_id"))
    return Q(call_id="") | Q(Exists(calls))


def _delivery(seen: Seen) -> Q:
    # The idempotency key names the call or the appointment a delivery is about (appointments.backend).
    key = OuterRef("idempotency_key")
    calls = (Call.objects.filter(_call(seen), company=OuterRef("company"))
             .annotate(_key=Concat(Value(CALL_RECORD_KEY_PREFIX), "call_id", output_field=CharField()))
             .filter(_key=key))
    appointments = (Appointment.objects.filter(_names_call(seen), company=OuterRef("company"))
                    .annotate(_key=Concat(Value(CONFIRM_KEY_PREFIX), _as_text("pk"), output_field=CharField()))
                    .filter(_key=key))
    of_calls = (Delivery.Kind.CALL_RECORD, Delivery.Kind.APPOINTMENT_CONFIRM)
    return (~Q(kind__in=of_calls)
            | Q(kind=Delivery.Kind.CALL_RECORD) & Q(Exists(calls))
            | Q(kind=Delivery.Kind.APPOINTMENT_CONFIRM) & Q(Exists(appointments)))


def _delivery_attempt(seen: Seen) -> Q:
    return Q(delivery__in=Delivery.objects.filter(_delivery(seen)))


def _sync_run(seen: Seen) -> Q:
    hidden = Agent.objects.filter(company=OuterRef("company")).exclude(pk__in=seen.pks)
    # A run names its agents in params["agent_ids"]; agent ids are letters, digits, _ and -,
    # so the quoted id found in the params' JSON text is that agent's.
    named = (hidden.annotate(_params=Cast(OuterRef("params"), TextField()),
                             _quoted=Concat(Value('"'), "agent_id", Value('"'), output_field=TextField()))
             .filter(_params__contains=F("_quoted")))
    return (Q(kind=SyncRun.Kind.SYNC_ALL) & ~Q(Exists(hidden))
            | ~Q(kind=SyncRun.Kind.SYNC_ALL) & ~Q(Exists(named)))


def _scenario_run(seen: Seen) -> Q:
    return Q(scenario__agent__in=seen.pks)


def _agent(seen: Seen) -> Q:
    return Q(pk__in=seen.pks)


# The keys of an activity line's data that name a row: the row's model and the field named.
ACTIVITY_REFERENCES = {
    "call_id": (Call, "call_id"),
    "agent_id": (Agent, "agent_id"),
    "receipt_id": (WebhookReceipt, "pk"),
    "delivery_id": (Delivery, "pk"),
    "appointment_id": (Appointment, "pk"),
    "previous_appointment_id": (Appointment, "pk"),
    "run": (SyncRun, "pk"),
    "twilio_number_id": (TwilioNumber, "pk"),
}


def _activity(seen: Seen) -> Q:
    """A line is seen when every row it names is (a line naming none is company-wide)."""
    scope = Q()
    for key, (model, field) in ACTIVITY_REFERENCES.items():
        named = KeyTextTransform(key, OuterRef("data"))
        rows = model.objects.filter(ROW_SCOPES[model](seen), company=OuterRef("company"))
        rows = (rows.annotate(_ref=_as_text("pk")).filter(_ref=named) if field == "pk"
                else rows.filter(**{field: named}))
        scope &= (~Q(data__has_key=key) | Q(**{f"data__{key}": ""}) | Q(**{f"data__{key}": None})
                  | Q(Exists(rows)))
    return scope


def _audit(seen: Seen) -> Q:
    """An entry about a row that belongs to agents is seen with that row (an entry about a row
    since deleted, no longer); an entry about anything else is company-wide."""
    # Activity lines and audit entries are never what an audit entry is about.
    about = {model: scope for model, scope in ROW_SCOPES.items() if model not in (AuditEntry, ActivityLogEntry)}
    scope = ~Q(object_type__in=[model._meta.label_lower for model in about])
    for model, row_scope in about.items():
        rows = model.objects.filter(row_scope(seen)).annotate(_ref=_as_text("pk")).values("_ref")
        scope |= Q(object_type=model._meta.label_lower, object_id__in=rows)
    return scope


# Per model, which of its rows belong to the agents seen (or to none): a Q over the model.
ROW_SCOPES = {
    Agent: _agent,
    Call: _call,
    LiveTurnLatency: _of_call,
    TwilioNumber: _call,  # as a call: its agent's, or company-wide while no agent answers it
    PromptVersion: _of_agent,
    Scenario: _of_agent,
    ScenarioRun: _scenario_run,
    SyncRun: _sync_run,
    WebhookReceipt: _names_call,
    Appointment: _names_call,
    FunctionInvocation: _names_call,
    Delivery: _delivery,
    DeliveryAttempt: _delivery_attempt,
    ActivityLogEntry: _activity,
    AuditEntry: _audit,
}


def register_limited_scopes() -> None:
    """Hand the scopes to `restrict()`; the agents themselves are narrowed by their grants."""
    for model, row_scope in ROW_SCOPES.items():
        if model is not Agent:
            limited_scope_register(model, lambda user, row_scope=row_scope: row_scope(seen_agents(user)))
