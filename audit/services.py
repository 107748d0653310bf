"""Writes of the audit app: audit entries, audited saves and deletes, activity lines.

Every configuration change in the product goes through `instance_save` /
`instance_delete` (or a service built on them), so the admin, the API, the gateway,
commands and tasks all leave the same audit trail.
"""

import asyncio
import functools
import json
import logging
import os
import queue
import re
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from urllib.parse import urlsplit

import requests
from asgiref.sync import async_to_sync, sync_to_async
from channels.layers import InMemoryChannelLayer, get_channel_layer
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.db import IntegrityError, OperationalError, connection, models, transaction
from django.utils import timezone

from tenants.fields import Secret, SecretField
from tenants.models import Company, rows_outside_company

from . import retry_policy
from .actor import Actor
from .circuit import CircuitBreaker
from .models import ActivityLogEntry, AuditEntry, Delivery, DeliveryAttempt, WebhookReceipt

logger = logging.getLogger(__name__)

REDACTED = "[redacted]"


def _company_id_of(instance: models.Model) -> int | None:
    if isinstance(instance, Company):
        return instance.pk
    return getattr(instance, "company_id", None)


def _audited_fields(model: type[models.Model]):
    for field in model._meta.concrete_fields:
        if field.primary_key or getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
            continue
        yield field


def _jsonable(value):
    return json.loads(json.dumps(value, cls=DjangoJSONEncoder))


def snapshot(instance: models.Model, m2m: dict | None = None) -> dict:
    """Field values as JSON; a secret as a fingerprint that is never stored.

    Many-to-many values come from `m2m` where given (about to be set), else the database.
    """
    m2m = m2m or {}
    values = {}
    for field in _audited_fields(type(instance)):
        value = getattr(instance, field.attname)
        if isinstance(value, Secret):
            values[field.name] = ("secret", value.fingerprint())
        else:
            values[field.name] = _jsonable(field.value_from_object(instance))
    for field in instance._meta.many_to_many:
        if field.name in m2m:
            values[field.name] = sorted(getattr(v, "pk", v) for v in m2m[field.name])
        elif instance.pk is not None:
            values[field.name] = sorted(getattr(instance, field.name).values_list("pk", flat=True))
    return values


def diff(model: type[models.Model], before: dict, after: dict) -> dict:
    secret_fields = {f.name for f in model._meta.concrete_fields if isinstance(f, SecretField)}
    changes = {}
    for name in sorted(set(before) | set(after)):
        old, new = before.get(name), after.get(name)
        if old == new:
            continue
        if name in secret_fields:
            old = REDACTED if old else None
            new = REDACTED if new else None
        changes[name] = {"before": old, "after": new}
    return changes


def audit_record(*, actor: Actor, action: str, company_id: int | None, object_type: str = "",
                 object_id: str = "", object_repr: str = "", changes: dict | None = None) -> AuditEntry:
    return AuditEntry.objects.create(
        company_id=company_id,
        actor_kind=actor.kind,
        actor_user=actor.user if getattr(actor.user, "pk", None) else None,
        actor_label=actor.label[:200],
        action=action,
        object_type=object_type,
        object_id=object_id,
        object_repr=object_repr[:200],
        changes=changes or {},
        request_id=actor.request_id,
        ip=actor.ip,
    )


def _record_for(actor: Actor, action: str, instance: models.Model, changes: dict) -> AuditEntry:
    return audit_record(actor=actor, action=action, company_id=_company_id_of(instance),
                        object_type=instance._meta.label_lower, object_id=str(instance.pk),
                        object_repr=str(instance), changes=changes)


@transaction.atomic
def instance_save(*, actor: Actor, instance: models.Model, m2m: dict | None = None,
                  action: str | None = None) -> models.Model:
    """Validate, save and audit one row (and its many-to-many fields).

    An update that changes nothing writes nothing, so services built on this are
    safe to repeat.
    """
    model = type(instance)
    creating = instance._state.adding or instance.pk is None
    before = {} if creating else snapshot(model._base_manager.get(pk=instance.pk))
    instance.full_clean()
    company_id = _company_id_of(instance)
    for name, values in (m2m or {}).items():
        field = model._meta.get_field(name)
        pks = [getattr(v, "pk", v) for v in values]
        if company_id and rows_outside_company(field.related_model, pks, company_id):
            raise ValidationError({name: "Choose only this company's own %s." % field.related_model._meta.verbose_name_plural})
    changes = diff(model, before, snapshot(instance, m2m))
    if not creating and not changes:
        return instance  # nothing to write: a repeated call is a no-op
    instance.save()
    for name, values in (m2m or {}).items():
        getattr(instance, name).set(values)
    if creating:
        changes = diff(model, {}, snapshot(instance))
    _record_for(actor, action or ("create" if creating else "update"), instance, changes)
    return instance


