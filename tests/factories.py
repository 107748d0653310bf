"""Rows for tests, made generically so that suites cover models added later.

`make_for(model, company)` fills a tenant-owned model's required fields, making any
tenant-owned row it points at in the same company. A model whose rules need more
than that registers its own maker in FACTORIES.

`AGENT_ROWS[model]` makes, in each way a row of that model can belong to an agent, a row
that belongs to the agent given (voice.access says which rows belong to which agent).
"""

import itertools
from datetime import date, datetime, timedelta, timezone as dt_timezone

from django.contrib.auth import get_user_model
from model_bakery import baker

from appointments.models import Appointment, Closure, FunctionInvocation, Service
from audit.models import ActivityLogEntry, AuditEntry, Delivery, DeliveryAttempt, WebhookReceipt
from experiments.models import Experiment
from retell_config.models import Agent, PromptVersion, SyncRun
from tenants.models import Company, Membership, company_of_model
from voice.models import Call, Scenario, ScenarioRun, TwilioNumber

_sequence = itertools.count(1)


def make_company(name: str, *, slug: str, timezone: str = "Europe/Berlin", language: str = "de", **fields) -> Company:
    return Company.objects.create(name=name, slug=slug, timezone=timezone, language=language, **fields)


def make_user(username: str | None = None, **fields):
    username = username or f"user{next(_sequence)}"
    user = get_user_model().objects.create_user(username=username, password="pw-for-tests-only",
                                                is_staff=True, **fields)
    return user


def make_member(company: Company, role: str, *, username: str | None = None, limited: bool = False):
    user = make_user(username or f"{role}-{company.slug}-{next(_sequence)}")
    Membership.objects.create(user=user, company=company, role=role, limited_to_granted_objects=limited)
    return user


def _membership(company: Company) -> Membership:
    # A viewer row: the lowest rank, so every role that may manage memberships may manage it.
    return Membership.objects.create(user=make_user(), company=company, role="viewer")


def _service(company: Company) -> Service:
    return Service.objects.create(company=company, name=f"Service {next(_sequence)}", duration_minutes=30)


def _closure(company: Company) -> Closure:
    return Closure.objects.create(company=company, first_day=date(2030, 12, 24), last_day=date(2030, 12, 26),
                                  reason="Holidays")


def _appointment(company: Company, call_id: str = "") -> Appointment:
    # A confirmed appointment at an hour of its own, so that rows never overlap.
    start = datetime(2030, 1, 7, 8, 0, tzinfo=company.zone) + timedelta(hours=next(_sequence))
    return Appointment.objects.create(company=company, customer_name="Test Patient", phone="+4915112345678",
                                      service=_service(company), start=start, end=start + timedelta(minutes=30),
                                      blocked_until=start + timedelta(minutes=30), status="confirmed",
                                      call_id=call_id)


def _twilio_number(company: Company, agent: Agent | None = None) -> TwilioNumber:
    return TwilioNumber.objects.create(company=company, agent=agent, phone_number=f"+4930555{next(_sequence):05d}")


def _scenario(company: Company, agent: Agent | None = None) -> Scenario:
    agent = agent or make_for(Agent, company)
    return Scenario.objects.create(company=company, agent=agent, name=f"Scenario {next(_sequence)}",
                                   script="Guten Tag\nWann haben Sie geöffnet?", must_say="8 Uhr")


def _scenario_run(company: Company, agent: Agent | None = None) -> ScenarioRun:
    import uuid

    return ScenarioRun.objects.create(company=company, scenario=_scenario(company, agent), batch=uuid.uuid4(),
                                      total=2, status="passed")


FACTORIES = {
    Scenario: _scenario,
    ScenarioRun: _scenario_run,
    Membership: _membership,
    TwilioNumber: _twilio_number,
    Service: _service,
    Closure: _closure,
    Appointment: _appointment,
}


def make_for(model, company: Company):
    if model is Company:
        return company
    if model in FACTORIES:
        return FACTORIES[model](company)
    attrs = {}
    for field in model._meta.concrete_fields:
        if not field.many_to_one or field.null:
            continue
        if field.related_model is Company:
            attrs[field.name] = company
        elif company_of_model(field.related_model):
            attrs[field.name] = make_for(field.related_model, company)
    if company_of_model(model) == "company_id":
        attrs["company"] = company
    return baker.make(model, **attrs)


# --- rows that belong to an agent ----------------------------------------------------------
def make_call(company: Company, agent: Agent | None = None) -> Call:
    return Call.objects.create(company=company, agent=agent, call_id=f"call_{next(_sequence)}",
                               transcript="Agent: Praxis Alpha, guten Tag.\nUser: Hier ist Erika Muster.")


def _call_of(agent: Agent) -> Call:
    return make_call(agent.company, agent)


def _receipt(agent: Agent) -> WebhookReceipt:
    call = _call_of(agent)
    return WebhookReceipt.objects.create(provider="retell", company=agent.company, endpoint="/api/retell/webhook",
                                         body=b'{"event": "call_ended"}', call_id=call.call_id,
                                         event_type="call_ended", status="processed")


