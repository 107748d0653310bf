"""Outbound deliveries to a company's backend: a row per message, an attempt row per try,
retries with backoff, the dead letter, the circuit per host, the sweeper.
"""

import json
import logging
import time
from collections.abc import Callable
from datetime import timedelta
from urllib.parse import quote, urlsplit

import requests
from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import IntegrityError, transaction
from django.utils import timezone

from tenants.models import Company
from tenants.validators import header_value_problem

from . import retry_policy
from .actor import Actor
from .circuit import CircuitBreaker
from .log_filters import redact_log_text
from .models import Delivery, DeliveryAttempt
from .receipts import enqueue_task, headers_redacted
from .services import REDACTED, activity_log, audit_entry_for, jsonable

logger = logging.getLogger(__name__)

# --- Outbound deliveries ----------------------------------------------------------------
# kind -> callable(delivery) -> the headers that carry its credentials (never stored).
_delivery_credentials: dict[str, Callable[[Delivery], dict[str, str]]] = {}
# kind -> callable(delivery) -> the URL a try goes to now.
_delivery_targets: dict[str, Callable[[Delivery], str]] = {}


def delivery_kind_register(kind: str, *, credentials: Callable[[Delivery], dict[str, str]],
                           target: Callable[[Delivery], str] | None = None) -> None:
    """Say how a kind of delivery authenticates and, with `target`, where it goes; both are looked
    up at each try, so keys are never stored and a fixed URL is followed by the next try.

    `target(delivery)` returns the URL (str) or raises LookupError (the message says what to set)
    when there is none; without `target` a delivery goes to the URL it was created with.
    """
    _delivery_credentials[kind] = credentials
    if target is not None:
        _delivery_targets[kind] = target


def _current_target(delivery: Delivery) -> str:
    target = _delivery_targets.get(delivery.kind)
    return target(delivery) if target is not None else delivery.target_url


def _send_later(delivery_id: int, countdown: float | None = None) -> None:
    from .tasks import delivery_send_task

    transaction.on_commit(lambda: enqueue_task(delivery_send_task, delivery_id, countdown=countdown))


def delivery_enqueue(*, company: Company, kind: str, target_url: str, payload: dict,
                     idempotency_key: str) -> tuple[Delivery, bool]:
    """One delivery per idempotency key: a second call returns the first and sends nothing."""
    existing = Delivery.objects.filter(idempotency_key=idempotency_key).first()
    if existing is not None:
        return existing, False
    delivery = Delivery(company=company, kind=kind, target_url=target_url, payload=jsonable(payload),
                        idempotency_key=idempotency_key, max_attempts=settings.DELIVERY_MAX_ATTEMPTS,
                        next_attempt_at=timezone.now())
    delivery.full_clean()
    try:
        with transaction.atomic():
            delivery.save()
    except IntegrityError:  # a concurrent enqueue of the same key won
        return Delivery.objects.get(idempotency_key=idempotency_key), False
    _send_later(delivery.pk)
    return delivery, True


def _target_breaker(url: str) -> CircuitBreaker:
    host = urlsplit(url).netloc.lower()
    return CircuitBreaker(f"delivery:{host}", failure_threshold=settings.DELIVERY_CIRCUIT_FAILURES,
                          reset_timeout=settings.DELIVERY_CIRCUIT_RESET_SECONDS)


def _dead_letter(delivery: Delivery, reason: str) -> None:
    """Mark a delivery dead (inside the caller's transaction) and say so in the activity log."""
    delivery.status, delivery.next_attempt_at, delivery.last_error = Delivery.Status.DEAD, None, reason
    activity_log(company=delivery.company_id, kind="delivery.dead", level="error",
                 message=f"Delivery dead-lettered after {delivery.attempt_count} tries: {delivery}",
                 data={"delivery_id": delivery.pk, "error": reason[:200]})


