"""The demo data `seed_demo` creates: what exists is left as it is, so it is safe to repeat;
only demo agents still as first seeded (no prompt, no greeting) are completed."""

import os
import secrets
from datetime import time
from decimal import Decimal
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction

from appointments.services import service_ensure
from audit.actor import Actor
from retell_config.models import Agent, CustomFunction, WebhookConfig, agent_language_for, agent_language_matches
from retell_config.services import agent_update, agent_upsert, custom_functions_seed, webhook_update
from voice.scenarios import scenario_ensure

from .models import Company, Membership
from .roles import Role
from .services import company_create, member_add

WEEKDAYS_8_TO_18 = {day: [["08:00", "18:00"]] for day in ("mon", "tue", "wed", "thu", "fri")}

# The demo agents' prompts. {{company_name}} and {{company_address}} are filled in on each call
# (voice.dialog.base.render_variables). Hours, services and prices are left out: the LLM engine
# adds them from the company's own data (voice.dialog.openai_provider.system_prompt), so a
# change in the admin never leaves a prompt saying something else.
PRAXIS_PROMPT = """\
Du bist {role} von {{{{company_name}}}}, einer Zahnarztpraxis in Berlin ({{{{company_address}}}}). \
Du nimmst Anrufe entgegen, {when}.

Deine Aufgaben:
- Termine vereinbaren, verschieben und absagen. Dafür nutzt du immer die Funktionen; einen Termin, den sie nicht \
bestätigt haben, sagst du nicht zu.
- Auskunft geben über Öffnungszeiten, Adresse und Anfahrt, über die Leistungen der Praxis und ihre Preise, so wie \
sie dir vorliegen.
- Wer mit einem Menschen sprechen möchte, starke Schmerzen hat oder etwas braucht, das du nicht klären kannst, \
den verbindest du mit dem Praxisteam.

So sprichst du am Telefon:
- Freundlich und knapp, ein bis zwei Sätze, immer nur eine Frage auf einmal.
- Du sprichst Anrufer mit „Sie“ an, und mit Namen, sobald du ihn kennst.
- Bevor du buchst, verschiebst oder absagst, nennst du Leistung, Tag, Uhrzeit und Namen noch einmal und wartest \
auf ein klares Ja.
- Tage und Uhrzeiten sagst du so, wie man sie spricht („Dienstag, der 14. Mai, um halb zehn“), nie als Ziffern.
- Hast du etwas nicht verstanden, fragst du nach, statt zu raten.

Was du nie tust:
- Medizinisch beraten: keine Diagnosen, keine Empfehlungen zu Medikamenten oder Behandlungen. Bei starken \
Schmerzen, Schwellungen oder nach einem Unfall bietest du den frühesten Termin an oder verbindest mit dem \
Praxisteam; ist ein Leben in Gefahr, verweist du auf den Notruf 112.
- Über andere Patientinnen und Patienten sprechen: weder über ihre Termine noch über ihre Daten, auch nicht mit \
Angehörigen, und nicht einmal darüber, ob jemand hier Patient ist. Über einen Termin sprichst du nur mit der \
Person, für die er gebucht ist.
- Etwas erfinden: keine Preise, Zeiten oder Leistungen, die dir nicht vorliegen. Was du nicht weißt, klärt das \
Praxisteam.
"""

FRONT_DESK_PROMPT = """\
You are the front desk of {{company_name}}, a dental practice in New York ({{company_address}}). You answer \
the phone while the team is with patients.

What you do:
- Book, reschedule and cancel appointments. Always use the functions for this, and never promise a time they \
have not confirmed.
- Tell callers our opening hours, our address and how to get here, the services we offer and their prices, as \
you have them.
- Put the caller through to a person when they ask for one, are in severe pain, or need something you cannot \
settle yourself.

How you speak on the phone:
- Warm and brief: one or two sentences, and one question at a time.
- Use the caller's name once you have it.
- Before you book, move or cancel anything, read back the service, day, time and name, and wait for a clear yes.
- Say dates and times the way people say them ("Tuesday, May 14th, at nine thirty"), never as digits.
- If you did not catch something, ask again rather than guess.

What you never do:
- Give medical advice: no diagnoses, no recommendations of medication or treatment. For severe pain, swelling \
or an injury, offer the earliest appointment or put the caller through to the team; if someone's life may be \
in danger, tell them to call 911.
- Talk about other patients: not their appointments, not their details, not even whether someone is a patient \
here, and not to family members either. Discuss an appointment only with the person it was booked for.
- Make anything up: no prices, hours or services you were not given. What you don't know, the team will answer.
"""

