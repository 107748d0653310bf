"""One request's bad data never touches another's (issue 11, item 1): signed webhooks of one
company holding NUL characters, lone surrogates, over-long values and out-of-range numbers in
every field the intake reads, sent among 200 concurrent webhooks of another company. Each
flawed request is stored and answered alone (a 4xx JSON error, or accepted with its fields
cleaned); every other request is stored and answered as if alone."""

import asyncio
import json

import pytest
from asgiref.sync import async_to_sync
from django.test import AsyncClient

from audit.models import WebhookReceipt
from retell_config.models import Agent
from tests.conftest import RETELL_KEY
from tests.factories import make_company
from tests.fakes import retell

pytestmark = pytest.mark.django_db(transaction=True)  # the receipt writer commits on its own connection
URL, FUNCTIONS_URL = "/api/retell/webhook", "/api/mcp/retell/custom-function"
BETA_KEY = "key_webhook_beta_9876543210"
LEGITIMATE = 200


def _function(name: str, call_id: str = "call_fn", args: dict | None = None) -> bytes:
    call = retell.call_object(call_id, "agent_abc123", status="ongoing", turns=1)
    return json.dumps({"name": name, "call": call, "args": args or {"date": "2030-01-07"}}).encode()


def flawed_requests() -> list[tuple[str, str, bytes, int]]:
    """(what, url, body, expected status): company alpha's own requests, signed with its own key."""
    def event(name: str, call_id: str = "call_flawed", agent_id: str = "agent_abc123", **call) -> bytes:
        return retell.event_body(name, retell.call_object(call_id, agent_id, **call))

    surrogate = event("call_ended", call_id="SURROGATE").replace(b'"SURROGATE"', b'"p\\ud800x"')
    transfer = retell.event_body("transfer_started",
                                 retell.call_object("call_transfer", "agent_abc123", status="ongoing",
                                                    start_timestamp=10**30),
                                 transfer_destination={"number": "+49\x0030" + "1" * 400})
    return [
        ("NUL in call_id", URL, event("call_ended", call_id="p\x00x"), 400),
        ("lone surrogate in call_id", URL, surrogate, 400),
        ("over-long call_id", URL, event("call_ended", call_id="c" * 300), 400),
        ("control character in call_id", URL, event("call_ended", call_id="p\nx"), 400),
        ("NUL in agent_id", URL, event("call_ended", agent_id="agent\x00abc123"), 400),
        ("over-long agent_id", URL, event("call_ended", agent_id="a" * 300), 400),
        ("NUL in event", URL, event("call_\x00ended"), 202),
        ("over-long event", URL, event("e" * 500), 202),
        ("NUL, over-long value, out-of-range number in a transfer's dedupe key", URL, transfer, 204),
        ("out-of-range timestamps", URL, event("call_ended", call_id="call_far", start_timestamp=10**300,
                                               end_timestamp=-(10**300)), 204),
        ("NUL in a function name", FUNCTIONS_URL, _function("check_\x00availability"), 400),
        ("NUL in a function's call_id", FUNCTIONS_URL, _function("check_availability", call_id="p\x00x"), 400),
        ("NUL in ?function=", FUNCTIONS_URL + "?function=check%00&agent_id=agent_abc123",
         b'{"date": "2030-01-07"}', 400),
        ("NUL in ?agent_id=", FUNCTIONS_URL + "?function=check_availability&agent_id=agent%00abc123",
         b'{"date": "2030-01-08"}', 400),
        ("NUL in ?call_id=", FUNCTIONS_URL + "?function=check_availability&agent_id=agent_abc123&call_id=p%00x",
         b'{"date": "2030-01-09"}', 400),
        ("NUL in a function argument", FUNCTIONS_URL, _function("check_availability",
                                                                 args={"date": "2030-01-07\x00"}), 400),
    ]


@pytest.fixture
def beta_agent(db):
    company = make_company("Beta Intake", slug="beta-intake", retell_api_key=BETA_KEY)
    return Agent.objects.create(company=company, agent_id="agent_beta", name="Beta Reception")


def test_flawed_requests_among_200_concurrent_webhooks_of_another_company_harm_nobody(retell_agent, beta_agent):
    # given: 200 legitimate call_ended webhooks of beta, and alpha's flawed requests among them
    sent = [("legitimate", URL, retell.event_body("call_ended", retell.call_object(f"call_beta_{n}", "agent_beta")),
             204, BETA_KEY) for n in range(LEGITIMATE)]
    flawed = flawed_requests()
    for n, (what, url, body, expected) in enumerate(flawed):
        sent.insert(n * (LEGITIMATE // len(flawed)) + 3, (what, url, body, expected, RETELL_KEY))
    client = AsyncClient()

    async def together():
        return await asyncio.gather(*(
            client.post(url, body, content_type="application/json",
                        headers={"X-Retell-Signature": retell.sign(body, key)})
            for _, url, body, _, key in sent))

    # when: they all arrive at once
    responses = async_to_sync(together)()

    # then: every legitimate webhook is answered 204 and stored verified, once; each flawed
    # request is answered alone, as expected, and stored once
    answered = [(what, response.status_code) for (what, *_), response in zip(sent, responses, strict=True)]
    assert answered == [(what, expected) for what, _, _, expected, _ in sent]
    verified = WebhookReceipt.objects.filter(company=beta_agent.company, status=WebhookReceipt.Status.VERIFIED)
    assert sorted(verified.values_list("call_id", flat=True)) == sorted(f"call_beta_{n}" for n in range(LEGITIMATE))
    stored = [bytes(body) for body in WebhookReceipt.objects.values_list("body", flat=True)]
    assert sorted(stored) == sorted(body for _, _, body, _, _ in sent)
    for (what, _, _, expected, _), response in zip(sent, responses, strict=True):
        if expected >= 400:
            assert set(response.json()["error"]) == {"code", "message"}, what