def _claim(delivery_id: int, now) -> tuple[Delivery, str] | None:
    """Take a due delivery for one try (row lock: two workers never send the same try).

    Returns the delivery, its `target_url` set to where this try goes (the kind's current
    target), and why the try has no target ("" when it has one); None when there is no try to make.
    """
    with transaction.atomic():
        delivery = (Delivery.objects.select_for_update(skip_locked=True)
                    .filter(pk=delivery_id, status__in=[Delivery.Status.PENDING, Delivery.Status.FAILED])
                    .first())
        if delivery is None or (delivery.next_attempt_at and delivery.next_attempt_at > now):
            return None
        if delivery.attempt_count >= delivery.max_attempts:
            # Never a try past the last (rows an older sweeper left at "attempt 9 of max 8").
            _dead_letter(delivery, f"No tries left ({delivery.attempt_count} of {delivery.max_attempts})"
                                   + (f"; last error: {delivery.last_error}" if delivery.last_error else "."))
            delivery.save(update_fields=["status", "next_attempt_at", "last_error", "updated_at"])
            return None
        target_problem = ""
        try:
            delivery.target_url = _current_target(delivery)
        except LookupError as exc:  # the try is made and recorded with the reason (dead: nothing to retry)
            target_problem = str(exc)
        breaker = _target_breaker(delivery.target_url)
        if not target_problem and not breaker.allow():
            wait = max(1.0, breaker.retry_in())
            delivery.next_attempt_at = now + timedelta(seconds=wait)
            delivery.last_error = f"Circuit open for {urlsplit(delivery.target_url).netloc}; not tried."
            delivery.save(update_fields=["target_url", "next_attempt_at", "last_error", "updated_at"])
            _send_later(delivery.pk, countdown=wait)
            return None
        delivery.status = Delivery.Status.IN_FLIGHT
        delivery.attempt_count += 1
        delivery.save(update_fields=["target_url", "status", "attempt_count", "updated_at"])
        return delivery, target_problem


# Characters an Idempotency-Key keeps when it has to be percent-encoded: visible ASCII but %.
_HEADER_SAFE = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) != "%")


def idempotency_header(key: str) -> str:
    """The Idempotency-Key header value of a delivery's key: the key itself when a header can
    carry it, else the key percent-encoded as UTF-8 (a call id with an en dash or a line break
    still arrives, under a key as stable as the original)."""
    return key if header_value_problem(key) is None else quote(key, safe=_HEADER_SAFE)


class Unsendable(Exception):
    """A credential header that no HTTP request can carry; its message names no value."""


def _credential_problems(secret_headers: dict[str, str]) -> None:
    for name, value in secret_headers.items():
        scheme, _, credential = value.partition(" ")
        problem = header_value_problem(credential if scheme in ("Bearer", "Basic") and credential else value,
                                       spaces=False)
        if problem:
            raise Unsendable(f"The {name} header cannot be sent: the key it carries holds {problem}, which no "
                             "HTTP header can carry. Replace the key in the company's settings, then retry "
                             "this delivery.")


def _storable(text: str) -> str:
    """`text` as PostgreSQL can store it: no NUL, no lone surrogate."""
    return text.replace("\x00", "\ufffd").encode("utf-8", "replace").decode("utf-8")


def _error_text(exc: BaseException, secret_values: list[str]) -> str:
    """What an exception says, without the credentials that were about to be sent (nor their
    escaped forms, as a repr shows them), storable, at most 1000 characters."""
    text = f"{type(exc).__name__}: {exc}"
    for value in secret_values:
        for form in {value, repr(value)[1:-1], *value.split(" ", 1)[1:]}:
            if len(form) >= 4:
                text = text.replace(form, REDACTED)
    return _storable(redact_log_text(text))[:1000]


