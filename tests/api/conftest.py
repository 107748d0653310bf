"""Fixtures of the REST API tests: two companies, members of each role, their API tokens."""

from datetime import date, timedelta

import pytest
from django.test import Client

from audit.actor import Actor
from tenants.services import api_token_create
from tests.factories import make_company, make_member


class Api:
    """A client that calls /api/v1/ as the holder of one API token, as an integration would."""

    def __init__(self, token: str) -> None:
        self.client = Client()
        self.token = token

    def _headers(self, headers: dict | None) -> dict:
        return {"Authorization": f"Bearer {self.token}", **(headers or {})}

    def get(self, path: str, params: dict | None = None, **headers):
        return self.client.get(path, params or {}, headers=self._headers(headers))

    def post(self, path: str, body=None, **headers):
        return self.client.post(path, body if body is not None else {}, content_type="application/json",
                                headers=self._headers(headers))

    def patch(self, path: str, body, **headers):
        return self.client.patch(path, body, content_type="application/json", headers=self._headers(headers))

    def put(self, path: str, body, **headers):
        return self.client.put(path, body, content_type="application/json", headers=self._headers(headers))

    def delete(self, path: str, **headers):
        return self.client.delete(path, headers=self._headers(headers))


def token_for(user) -> str:
    return api_token_create(actor=Actor.system("tests"), user=user, name="tests")[1]


@pytest.fixture
def alpha(db):
    company = make_company("Alpha Praxis", slug="alpha")
    company.opening_hours = {day: [["08:00", "18:00"]] for day in ("mon", "tue", "wed", "thu", "fri")}
    company.save()
    return company


@pytest.fixture
def beta(db):
    company = make_company("Beta Dental", slug="beta", timezone="America/New_York", language="en")
    company.opening_hours = {day: [["09:00", "17:00"]] for day in ("mon", "tue", "wed", "thu", "fri")}
    company.save()
    return company


@pytest.fixture
def api_as():
    """api_as(user) -> an Api client with a new token of that user."""
    return lambda user: Api(token_for(user))


@pytest.fixture
def owner(alpha, api_as):
    return api_as(make_member(alpha, "owner"))


@pytest.fixture
def viewer(alpha, api_as):
    return api_as(make_member(alpha, "viewer"))


@pytest.fixture
def beta_owner(beta, api_as):
    return api_as(make_member(beta, "owner"))


def next_weekday(days_ahead: int = 3) -> date:
    day = date.today() + timedelta(days=days_ahead)
    while day.weekday() >= 5:
        day += timedelta(days=1)
    return day
