"""Fuzz of the JSON-RPC gateway (issue 11, item 3): arbitrary JSON values, nesting,
batches, params shapes and strings with NUL and lone surrogates are answered without a
5xx, always with a JSON-RPC error object or a result, in strict JSON, and never with
an internal error (-32603 is kept for real server faults)."""

import json

import orjson
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from audit.actor import Actor
from retell_config import services
from retell_config.gateway import METHODS, UPDATABLE
from tests.retell_config.test_gateway import Gateway, token_for

FUZZ = hypothesis_settings(max_examples=120, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

# Strings as a client may send them: NUL, control characters, non-ASCII, and the ids and
# names the fixtures use. Lone surrogates (sent as \ud800 escapes, which a strict parser
# refuses) are a body kind of their own, or nearly every body would be a parse error.
strings = st.one_of(
    st.text(max_size=12),
    st.text(alphabet=st.sampled_from(["\x00", "a", "\n", "é", "_", "-", "."]), max_size=6),
    st.sampled_from(["agent_abc123", "agent_xyz789", "", "https://x.example/f", "backup", "retell", "elevenlabs",
                     "book", "call_ended", "de-DE", "POST"]),
)
scalars = st.one_of(st.none(), st.booleans(), st.integers(min_value=-2**70, max_value=2**70),
                    st.floats(allow_nan=False, allow_infinity=False), strings)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(strings, inner, max_size=4), max_leaves=12)
agent_ids = st.one_of(st.sampled_from(["agent_abc123", "agent_xyz789"]), strings)


def rarely(one_in: int):
    """True once in `one_in` draws (False when shrinking)."""
    return st.sampled_from([False] * (one_in - 1) + [True])


def definition():
    """A custom function as the backup format has it, with any values."""
    fields = st.sampled_from(["name", "description", "parameters", "url", "method", "query_params",
                              "speak_during_execution", "speak_after_execution", "execution_message", "timeout_ms",
                              "args_at_root", "agents", "type"])
    return st.dictionaries(fields, values, max_size=6)


@st.composite
def documents(draw):
    functions = draw(st.lists(definition(), max_size=3))
    shape = draw(st.sampled_from(["backup", "retell", "any"]))
    if shape == "backup":
        return {"format": "voicedesk.custom_functions", "version": 1, "functions": functions}
    if shape == "retell":
        return {"general_tools": [{"type": "custom", **f} for f in functions] if draw(st.booleans())
                else draw(values)}
    return draw(values)


PARAMS = {"company_id": st.integers(), "agent_id": agent_ids, "agent_ids": st.lists(agent_ids, max_size=3),
          "fields": st.dictionaries(st.sampled_from(sorted(UPDATABLE) + ["colour"]),
                                    st.one_of(strings, st.floats(allow_nan=False, allow_infinity=False), values),
                                    max_size=3),
          "note": strings, "base_version": st.integers(), "format": strings,
          "events": st.lists(strings, max_size=3), "webhook_url": strings, "secret": strings,
          "sync_run_id": st.integers(), "include_remote": st.booleans(), "document": documents(),
          "functions": st.one_of(st.lists(strings, max_size=3),
                                 st.dictionaries(strings, st.one_of(values, definition()), max_size=2))}

# Each method's params (docs/gateway.md): a request names mostly these.
METHOD_PARAMS = {
    "retell_config.updateWebhook": ["webhook_url", "events", "agent_ids", "secret"],
    "retell_config.deployCustomFunctions": ["agent_ids", "functions"],
    "retell_config.listAgents": [],
    "retell_config.getAgent": ["agent_id", "include_remote"],
    "retell_config.updateAgent": ["agent_id", "fields", "note", "base_version"],
    "retell_config.syncAll": [],
    "retell_config.getSyncRun": ["sync_run_id"],
    "retell_config.exportFunctions": ["format"],
    "retell_config.importFunctions": ["document"],
}


