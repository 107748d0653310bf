"""Who calls the REST API: a user's API token (`Authorization: Bearer vdk_…`, the gateway's
tokens, tenants.models.ApiToken) or the admin session (DRF's SessionAuthentication, which
enforces CSRF on unsafe methods)."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

from audit.actor import Actor
from tenants.models import ApiToken
from tenants.services import api_token_authenticate


class ApiTokenAuthentication(authentication.BaseAuthentication):
    """`Authorization: Bearer <API token>`; the token acts with its user's rights.

    No Authorization header, or another scheme: not this class's request (None). A Bearer
    header with a token that is unknown, revoked or of an inactive user: 401.
    """

    keyword = "Bearer"

    def authenticate(self, request):
        header = request.headers.get("Authorization", "")
        if not header.startswith(f"{self.keyword} "):
            return None
        token = api_token_authenticate(header[len(self.keyword) + 1:].strip())
        if token is None:
            raise exceptions.AuthenticationFailed("The API token is unknown or revoked.")
        # Actor.from_request and the audit trail name the token, not only its user.
        request._request.auth_token = token
        return token.user, token

    def authenticate_header(self, request) -> str:
        return f'{self.keyword} realm="voicedesk-api"'


def actor_for(request) -> Actor:
    """The audited actor of an API request: the token (by name and id) or the session's user."""
    if isinstance(request.auth, ApiToken):
        request._request.auth_token = request.auth
    return Actor.from_request(request._request if hasattr(request, "_request") else request)


class ApiTokenScheme(OpenApiAuthenticationExtension):
    target_class = "api.auth.ApiTokenAuthentication"
    name = "apiToken"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "bearerFormat": "vdk_…",
                "description": "A user's API token (Admin → API tokens); it acts with that user's rights."}
