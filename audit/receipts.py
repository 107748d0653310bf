"""Inbound webhook receipts: stored first (one writer thread per process groups the inserts),
then checked and handled; their processing tasks published off the request path.
"""

import asyncio
import functools
import logging
import os
import queue
import re
import threading
import time
from datetime import datetime, timedelta

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import DatabaseError, IntegrityError, OperationalError, connection, transaction
from django.db.models import Q
from django.utils import timezone

from tenants.models import Company

from . import retry_policy
from .models import WebhookReceipt
from .services import REDACTED, activity_log
from .storable import ip_or_none, json_fit, key_fit, model_values_fit, text_fit

logger = logging.getLogger(__name__)

# --- Inbound webhook receipts ---------------------------------------------------------
# Headers that carry credentials are stored as this marker (signature headers are kept:
# an HMAC reveals nothing and is needed to replay a check).
_SECRET_HEADER = re.compile(r"authorization|api[-_]?key|token|secret|cookie|password", re.IGNORECASE)


def headers_redacted(headers) -> dict[str, str]:
    return {name: (REDACTED if _SECRET_HEADER.search(name) else value) for name, value in headers.items()}


UNSTORABLE = "unstorable"  # the error code of a receipt stored without what its checks found


def _receipt_insert(receipt: WebhookReceipt) -> None:
    """Insert one receipt (in autocommit, its own transaction); one that would hold a dedupe key
    another already holds becomes a duplicate."""
    if receipt.status in WebhookReceipt.KEY_HOLDING and receipt.dedupe_key:
        try:
            receipt.save(force_insert=True)
            return
        except IntegrityError:
            receipt.pk = None
            receipt.status = WebhookReceipt.Status.DUPLICATE
    receipt.save(force_insert=True)


def _connection_broken() -> bool:
    return connection.connection is not None and not connection.is_usable()


def _receipt_minimal(receipt: WebhookReceipt, error: Exception) -> None:
    """Make `receipt` what can always be stored: the body, the headers and why the rest is missing."""
    for name in ("company", "query", "remote_addr", "kind", "event_type", "call_id", "dedupe_key"):
        setattr(receipt, name, WebhookReceipt._meta.get_field(name).get_default())
    receipt.pk, receipt.status, receipt.error_code = None, WebhookReceipt.Status.REJECTED, UNSTORABLE
    receipt.error_message = (f"The database refused the receipt ({type(error).__name__}); it is stored with "
                             "its body and headers only.")
    receipt.notes = [*receipt.notes, f"stored minimal: {type(error).__name__}"]


def _receipt_insert_alone(receipt: WebhookReceipt) -> Exception | None:
    """Insert one receipt whatever it holds: as it is, else minimal. Returns the error that
    kept even the minimal form out (then the request is answered 503), or None."""
    try:
        _receipt_insert(receipt)
        return None
    except Exception as exc:  # whatever the database (or its driver) refuses in this row
        if _connection_broken():
            raise
        logger.warning("Receipt refused by the database (%s); storing it minimal", type(exc).__name__)
        _receipt_minimal(receipt, exc)
    try:
        _receipt_insert(receipt)
        return None
    except Exception as exc:
        if _connection_broken():
            raise
        return exc


def _receipts_insert(receipts: list[WebhookReceipt]) -> list[Exception | None]:
    """Insert receipts in one statement; if it fails (a dedupe key clash, a value the database
    refuses), one by one, so only the row at fault becomes a duplicate or is stored minimal.
    Returns each receipt's error (None: stored). Raises when the connection broke."""
    try:
        WebhookReceipt.objects.bulk_create(receipts)
        return [None] * len(receipts)
    except Exception:
        if _connection_broken():
            raise
    for receipt in receipts:
        receipt.pk = None
    return [_receipt_insert_alone(receipt) for receipt in receipts]


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
    def _insert(receipts: list[WebhookReceipt]) -> list[Exception | None]:
        try:
            return _receipts_insert(receipts)
        except OperationalError:
            # The writer's long-lived connection may have been dropped while it was idle (a
            # database restart or failover, an administrator, a proxy's idle timeout): once
            # more, on a fresh connection, for the receipts not yet written.
            connection.close()
            waiting = [receipt for receipt in receipts if receipt.pk is None]
            outcomes = dict(zip(map(id, waiting), _receipts_insert(waiting), strict=True))
            return [outcomes.get(id(receipt)) for receipt in receipts]

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
            try:
                outcomes = self._insert([slot.receipt for slot in group])
            except Exception as exc:  # the database is out of reach: nobody in this group is stored
                outcomes = [exc] * len(group)
                connection.close()  # the next group starts on a fresh connection
            for slot, error in zip(group, outcomes, strict=True):
                # Each waiting request answers for its own receipt; one the database would not
                # take in any form is answered as not stored (the view's 503).
                if error is not None and not isinstance(error, DatabaseError):
                    error = DatabaseError(f"The receipt could not be stored: {type(error).__name__}")
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