DEMO_COMPANIES = [
    {
        "company": {
            "name": "AskProAI Demo Company", "slug": "askproai-demo", "timezone": "Europe/Berlin",
            "language": "de", "phone": "+493083793369", "address": "Friedrichstraße 100, 10117 Berlin",
            "opening_hours": {**WEEKDAYS_8_TO_18, "fri": [["08:00", "14:00"]]},
        },
        "agents": [
            {"agent_id": "agent_abc123", "name": "Main Reception Agent", "phone_numbers": ["+49 30 837 93 369"],
             "general_prompt": PRAXIS_PROMPT.format(
                 role="die Telefonrezeption", when="während das Praxisteam bei den Patientinnen und Patienten ist"),
             "begin_message": "Guten Tag, Sie sind mit {{company_name}} verbunden. Wie kann ich Ihnen helfen?"},
            {"agent_id": "agent_xyz789", "name": "Backup Agent", "phone_numbers": ["+49 30 837 93 370"],
             "general_prompt": PRAXIS_PROMPT.format(
                 role="die Vertretung der Telefonrezeption", when="wenn die Rezeption gerade besetzt ist"),
             "begin_message": "Guten Tag, hier ist {{company_name}}. Die Rezeption ist gerade im Gespräch, "
                              "aber ich helfe Ihnen gern. Was kann ich für Sie tun?"},
        ],
        "owner": "demo-owner",
        # Saved scenarios (voice.models.Scenario) of the first agent: run them from its Test page.
        "scenarios": [
            {"name": "Termin buchen: Kontrolluntersuchung am Mittwoch", "language": "de",
             "script": "Guten Tag, ich hätte gern einen Termin für eine Kontrolluntersuchung\nMittwoch um 10 Uhr\n"
                       "Mein Name ist Hans Müller\nJa, genau\nNein danke, auf Wiederhören",
             "expect_outcome": "booked", "expect_service": "Kontrolluntersuchung", "expect_day": "wednesday",
             "expect_time": time(10, 0), "expect_transfer": "no", "must_say": "Hans Müller", "max_turns": 5,
             "max_latency_ms": 3000},
            {"name": "Öffnungszeiten, dann ans Team", "language": "de",
             "script": "Wann haben Sie geöffnet?\nKann ich bitte mit jemandem aus dem Team sprechen?",
             "expect_outcome": "none", "expect_transfer": "yes", "must_say": "8 bis 18 Uhr"},
        ],
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
            {"agent_id": "agent_dental001", "name": "Front Desk Agent", "phone_numbers": ["+1 212 555 0134"],
             "general_prompt": FRONT_DESK_PROMPT,
             "begin_message": "Thank you for calling {{company_name}}, this is the front desk. "
                              "How can I help you today?"},
        ],
        "owner": "dental-owner",
        "scenarios": [
            {"name": "Book a teeth cleaning on Wednesday", "language": "en",
             "script": "Hi, I'd like to book a teeth cleaning\nWednesday at 10 am\nMy name is Anna Schmidt\n"
                       "Yes, please\nNo, that's all, thanks",
             "expect_outcome": "booked", "expect_service": "cleaning", "expect_day": "wednesday",
             "expect_time": time(10, 0), "expect_transfer": "no", "must_say": "Anna Schmidt",
             "must_not_say": "sorry", "max_turns": 5, "max_latency_ms": 3000},
            {"name": "Opening hours, then a person", "language": "en",
             "script": "What are your opening hours?\nCan I speak to a person please?",
             "expect_outcome": "none", "expect_transfer": "yes", "must_say": "9 am to 1 pm"},
        ],
        "services": [
            {"name": "Check-up", "duration_minutes": 30, "price": Decimal("120.00")},
            {"name": "Teeth cleaning", "duration_minutes": 45, "buffer_minutes": 15, "price": Decimal("150.00")},
            {"name": "Whitening consultation", "duration_minutes": 30},
        ],
    },
]

