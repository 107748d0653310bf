"""Writes of a company's Twilio numbers (the services of `TwilioNumber`), for the admin and any
other interface: save one, pull them from Twilio's IncomingPhoneNumbers, configure one on Twilio
(its voice URL and status callback pointed at this server, as Save & Deploy does for Retell).

Every write is validated and audited (audit.services.instance_save) and logged in the activity
log; Twilio's answers are what the numbers record (`number_sid`, `voice_url`, `status_callback`).
Who may write is decided here, as in retell_config.services: a user touches only the numbers
`restrict()` gives it for the action (a member limited to granted agents: the numbers of those
agents, and those no agent answers yet), may let only an agent it sees answer a number, and
pulls only when it may change every agent (a pull touches every number of the company).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone

from audit.actor import Actor
from audit.services import activity_log, instance_save
from audit.storable import model_values_fit
from retell_config.models import Agent
from retell_config.selectors import changes_every_agent, role_allows_in
from tenants.models import Company
from tenants.validators import validate_e164

from .models import TwilioNumber
from .selectors import twilio_webhook_urls
from .twilio_client import TwilioClient, TwilioError, TwilioRejected


def _acting_user(actor: Actor):
    return None if actor.kind == "system" else actor.user


def _require(actor: Actor, number: TwilioNumber, action: str) -> None:
    user = _acting_user(actor)
    if user is None:
        return
    if number.pk is None:
        allowed = role_allows_in(user, number.company, TwilioNumber, "add")
    else:
        allowed = TwilioNumber.objects.restrict(user, action).filter(pk=number.pk).exists()
    if not allowed:
        raise PermissionDenied(f"You may not {action} this Twilio number.")
    if number.agent_id and not Agent.objects.restrict(user, "view").filter(pk=number.agent_id).exists():
        raise PermissionDenied("You may not let that agent answer a number.")


def twilio_number_save(*, actor: Actor, number: TwilioNumber) -> TwilioNumber:
    """Create or change a number (which agent answers it, its speech providers). PermissionDenied
    as the module says; ValidationError for a number that is not E.164, or one that cannot be
    added (models.NUMBER_UNAVAILABLE, whichever company holds it)."""
    _require(actor, number, "change")
    return instance_save(actor=actor, instance=number)


@dataclass
class PullResult:
    """What a pull did: the numbers made and brought up to date, those that could not be added
    here (another company holds them; not said which), and those of ours Twilio no longer lists."""

    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unavailable: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)

    @property
    def summary(self) -> str:
        parts = [f"{len(self.created)} new", f"{len(self.updated)} updated"]
        if self.unavailable:
            parts.append(f"{len(self.unavailable)} not available here ({', '.join(self.unavailable)})")
        if self.missing:
            parts.append(f"{len(self.missing)} no longer on Twilio ({', '.join(self.missing)})")
        return ", ".join(parts)


def twilio_numbers_pull(*, actor: Actor, company: Company) -> PullResult:
    """Bring the company's numbers in line with its Twilio account's IncomingPhoneNumbers: a new
    number is added (no agent answers it yet), a known one gets Twilio's SID, name, voice URL and
    status callback; nothing is deleted. Raises PermissionDenied (the user may not add and change
    numbers, or not change every agent), TwilioError (logged too)."""
    user = _acting_user(actor)
    if user is not None and not (role_allows_in(user, company, TwilioNumber, "add")
                                 and role_allows_in(user, company, TwilioNumber, "change")
                                 and changes_every_agent(user, company)):
        raise PermissionDenied(f"Pulling numbers touches every Twilio number of {company.name}; you may not "
                               "change them all (your access may be limited to the agents granted to you).")
    try:
        with TwilioClient(company) as client:
            records = client.list_numbers()
    except TwilioError as exc:
        activity_log(company=company, kind="twilio.numbers_pull_failed", level="error",
                     message=f"Pulling numbers from Twilio failed: {exc.message}")
        raise
    result, now, seen = PullResult(), timezone.now(), set()
    for record in records:
        phone = record["phone_number"]
        try:
            validate_e164(phone)
        except ValidationError:
            continue  # a short code or a number form no caller dials: nothing answers it here
        seen.add(phone)
        number = TwilioNumber.objects.filter(phone_number=phone).first()
        if number is not None and number.company_id != company.pk:
            result.unavailable.append(phone)
            continue
        created = number is None
        number = number or TwilioNumber(company=company, phone_number=phone)
        # As Twilio holds them, each fitted to its column (a value the column refuses is left out).
        values, _ = model_values_fit(TwilioNumber, {"number_sid": record["sid"], "friendly_name": record["friendly_name"],
                                                    "voice_url": record["voice_url"],
                                                    "status_callback": record["status_callback"]})
        for name, value in values.items():
            setattr(number, name, value)
        number.pulled_at = now
        instance_save(actor=actor, instance=number, action="pull_from_twilio")
        (result.created if created else result.updated).append(phone)
    result.missing = sorted(set(TwilioNumber.objects.filter(company=company).exclude(number_sid="")
                                .values_list("phone_number", flat=True)) - seen)
    activity_log(company=company, kind="twilio.numbers_pulled",
                 message=f"Pulled numbers from Twilio: {result.summary}",
                 data={"created": result.created, "updated": result.updated})
    return result


def twilio_number_configure(*, actor: Actor, number: TwilioNumber) -> TwilioNumber:
    """Point the number on Twilio at this server: voice URL PUBLIC_BASE_URL/api/voice-agent/incoming
    and status callback PUBLIC_BASE_URL/api/voice-agent/status (both POST). The number records
    what Twilio answered and when. Raises PermissionDenied, TwilioError (logged too)."""
    _require(actor, number, "change")
    company = number.company
    voice_url, status_callback = twilio_webhook_urls()
    try:
        with TwilioClient(company) as client:
            sid = number.number_sid
            if not sid:
                found = client.list_numbers(phone_number=number.phone_number)
                if not found:
                    raise TwilioRejected(f"{number.phone_number} is not a number of this Twilio account.")
                sid = found[0]["sid"]
            record = client.configure_number(sid, voice_url=voice_url, status_callback=status_callback)
    except TwilioError as exc:
        activity_log(company=company, kind="twilio.number_configure_failed", level="error",
                     message=f"Configuring {number.phone_number} on Twilio failed: {exc.message}",
                     data={"twilio_number_id": number.pk})
        raise
    values, _ = model_values_fit(TwilioNumber, {"number_sid": sid, "voice_url": record["voice_url"],
                                                "status_callback": record["status_callback"]})
    for name, value in values.items():
        setattr(number, name, value)
    number.configured_at = timezone.now()
    instance_save(actor=actor, instance=number, action="configure_on_twilio")
    activity_log(company=company, kind="twilio.number_configured",
                 message=f"Twilio number {number.phone_number} configured: voice URL {number.voice_url}, "
                         f"status callback {number.status_callback}",
                 data={"twilio_number_id": number.pk})
    return number
