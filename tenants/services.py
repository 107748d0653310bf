from django.apps import apps
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction

from audit.actor import Actor
from audit.services import audit_record, instance_delete, instance_save

from . import crypto
from .fields import Secret, SecretField
from .models import ApiToken, Company, Membership, forget_memberships, user_memberships
from .roles import Role, outranks_or_equals


def company_create(*, actor: Actor, name: str, slug: str, timezone: str = "Europe/Berlin",
                   language: str = "de", **fields) -> Company:
    company = Company(name=name, slug=slug, timezone=timezone, language=language, **fields)
    return instance_save(actor=actor, instance=company)


def company_update(*, actor: Actor, company: Company, **fields) -> Company:
    for name, value in fields.items():
        setattr(company, name, value)
    return instance_save(actor=actor, instance=company)


def membership_role_check(*, actor: Actor, company: Company, role: str, existing: Membership | None) -> None:
    """A member manages memberships only up to their own role, and a company keeps an owner."""
    user = actor.user
    if actor.kind != "system" and not getattr(user, "is_superuser", False):
        own = next((m.role for m in user_memberships(user) if m.company_id == company.pk), None)
        if own is None:
            raise PermissionDenied("You are not a member of this company.")
        if not outranks_or_equals(own, role) or (existing and not outranks_or_equals(own, existing.role)):
            raise ValidationError({"role": "You cannot give or change a role above your own."})
    if existing and existing.role == Role.OWNER and role != Role.OWNER:
        _keep_an_owner(company, leaving=existing)


def _keep_an_owner(company: Company, *, leaving: Membership) -> None:
    others = Membership.objects.filter(company=company, role=Role.OWNER).exclude(pk=leaving.pk)
    if not others.exists():
        raise ValidationError({"role": "A company must keep at least one owner."})


@transaction.atomic
def membership_save(*, actor: Actor, membership: Membership) -> Membership:
    existing = None
    if membership.pk:
        existing = Membership.objects.select_for_update().get(pk=membership.pk)
    membership_role_check(actor=actor, company=membership.company, role=membership.role, existing=existing)
    user = membership.user
    if not user.is_staff:
        # Members work in the admin; staff status opens it, the membership scopes it.
        user.is_staff = True
        user.save(update_fields=["is_staff"])
    instance_save(actor=actor, instance=membership)
    forget_memberships(user)
    return membership


@transaction.atomic
def membership_delete(*, actor: Actor, membership: Membership) -> None:
    membership_role_check(actor=actor, company=membership.company, role=Role.VIEWER, existing=membership)
    if membership.role == Role.OWNER:
        _keep_an_owner(membership.company, leaving=membership)
    instance_delete(actor=actor, instance=membership)
    forget_memberships(membership.user)


@transaction.atomic
def member_add(*, actor: Actor, username: str, company: Company, role: str, email: str = "",
               limited_to_granted_objects: bool = False) -> tuple[Membership, bool]:
    """Add a user (created without a usable password when new) to a company."""
    User = get_user_model()
    user, created = User.objects.get_or_create(username=username, defaults={"email": email})
    if created:
        user.set_unusable_password()
        user.save()
    membership = Membership.objects.filter(user=user, company=company).first() or Membership(
        user=user, company=company)
    membership.role = role
    membership.limited_to_granted_objects = limited_to_granted_objects
    membership_save(actor=actor, membership=membership)
    return membership, created


@transaction.atomic
def object_permissions_set(*, actor: Actor, user, obj, perms: set[str], manageable: set[str]) -> None:
    """Set a user's guardian grants on one object, touching only `manageable` codenames."""
    from guardian.shortcuts import assign_perm, get_user_perms, remove_perm

    if not Membership.objects.filter(user=user, company_id=obj.company_id).exists():
        raise ValidationError("Grants go only to members of the object's company.")
    if not perms <= manageable:
        raise PermissionDenied("You cannot grant a permission you do not hold.")
    before = set(get_user_perms(user, obj))
    for codename in (before & manageable) - perms:
        remove_perm(codename, user, obj)
    for codename in perms - before:
        assign_perm(codename, user, obj)
    after = set(get_user_perms(user, obj))
    if before != after:
        audit_record(actor=actor, action="grant", company_id=obj.company_id,
                     object_type=obj._meta.label_lower, object_id=str(obj.pk), object_repr=str(obj),
                     changes={f"grants:{user.get_username()}": {"before": sorted(before), "after": sorted(after)}})
    forget_memberships(user)


def secret_fields() -> list[tuple[type, list[str]]]:
    """Every model with encrypted columns and the names of those columns."""
    found = []
    for model in apps.get_models():
        names = [f.attname for f in model._meta.concrete_fields if isinstance(f, SecretField)]
        if names:
            found.append((model, names))
    return found


@transaction.atomic
def encryption_keys_rotate(*, actor: Actor) -> int:
    """Re-encrypt every stored secret under the newest key; returns how many."""
    rotated = 0
    for model, names in secret_fields():
        rows = model._base_manager.select_for_update().values_list("pk", *names)
        for pk, *ciphertexts in rows.iterator():
            # Values arrive as Secret objects; a Secret saves as its ciphertext unchanged.
            updates = {name: Secret(crypto.reencrypt(value.ciphertext))
                       for name, value in zip(names, ciphertexts, strict=True) if value is not None}
            if updates:
                model._base_manager.filter(pk=pk).update(**updates)
                rotated += len(updates)
    audit_record(actor=actor, action="rotate_encryption_keys", company_id=None,
                 object_type="tenants.secret", changes={"secrets_reencrypted": {"before": None, "after": rotated}})
    return rotated


# --- API tokens ---------------------------------------------------------------------------
def _token_hash(plaintext: str) -> str:
    import hashlib

    return hashlib.sha256(plaintext.encode()).hexdigest()


@transaction.atomic
def api_token_create(*, actor: Actor, user, name: str) -> tuple[ApiToken, str]:
    """A new token for `user`; returns the row and the token, which is never retrievable again."""
    import secrets as _secrets


    plaintext = ApiToken.PREFIX + _secrets.token_urlsafe(32)
    token = ApiToken(user=user, name=name, key_prefix=plaintext[:12], key_hash=_token_hash(plaintext))
    token.full_clean()
    token.save()
    audit_record(actor=actor, action="api_token_create", company_id=None, object_type="tenants.apitoken",
                 object_id=str(token.pk), object_repr=str(token),
                 changes={"user": {"before": None, "after": user.get_username()}})
    return token, plaintext


@transaction.atomic
def api_token_revoke(*, actor: Actor, token: ApiToken) -> ApiToken:
    from django.utils import timezone

    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
        audit_record(actor=actor, action="api_token_revoke", company_id=None, object_type="tenants.apitoken",
                     object_id=str(token.pk), object_repr=str(token))
    return token


def api_token_authenticate(plaintext: str) -> ApiToken | None:
    """The active token with this value (and its active user), or None."""
    from django.utils import timezone


    if not plaintext.startswith(ApiToken.PREFIX):
        return None
    token = (ApiToken.objects.select_related("user")
             .filter(key_hash=_token_hash(plaintext), revoked_at__isnull=True, user__is_active=True).first())
    if token is not None:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=timezone.now())
    return token