SUPERUSER = "admin"
LOGIN_FILE = Path(settings.VAR_DIR) / "demo-login.txt"


def demo_webhook_url() -> str:
    """Where the demo companies' Retell webhooks point: this server's Retell webhook endpoint."""
    return settings.PUBLIC_BASE_URL.rstrip("/") + "/api/retell/webhook"


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


def _demo_agent_complete(*, actor: Actor, agent: Agent, spec: dict) -> bool:
    """Give a demo agent that nobody has written for yet (no prompt, no greeting) the demo's
    prompt and greeting, and its company's language if it speaks another (demos seeded before
    agents followed their company were all de-DE). An agent with either text is left alone.
    Returns whether the agent changed."""
    if agent.general_prompt or agent.begin_message:
        return False
    fields = {"general_prompt": spec["general_prompt"], "begin_message": spec["begin_message"]}
    if not agent_language_matches(agent.language, agent.company.language):
        fields["language"] = agent_language_for(agent.company.language)
    agent_update(actor=actor, agent=agent, fields=fields, note="The demo's prompt and greeting", push=False)
    return True


@transaction.atomic
def demo_seed(*, actor: Actor | None = None) -> dict:
    """Create whatever of the demo is missing; return what was created."""
    actor = actor or Actor.system("manage.py seed_demo")
    created = {"companies": [], "agents": [], "agents updated": [], "users": [], "services": [],
               "custom functions": [], "webhooks": [], "scenarios": []}
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
        for agent_spec in spec["agents"]:
            agent = Agent.objects.filter(agent_id=agent_spec["agent_id"]).first()
            if agent is None:
                agent, _ = agent_upsert(actor=actor, company=company, agent_id=agent_spec["agent_id"],
                                        name=agent_spec["name"], phone_numbers=agent_spec["phone_numbers"])
                created["agents"].append(agent.agent_id)
            if agent.company_id == company.pk and _demo_agent_complete(actor=actor, agent=agent, spec=agent_spec) \
                    and agent.agent_id not in created["agents"]:
                created["agents updated"].append(agent.agent_id)
        for service in spec["services"]:
            if service_ensure(actor=actor, company=company, **service)[1]:
                created["services"].append(service["name"])
        if not CustomFunction.objects.filter(company=company).exists():
            functions = custom_functions_seed(actor=actor, company=company,
                                              agents=Agent.objects.filter(company=company))
            created["custom functions"].extend(f.name for f in functions)
        if not WebhookConfig.objects.filter(company=company).exists():
            webhook_update(actor=actor, company=company, url=demo_webhook_url(),
                           events=["call_started", "call_ended", "call_analyzed"], push=False)
            created["webhooks"].append(company.slug)
        first_agent = Agent.objects.filter(company=company, agent_id=spec["agents"][0]["agent_id"]).first()
        for scenario in spec["scenarios"] if first_agent is not None else []:
            if scenario_ensure(actor=actor, agent=first_agent, **scenario)[1]:
                created["scenarios"].append(scenario["name"])
        if not User.objects.filter(username=spec["owner"]).exists():
            _ensure_user(spec["owner"], password=password)
            created["users"].append(spec["owner"])
        if not Membership.objects.filter(user__username=spec["owner"], company=company).exists():
            member_add(actor=actor, username=spec["owner"], company=company, role=Role.OWNER)
    return created


def demo_logins() -> list[tuple[str, str]]:
    return [(SUPERUSER, "superuser: every company")] + [
        (spec["owner"], f"owner of {spec['company']['name']}") for spec in DEMO_COMPANIES]
