"""receipt_store under concurrency: receipts stored at the same moment are committed together
by the writer, every caller's own receipt is committed before it returns, a dedupe key is
held once, a failed write fails only the requests whose receipts it held, and a request
that goes away while it waits still has its receipt stored."""

import asyncio
import threading
import time

import pytest
from django.db import DatabaseError, connection

from audit import receipts as services
from audit.models import WebhookReceipt
from audit.receipts import receipt_store
from tests.factories import make_company

pytestmark = pytest.mark.django_db(transaction=True)
Status = WebhookReceipt.Status


async def _astore(n: int, **fields) -> WebhookReceipt:
    return await receipt_store(provider="retell", endpoint="/api/retell/webhook", body=b'{"n": %d}' % n,
                               headers={"Content-Type": "application/json"}, remote_addr="127.0.0.1", **fields)


def _store(n: int, **fields) -> WebhookReceipt:
    """One request's store on an event loop of its own (a thread here stands for a web process)."""
    return asyncio.run(_astore(n, **fields))


@pytest.fixture
def groups(monkeypatch):
    """The groups the writer inserts (their sizes); the first write is slow, so the others queue up."""
    sizes: list[int] = []
    insert = services._receipts_insert

    def recorded(receipts):
        sizes.append(len(receipts))
        if len(sizes) == 1:
            time.sleep(0.3)
        return insert(receipts)

    monkeypatch.setattr(services, "_receipts_insert", recorded)
    return sizes


def _run_together(count: int, target) -> tuple[list, list]:
    barrier = threading.Barrier(count)
    results, errors = [None] * count, []

    def worker(n: int) -> None:
        barrier.wait()
        try:
            results[n] = target(n)
        except Exception as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return results, errors


def test_receipts_stored_together_are_committed_in_a_few_inserts(groups):
    results, errors = _run_together(24, _store)

    assert errors == []
    assert all(receipt.pk for receipt in results)
    assert sorted(bytes(b) for b in WebhookReceipt.objects.values_list("body", flat=True)) == \
        sorted(b'{"n": %d}' % n for n in range(24))
    assert sum(groups) == 24 and len(groups) <= 4  # the first alone or nearly, the rest together


def test_requests_on_one_event_loop_share_a_write(groups):
    async def together():
        return await asyncio.gather(*(_astore(n) for n in range(24)))

    results = asyncio.run(together())

    assert WebhookReceipt.objects.filter(pk__in=[r.pk for r in results]).count() == 24
    assert sum(groups) == 24 and len(groups) <= 3


def test_a_request_that_goes_away_while_it_waits_still_has_its_receipt_stored(groups):
    def store_and_go_away(n: int) -> None:
        async def cancelled():
            waiting = asyncio.create_task(_astore(n))
            await asyncio.sleep(0.02)
            waiting.cancel()  # as Django does when the client disconnects
            with pytest.raises(asyncio.CancelledError):
                await waiting
        asyncio.run(cancelled())  # and its loop is closed before the writer answers

    async def scenario() -> WebhookReceipt:
        first = asyncio.create_task(_astore(1))  # its write is slow: the others queue up behind it
        await asyncio.sleep(0.05)
        await asyncio.to_thread(store_and_go_away, 2)
        third = await asyncio.wait_for(_astore(3), 5)  # written with the second, in one group
        await first
        return third

    third = asyncio.run(scenario())

    assert groups[1:] == [2]
    assert WebhookReceipt.objects.filter(pk=third.pk).exists()
    assert sorted(bytes(b) for b in WebhookReceipt.objects.values_list("body", flat=True)) == \
        [b'{"n": %d}' % n for n in (1, 2, 3)]


def test_one_dedupe_key_stored_by_many_at_once_is_held_by_one_receipt(groups):
    company = make_company("Dedupe Praxis", slug="dedupe")
    results, errors = _run_together(
        12, lambda n: _store(n, status=Status.VERIFIED, company=company, dedupe_key="call_ended:call_1",
                             call_id="call_1"))

    assert errors == []
    assert sorted(r.status for r in results) == [Status.DUPLICATE] * 11 + [Status.VERIFIED]
    stored = dict(WebhookReceipt.objects.values_list("pk", "status"))
    assert {r.pk: r.status for r in results} == stored


def test_a_failed_write_fails_its_own_group_only_and_the_writer_goes_on(monkeypatch):
    insert, calls = services._receipts_insert, []

    def first_fails(receipts):
        calls.append(len(receipts))
        if len(calls) == 1:
            time.sleep(0.2)
            raise DatabaseError("could not extend file: No space left on device")
        return insert(receipts)

    monkeypatch.setattr(services, "_receipts_insert", first_fails)
    results, errors = _run_together(8, _store)

    assert len(errors) == calls[0] and all(isinstance(e, DatabaseError) for e in errors)
    assert WebhookReceipt.objects.count() == 8 - len(errors)  # nobody else lost anything
    later = _store(99)
    assert WebhookReceipt.objects.filter(pk=later.pk).exists()