@transaction.atomic
def instance_delete(*, actor: Actor, instance: models.Model) -> None:
    model = type(instance)
    changes = diff(model, snapshot(instance), {})
    _record_for(actor, "delete", instance, changes)
    instance.delete()


def activity_group_name(company_id: int | None) -> str:
    return f"activity.company.{company_id}" if company_id else "activity.platform"


def activity_line_payload(entry: ActivityLogEntry) -> dict:
    return {
        "id": entry.pk,
        "time": entry.created_at.isoformat(),
        "company_id": entry.company_id,
        "kind": entry.kind,
        "level": entry.level,
        "message": entry.message,
        "data": entry.data,
    }


class _BackgroundSender:
    """Sends group messages to a networked channel layer from one thread of this process.

    A request or a task never waits on Redis for the sake of a live viewer: the line is
    already stored, and the send happens behind it. Restarted after a fork (Celery's
    prefork pool), since threads do not survive one.
    """

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._pid: int | None = None

    def submit(self, group: str, message: dict) -> None:
        with self._lock:
            if self._pid != os.getpid():
                self._queue = queue.SimpleQueue()
                threading.Thread(target=self._run, args=(self._queue,), name="activity-broadcast",
                                 daemon=True).start()
                self._pid = os.getpid()
        self._queue.put((group, message))

    @staticmethod
    def _run(jobs: queue.SimpleQueue) -> None:
        loop = asyncio.new_event_loop()
        while True:
            group, message = jobs.get()
            try:
                loop.run_until_complete(get_channel_layer().group_send(group, message))
            except Exception:  # the line is stored; a live viewer missing it must not stop the sender
                logger.warning("Activity line %s was stored but not broadcast", message["line"]["id"],
                               exc_info=True)


_background_sender = _BackgroundSender()


def _broadcast(entry: ActivityLogEntry) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    group = activity_group_name(entry.company_id)
    message = {"type": "activity.line", "line": activity_line_payload(entry)}
    if isinstance(layer, InMemoryChannelLayer):
        # The embedded run's layer lives in the server's own event loop: send there, in line.
        try:
            async_to_sync(layer.group_send)(group, message)
        except Exception:
            logger.warning("Activity line %s was stored but not broadcast", entry.pk, exc_info=True)
        return
    _background_sender.submit(group, message)


def activity_log(*, company: Company | int | None, kind: str, message: str, data: dict | None = None,
                 level: str = "info") -> ActivityLogEntry:
    """Persist one activity line and, once committed, broadcast it to the company's group."""
    company_id = company.pk if isinstance(company, Company) else company
    entry = ActivityLogEntry.objects.create(company_id=company_id, kind=kind, level=level,
                                            message=message, data=_jsonable(data or {}))
    transaction.on_commit(lambda: _broadcast(entry))
    return entry


# --- Inbound webhook receipts ---------------------------------------------------------
# Headers that carry credentials are stored as this marker (signature headers are kept:
# an HMAC reveals nothing and is needed to replay a check).
_SECRET_HEADER = re.compile(r"authorization|api[-_]?key|token|secret|cookie|password", re.IGNORECASE)


def headers_redacted(headers) -> dict[str, str]:
    return {name: (REDACTED if _SECRET_HEADER.search(name) else value) for name, value in headers.items()}


def _receipt_insert(receipt: WebhookReceipt) -> None:
    """Insert one receipt (in autocommit, its own transaction); one that would hold a dedupe key
    another already holds becomes a duplicate."""
    if receipt.status in WebhookReceipt.KEY_HOLDING and receipt.dedupe_key:
        try:
            receipt.save(force_insert=True)
            return
        except IntegrityError:
            receipt.status = WebhookReceipt.Status.DUPLICATE
    receipt.save(force_insert=True)


def _receipts_insert(receipts: list[WebhookReceipt]) -> None:
    """Insert receipts in one statement; if a dedupe key clashes, one by one so only the clash
    becomes a duplicate."""
    try:
        WebhookReceipt.objects.bulk_create(receipts)
    except IntegrityError:
        for receipt in receipts:
            receipt.pk = None
            _receipt_insert(receipt)


class _ProcessThread:
    """One daemon thread per process serving `self._queue`: started on first use, and again if
    it died or after a fork (threads do not survive one, and what the parent had queued is
    the parent's to serve, so the child starts on a fresh queue)."""

    thread_name = ""

    def __init__(self) -> None:
        self._queue = self._new_queue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pid: int | None = None

    def _new_queue(self):
        return queue.SimpleQueue()

    def _ensure_running(self) -> None:
        if self._thread is not None and self._thread.is_alive() and self._pid == os.getpid():
            return
        with self._lock:
            if self._pid != os.getpid():
                self._queue, self._pid, self._thread = self._new_queue(), os.getpid(), None
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
                self._thread.start()

    def _run(self) -> None:
        raise NotImplementedError


