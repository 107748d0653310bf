"""Fuzzing ElevenLabs webhook-tool calls to the custom-function endpoint (issue 12, item 10), as
the intake's fuzz tests do for Retell's (tests/voice/test_intake_fuzz.py): whatever the key,
query and arguments, the answer is never a 5xx, a 4xx carries the JSON error, and every request
leaves exactly one receipt."""

from urllib.parse import urlencode

import pytest
from hypothesis import given, strategies as st

from appointments.function_specs import FUNCTION_SPECS
from audit.actor import Actor
from retell_config import services
from tests.voice.test_intake_fuzz import (FUNCTIONS_URL, FUZZ, FLAWED_TEXT, agent_ids, assert_answered_well, ids,
                                          json_values, mostly, poison, serialised, text)
from audit.models import WebhookReceipt

pytestmark = pytest.mark.django_db(transaction=True)  # the receipt writer commits on its own connection

phones = mostly(st.just("+4915112345678"), st.sampled_from(FLAWED_TEXT + ["12", "+49 (0) 30"]), 3)


@st.composite
def tool_calls(draw):
    """(url with query, body): arguments of one of the receptionist's functions, mostly well formed."""
    name = draw(mostly(st.sampled_from(sorted(FUNCTION_SPECS)), text, 4))
    properties = FUNCTION_SPECS.get(name, {"parameters": {"properties": {"date": {}}}})["parameters"]["properties"]
    arguments = {arg: draw(st.one_of(st.just("2030-01-07"), st.just("10:00"), text, json_values))
                 for arg in properties if draw(st.booleans())}
    value = draw(mostly(st.just(arguments), st.one_of(json_values, poison), 4))
    query = {key: draw(strategy) for key, strategy in (("function", st.just(name)), ("agent_id", agent_ids),
                                                       ("call_id", ids), ("from_number", phones))
             if draw(mostly(st.just(True), st.just(False), 6))}
    url = FUNCTIONS_URL + "?" + urlencode({k: v.encode("utf-8", "surrogatepass") for k, v in query.items()})
    return url, serialised(value, ascii_only=draw(st.booleans()))


def test_a_tool_call_is_answered_well_and_stored_once_whatever_it_holds(client, bookable_agent, celery_eager):
    services.custom_functions_seed(actor=Actor.system("t"), company=bookable_agent.company, agents=[bookable_agent])
    document = services.functions_export_elevenlabs(actor=Actor.system("t"), company=bookable_agent.company,
                                                    agent=bookable_agent)
    key = document["tools"][0]["tool_config"]["api_schema"]["request_headers"]["Authorization"]
    authorizations = st.sampled_from([key, key, key, "Bearer vdtk_wrong", "Basic dXNlcjpwdw==", "Bearer",
                                      key.lower(), key + " ", "bearer " + key.removeprefix("Bearer ")])

    @FUZZ
    @given(request=tool_calls(), authorization=authorizations)
    def check(request, authorization):
        url, body = request
        before = WebhookReceipt.objects.count()

        response = client.post(url, data=body, content_type="application/json", HTTP_AUTHORIZATION=authorization)

        assert_answered_well(response, before)
        receipt = WebhookReceipt.objects.latest("pk")
        assert receipt.provider == "elevenlabs" and receipt.headers["Authorization"] == "[redacted]"

    check()
