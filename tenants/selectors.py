from .models import Company, user_memberships
from .roles import role_allows


def companies_allowing(*, user, model, action: str):
    """The companies in which one of the user's roles allows `action` on `model`."""
    if user.is_superuser:
        return Company.objects.all()
    ids = [m.company_id for m in user_memberships(user) if role_allows(m.role, model, action)]
    return Company.objects.filter(pk__in=ids)