class _GroupInsert(_ProcessThread):
    """Receipts stored at the same moment by concurrent requests go to the database together.

    One writer thread per process takes whatever has queued up and inserts it in one
    statement, then the next group, with its own database connection (taken once, not per
    group). A request awaits, on the event loop, only the write that holds its own receipt,
    so it is answered once that receipt is committed, and it neither holds a thread nor a
    pool connection while it waits. Under load a web process makes one insert and one
    commit for many webhooks; alone, a request's receipt is written at once.
    """

    thread_name = "receipt-writer"
    GROUP_MAX = 100
    WAIT_SECONDS = 60.0

    class _Slot:
        __slots__ = ("receipt", "loop", "future")

        def __init__(self, receipt: WebhookReceipt) -> None:
            self.receipt, self.loop = receipt, asyncio.get_running_loop()
            self.future = self.loop.create_future()

        def settle(self, error: BaseException | None) -> None:
            try:
                self.loop.call_soon_threadsafe(self._settle_on_loop, error)
            except RuntimeError:  # the request's loop has closed: nobody is waiting any more
                pass

        def _settle_on_loop(self, error: BaseException | None) -> None:
            if self.future.done():  # the request timed out or was cancelled meanwhile
                return
            if error is None:
                self.future.set_result(None)
            else:
                self.future.set_exception(error)

    async def store(self, receipt: WebhookReceipt) -> None:
        self._ensure_running()
        slot = self._Slot(receipt)
        self._queue.put(slot)
        try:
            # A request cancelled while it waits (its client went away) still has its receipt
            # written: the slot is queued, and the writer skips a future nobody awaits.
            await asyncio.wait_for(slot.future, self.WAIT_SECONDS)
        except TimeoutError:
            raise OperationalError("The receipt writer did not answer in time.") from None

    def stop(self) -> None:
        """Let the writer finish what is queued, close its connection and end (the next store
        starts a new one). For shutdown and the end of a test session."""
        thread = self._thread
        if thread is not None and thread.is_alive():
            self._queue.put(None)
            thread.join(timeout=self.WAIT_SECONDS)

    @staticmethod
    def _insert(receipts: list[WebhookReceipt]) -> None:
        try:
            _receipts_insert(receipts)
        except OperationalError:
            # The writer's long-lived connection may have been dropped while it was idle (a
            # database restart or failover, an administrator, a proxy's idle timeout): once
            # more, on a fresh connection, for the receipts not yet written.
            connection.close()
            _receipts_insert([receipt for receipt in receipts if receipt.pk is None])

    def _run(self) -> None:
        while True:
            group = [self._queue.get()]
            if group[0] is None:
                connection.close()
                return
            while len(group) < self.GROUP_MAX:
                try:
                    slot = self._queue.get_nowait()
                except queue.Empty:
                    break
                if slot is None:
                    self._queue.put(None)  # stop after this group
                    break
                group.append(slot)
            error = None
            try:
                self._insert([slot.receipt for slot in group])
            except Exception as exc:  # each waiting request answers for its own receipt
                error = exc
                connection.close()  # the next group starts on a fresh connection
            for slot in group:
                slot.settle(error)


_group_insert = _GroupInsert()


