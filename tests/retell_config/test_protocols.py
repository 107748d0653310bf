"""The sans-IO wire formats with plain data: Retell payloads, drift, ElevenLabs tools,
and JSON-RPC 2.0 with the specification's own examples (§7)."""

import json

import pytest

from retell_config.protocols import jsonrpc, retell_api

# --- Retell ------------------------------------------------------------------------------


def test_call_transferred_maps_to_the_four_transfer_events_and_back():
    events = retell_api.retell_webhook_events(["call_transferred", "call_started"])
    assert events == ["call_started", "transfer_started", "transfer_bridged", "transfer_cancelled", "transfer_ended"]
    assert retell_api.local_webhook_events(["transfer_bridged", "call_ended"]) == ["call_ended", "call_transferred"]
    assert retell_api.local_webhook_events(None) == ["call_started", "call_ended", "call_analyzed"]


@pytest.mark.parametrize("schema, problem", [
    ({"properties": {"a": {"type": "string"}}}, '"type": "object"'),
    ({"type": "array", "items": {}}, '"type": "object"'),
    ({"type": "object"}, '"properties" must be an object'),
    ({"type": "object", "properties": {"a": {"type": "strin"}}}, "properties/a/type"),
    ({"type": "object", "properties": {}, "required": ["date"]}, "required names date"),
    ([1, 2], "must be a JSON object"),
])
def test_bad_parameter_schemas_are_named_with_their_problem(schema, problem):
    errors = retell_api.parameters_schema_errors(schema)
    assert errors and any(problem in e for e in errors), errors


def test_a_good_schema_and_no_schema_pass():
    assert retell_api.parameters_schema_errors({}) == []
    assert retell_api.parameters_schema_errors(
        {"type": "object", "properties": {"d": {"type": "string"}}, "required": ["d"]}) == []


def test_merge_keeps_unmanaged_tools_in_place_and_swaps_ours():
    existing = [{"type": "end_call", "name": "end_call"},
                {"type": "custom", "name": "old_ours", "url": "https://us/fn"},
                {"type": "custom", "name": "theirs", "url": "https://them/x", "extra": 1}]
    ours = [{"type": "custom", "name": "cancel_appointment", "url": "https://us/fn"}]

    merged = retell_api.merge_general_tools(existing, ours, managed_names={"cancel_appointment"},
                                            managed_url_prefix="https://us/fn")

    assert merged == [existing[0], existing[2], ours[0]]


def test_merge_refuses_to_shadow_an_unmanaged_tool():
    with pytest.raises(ValueError, match="cancel_appointment"):
        retell_api.merge_general_tools([{"type": "end_call", "name": "cancel_appointment"}],
                                       [{"type": "custom", "name": "cancel_appointment", "url": "https://us/fn"}],
                                       managed_names={"cancel_appointment"}, managed_url_prefix="https://us/fn")


def test_reconcile_takes_remote_only_changes_and_keeps_local_ones_as_drift():
    base = {"name": "A", "general_prompt": "p0", "voice_id": "v0"}
    local = {"name": "A", "general_prompt": "p-local", "voice_id": "v0"}
    remote = {"name": "A-remote", "general_prompt": "p-remote", "voice_id": "v0"}

    take, drift = retell_api.reconcile(local, remote, base)

    assert take == {"name": "A-remote"}
    assert drift == {"general_prompt": {"local": "p-local", "remote": "p-remote"}}


def test_without_a_base_every_difference_is_drift():
    take, drift = retell_api.reconcile({"name": "A"}, {"name": "B"}, {})
    assert take == {} and drift == {"name": {"local": "A", "remote": "B"}}


def test_custom_instructions_ride_in_the_prompt_and_split_back():
    prompt = retell_api.compose_prompt("Be kind.", "Never give medical advice.")
    assert retell_api.split_prompt(prompt) == ("Be kind.", "Never give medical advice.")
    assert retell_api.compose_prompt("Be kind.", "") == "Be kind."


def test_elevenlabs_tool_uses_current_field_names_and_query_for_get():
    function = {"name": "check_availability", "description": "Free slots", "url": "https://us/fn", "method": "GET",
                "parameters": {"type": "object", "properties": {"date": {"type": "string"}}, "required": ["date"]},
                "timeout_ms": 600000, "speak_during_execution": False}

    config = retell_api.elevenlabs_webhook_tool(function)["tool_config"]

    assert config["response_timeout_secs"] == 120
    assert config["pre_tool_speech"] == "off"
    assert "request_body_schema" not in config["api_schema"]
    query = config["api_schema"]["query_params_schema"]
    assert query["properties"]["date"] == {"type": "string", "description": "date"}
    assert query["required"] == ["date"]


# --- JSON-RPC 2.0: the specification's examples, verbatim ----------------------------------

def spec_dispatch(call: jsonrpc.Call):
    """The methods the specification's examples use."""
    if call.method == "subtract":
        p = call.params
        return p[0] - p[1] if isinstance(p, list) else p["minuend"] - p["subtrahend"]
    if call.method == "sum":
        return sum(call.params)
    if call.method == "get_data":
        return ["hello", 5]
    if call.method in ("update", "notify_hello", "notify_sum"):
        return None
    raise jsonrpc.RpcError(jsonrpc.METHOD_NOT_FOUND)


def rpc(text: str):
    return jsonrpc.handle(text.encode(), spec_dispatch)


def strip_data(answer):
    if isinstance(answer, list):
        return [strip_data(a) for a in answer]
    if isinstance(answer, dict) and "error" in answer:
        answer = {**answer, "error": {k: v for k, v in answer["error"].items() if k != "data"}}
    return answer


