from dataclasses import dataclass
from typing import Literal

from .middleware import client_ip

ActorKind = Literal["user", "token", "system"]


@dataclass(frozen=True)
class Actor:
    """Who makes a change, and through which request: every service takes one."""

    kind: ActorKind
    label: str
    user: object | None = None
    request_id: str = ""
    ip: str | None = None

    @classmethod
    def from_request(cls, request) -> "Actor":
        user = request.user
        token = getattr(request, "auth_token", None)
        if token is not None:
            return cls(kind="token", label=token.audit_label, user=user,
                       request_id=getattr(request, "request_id", ""), ip=client_ip(request))
        return cls(kind="user", label=user.get_username(), user=user,
                   request_id=getattr(request, "request_id", ""), ip=client_ip(request))

    @classmethod
    def system(cls, label: str) -> "Actor":
        """A management command, a Celery task or the platform itself."""
        return cls(kind="system", label=label)