def delivery_send(*, delivery_id: int) -> Delivery | None:
    """Make one try of a due delivery and record it; None when it was not due or not ours to send.

    Each try goes to the kind's current target with its current credentials (the company's
    backend as configured now); the payload and Idempotency-Key stay as created. Every try ends
    recorded, whatever it raises: an attempt row with the URL and the error (credentials
    redacted). What cannot succeed by repeating (a key no header can carry, an invalid URL, no
    target or credentials for the kind: a ValueError, TypeError, LookupError) is dead at once;
    anything else is tried again after the backoff, until the last try.
    """
    started = timezone.now()
    claimed = _claim(delivery_id, started)
    if claimed is None:
        return None
    delivery, target_problem = claimed
    headers = {"Content-Type": "application/json", "User-Agent": "VoiceDesk-Delivery/1",
               "Idempotency-Key": idempotency_header(delivery.idempotency_key)}
    recorded = dict(headers)
    status_code, excerpt, error, retry_after, permanent = None, "", "", None, False
    secret_values: list[str] = []
    clock = time.perf_counter()
    try:
        if target_problem:
            raise LookupError(target_problem)
        credentials = _delivery_credentials.get(delivery.kind)
        if credentials is None:
            raise LookupError(f"No credentials registered for deliveries of kind {delivery.kind}.")
        secret_headers = credentials(delivery)
        secret_values = [v for v in secret_headers.values() if v]
        recorded.update(headers_redacted(secret_headers))
        _credential_problems(secret_headers)
        response = requests.post(
            delivery.target_url, data=json.dumps(delivery.payload, cls=DjangoJSONEncoder).encode(),
            headers={**headers, **secret_headers}, allow_redirects=False,
            timeout=(settings.DELIVERY_CONNECT_TIMEOUT_SECONDS, settings.DELIVERY_READ_TIMEOUT_SECONDS))
        status_code, excerpt = response.status_code, _storable(response.text[:1000])
        retry_after = response.headers.get("Retry-After")
    except Exception as exc:  # every try ends recorded: the sweeper must never find it in flight
        error = _error_text(exc, secret_values)
        permanent = isinstance(exc, Unsendable | ValueError | TypeError | LookupError)
        if not isinstance(exc, requests.RequestException) or permanent:
            logger.warning("Delivery %s try %s failed%s: %s", delivery.pk, delivery.attempt_count,
                           " for good" if permanent else "", error)
    duration_ms = round((time.perf_counter() - clock) * 1000)
    return _record_try(delivery, started=started, duration_ms=duration_ms, headers=recorded,
                       status_code=status_code, excerpt=excerpt, error=error, retry_after=retry_after,
                       permanent=permanent)


def _conclude(delivery: Delivery, *, outcome: str, error: str, retry_after: str | None, now) -> None:
    """Set a delivery's state after its try numbered attempt_count (inside the caller's transaction)."""
    if outcome == retry_policy.SUCCESS:
        delivery.status, delivery.succeeded_at, delivery.next_attempt_at = Delivery.Status.SUCCEEDED, now, None
        delivery.last_error = ""
    elif outcome == retry_policy.PERMANENT or delivery.attempt_count >= delivery.max_attempts:
        _dead_letter(delivery, error)
    else:
        wait = retry_policy.retry_after_seconds(retry_after, now=now)
        if wait is None:
            wait = retry_policy.backoff_seconds(delivery.attempt_count, base=settings.DELIVERY_BACKOFF_BASE_SECONDS,
                                                cap=settings.DELIVERY_BACKOFF_MAX_SECONDS)
        wait = min(wait, settings.DELIVERY_BACKOFF_MAX_SECONDS)
        delivery.status, delivery.next_attempt_at = Delivery.Status.FAILED, now + timedelta(seconds=wait)
        delivery.last_error = error
        _send_later(delivery.pk, countdown=wait)
    delivery.save(update_fields=["status", "succeeded_at", "next_attempt_at", "last_error", "updated_at"])


