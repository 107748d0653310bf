"""Rows for tests, made generically so that suites cover models added later.

`make_for(model, company)` fills a tenant-owned model's required fields, making any
tenant-owned row it points at in the same company. A model whose rules need more
than that registers its own maker in FACTORIES.
"""

import itertools
from datetime import date, datetime, timedelta

from django.contrib.auth import get_user_model
from model_bakery import baker

from appointments.models import Appointment, Closure, Service
from tenants.models import Company, Membership, company_of_model

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


def _appointment(company: Company) -> Appointment:
    # A confirmed appointment at an hour of its own, so that rows never overlap.
    start = datetime(2030, 1, 7, 8, 0, tzinfo=company.zone) + timedelta(hours=next(_sequence))
    return Appointment.objects.create(company=company, customer_name="Test Patient", phone="+4915112345678",
                                      service=_service(company), start=start, end=start + timedelta(minutes=30),
                                      blocked_until=start + timedelta(minutes=30), status="confirmed")


FACTORIES = {
    Membership: _membership,
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