@st.composite
def params_for(draw, method: str, company_id: int):
    if draw(rarely(10)):
        return draw(values)  # any shape at all
    names = {name for name in METHOD_PARAMS.get(method, []) if not draw(rarely(4))}
    if draw(rarely(6)):
        names |= draw(st.sets(st.sampled_from(sorted(PARAMS)), max_size=2))
    params = {name: draw(values if draw(rarely(4)) else PARAMS[name]) for name in names}
    if not draw(rarely(6)):
        params["company_id"] = company_id
    return params


@st.composite
def requests(draw, company_id: int):
    method = draw(strings if draw(rarely(10)) else st.sampled_from(sorted(METHODS)))
    request = {"jsonrpc": "2.0", "method": method, "params": draw(params_for(method, company_id)),
               "id": draw(st.one_of(st.integers(), strings, st.none()))}
    if draw(rarely(10)):  # a broken request object
        for member in draw(st.sets(st.sampled_from(["jsonrpc", "method", "params", "id"]), max_size=2)):
            del request[member]
        request[draw(st.sampled_from(["jsonrpc", "id", "extra"]))] = draw(values)
    return request


@st.composite
def bodies(draw, company_id: int):
    kind = draw(st.sampled_from(["request"] * 6 + ["batch"] * 2 + ["value", "nesting", "literal", "surrogate",
                                                                  "bytes"]))
    if kind == "request":
        return json.dumps(draw(requests(company_id)))
    if kind == "batch":
        return json.dumps(draw(st.lists(st.one_of(requests(company_id), values), max_size=7)))
    if kind == "value":
        return json.dumps(draw(values))
    if kind == "nesting":
        depth = draw(st.integers(min_value=1, max_value=60_000))
        opener, closer = draw(st.sampled_from([("[", "]"), ('{"a":', "}"), ('{"jsonrpc":"2.0","params":', "}")]))
        return opener * depth + "1" + closer * depth
    if kind == "literal":
        literal = draw(st.sampled_from(["NaN", "Infinity", "-Infinity", "1e400", "-1e999", "1" * 5000]))
        where = draw(st.sampled_from(['"id": %s', '"params": {"company_id": %s}', '"params": [%s]']))
        return '{"jsonrpc": "2.0", "method": "retell_config.listAgents", ' + where % literal + "}"
    if kind == "surrogate":
        request = draw(requests(company_id))
        request["params"] = {"company_id": company_id, "agent_id": draw(st.sampled_from(["\ud800", "a\udfff"]))}
        return json.dumps(request)
    return draw(st.binary(max_size=64))


def assert_response_object(answer) -> None:
    assert isinstance(answer, dict) and answer.get("jsonrpc") == "2.0", answer
    assert set(answer) in ({"jsonrpc", "result", "id"}, {"jsonrpc", "error", "id"}), answer
    assert answer["id"] is None or isinstance(answer["id"], str | int | float) and not isinstance(answer["id"], bool)
    if "error" in answer:
        error = answer["error"]
        assert isinstance(error["code"], int) and isinstance(error["message"], str), answer
        assert error["code"] != -32603, answer  # an internal error is a bug the fuzz found


@pytest.mark.django_db
def test_any_body_is_answered_with_a_json_rpc_object_and_never_a_5xx(client, owner_a, company_a, retell_agents,
                                                                      settings):
    settings.GATEWAY_MAX_BATCH = 5
    services.custom_functions_seed(actor=Actor.system("tests"), company=company_a, agents=retell_agents)
    gateway = Gateway(client, token_for(owner_a))

    @FUZZ
    @given(body=bodies(company_a.pk))
    def check(body):
        response = gateway.post(body)

        assert response.status_code < 500, response.content[:500]
        if response.status_code == 204:
            assert response.content == b""
            return
        answer = orjson.loads(response.content)  # strict: NaN, Infinity and 1e400 would fail here
        assert response["Content-Type"] == "application/json"
        if isinstance(answer, list):
            assert answer and len(answer) <= settings.GATEWAY_MAX_BATCH and response.status_code == 200
            for item in answer:
                assert_response_object(item)
        else:
            assert_response_object(answer)

    check()