def test_the_writer_survives_its_connection_being_dropped():
    _store(1)  # the writer now holds its connection
    with connection.cursor() as cursor:  # as a database restart or an administrator would
        cursor.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                       "WHERE datname = current_database() AND pid <> pg_backend_pid()")

    receipt = _store(2)

    assert WebhookReceipt.objects.filter(pk=receipt.pk).exists()


# --- One request's bad data never touches another's (issue 11, item 1) -----------------
FLAWS = {"NUL": "p\x00x", "lone surrogate": "p\ud800x", "over-long": "p" * 5000}
TEXT_FIELDS = ["endpoint", "query", "kind", "event_type", "call_id", "dedupe_key", "error_code", "error_message"]


def _flawed_fields(flaw: str) -> list[dict]:
    """One receipt's fields per extracted field, that field holding the flaw."""
    value = FLAWS[flaw]
    rows = [{field: value} for field in TEXT_FIELDS]
    if flaw != "over-long":  # headers are stored whole: their column has no length
        rows.append({"headers": {"X-Flawed": value}})
        rows.append({"headers": {f"X-{value}": "1"}})
    rows.append({"remote_addr": "not-an-ip" if flaw != "over-long" else "1" * 5000})
    return rows


async def _astore_fields(n: int, fields: dict) -> WebhookReceipt:
    base = {"provider": "retell", "endpoint": "/api/retell/webhook", "body": b'{"n": %d}' % n,
            "headers": {"Content-Type": "application/json"}, "remote_addr": "127.0.0.1"}
    return await receipt_store(**{**base, **fields})


@pytest.mark.parametrize("flaw", FLAWS)
def test_a_flawed_field_is_stored_cleaned_and_everyone_else_in_its_group_is_stored(groups, flaw):
    # given: receipts with a flaw in each extracted field, in a group with good ones
    company = make_company("Flawed Praxis", slug="flawed")
    flawed = [{**fields, "company": company, "status": Status.VERIFIED}
              if "dedupe_key" in fields else fields for fields in _flawed_fields(flaw)]

    async def together():
        good = [_astore_fields(n, {}) for n in range(24)]
        bad = [_astore_fields(100 + n, fields) for n, fields in enumerate(flawed)]
        return await asyncio.gather(*good, *bad, return_exceptions=True)

    # when: they are stored at the same moment
    results = asyncio.run(together())

    # then: every one is stored, the good ones as sent, the flawed ones cleaned, saying so
    assert [r for r in results if isinstance(r, BaseException)] == []
    assert any(size > 1 for size in groups)
    good, bad = results[:24], results[24:]
    assert {bytes(WebhookReceipt.objects.get(pk=r.pk).body) for r in good} == {b'{"n": %d}' % n for n in range(24)}
    assert all(WebhookReceipt.objects.get(pk=r.pk).notes == [] for r in good)
    for receipt, fields in zip(bad, flawed, strict=True):
        stored = WebhookReceipt.objects.get(pk=receipt.pk)
        assert bytes(stored.body) == bytes(receipt.body)
        assert stored.notes, fields
        for name in TEXT_FIELDS:
            value = getattr(stored, name)
            assert "\x00" not in value and "\ud800" not in value
            assert len(value) <= WebhookReceipt._meta.get_field(name).max_length
        assert all("\x00" not in f"{k}{v}" and "\ud800" not in f"{k}{v}" for k, v in stored.headers.items())


def test_a_row_the_database_still_refuses_is_stored_minimal_and_fails_nobody_else(groups):
    # given: a receipt naming a company that no longer exists (deleted while its request was
    # checked), among good ones
    from tenants.models import Company

    gone = Company(pk=987654321, name="Gone", slug="gone")

    async def together():
        good = [_astore_fields(n, {}) for n in range(12)]
        bad = _astore_fields(99, {"company": gone, "status": Status.VERIFIED, "kind": "event",
                                  "call_id": "call_gone", "dedupe_key": "call_ended:call_gone"})
        return await asyncio.gather(*good, bad, return_exceptions=True)

    # when
    results = asyncio.run(together())

    # then: the good ones are stored as sent; the refused one keeps its body and headers with a note
    assert [r for r in results if isinstance(r, BaseException)] == []
    assert WebhookReceipt.objects.filter(pk__in=[r.pk for r in results[:12]], status=Status.RECEIVED).count() == 12
    minimal = WebhookReceipt.objects.get(pk=results[12].pk)
    assert (minimal.status, minimal.error_code, minimal.company_id) == (Status.REJECTED, "unstorable", None)
    assert bytes(minimal.body) == b'{"n": 99}' and minimal.headers == {"Content-Type": "application/json"}
    assert minimal.notes and results[12].status == Status.REJECTED
