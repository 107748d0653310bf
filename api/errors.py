"""The REST API's one error shape, the product's own (voice.views.error_response):

    {"error": {"code": "not_found", "message": "…", "fields": {...}?, "alternatives": [...]?}}

`code` is a stable word a client may branch on; `message` is for a person; `fields` (400
validation errors) names each bad field with its messages; `alternatives` (409 on a booking)
lists the nearest free starts. Installed as REST_FRAMEWORK["EXCEPTION_HANDLER"], so every DRF
refusal (authentication, permission, throttling, parsing, 404, 405) has it too.
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.views import exception_handler as drf_exception_handler

# The code DRF's own exceptions answer with, where theirs is not the word we use.
DRF_CODES = {
    "not_authenticated": "not_authenticated",
    "authentication_failed": "not_authenticated",
    "permission_denied": "permission_denied",
    "not_found": "not_found",
    "method_not_allowed": "method_not_allowed",
    "not_acceptable": "not_acceptable",
    "unsupported_media_type": "unsupported_media_type",
    "throttled": "rate_limited",
    "parse_error": "invalid_json",
    "invalid": "invalid",
}


class ApiError(exceptions.APIException):
    """A refusal with its own status, code and message, and extra members of the error object."""

    def __init__(self, status_code: int, code: str, message: str, **extra) -> None:
        self.status_code = status_code
        self.code = code
        self.extra = extra
        super().__init__(detail=message, code=code)


def conflict(code: str, message: str, **extra) -> ApiError:
    return ApiError(status.HTTP_409_CONFLICT, code, message, **extra)


def _flatten(detail) -> list[str]:
    if isinstance(detail, dict):
        return [m for value in detail.values() for m in _flatten(value)]
    if isinstance(detail, list):
        return [m for value in detail for m in _flatten(value)]
    return [str(detail)]


def _fields(detail, prefix: str = "") -> dict[str, list[str]]:
    """DRF's nested validation detail as {"field" or "field.sub": [messages]}."""
    if isinstance(detail, dict):
        out: dict[str, list[str]] = {}
        for name, value in detail.items():
            key = f"{prefix}.{name}" if prefix else str(name)
            if name == "non_field_errors" and not prefix:
                key = "__all__"
            if isinstance(value, dict):
                out.update(_fields(value, key))
            else:
                out[key] = _flatten(value)
        return out
    return {prefix or "__all__": _flatten(detail)}


def validation_error(exc: DjangoValidationError) -> exceptions.ValidationError:
    """A model or service ValidationError as DRF's, field by field ("__all__" for the rest)."""
    if hasattr(exc, "error_dict"):
        return exceptions.ValidationError({name: messages for name, messages in exc.message_dict.items()})
    return exceptions.ValidationError({"__all__": exc.messages})


def error_body(code: str, message: str, **extra) -> dict:
    return {"error": {"code": code, "message": message, **extra}}


def exception_handler(exc, context):
    """DRF's handler, then the body reshaped into the one error shape (headers kept)."""
    if isinstance(exc, DjangoValidationError):
        exc = validation_error(exc)
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        # A service's own refusal (a write touching an agent the user may not change).
        exc = exceptions.PermissionDenied(str(exc) or None)
    response = drf_exception_handler(exc, context)
    if response is None:
        return None  # an unexpected exception: Django's 500 (logged, never shown)
    if isinstance(exc, ApiError):
        response.data = error_body(exc.code, str(exc.detail), **exc.extra)
    elif isinstance(exc, exceptions.ValidationError):
        fields = _fields(exc.detail)
        first = next(iter(fields.items()), ("__all__", ["Invalid input."]))
        where = "" if first[0] == "__all__" else f"{first[0]}: "
        response.data = error_body("invalid", f"{where}{first[1][0]}", fields=fields)
    else:
        codes = exc.get_codes() if isinstance(exc, exceptions.APIException) else "error"
        code = codes if isinstance(codes, str) else "error"
        message = " ".join(_flatten(exc.detail)) if isinstance(exc, exceptions.APIException) else str(exc)
        response.data = error_body(DRF_CODES.get(code, code), message)
    return response