@pytest.mark.parametrize("request_text, expected", [
    ('{"jsonrpc": "2.0", "method": "subtract", "params": [42, 23], "id": 1}',
     {"jsonrpc": "2.0", "result": 19, "id": 1}),
    ('{"jsonrpc": "2.0", "method": "subtract", "params": {"subtrahend": 23, "minuend": 42}, "id": 3}',
     {"jsonrpc": "2.0", "result": 19, "id": 3}),
    ('{"jsonrpc": "2.0", "method": "update", "params": [1,2,3,4,5]}', None),
    ('{"jsonrpc": "2.0", "method": "foobar"}', None),
    ('{"jsonrpc": "2.0", "method": "foobar", "id": "1"}',
     {"jsonrpc": "2.0", "error": {"code": -32601, "message": "Method not found"}, "id": "1"}),
    ('{"jsonrpc": "2.0", "method": "foobar, "params": "bar", "baz]',
     {"jsonrpc": "2.0", "error": {"code": -32700, "message": "Parse error"}, "id": None}),
    ('{"jsonrpc": "2.0", "method": 1, "params": "bar"}',
     {"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request"}, "id": None}),
    ('[{"jsonrpc": "2.0", "method": "sum", "params": [1,2,4], "id": "1"},{"jsonrpc": "2.0", "method"]',
     {"jsonrpc": "2.0", "error": {"code": -32700, "message": "Parse error"}, "id": None}),
    ('[]', {"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request"}, "id": None}),
    ('[1]', [{"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request"}, "id": None}]),
    ('[1,2,3]', [{"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request"}, "id": None}] * 3),
    ('[{"jsonrpc": "2.0", "method": "notify_sum", "params": [1,2,4]},'
     '{"jsonrpc": "2.0", "method": "notify_hello", "params": [7]}]', None),
])
def test_the_specification_examples(request_text, expected):
    assert strip_data(rpc(request_text)) == expected


def test_the_specification_batch_example():
    answer = rpc("""[
        {"jsonrpc": "2.0", "method": "sum", "params": [1,2,4], "id": "1"},
        {"jsonrpc": "2.0", "method": "notify_hello", "params": [7]},
        {"jsonrpc": "2.0", "method": "subtract", "params": [42,23], "id": "2"},
        {"foo": "boo"},
        {"jsonrpc": "2.0", "method": "foo.get", "params": {"name": "myself"}, "id": "5"},
        {"jsonrpc": "2.0", "method": "get_data", "id": "9"}
    ]""")
    assert strip_data(answer) == [
        {"jsonrpc": "2.0", "result": 7, "id": "1"},
        {"jsonrpc": "2.0", "result": 19, "id": "2"},
        {"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request"}, "id": None},
        {"jsonrpc": "2.0", "error": {"code": -32601, "message": "Method not found"}, "id": "5"},
        {"jsonrpc": "2.0", "result": ["hello", 5], "id": "9"},
    ]


def test_an_unexpected_exception_is_an_internal_error_without_internals():
    def broken(call):
        raise RuntimeError("password=hunter2 at db.internal:5432")

    answer = jsonrpc.handle(b'{"jsonrpc": "2.0", "method": "x", "id": 7}', broken)

    assert answer == {"jsonrpc": "2.0", "error": {"code": -32603, "message": "Internal error"}, "id": 7}
    assert "hunter2" not in json.dumps(answer)


def test_a_null_id_is_a_request_not_a_notification():
    assert rpc('{"jsonrpc": "2.0", "method": "get_data", "id": null}') == {
        "jsonrpc": "2.0", "result": ["hello", 5], "id": None}


@pytest.mark.parametrize("body", ['{"jsonrpc": "1.0", "method": "sum", "id": 1}',
                                  '{"jsonrpc": "2.0", "method": "sum", "params": 5, "id": 1}',
                                  '{"jsonrpc": "2.0", "method": "sum", "id": {"a": 1}}',
                                  '"just a string"'])
def test_malformed_requests_are_invalid_requests(body):
    assert rpc(body)["error"]["code"] == -32600


# --- JSON-RPC 2.0: strict JSON and bounds (issue 11) ---------------------------------------

@pytest.mark.parametrize("body, deeper_than_two", [
    (b'[[1]]', False),
    (b'[[[1]]]', True),
    (b'{"a": {"b": {"c": 1}}}', True),
    (b'[["[[[[", "{{{{"]]', False),           # brackets in strings do not nest
    (b'[["\\"[[[[\\\\", "]"]]', False),       # nor do they after escaped quotes and backslashes
    (b'[["unterminated [[[[', False),        # an unterminated string is left to the parser
])
def test_nesting_is_measured_on_the_raw_bytes(body, deeper_than_two):
    assert jsonrpc.nesting_exceeds(body, 2) is deeper_than_two


def test_a_batch_over_the_limit_runs_no_call():
    ran = []

    answer = jsonrpc.handle(json.dumps([{"jsonrpc": "2.0", "method": "sum", "params": [1], "id": i}
                                        for i in range(4)]), lambda call: ran.append(call), max_batch=3)

    assert answer["error"]["code"] == -32600 and answer["id"] is None
    assert ran == []


def test_an_answer_json_cannot_hold_is_an_internal_error_of_that_call_alone():
    answers = [jsonrpc.result_object(1, {"n": 2**70}), jsonrpc.result_object(2, "fine"),
               jsonrpc.result_object(3, float("nan"))]

    written = json.loads(jsonrpc.encode(answers), parse_constant=lambda name: pytest.fail(f"{name} written"))

    assert written == [{"jsonrpc": "2.0", "error": {"code": -32603, "message": "Internal error"}, "id": 1},
                       {"jsonrpc": "2.0", "result": "fine", "id": 2},
                       {"jsonrpc": "2.0", "result": None, "id": 3}]
