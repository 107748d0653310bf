"""JSON-RPC 2.0 (https://www.jsonrpc.org/specification) over plain data.

`handle(body, dispatch)` takes the raw request bytes and a function that runs one
call, and returns what to send back: a response object, a list of them (batch), or
None when nothing is to be sent (a notification, or a batch of only notifications).
`encode(answer)` gives the bytes to send.

JSON is strict both ways. NaN, Infinity, numbers past a double's range (1e400), lone
surrogates and bytes that are not UTF-8 are parse errors; nesting deeper than
`max_depth` is a parse error found before the body is parsed; a batch of more than
`max_batch` calls is one invalid-request error, and none of its calls runs. Only
values JSON has are written, so an id is echoed only as the valid JSON it came in.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Any, Callable

import orjson

from audit.storable import JSONRejected, json_loads

logger = logging.getLogger(__name__)

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603

STANDARD_MESSAGES = {
    PARSE_ERROR: "Parse error",
    INVALID_REQUEST: "Invalid Request",
    METHOD_NOT_FOUND: "Method not found",
    INVALID_PARAMS: "Invalid params",
    INTERNAL_ERROR: "Internal error",
}

# Defaults for callers that set no bounds of their own (the gateway passes its settings).
MAX_DEPTH = 64
MAX_BATCH = 50

_NO_ID = object()


class RpcError(Exception):
    """An error to answer with; `data` is shown to the caller, so it holds no internals."""

    def __init__(self, code: int, message: str | None = None, data: Any = None) -> None:
        super().__init__(message or STANDARD_MESSAGES.get(code, "Server error"))
        self.code = code
        self.message = message or STANDARD_MESSAGES.get(code, "Server error")
        self.data = data


def invalid_param(param: str, reason: str) -> RpcError:
    return RpcError(INVALID_PARAMS, f"Invalid params: {param}: {reason}", {"param": param, "reason": reason})


@dataclass(frozen=True)
class Call:
    method: str
    params: dict | list = field(default_factory=dict)
    id: Any = _NO_ID

    @property
    def is_notification(self) -> bool:
        return self.id is _NO_ID


def error_object(request_id: Any, error: RpcError) -> dict:
    body: dict[str, Any] = {"code": error.code, "message": error.message}
    if error.data is not None:
        body["data"] = error.data
    return {"jsonrpc": "2.0", "error": body, "id": request_id}


def result_object(request_id: Any, result: Any) -> dict:
    return {"jsonrpc": "2.0", "result": result, "id": request_id}


def _valid_id(value: Any) -> bool:
    # String, Number or Null (§4); booleans are not numbers here.
    return value is None or isinstance(value, str) or (isinstance(value, int | float) and not isinstance(value, bool))


def parse_call(obj: Any) -> Call:
    """One request object -> Call, or RpcError(INVALID_REQUEST) naming the problem."""
    if not isinstance(obj, dict):
        raise RpcError(INVALID_REQUEST, data={"reason": "a request is a JSON object"})
    if obj.get("jsonrpc") != "2.0":
        raise RpcError(INVALID_REQUEST, data={"reason": 'member "jsonrpc" must be exactly "2.0"'})
    if not isinstance(obj.get("method"), str):
        raise RpcError(INVALID_REQUEST, data={"reason": 'member "method" must be a string'})
    if "params" in obj and not isinstance(obj["params"], dict | list):
        raise RpcError(INVALID_REQUEST, data={"reason": 'member "params" must be an object or an array'})
    if "id" in obj and not _valid_id(obj["id"]):
        raise RpcError(INVALID_REQUEST, data={"reason": 'member "id" must be a string, a number or null'})
    extra = set(obj) - {"jsonrpc", "method", "params", "id"}
    if extra:
        raise RpcError(INVALID_REQUEST, data={"reason": "unknown members: " + ", ".join(sorted(extra))})
    return Call(method=obj["method"], params=obj.get("params", {}), id=obj.get("id", _NO_ID))


def _answer(obj: Any, dispatch: Callable[[Call], Any]) -> dict | None:
    try:
        call = parse_call(obj)
    except RpcError as error:
        # The id could not be trusted: answer with null (§5).
        request_id = obj.get("id") if isinstance(obj, dict) and _valid_id(obj.get("id")) else None
        return error_object(request_id, error)
    try:
        result = dispatch(call)
    except RpcError as error:
        return None if call.is_notification else error_object(call.id, error)
    except Exception:  # never leak internals: log here, answer -32603
        logger.exception("JSON-RPC method %s failed", call.method)
        return None if call.is_notification else error_object(call.id, RpcError(INTERNAL_ERROR))
    return None if call.is_notification else result_object(call.id, result)


# A JSON string, or an unterminated one up to the end: every match succeeds, so the scan is
# linear whatever the body (a pattern that can fail retries at every later quote).
_STRING = re.compile(rb'"[^"\\]*+(?:\\.[^"\\]*+)*+"?', re.DOTALL)
_NOT_BRACKET = bytes(sorted(set(range(256)) - set(b"[]{}")))


def nesting_exceeds(body: bytes, max_depth: int) -> bool:
    """Do arrays and objects in `body` nest deeper than `max_depth`? Brackets inside
    strings do not count. Runs on the raw bytes, so no parser ever recurses that deep."""
    depth = 0
    for byte in _STRING.sub(b"", body).translate(None, _NOT_BRACKET):
        if byte in b"[{":
            depth += 1
            if depth > max_depth:
                return True
        else:
            depth -= 1
    return False


def handle(body: bytes | str, dispatch: Callable[[Call], Any], *, max_batch: int = MAX_BATCH,
           max_depth: int = MAX_DEPTH) -> dict | list | None:
    """Answer one HTTP body: a response object, a list of them, or None (nothing to send)."""
    if isinstance(body, str):
        try:
            body = body.encode()
        except UnicodeEncodeError:  # a lone surrogate
            return error_object(None, RpcError(PARSE_ERROR))
    if nesting_exceeds(body, max_depth):
        return error_object(None, RpcError(PARSE_ERROR, data={
            "reason": f"arrays and objects nest deeper than {max_depth} levels"}))
    try:
        payload = json_loads(body)  # the one strict reader of inbound JSON (audit.storable)
    except JSONRejected:
        return error_object(None, RpcError(PARSE_ERROR))
    if isinstance(payload, list):
        if not payload:
            return error_object(None, RpcError(INVALID_REQUEST, data={"reason": "an empty batch"}))
        if len(payload) > max_batch:
            return error_object(None, RpcError(INVALID_REQUEST, data={
                "reason": f"a batch of {len(payload)} calls; at most {max_batch} per batch"}))
        answers = [answer for answer in (_answer(item, dispatch) for item in payload) if answer is not None]
        return answers or None
    return _answer(payload, dispatch)


def encode(answer: dict | list) -> bytes:
    """`handle`'s answer as JSON bytes. An answer whose result JSON cannot hold (a type it
    does not have, an integer past 64 bits) becomes that call's internal error alone."""
    if isinstance(answer, list):
        return b"[" + b",".join(_encode_one(item) for item in answer) + b"]"
    return _encode_one(answer)


def _encode_one(answer: dict) -> bytes:
    try:
        return orjson.dumps(answer)
    except orjson.JSONEncodeError:
        logger.exception("A JSON-RPC answer could not be written as JSON")
        return orjson.dumps(error_object(answer.get("id"), RpcError(INTERNAL_ERROR)))
