"""The demo data `seed_demo` creates: what exists is left as it is, so it is safe to repeat."""

import os
import secrets
from decimal import Decimal
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction

from appointments.services import service_ensure
from audit.actor import Actor
from retell_config.models import Agent
from retell_config.services import agent_upsert

from .models import Company, Membership
from .roles import Role
from .services import company_create, member_add

WEEKDAYS_8_TO_18 = {day: [["08:00", "18:00"]] for day in ("mon", "tue", "wed", "thu", "fri")}

DEMO_COMPANIES = [
    {
        "company": {
            "name": "AskProAI Demo Company", "slug": "askproai-demo", "timezone": "Europe/Berlin",
            "language": "de", "phone": "+493083793369", "address": "Friedrichstraße 100, 10117 Berlin",
            "opening_hours": {**WEEKDAYS_8_TO_18, "fri": [["08:00", "14:00"]]},
        },
        "agents": [
            {"agent_id": "agent_abc123", "name": "Main Reception Agent", "phone_numbers": ["+49 30 837 93 369"]},
            {"agent_id": "agent_xyz789", "name": "Backup Agent", "phone_numbers": ["+49 30 837 93 370"]},
        ],
        "owner": "demo-owner",
        "services": [
            {"name": "Kontrolluntersuchung", "duration_minutes": 30, "price": Decimal("45.00")},
            {"name": "Professionelle Zahnreinigung", "duration_minutes": 60, "buffer_minutes": 10,
             "price": Decimal("95.00")},
            {"name": "Beratungsgespräch", "duration_minutes": 20},
        ],
    },
    {
        "company": {
            "name": "Bright Smile Dental", "slug": "bright-smile-dental", "timezone": "America/New_York",
            "language": "en", "phone": "+12125550134", "address": "200 Park Avenue South, New York, NY 10003",
            "opening_hours": {**WEEKDAYS_8_TO_18, "sat": [["09:00", "13:00"]]},
        },
        "agents": [
            {"agent_id": "agent_dental001", "name": "Front Desk Agent", "phone_numbers": ["+1 212 555 0134"]},
        ],
        "owner": "dental-owner",
        "services": [
            {"name": "Check-up", "duration_minutes": 30, "price": Decimal("120.00")},
            {"name": "Teeth cleaning", "duration_minutes": 45, "buffer_minutes": 15, "price": Decimal("150.00")},
            {"name": "Whitening consultation", "duration_minutes": 30},
        ],
    },
]

SUPERUSER = "admin"
LOGIN_FILE = Path(settings.VAR_DIR) / "demo-login.txt"


def demo_password() -> str:
    """The demo users' password: VOICEDESK_DEMO_PASSWORD, or one made once and kept in var/."""
    supplied = os.environ.get("VOICEDESK_DEMO_PASSWORD")
    if supplied:
        return supplied
    if LOGIN_FILE.exists():
        return LOGIN_FILE.read_text().strip()
    password = secrets.token_urlsafe(12)
    LOGIN_FILE.parent.mkdir(parents=True, exist_ok=True)
    LOGIN_FILE.touch(mode=0o600)
    LOGIN_FILE.write_text(password + "\n")
    return password


def _ensure_user(username: str, *, password: str, superuser: bool = False):
    User = get_user_model()
    user = User.objects.filter(username=username).first()
    if user is None:
        user = User(username=username, is_staff=True, is_superuser=superuser)
        user.set_password(password)
        user.save()
    return user


@transaction.atomic
def demo_seed(*, actor: Actor | None = None) -> dict:
    """Create whatever of the demo is missing; return what was created."""
    actor = actor or Actor.system("manage.py seed_demo")
    created = {"companies": [], "agents": [], "users": [], "services": []}
    password = demo_password()
    User = get_user_model()
    if not User.objects.filter(username=SUPERUSER).exists():
        _ensure_user(SUPERUSER, password=password, superuser=True)
        created["users"].append(SUPERUSER)
    for spec in DEMO_COMPANIES:
        company = Company.objects.filter(slug=spec["company"]["slug"]).first()
        if company is None:
            company = company_create(actor=actor, **spec["company"])
            created["companies"].append(company.name)
        for agent in spec["agents"]:
            if not Agent.objects.filter(agent_id=agent["agent_id"]).exists():
                agent_upsert(actor=actor, company=company, **agent)
                created["agents"].append(agent["agent_id"])
        for service in spec["services"]:
            if service_ensure(actor=actor, company=company, **service)[1]:
                created["services"].append(service["name"])
        if not User.objects.filter(username=spec["owner"]).exists():
            _ensure_user(spec["owner"], password=password)
            created["users"].append(spec["owner"])
        if not Membership.objects.filter(user__username=spec["owner"], company=company).exists():
            member_add(actor=actor, username=spec["owner"], company=company, role=Role.OWNER)
    return created


def demo_logins() -> list[tuple[str, str]]:
    return [(SUPERUSER, "superuser: every company")] + [
        (spec["owner"], f"owner of {spec['company']['name']}") for spec in DEMO_COMPANIES]