def _record_try(delivery: Delivery, *, started, duration_ms: int, headers: dict, status_code: int | None,
                excerpt: str, error: str, retry_after: str | None, permanent: bool) -> Delivery:
    now = timezone.now()
    outcome = retry_policy.PERMANENT if permanent else retry_policy.classify(status_code)
    breaker = _target_breaker(delivery.target_url)
    if outcome == retry_policy.SUCCESS:
        breaker.record_success()
    elif not permanent and retry_policy.counts_against_target(status_code):
        breaker.record_failure(error or f"HTTP {status_code}")
    with transaction.atomic():
        current = (Delivery.objects.select_for_update()
                   .filter(pk=delivery.pk, status=Delivery.Status.IN_FLIGHT, attempt_count=delivery.attempt_count)
                   .first())
        if current is None:
            # The sweeper found this try overdue and recorded it as lost; the delivery has moved on
            # (a repeat it sends carries the same Idempotency-Key).
            logger.warning("Delivery %s try %s ended after the sweeper had recorded it as lost; its outcome "
                           "(%s) is not recorded", delivery.pk, delivery.attempt_count,
                           error or f"HTTP {status_code}")
            return Delivery.objects.get(pk=delivery.pk)
        DeliveryAttempt.objects.create(
            company_id=delivery.company_id, delivery=delivery, number=delivery.attempt_count, started_at=started,
            url=delivery.target_url, duration_ms=duration_ms, request_headers=headers, status_code=status_code,
            response_excerpt=excerpt, error=error)
        _conclude(delivery, outcome=outcome, error=error or _storable(f"HTTP {status_code}: {excerpt[:200]}"),
                  retry_after=retry_after, now=now)
    return delivery


@transaction.atomic
def deliveries_retry(*, actor: Actor, deliveries) -> int:
    """Send failed or dead deliveries again now, each with a fresh budget of tries."""
    count = 0
    for delivery in deliveries.select_for_update().filter(status__in=[Delivery.Status.FAILED, Delivery.Status.DEAD]):
        before = delivery.status
        delivery.status = Delivery.Status.PENDING
        delivery.next_attempt_at = timezone.now()
        delivery.max_attempts = delivery.attempt_count + settings.DELIVERY_MAX_ATTEMPTS
        delivery.save(update_fields=["status", "next_attempt_at", "max_attempts", "updated_at"])
        audit_entry_for(actor, "retry", delivery, {"status": {"before": before, "after": delivery.status}})
        _send_later(delivery.pk)
        count += 1
    return count


LOST_TRY = ("Try lost: its worker stopped during it (found by the sweeper). It may have reached the "
            "backend; a repeat carries the same Idempotency-Key.")


def _lost_try_record(delivery_id: int, *, stuck_before) -> None:
    """Record the try a dead worker was making as an attempt, then retry or dead-letter as for any failure."""
    with transaction.atomic():
        delivery = (Delivery.objects.select_for_update(skip_locked=True)
                    .filter(pk=delivery_id, status=Delivery.Status.IN_FLIGHT, updated_at__lt=stuck_before).first())
        if delivery is None:
            return
        DeliveryAttempt.objects.get_or_create(
            delivery=delivery, number=delivery.attempt_count,
            defaults={"company_id": delivery.company_id, "started_at": delivery.updated_at,
                      "url": delivery.target_url, "error": LOST_TRY})
        _conclude(delivery, outcome=retry_policy.RETRY, error=LOST_TRY, retry_after=None, now=timezone.now())


def deliveries_sweep(*, now=None) -> int:
    """Record the tries of dead workers and re-queue what a lost broker message left behind.

    A delivery in flight for DELIVERY_STUCK_AFTER_SECONDS lost its worker: that try gets its
    attempt row and counts (dead at the last, else retried after the backoff). Returns how
    many due deliveries were queued.
    """
    now = now or timezone.now()
    stuck_before = now - timedelta(seconds=settings.DELIVERY_STUCK_AFTER_SECONDS)
    for pk in list(Delivery.objects.filter(status=Delivery.Status.IN_FLIGHT, updated_at__lt=stuck_before)
                   .values_list("pk", flat=True)[:500]):
        _lost_try_record(pk, stuck_before=stuck_before)
    due = list(Delivery.objects.filter(status__in=[Delivery.Status.PENDING, Delivery.Status.FAILED],
                                       next_attempt_at__lte=now - timedelta(seconds=settings.DELIVERY_SWEEP_GRACE_SECONDS))
               .values_list("pk", flat=True)[:500])
    from .tasks import delivery_send_task

    for pk in due:
        enqueue_task(delivery_send_task, pk)
    return len(due)
