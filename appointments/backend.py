"""The practice backend client: what VoiceDesk tells the practice's own system.

Two messages (seed 003, section 4), each sent as an `audit.Delivery` (stored
payload, Idempotency-Key header, retries with backoff, dead letter):

    POST {backend}/api/appointments/confirm
        {appointment_id, tenant_id, patient_id, confirmed, confirmed_at}
    POST {backend}/api/calls/record
        {call_id, tenant_id, phone_number, duration, call_type, transcript, outcome, created_at}

`{backend}` is the company's backend URL, else BACKEND_URL; the bearer key is the
company's backend key, else BACKEND_API_KEY; both are read when each try is sent
(the key is never stored with the delivery), so a fixed URL or key is used by the
next try.

Identifiers the backend sees:
- tenant_id: the company's slug (stable, readable, unique).
- appointment_id: the backend's own id of the appointment when known (backend_id),
  else VoiceDesk's appointment id.
- patient_id: the patient's phone number in E.164, the one identifier the
  receptionist reliably collects; the backend matches or creates its patient by it.
"""

from datetime import datetime, timezone as dt_timezone

from django.conf import settings

from audit.models import Delivery
from audit.deliveries import delivery_enqueue, delivery_kind_register
from tenants.models import Company

CONFIRM_PATH = "/api/appointments/confirm"
CALL_RECORD_PATH = "/api/calls/record"

# Idempotency keys: the prefix and the appointment's id, or the call's id. Who may see a
# delivery is read from them too (voice.access), so they name the row they are about.
CONFIRM_KEY_PREFIX = "appointment_confirm:"
CALL_RECORD_KEY_PREFIX = "call_record:"

# Disconnection reasons of calls that never reached anyone.
NOT_CONNECTED_REASONS = frozenset({"dial_busy", "dial_failed", "dial_no_answer", "invalid_destination",
                                   "registered_call_timeout", "user_declined", "marked_as_spam"})


def _iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(dt_timezone.utc).isoformat().replace("+00:00", "Z")


def backend_base_url(company: Company) -> str:
    return (company.backend_url or settings.BACKEND_URL or "").rstrip("/")


# The path each kind of message is posted to, under the company's backend URL.
PATHS = {Delivery.Kind.APPOINTMENT_CONFIRM: CONFIRM_PATH, Delivery.Kind.CALL_RECORD: CALL_RECORD_PATH}


def backend_target(delivery: Delivery) -> str:
    """The URL a try of `delivery` goes to now: its company's backend URL (else BACKEND_URL) as it
    is now, and the kind's path. LookupError when neither URL is set."""
    company = Company.objects.only("backend_url").get(pk=delivery.company_id)
    base = backend_base_url(company)
    if not base:
        raise LookupError("No backend URL: set one on the company (or BACKEND_URL), then retry this delivery.")
    return base + PATHS[delivery.kind]


def backend_credentials(delivery: Delivery) -> dict[str, str]:
    """The Authorization header for a delivery, from its company's key (loaded explicitly)."""
    company = Company.objects.only("backend_api_key").get(pk=delivery.company_id)
    key = company.backend_api_key.reveal() if company.backend_api_key else settings.BACKEND_API_KEY
    return {"Authorization": f"Bearer {key}"} if key else {}


for _kind in (Delivery.Kind.APPOINTMENT_CONFIRM, Delivery.Kind.CALL_RECORD):
    delivery_kind_register(_kind, credentials=backend_credentials, target=backend_target)


def appointment_confirm_payload(*, company: Company, appointment) -> dict:
    return {
        "appointment_id": str(appointment.backend_id or appointment.pk),
        "tenant_id": company.slug,
        "patient_id": appointment.phone or None,
        "confirmed": True,
        "confirmed_at": _iso(appointment.confirmed_at),
    }


def call_outcome(call, appointments) -> str:
    if any(a.confirmed_at for a in appointments):
        return "appointment_booked"
    if call.status == "not_connected" or call.disconnection_reason in NOT_CONNECTED_REASONS:
        return "not_connected"
    if call.status == "error" or call.disconnection_reason.startswith("error"):
        return "error"
    return "completed"


def call_record_payload(*, company: Company, call, appointments) -> dict:
    caller = call.to_number if call.direction == "outbound" else call.from_number
    return {
        "call_id": call.call_id,
        "tenant_id": company.slug,
        "phone_number": caller,
        "duration": call.duration_seconds or 0,
        "call_type": "appointment_booking" if appointments else "inquiry",
        "transcript": call.transcript,
        "outcome": call_outcome(call, appointments),
        "created_at": _iso(call.started_at or call.created_at),
    }


def backend_forward_call_end(*, company: Company, call, appointments) -> list[Delivery]:
    """Queue the confirmation of each confirmed appointment and the call's record (each once, ever)."""
    base = backend_base_url(company)
    if not base:
        return []
    deliveries = []
    for appointment in appointments:
        if appointment.confirmed_at is None:
            continue
        delivery, _ = delivery_enqueue(
            company=company, kind=Delivery.Kind.APPOINTMENT_CONFIRM, target_url=base + CONFIRM_PATH,
            payload=appointment_confirm_payload(company=company, appointment=appointment),
            idempotency_key=f"{CONFIRM_KEY_PREFIX}{appointment.pk}")
        deliveries.append(delivery)
    delivery, _ = delivery_enqueue(
        company=company, kind=Delivery.Kind.CALL_RECORD, target_url=base + CALL_RECORD_PATH,
        payload=call_record_payload(company=company, call=call, appointments=appointments),
        idempotency_key=f"{CALL_RECORD_KEY_PREFIX}{call.call_id}")
    deliveries.append(delivery)
    return deliveries
