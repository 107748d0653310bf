"""What each membership role may do, per model.

A tenant-owned model may declare `tenant_policy` (role -> actions) where the default
below is wrong for it, e.g. read-only audit rows or the company itself.
"""

from django.db import models

ACTIONS = ("view", "add", "change", "delete")


class Role(models.TextChoices):
    OWNER = "owner", "Owner"
    ADMIN = "admin", "Admin"
    EDITOR = "editor", "Editor"
    VIEWER = "viewer", "Viewer"


# Higher ranks may manage memberships of lower or equal ranks, never above their own.
RANK = {Role.VIEWER: 0, Role.EDITOR: 1, Role.ADMIN: 2, Role.OWNER: 3}

DEFAULT_POLICY: dict[str, frozenset[str]] = {
    Role.OWNER: frozenset({"view", "add", "change", "delete"}),
    Role.ADMIN: frozenset({"view", "add", "change", "delete"}),
    Role.EDITOR: frozenset({"view", "add", "change"}),
    Role.VIEWER: frozenset({"view"}),
}

READ_ONLY_POLICY: dict[str, frozenset[str]] = {role: frozenset({"view"}) for role in Role}


def role_allows(role: str, model: type[models.Model], action: str) -> bool:
    policy = getattr(model, "tenant_policy", None) or DEFAULT_POLICY
    return action in policy.get(role, frozenset())


def outranks_or_equals(role: str, other: str) -> bool:
    return RANK[Role(role)] >= RANK[Role(other)]