_TEXT_FIELDS = ("endpoint", "query", "kind", "event_type", "call_id", "error_code", "error_message")


def _receipt_fields_fit(fields: dict, headers: dict, remote_addr: str | None) -> tuple[dict, list[str]]:
    """The receipt's extracted fields made storable (text_fit, dedupe key by key_fit, the address
    only if it is one), with a note per change."""
    fitted, notes = model_values_fit(WebhookReceipt, {name: fields[name] for name in _TEXT_FIELDS if fields[name]})
    fitted = {**{name: "" for name in _TEXT_FIELDS}, **fitted}
    fitted["dedupe_key"], done = key_fit(fields["dedupe_key"], WebhookReceipt._meta.get_field("dedupe_key").max_length)
    notes += [f"dedupe_key: {what}" for what in done]
    fitted["headers"], done = json_fit(headers_redacted(headers))
    notes += [f"headers: {what}" for what in done]
    fitted["remote_addr"] = ip_or_none(remote_addr)
    if remote_addr and fitted["remote_addr"] is None:
        notes.append("remote_addr: not an IP address, dropped")
    return fitted, notes


async def receipt_store(*, provider: str, endpoint: str, body: bytes, headers, remote_addr: str | None,
                        query: str = "", body_truncated: bool = False,
                        status: str = WebhookReceipt.Status.RECEIVED, company: Company | None = None,
                        kind: str = "", event_type: str = "", call_id: str = "", dedupe_key: str = "",
                        error_code: str = "", error_message: str = "") -> WebhookReceipt:
    """Store an inbound request as it came, with what checking it found, before it is answered:
    committed when this returns (by the receipt writer, with whatever other receipts arrived
    at the same moment).

    The body is stored byte for byte. The extracted fields are stored in a form the database
    takes (NUL removed, lone surrogates replaced, cut to their columns; the dedupe key kept
    distinct by a digest; an address that is none dropped), each change recorded in its
    `notes`. A receipt the database still refuses is stored
    minimal (body, headers, error_code "unstorable"; its status `rejected`), alone: the other
    receipts written with it are not affected. A receipt that would hold a dedupe key another
    receipt already holds is stored as a duplicate. Raises DatabaseError when the receipt
    could not be stored at all. Receipts are the audit trail of inbound traffic themselves,
    so no AuditEntry is written for them.
    """
    fitted, fit_notes = _receipt_fields_fit(
        {"endpoint": endpoint, "query": query, "kind": kind, "event_type": event_type, "call_id": call_id,
         "dedupe_key": dedupe_key, "error_code": error_code, "error_message": error_message}, headers, remote_addr)
    receipt = WebhookReceipt(provider=provider, body=body, body_truncated=body_truncated, status=status,
                             company=company, notes=fit_notes, **fitted)
    await _group_insert.store(receipt)
    return receipt


def receipt_reject(*, receipt: WebhookReceipt, code: str, message: str,
                   status: str = WebhookReceipt.Status.REJECTED) -> None:
    """A stored receipt's handling failed after it was stored (an unknown or failing custom function)."""
    receipt.status, receipt.error_code = status, code[:64]
    receipt.error_message = text_fit(message, 500)[0]
    WebhookReceipt.objects.filter(pk=receipt.pk).update(
        status=status, error_code=receipt.error_code, error_message=receipt.error_message)


