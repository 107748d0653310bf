"""The gateway and bad input: every malformed request is answered with a JSON-RPC error
object, JSON and a 4xx (or 200 with the error of one call), never a 5xx; strict JSON
in and out; batch size and nesting bounded (issue 11, item 3)."""

import json

import orjson
import pytest

from retell_config.models import CustomFunction
from tests.retell_config.test_gateway import URL, Gateway, token_for


@pytest.fixture
def gateway(client, owner_a):
    return Gateway(client, token_for(owner_a))


def rpc(method: str, params, request_id=1) -> dict:
    return {"jsonrpc": "2.0", "method": method, "params": params, "id": request_id}


def strict_json(response):
    """The body parsed by a strict parser: NaN, Infinity or 1e400 anywhere would fail here."""
    assert response["Content-Type"] == "application/json"
    return orjson.loads(response.content)


# --- the HTTP message --------------------------------------------------------------------------

@pytest.mark.django_db
def test_a_get_is_405_with_allow_post_and_a_json_rpc_error(client):
    response = client.get(URL)

    assert response.status_code == 405
    assert response["Allow"] == "POST"
    answer = strict_json(response)
    assert answer["jsonrpc"] == "2.0" and answer["id"] is None
    assert answer["error"]["code"] == -32600 and "POST" in answer["error"]["data"]["reason"]


@pytest.mark.django_db
def test_a_body_over_the_limit_is_413_with_a_json_rpc_error(gateway, company_a, settings):
    settings.GATEWAY_MAX_BODY_BYTES = 1024 * 1024
    body = json.dumps(rpc("retell_config.listAgents", {"company_id": company_a.pk, "pad": "x" * 10_000_000}))

    response = gateway.post(body)

    assert response.status_code == 413
    answer = strict_json(response)
    assert answer["error"]["code"] == -32600 and answer["id"] is None
    assert "1048576 bytes" in answer["error"]["data"]["reason"]


@pytest.mark.django_db
def test_nesting_50000_deep_is_a_parse_error_not_a_500(gateway):
    response = gateway.post("[" * 50_000 + "]" * 50_000)

    assert response.status_code == 400
    answer = strict_json(response)
    assert answer["error"]["code"] == -32700 and answer["id"] is None
    assert "nest" in answer["error"]["data"]["reason"]


@pytest.mark.django_db
def test_nesting_is_bounded_by_the_setting_before_parsing(gateway, company_a, settings):
    settings.GATEWAY_MAX_DEPTH = 8

    def nested(depth: int) -> dict:  # the request object is one level, params another
        value: object = "leaf"
        for _ in range(depth - 2):
            value = {"a": value}
        return rpc("retell_config.listAgents", {"company_id": company_a.pk, "deep": value})

    at_limit = gateway.post(nested(8)).json()
    over = gateway.post(nested(9))

    assert at_limit["error"]["code"] == -32602 and at_limit["error"]["data"]["param"] == "deep"
    assert over.status_code == 400 and strict_json(over)["error"]["code"] == -32700


@pytest.mark.django_db
@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e400", "-1e400"])
def test_non_json_numbers_are_a_parse_error_and_never_echoed(gateway, company_a, literal):
    as_id = gateway.post('{"jsonrpc": "2.0", "method": "retell_config.listAgents", '
                         f'"params": {{"company_id": {company_a.pk}}}, "id": {literal}}}')
    as_param = gateway.post('{"jsonrpc": "2.0", "method": "retell_config.getSyncRun", '
                            f'"params": {{"company_id": {company_a.pk}, "sync_run_id": {literal}}}, "id": 1}}')

    for response in (as_id, as_param):
        assert response.status_code == 400
        assert strict_json(response) == {"jsonrpc": "2.0", "error": {"code": -32700, "message": "Parse error"},
                                         "id": None}


