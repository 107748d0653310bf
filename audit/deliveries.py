"""Outbound deliveries to a company's backend: a row per message, an attempt row per try,
retries with backoff, the dead letter, the circuit per host, the sweeper.
"""

import json
import logging
import time
from collections.abc import Callable
from datetime import timedelta
from urllib.parse import urlsplit

import requests
from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import IntegrityError, transaction
from django.utils import timezone

from tenants.models import Company

from . import retry_policy
from .actor import Actor
from .circuit import CircuitBreaker
from .models import Delivery, DeliveryAttempt

logger = logging.getLogger(__name__)

from .receipts import enqueue_task, headers_redacted
from .services import activity_log, audit_entry_for, jsonable

# --- Outbound deliveries ----------------------------------------------------------------
# kind -> callable(delivery) -> the headers that carry its credentials (never stored).
_delivery_credentials: dict[str, Callable[[Delivery], dict[str, str]]] = {}


def delivery_kind_register(kind: str, *, credentials: Callable[[Delivery], dict[str, str]]) -> None:
    """Say how a kind of delivery authenticates; looked up at send time, so keys are never stored."""
    _delivery_credentials[kind] = credentials


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


def _claim(delivery_id: int, now) -> Delivery | None:
    """Take a due delivery for one try (row lock: two workers never send the same try)."""
    with transaction.atomic():
        delivery = (Delivery.objects.select_for_update(skip_locked=True)
                    .filter(pk=delivery_id, status__in=[Delivery.Status.PENDING, Delivery.Status.FAILED])
                    .first())
        if delivery is None or (delivery.next_attempt_at and delivery.next_attempt_at > now):
            return None
        breaker = _target_breaker(delivery.target_url)
        if not breaker.allow():
            wait = max(1.0, breaker.retry_in())
            delivery.next_attempt_at = now + timedelta(seconds=wait)
            delivery.last_error = f"Circuit open for {urlsplit(delivery.target_url).netloc}; not tried."
            delivery.save(update_fields=["next_attempt_at", "last_error", "updated_at"])
            _send_later(delivery.pk, countdown=wait)
            return None
        delivery.status = Delivery.Status.IN_FLIGHT
        delivery.attempt_count += 1
        delivery.save(update_fields=["status", "attempt_count", "updated_at"])
        return delivery


def delivery_send(*, delivery_id: int) -> Delivery | None:
    """Make one try of a due delivery and record it; None when it was not due or not ours to send."""
    started = timezone.now()
    delivery = _claim(delivery_id, started)
    if delivery is None:
        return None
    credentials = _delivery_credentials.get(delivery.kind)
    headers = {"Content-Type": "application/json", "User-Agent": "VoiceDesk-Delivery/1",
               "Idempotency-Key": delivery.idempotency_key}
    recorded = dict(headers)
    status_code, excerpt, error, retry_after, permanent = None, "", "", None, False
    clock = time.perf_counter()
    try:
        if credentials is None:
            raise LookupError(f"No credentials registered for deliveries of kind {delivery.kind}.")
        secret_headers = credentials(delivery)
        recorded.update(headers_redacted(secret_headers))
        response = requests.post(
            delivery.target_url, data=json.dumps(delivery.payload, cls=DjangoJSONEncoder).encode(),
            headers={**headers, **secret_headers}, allow_redirects=False,
            timeout=(settings.DELIVERY_CONNECT_TIMEOUT_SECONDS, settings.DELIVERY_READ_TIMEOUT_SECONDS))
        status_code, excerpt = response.status_code, response.text[:1000]
        retry_after = response.headers.get("Retry-After")
    except requests.RequestException as exc:
        error = f"{type(exc).__name__}: {exc}"[:1000]
    except LookupError as exc:  # a configuration error: repeating will not help
        error, permanent = str(exc), True
    duration_ms = round((time.perf_counter() - clock) * 1000)
    return _record_try(delivery, started=started, duration_ms=duration_ms, headers=recorded,
                       status_code=status_code, excerpt=excerpt, error=error, retry_after=retry_after,
                       permanent=permanent)


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
        DeliveryAttempt.objects.create(
            company_id=delivery.company_id, delivery=delivery, number=delivery.attempt_count, started_at=started,
            duration_ms=duration_ms, request_headers=headers, status_code=status_code,
            response_excerpt=excerpt, error=error)
        delivery.last_error = "" if outcome == retry_policy.SUCCESS else (error or f"HTTP {status_code}: {excerpt[:200]}")
        if outcome == retry_policy.SUCCESS:
            delivery.status, delivery.succeeded_at, delivery.next_attempt_at = Delivery.Status.SUCCEEDED, now, None
        elif outcome == retry_policy.PERMANENT or delivery.attempt_count >= delivery.max_attempts:
            delivery.status, delivery.next_attempt_at = Delivery.Status.DEAD, None
        else:
            wait = retry_policy.retry_after_seconds(retry_after, now=now)
            if wait is None:
                wait = retry_policy.backoff_seconds(delivery.attempt_count, base=settings.DELIVERY_BACKOFF_BASE_SECONDS,
                                                    cap=settings.DELIVERY_BACKOFF_MAX_SECONDS)
            wait = min(wait, settings.DELIVERY_BACKOFF_MAX_SECONDS)
            delivery.status, delivery.next_attempt_at = Delivery.Status.FAILED, now + timedelta(seconds=wait)
            _send_later(delivery.pk, countdown=wait)
        delivery.save(update_fields=["status", "succeeded_at", "next_attempt_at", "last_error", "updated_at"])
    if delivery.status == Delivery.Status.DEAD:
        activity_log(company=delivery.company_id, kind="delivery.dead", level="error",
                     message=f"Delivery dead-lettered after {delivery.attempt_count} tries: {delivery}",
                     data={"delivery_id": delivery.pk, "error": delivery.last_error[:200]})
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


def deliveries_sweep(*, now=None) -> int:
    """Re-queue what a lost broker message or a dead worker left behind; returns how many."""
    now = now or timezone.now()
    grace = timedelta(seconds=settings.DELIVERY_STUCK_AFTER_SECONDS)
    with transaction.atomic():
        stuck = Delivery.objects.filter(status=Delivery.Status.IN_FLIGHT, updated_at__lt=now - grace)
        # A worker died mid-try: the try counts, the delivery goes back in line (the
        # Idempotency-Key lets the backend drop it if the lost try did arrive).
        stuck.update(status=Delivery.Status.FAILED, next_attempt_at=now, last_error="Worker lost during the try.")
    due = list(Delivery.objects.filter(status__in=[Delivery.Status.PENDING, Delivery.Status.FAILED],
                                       next_attempt_at__lte=now - timedelta(seconds=settings.DELIVERY_SWEEP_GRACE_SECONDS))
               .values_list("pk", flat=True)[:500])
    from .tasks import delivery_send_task

    for pk in due:
        enqueue_task(delivery_send_task, pk)
    return len(due)