def _notes_with(receipt: WebhookReceipt, notes: list[str]) -> list[str]:
    # A retried receipt finds the same things again: each note once.
    return list(dict.fromkeys([*receipt.notes, *notes]))


def receipt_claim(*, receipt_id: int, providers, now: datetime | None = None) -> WebhookReceipt | None:
    """Count a try of a verified or failed event receipt that is due, before it starts (committed
    at once, so a try lost to a crash still counts), and hold it from the sweeper until the try's
    backoff has passed. Returns the receipt, or None when it is not due, another worker holds
    it, or its tries are spent (it is then failed for good, with that reason).
    """
    now = now or timezone.now()
    Status = WebhookReceipt.Status
    with transaction.atomic():
        receipt = (WebhookReceipt.objects.select_for_update(skip_locked=True)
                   .filter(pk=receipt_id, kind="event", provider__in=list(providers))
                   .filter(Q(status=Status.VERIFIED) | Q(status=Status.FAILED, next_attempt_at__isnull=False))
                   .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
                   .exclude(company=None).first())
        if receipt is None:
            return None
        limit = settings.RECEIPT_MAX_ATTEMPTS
        if receipt.attempts >= limit:
            receipt_failed(receipt=receipt, code="tries_spent", permanent=True,
                           message=f"All {limit} tries (RECEIPT_MAX_ATTEMPTS) are used and the last did not "
                                   "finish: a worker may have crashed on this receipt.")
            return None
        receipt.attempts += 1
        receipt.next_attempt_at = now + timedelta(seconds=retry_policy.backoff_seconds(
            receipt.attempts, base=settings.RECEIPT_RETRY_BASE_SECONDS, cap=3600))
        WebhookReceipt.objects.filter(pk=receipt.pk).update(attempts=receipt.attempts,
                                                           next_attempt_at=receipt.next_attempt_at)
    return receipt


def receipt_processed(*, receipt: WebhookReceipt, note: str = "", notes: list[str] = ()) -> None:
    """The receipt was handled: `note` says how when it is not plain (e.g. superseded), `notes`
    what had to be cleaned or dropped to handle it."""
    now = timezone.now()
    receipt.notes = _notes_with(receipt, list(notes))
    receipt.status = WebhookReceipt.Status.PROCESSED
    WebhookReceipt.objects.filter(pk=receipt.pk).update(
        status=receipt.status, processed_at=now, error_code="", error_message=text_fit(note, 500)[0],
        next_attempt_at=None, notes=receipt.notes,
        attempts=max(receipt.attempts, 1))  # a function call is handled in its request, unclaimed: one try


def receipt_failed(*, receipt: WebhookReceipt, code: str, message: str, permanent: bool = False) -> None:
    """Processing failed: keep the receipt `failed`, due again at the backoff its claim set, until
    its tries run out; a `permanent` failure (no retry can mend it) or the last try is failed for
    good (no next attempt), logged as an error and written to the company's activity log."""
    give_up = permanent or receipt.attempts >= settings.RECEIPT_MAX_ATTEMPTS
    receipt.status, receipt.error_code = WebhookReceipt.Status.FAILED, code[:64]
    if give_up:
        receipt.next_attempt_at = None
        message = f"Given up after {receipt.attempts} {'try' if receipt.attempts == 1 else 'tries'}: {message}"
    elif receipt.next_attempt_at is None:  # not claimed (receipt_claim sets it): its backoff from now
        receipt.next_attempt_at = timezone.now() + timedelta(seconds=retry_policy.backoff_seconds(
            max(receipt.attempts, 1), base=settings.RECEIPT_RETRY_BASE_SECONDS, cap=3600))
    receipt.error_message = text_fit(message, 500)[0]
    WebhookReceipt.objects.filter(pk=receipt.pk).update(
        status=receipt.status, error_code=receipt.error_code, error_message=receipt.error_message,
        next_attempt_at=receipt.next_attempt_at)
    if give_up:
        logger.error("Receipt %s given up: %s", receipt.pk, receipt.error_code)
        if receipt.company_id is not None:
            activity_log(company=receipt.company_id, kind="webhook.given_up", level="error",
                         message=f"Webhook given up: {receipt.error_code}",
                         data={"receipt_id": receipt.pk, "call_id": receipt.call_id})


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