@pytest.mark.django_db
def test_a_lone_surrogate_is_a_parse_error(gateway, company_a):
    response = gateway.post('{"jsonrpc": "2.0", "method": "retell_config.getAgent", "id": 1, '
                            f'"params": {{"company_id": {company_a.pk}, "agent_id": "a\\ud800"}}}}')

    assert response.status_code == 400 and strict_json(response)["error"]["code"] == -32700


@pytest.mark.django_db
def test_a_malformed_single_request_is_400_and_a_call_error_is_200(gateway, company_a):
    invalid = gateway.post({"jsonrpc": "2.0", "method": "retell_config.listAgents", "params": None, "id": 1})
    params_error = gateway.post(rpc("retell_config.listAgents", {}))

    assert invalid.status_code == 400 and strict_json(invalid)["error"]["code"] == -32600
    assert params_error.status_code == 200 and strict_json(params_error)["error"]["code"] == -32602


# --- batches -------------------------------------------------------------------------------------

@pytest.mark.django_db
def test_a_batch_over_the_limit_is_one_invalid_request_and_no_call_runs(gateway, company_a, settings,
                                                                       django_assert_max_num_queries):
    settings.GATEWAY_MAX_BATCH = 50
    calls = [rpc("retell_config.listAgents", {"company_id": company_a.pk}, i) for i in range(5000)]

    with django_assert_max_num_queries(3):  # the token only
        response = gateway.post(calls)

    assert response.status_code == 400
    answer = strict_json(response)
    assert answer["error"]["code"] == -32600 and answer["id"] is None
    assert "50" in answer["error"]["data"]["reason"]


@pytest.mark.django_db
def test_a_batch_at_the_limit_is_answered_call_by_call(gateway, company_a, settings):
    settings.GATEWAY_MAX_BATCH = 3
    calls = [rpc("retell_config.listAgents", {"company_id": company_a.pk}, i) for i in range(3)]

    response = gateway.post(calls)

    assert response.status_code == 200
    assert [a["id"] for a in strict_json(response)] == [0, 1, 2]


# --- params the database cannot take --------------------------------------------------------------

@pytest.mark.django_db
@pytest.mark.parametrize("method, params, param", [
    ("retell_config.getAgent", {"agent_id": "agent_abc\u0000123"}, "agent_id"),
    ("retell_config.updateAgent", {"agent_id": "agent_abc123", "fields": {"general_prompt": "Hallo\u0000"}},
     "fields.general_prompt"),
    ("retell_config.deployCustomFunctions", {"agent_ids": ["agent_abc123", "x\u0000"]}, "agent_ids[1]"),
    ("retell_config.importFunctions", {"document": {"functions": [{"name": "book", "description": "a\u0000"}]}},
     "document.functions[0].description"),
    ("retell_config.importFunctions", {"document": {"functions": [{"na\u0000me": "book"}]}},
     "document.functions[0]"),
])
def test_a_nul_character_in_any_param_is_invalid_params_naming_it(gateway, company_a, retell_agents, method,
                                                                  params, param):
    answer = gateway.call(method, {"company_id": company_a.pk, **params})

    assert answer["error"]["code"] == -32602
    assert answer["error"]["data"]["param"] == param
    assert "NUL" in answer["error"]["data"]["reason"]


@pytest.mark.django_db
@pytest.mark.parametrize("field", ["parameters", "description", "query_params", "execution_message"])
def test_a_function_definition_with_a_null_field_is_invalid_params(gateway, company_a, retell_agents, field):
    imported = gateway.call("retell_config.importFunctions", {"company_id": company_a.pk, "document": {
        "format": "voicedesk.custom_functions", "version": 1,
        "functions": [{"name": "book", "url": "https://x.example/f", field: None}]}})
    deployed = gateway.call("retell_config.deployCustomFunctions", {
        "company_id": company_a.pk, "agent_ids": ["agent_abc123"], "functions": {"book": {field: None}}})

    for answer in (imported, deployed):
        assert answer["error"]["code"] == -32602, answer
        assert field in answer["error"]["data"]["reason"]
    assert not CustomFunction.objects.exists()