def read_in_thread(func):
    """`func`, a blocking database read, as a coroutine function that runs it in a thread which
    gives its connection back when done. For reads before a receipt is stored: the request
    then awaits the receipt writer, and requests that waited holding pool connections could
    leave none for the writer (found in the benchmark: every request stalled for the pool
    timeout while the agent cache was cold)."""
    @functools.wraps(func)
    def read_and_release(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        finally:
            connection.close()

    return sync_to_async(read_and_release)


def receipt_writer_stop() -> None:
    _group_insert.stop()


async def receipt_store(*, provider: str, endpoint: str, body: bytes, headers, remote_addr: str | None,
                        query: str = "", body_truncated: bool = False,
                        status: str = WebhookReceipt.Status.RECEIVED, company: Company | None = None,
                        kind: str = "", event_type: str = "", call_id: str = "", dedupe_key: str = "",
                        error_code: str = "", error_message: str = "") -> WebhookReceipt:
    """Store an inbound request as it came, with what checking it found, before it is answered:
    committed when this returns (by the receipt writer, with whatever other receipts arrived
    at the same moment).

    A receipt that would hold a dedupe key another receipt already holds is stored as a
    duplicate. Receipts are the audit trail of inbound traffic themselves, so no AuditEntry
    is written for them.
    """
    receipt = WebhookReceipt(
        provider=provider, endpoint=endpoint[:200], body=body, body_truncated=body_truncated,
        headers=headers_redacted(headers), query=query[:500], remote_addr=remote_addr, status=status,
        company=company, kind=kind, event_type=event_type[:64], call_id=call_id[:128],
        dedupe_key=dedupe_key[:300], error_code=error_code[:64], error_message=error_message[:500])
    await _group_insert.store(receipt)
    return receipt


def receipt_reject(*, receipt: WebhookReceipt, code: str, message: str,
                   status: str = WebhookReceipt.Status.REJECTED) -> None:
    """A stored receipt's handling failed after it was stored (an unknown or failing custom function)."""
    receipt.status, receipt.error_code, receipt.error_message = status, code[:64], message[:500]
    WebhookReceipt.objects.filter(pk=receipt.pk).update(
        status=status, error_code=receipt.error_code, error_message=receipt.error_message)


def receipt_processed(*, receipt: WebhookReceipt, note: str = "") -> None:
    now = timezone.now()
    WebhookReceipt.objects.filter(pk=receipt.pk).update(
        status=WebhookReceipt.Status.PROCESSED, processed_at=now, error_code="", error_message=note[:500],
        attempts=receipt.attempts + 1, next_attempt_at=None)


def receipt_failed(*, receipt: WebhookReceipt, error: Exception) -> None:
    """Processing raised: keep the receipt for the sweeper, with backoff, until its tries run out."""
    attempts = receipt.attempts + 1
    give_up = attempts >= settings.RECEIPT_MAX_ATTEMPTS
    delay = retry_policy.backoff_seconds(attempts, base=settings.RECEIPT_RETRY_BASE_SECONDS, cap=3600)
    WebhookReceipt.objects.filter(pk=receipt.pk).update(
        status=WebhookReceipt.Status.FAILED, attempts=attempts, error_code=type(error).__name__[:64],
        error_message=str(error)[:500],
        next_attempt_at=None if give_up else timezone.now() + timedelta(seconds=delay))


def enqueue_task(task, *args, countdown: float | None = None) -> bool:
    """Send a task to the broker without ever hanging the caller: a dead broker is logged, not raised.

    Every caller has a sweeper that finds the work again from the database.
    """
    try:
        task.apply_async(args=args, countdown=countdown, retry=False)
        return True
    except Exception:  # the row stays due; the periodic sweeper sends it
        logger.warning("Broker unavailable: %s%s left to the sweeper", task.name, args, exc_info=True)
        return False


class _BackgroundPublisher(_ProcessThread):
    """Publishes tasks from one daemon thread per process, so a request never waits on the broker.

    Items that queue up within TASK_PUBLISH_LINGER_SECONDS of the first, or while a
    publish is under way, go out together as one task message (the task takes a list),
    so under load the cost of publishing is shared.
    The queue is bounded; an item that cannot be queued or published is only logged,
    since the row it names stays due and the periodic sweeper picks it up.
    """

    thread_name = "task-publisher"
    BATCH = 200

    def __init__(self, maxsize: int = 10000) -> None:
        self._maxsize = maxsize
        super().__init__()

    def _new_queue(self) -> queue.Queue:
        return queue.Queue(maxsize=self._maxsize)

    def submit(self, task, item) -> None:
        self._ensure_running()
        try:
            self._queue.put_nowait((task, item))
        except queue.Full:
            logger.warning("Publish queue full: %s(%s) left to the sweeper", task.name, item)

    def _run(self) -> None:
        while True:
            taken = [self._queue.get()]
            # Wait a little for company: one publish costs about as much as a webhook's own
            # work, so under load sending one message per item would halve what a web
            # process can take in.
            deadline = time.monotonic() + settings.TASK_PUBLISH_LINGER_SECONDS
            while len(taken) < self.BATCH:
                try:
                    taken.append(self._queue.get(timeout=max(0.0, deadline - time.monotonic())))
                except queue.Empty:
                    break
            batches: dict = {}
            for task, item in taken:
                batches.setdefault(task, []).append(item)
            try:
                for task, items in batches.items():
                    enqueue_task(task, items)
            finally:
                for _ in taken:
                    self._queue.task_done()

    def join(self, timeout: float = 5.0) -> None:
        """Wait until what was submitted so far has been handed to the broker (for shutdown and tests)."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.01)


_publisher = _BackgroundPublisher()


async def enqueue_batched(task, item) -> None:
    """Send `task([item, ...])` soon, off the event loop, batched with items queued meanwhile
    (as `task([item])` in a thread when tasks run eagerly or TASK_PUBLISH_IN_BACKGROUND is off)."""
    if task.app.conf.task_always_eager or not settings.TASK_PUBLISH_IN_BACKGROUND:
        await sync_to_async(enqueue_task)(task, [item])
    else:
        _publisher.submit(task, item)


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
    delivery = Delivery(company=company, kind=kind, target_url=target_url, payload=_jsonable(payload),
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
        _record_for(actor, "retry", delivery, {"status": {"before": before, "after": delivery.status}})
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
