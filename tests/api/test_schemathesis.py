"""The OpenAPI schema put to work: schemathesis generates requests for every operation of
/api/v1/ (hypothesis, from the schema itself) and sends them through the WSGI app, as two
companies' owners. No answer may be a 5xx, break the schema (status, content type, body), or
hold a row of a company the token's user is no member of.

Each read is also made plainly (a list unfiltered, each existing row by its id: the own one 200, the
other company's 404). Each operation then gets a bounded number of generated examples
(API_FUZZ_EXAMPLES, 4 by default), most aimed at ids that exist, so the run stays near a minute.
"""

import functools
import os

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings as hypothesis_settings, strategies as st
from schemathesis import checks

from appointments.models import Appointment, Closure, Service
from audit.models import Delivery, WebhookReceipt
from config.wsgi import application
from retell_config.models import Agent, CustomFunction, PromptVersion, SyncRun
from tests.api.conftest import token_for
from tests.factories import AGENT_ROWS, make_call, make_for, make_member

pytestmark = pytest.mark.django_db

EXAMPLES = int(os.environ.get("API_FUZZ_EXAMPLES", "4"))
CHECKS = [checks.not_a_server_error, checks.status_code_conformance, checks.content_type_conformance,
          checks.response_schema_conformance]


def company_ids_in(value, found: set[int], *, top_is_company: bool = False) -> set[int]:
    """Every company id a body names: "company" members anywhere, and a company's own "id"."""
    if isinstance(value, dict):
        if top_is_company and isinstance(value.get("id"), int):
            found.add(value["id"])
        for key, item in value.items():
            if key == "company" and isinstance(item, int):
                found.add(item)
            elif key == "results" and isinstance(item, list):
                for row in item:
                    company_ids_in(row, found, top_is_company=top_is_company)
            elif key != "error":
                company_ids_in(item, found)
    elif isinstance(value, list):
        for item in value:
            company_ids_in(item, found)
    return found


def seed(company, agent_id: str) -> dict[str, list]:
    """A row of every resource in `company`: {path prefix of the resource: [its id in paths]}."""
    agent = Agent.objects.create(company=company, agent_id=agent_id, name=f"Agent {agent_id}")
    rows = {
        "services": make_for(Service, company), "closures": make_for(Closure, company),
        "custom-functions": make_for(CustomFunction, company), "sync-runs": make_for(SyncRun, company),
        "deliveries": make_for(Delivery, company),
        "prompt-versions": AGENT_ROWS[PromptVersion]["its prompt version"](agent),
        "appointments": AGENT_ROWS[Appointment]["made in its call"](agent),
        "calls": make_call(company, agent),
        "webhook-receipts": WebhookReceipt.objects.create(provider="retell", company=company, body=b"{}",
                                                          endpoint="/api/retell/webhook", status="processed"),
    }
    ids = {f"/api/v1/{name}/": [row.pk] for name, row in rows.items()}
    return {**ids, "/api/v1/companies/": [company.pk], "/api/v1/agents/": [agent.agent_id]}


@pytest.fixture(autouse=True)
def _connection_kept_across_requests():
    """The WSGI handler closes the database connection after each request; the test's transaction
    lives on it, so keep it open, as Django's own test client does."""
    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections

    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def tenants(alpha, beta):
    alpha_ids, beta_ids = seed(alpha, "agent_alpha_1"), seed(beta, "agent_beta_1")
    return {
        "alpha": (token_for(make_member(alpha, "owner")), {alpha.pk}, alpha_ids, beta_ids),
        "beta": (token_for(make_member(beta, "owner")), {beta.pk}, beta_ids, alpha_ids),
    }


@functools.cache
def operations():
    schema = schemathesis.openapi.from_wsgi("/api/schema/", application)
    return tuple(result.ok() for result in schema.get_all_operations())


def existing_ids(operation, own: dict, other: dict) -> list:
    """The ids of the operation's resource that exist: the caller's own row and the other company's."""
    prefix = operation.path.split("{")[0]
    return [*own.get(prefix, []), *other.get(prefix, [])] if "{" in operation.path else []


def strategy_for(operation, own: dict, other: dict):
    """The schema's own examples, plus the same with a path id that exists (ours or the other's)."""
    names = [p.name for p in operation.path_parameters]
    strategies = [operation.as_strategy()]
    for value in existing_ids(operation, own, other):
        strategies.append(operation.as_strategy(path_parameters={names[0]: value}))
    return st.one_of(*strategies)


@pytest.mark.parametrize("tenant", ["alpha", "beta"])
def test_generated_requests_get_no_5xx_keep_to_the_schema_and_see_no_other_company(tenant, tenants):
    token, allowed, own, other = tenants[tenant]
    auth = {"Authorization": f"Bearer {token}"}
    ops = operations()
    assert len(ops) >= 40, "every resource's operations are in the schema"
    sent = {"count": 0, "statuses": set()}

    def check(operation, case):
        # The caller's own token, whatever the generator put in Authorization.
        case.headers = {**(case.headers or {}), **auth}
        response = case.call()
        sent["count"] += 1
        sent["statuses"].add(response.status_code)
        case.validate_response(response, checks=CHECKS)
        # schemathesis keeps headers as lists under lower-case names.
        if response.headers.get("content-type", [""])[0].startswith("application/json") and response.content:
            named = company_ids_in(response.json(), set(),
                                   top_is_company=operation.path.startswith("/api/v1/companies/"))
            assert named <= allowed, f"{operation.method} {case.formatted_path}: companies {named - allowed}"
        return response

    for operation in ops:
        # Each read as it is most often made: every list without filters, every row that exists by its id.
        if operation.method.upper() == "GET":
            ids = existing_ids(operation, own, other)
            names = [p.name for p in operation.path_parameters]
            for value in ids or [None]:
                case = operation.Case(path_parameters={names[0]: value} if value is not None else {}, query={})
                status = check(operation, case).status_code
                if value is not None:
                    assert status == (200 if value in own[operation.path.split("{")[0]] else 404), case.formatted_path

        @hypothesis_settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
                             suppress_health_check=list(HealthCheck))
        @given(case=strategy_for(operation, own, other))
        def run(case):
            check(case.operation, case)

        run()

    assert sent["count"] >= len(ops) * 2
    assert {200, 404} <= sent["statuses"], "the run reached real rows and refused the other company's"