def _delivery(company: Company, key: str) -> Delivery:
    return Delivery.objects.create(company=company, kind=key.split(":")[0],
                                   target_url="https://backend.example.com/api", payload={"k": key},
                                   idempotency_key=key)


def _call_record(agent: Agent) -> Delivery:
    return _delivery(agent.company, f"call_record:{_call_of(agent).call_id}")


def _confirmation(agent: Agent) -> Delivery:
    return _delivery(agent.company, f"appointment_confirm:{_appointment(agent.company, _call_of(agent).call_id).pk}")


def _line(agent: Agent, **data) -> ActivityLogEntry:
    return ActivityLogEntry.objects.create(company=agent.company, kind="test", message="a line", data=data)


def _audit(row) -> AuditEntry:
    return AuditEntry.objects.create(company_id=row.company_id, actor_kind="system", actor_label="tests",
                                     action="update", object_type=row._meta.label_lower, object_id=str(row.pk),
                                     object_repr=str(row))


def _version(agent: Agent) -> PromptVersion:
    return PromptVersion.objects.create(company=agent.company, agent=agent, number=next(_sequence),
                                        general_prompt="Sie sind die Rezeption.", author_label="tests")


def _run(agent: Agent) -> SyncRun:
    return SyncRun.objects.create(company=agent.company, kind="agent_update", params={"agent_ids": [agent.agent_id]})


def _experiment(agent: Agent) -> Experiment:
    return Experiment.objects.create(company=agent.company, agent=agent, name=f"test {next(_sequence)}")


AGENT_ROWS = {
    Agent: {"itself": lambda agent: agent},
    Call: {"its call": _call_of},
    TwilioNumber: {"answered by it": lambda agent: _twilio_number(agent.company, agent)},
    PromptVersion: {"its prompt version": _version},
    Scenario: {"its scenario": lambda agent: _scenario(agent.company, agent)},
    ScenarioRun: {"a run of its scenario": lambda agent: _scenario_run(agent.company, agent)},
    Experiment: {"its experiment": _experiment},
    SyncRun: {"a run naming it": _run},
    WebhookReceipt: {"a receipt of its call": _receipt},
    Appointment: {"made in its call": lambda agent: _appointment(agent.company, _call_of(agent).call_id)},
    FunctionInvocation: {"run in its call": lambda agent: FunctionInvocation.objects.create(
        company=agent.company, call_id=_call_of(agent).call_id, seq=1, name="book_appointment", args_hash="0" * 64)},
    Delivery: {"its call's record": _call_record, "a confirmation of its call's appointment": _confirmation},
    DeliveryAttempt: {"a try of its call's record": lambda agent: DeliveryAttempt.objects.create(
        company=agent.company, delivery=_call_record(agent), number=1, started_at=datetime(2030, 1, 7, 8, 0, tzinfo=dt_timezone.utc))},
    ActivityLogEntry: {
        "naming its call": lambda agent: _line(agent, call_id=_call_of(agent).call_id),
        "naming it": lambda agent: _line(agent, agent_id=agent.agent_id, status="ok"),
        "naming a receipt of its call": lambda agent: _line(agent, receipt_id=_receipt(agent).pk),
        "naming its appointment": lambda agent: _line(
            agent, appointment_id=_appointment(agent.company, _call_of(agent).call_id).pk),
        "naming a delivery of its call": lambda agent: _line(agent, delivery_id=_call_record(agent).pk),
        "naming a run for it": lambda agent: _line(agent, run=_run(agent).pk),
        "naming its Twilio number": lambda agent: _line(
            agent, twilio_number_id=_twilio_number(agent.company, agent).pk),
    },
    AuditEntry: {
        "about it": _audit,
        "about its prompt version": lambda agent: _audit(_version(agent)),
        "about an appointment made in its call": lambda agent: _audit(
            _appointment(agent.company, _call_of(agent).call_id)),
        "about a run for it": lambda agent: _audit(_run(agent)),
        "about a run of its scenario": lambda agent: _audit(_scenario_run(agent.company, agent)),
        "about a delivery of its call": lambda agent: _audit(_call_record(agent)),
        "about its Twilio number": lambda agent: _audit(_twilio_number(agent.company, agent)),
    },
}

# Rows of the same models that belong to no agent: company-wide.
AGENTLESS_ROWS = {
    Call: lambda company: make_call(company),
    TwilioNumber: lambda company: _twilio_number(company),
    WebhookReceipt: lambda company: WebhookReceipt.objects.create(
        provider="twilio", company=company, endpoint="/api/voice-agent/incoming", body=b"", status="processed"),
    Appointment: lambda company: _appointment(company),
    Delivery: lambda company: _delivery(company, f"call_record:{make_call(company).call_id}"),
    ActivityLogEntry: lambda company: ActivityLogEntry.objects.create(company=company, kind="retell.functions.import",
                                                                      message="Imported", data={"created": []}),
    AuditEntry: lambda company: _audit(_service(company)),
    SyncRun: lambda company: SyncRun.objects.create(company=company, kind="webhook_update", params={"agent_ids": []}),
}
