"""The OpenAPI description of the REST API (drf-spectacular): every operation also lists the
errors it can answer, all in the one error shape (api.errors)."""

from drf_spectacular.openapi import AutoSchema as SpectacularAutoSchema
from drf_spectacular.utils import OpenApiParameter, OpenApiTypes
from rest_framework import serializers

ERROR_TEXTS = {
    400: "Bad input: `fields` names each bad field with its messages (code `invalid`), or a bad cursor or filter.",
    401: "No valid credentials: send `Authorization: Bearer <API token>` or use the admin session.",
    403: "The credentials may see this, but their role may not do it (code `permission_denied`).",
    404: "No such row among those these credentials may see (another company's row looks the same).",
    409: "The change conflicts with the current state (code in the body).",
    412: "If-Match is not the current ETag: someone changed the row meanwhile (code `precondition_failed`).",
    415: "The body is not JSON (code `unsupported_media_type`).",
    422: "The Idempotency-Key was used before with another request (code `idempotency_key_reused`).",
    428: "If-Match is required on this change: send the ETag of the row as read (code `precondition_required`).",
    503: "Retell is disconnected for the company (its circuit is open, code `retell_disconnected`): try later.",
    429: "Too many requests (code `rate_limited`); Retry-After says when to try again.",
}


class ErrorDetail(serializers.Serializer):
    code = serializers.CharField(help_text="A stable word to branch on, e.g. not_found, invalid, slot_taken.")
    message = serializers.CharField(help_text="For a person.")
    fields = serializers.DictField(child=serializers.ListField(child=serializers.CharField()), required=False,
                                   help_text='Per bad field ("__all__" for the whole body), its messages.')
    alternatives = serializers.ListField(child=serializers.DateTimeField(), required=False,
                                         help_text="On a refused booking: the nearest free starts (UTC).")


class Error(serializers.Serializer):
    error = ErrorDetail()


IF_MATCH = OpenApiParameter(
    "If-Match", OpenApiTypes.STR, OpenApiParameter.HEADER, required=True,
    description="The ETag of the row as last read (from GET); 412 when it is no longer current, 428 without it.")
IF_MATCH_OPTIONAL = OpenApiParameter(
    "If-Match", OpenApiTypes.STR, OpenApiParameter.HEADER, required=False,
    description="The ETag of the row as last read; when sent, 412 unless it is still current.")
ETAG = OpenApiParameter("ETag", OpenApiTypes.STR, OpenApiParameter.HEADER, response=[200, 201],
                        description="The row's version: send it back as If-Match to change the row.")
IDEMPOTENCY_KEY = OpenApiParameter(
    "Idempotency-Key", OpenApiTypes.STR, OpenApiParameter.HEADER, required=False,
    description="Up to 255 characters chosen by the client. A repeat with the same key (same user) gets the first "
                "answer again and creates nothing more; the same key with another body is refused (422).")


class AutoSchema(SpectacularAutoSchema):
    """drf-spectacular's schema plus the error responses of each operation.

    Every operation may answer 401, 403 and 429; one on a row 404; one with a body 400 and 415;
    one needing If-Match 412 and 428. A view adds others with `extra_errors` {action: [status]}.
    """

    def _error_statuses(self) -> set[int]:
        statuses = {401, 403, 429}
        view = self.view
        action = getattr(view, "action", None)
        if self.method in ("PUT", "PATCH", "POST", "DELETE"):
            statuses |= {400}
        if self.method in ("PUT", "PATCH", "POST"):
            statuses |= {415}
        if self._is_list_view() or action == "list":
            statuses |= {400}
        if "{" in self.path:
            statuses |= {404}
        if self.method in ("PUT", "PATCH", "DELETE"):
            statuses |= {412, 428}
        if getattr(view, "if_match_on_actions", False) and self.method == "POST" and "{" in self.path:
            statuses |= {412}
        statuses |= set(getattr(view, "extra_errors", {}).get(action, ()))
        return statuses

    def get_override_parameters(self):
        parameters = list(super().get_override_parameters())
        named = {getattr(p, "name", None) for p in parameters}
        if "If-Match" not in named:
            if self.method in ("PUT", "PATCH", "DELETE"):
                parameters.append(IF_MATCH)
            elif self.method == "POST" and "{" in self.path and getattr(self.view, "if_match_on_actions", False):
                parameters.append(IF_MATCH_OPTIONAL)
        if "{" in self.path and self.method in ("GET", "PUT", "PATCH") or getattr(self.view, "etag_on_post", False):
            parameters.append(ETAG)
        return parameters

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        for status in sorted(self._error_statuses()):
            if str(status) not in responses:
                response = self._get_response_for_code(Error, str(status), direction=direction)
                response["description"] = ERROR_TEXTS[status]
                responses[str(status)] = response
        return responses
