"""The delivery engine against a loopback backend: retries, dead letters, circuit, admin retries."""

import logging
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from audit.models import ActivityLogEntry, AuditEntry, Delivery
from audit.deliveries import deliveries_sweep, delivery_enqueue, delivery_send
from tests.factories import make_member

pytestmark = pytest.mark.django_db
BACKEND_KEY = "backend-key-alpha-987654321"


@pytest.fixture
def backend_company(company_a, fake_backend, settings):
    settings.DELIVERY_CIRCUIT_FAILURES = 1000  # the circuit has its own test
    settings.DELIVERY_READ_TIMEOUT_SECONDS = 0.5
    company_a.backend_url = fake_backend.url
    company_a.backend_api_key = BACKEND_KEY
    company_a.save()
    return company_a


def enqueue(company, key: str = "call_record:call_1", **payload) -> Delivery:
    delivery, _ = delivery_enqueue(company=company, kind=Delivery.Kind.CALL_RECORD,
                                   target_url=company.backend_url + "/api/calls/record",
                                   payload={"call_id": key, **payload}, idempotency_key=key)
    return delivery


def time_passes(*deliveries: Delivery) -> None:
    """Make waiting deliveries due now, as if their backoff had elapsed."""
    Delivery.objects.filter(pk__in=[d.pk for d in deliveries]).update(next_attempt_at=timezone.now())


def test_a_delivery_is_posted_with_its_keys_and_recorded_without_secrets(backend_company, fake_backend):
    delivery = enqueue(backend_company, tenant_id="alpha")

    delivery_send(delivery_id=delivery.pk)

    [received] = fake_backend.answered(200)
    assert received.path == "/api/calls/record"
    assert received.body == {"call_id": "call_record:call_1", "tenant_id": "alpha"}
    assert received.headers["Authorization"] == f"Bearer {BACKEND_KEY}"
    assert received.headers["Idempotency-Key"] == "call_record:call_1"
    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.SUCCEEDED and delivery.attempt_count == 1
    [attempt] = delivery.attempts.all()
    assert attempt.status_code == 200 and attempt.response_excerpt == '{"ok": true}'
    assert attempt.request_headers["Authorization"] == "[redacted]"
    assert BACKEND_KEY not in str(attempt.request_headers)


def test_the_same_idempotency_key_gives_one_delivery(backend_company):
    first = enqueue(backend_company)
    second = enqueue(backend_company)

    assert first.pk == second.pk and Delivery.objects.count() == 1


def test_a_500_is_retried_later_with_backoff(backend_company, fake_backend, settings):
    settings.DELIVERY_BACKOFF_BASE_SECONDS = 10
    fake_backend.fail(500)
    delivery = enqueue(backend_company)

    before = timezone.now()
    delivery_send(delivery_id=delivery.pk)
    not_yet = delivery_send(delivery_id=delivery.pk)

    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.FAILED and not_yet is None
    assert before + timedelta(seconds=5) <= delivery.next_attempt_at <= before + timedelta(seconds=11)
    assert [a.status_code for a in delivery.attempts.all()] == [500]


@pytest.mark.parametrize("status", [400, 401, 404, 422])
def test_a_client_error_is_dead_at_once(backend_company, fake_backend, status):
    fake_backend.fail(status)
    delivery = enqueue(backend_company)

    delivery_send(delivery_id=delivery.pk)

    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.DEAD and delivery.attempt_count == 1


@pytest.mark.parametrize("status", [408, 429])
def test_timeout_and_too_many_requests_are_retried_honouring_retry_after(backend_company, fake_backend, status):
    fake_backend.fail(status, retry_after="120")
    delivery = enqueue(backend_company)

    before = timezone.now()
    delivery_send(delivery_id=delivery.pk)

    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.FAILED
    assert before + timedelta(seconds=119) <= delivery.next_attempt_at <= timezone.now() + timedelta(seconds=120)


def test_a_backend_that_does_not_answer_in_time_is_retried(backend_company, fake_backend):
    fake_backend.hang(3)
    delivery = enqueue(backend_company)

    delivery_send(delivery_id=delivery.pk)

    delivery.refresh_from_db()
    [attempt] = delivery.attempts.all()
    assert delivery.status == Delivery.Status.FAILED
    assert attempt.status_code is None and "Timeout" in attempt.error
    assert attempt.duration_ms < 2000


def test_a_backend_down_for_a_while_gets_every_delivery_once_back_and_none_twice(
        backend_company, fake_backend, celery_eager):
    fake_backend.fail(503)
    deliveries = [enqueue(backend_company, key=f"call_record:call_{n}") for n in range(5)]
    for delivery in deliveries:
        delivery_send(delivery_id=delivery.pk)
    time_passes(*deliveries)
    deliveries_sweep(now=timezone.now() + timedelta(minutes=5))  # still down: a second round fails too

    fake_backend.recover()
    time_passes(*deliveries)
    deliveries_sweep(now=timezone.now() + timedelta(minutes=5))
    time_passes(*deliveries)
    deliveries_sweep(now=timezone.now() + timedelta(minutes=5))  # nothing left to send

    keys = [r.headers["Idempotency-Key"] for r in fake_backend.answered(200)]
    assert sorted(keys) == sorted(d.idempotency_key for d in deliveries)
    assert len(fake_backend.answered(503)) == 10
    assert set(Delivery.objects.values_list("status", flat=True)) == {Delivery.Status.SUCCEEDED}


def test_a_delivery_past_its_last_try_is_dead_lettered_and_an_admin_retry_then_succeeds(
        backend_company, fake_backend, settings, client, django_capture_on_commit_callbacks, celery_eager):
    settings.DELIVERY_MAX_ATTEMPTS = 2
    fake_backend.fail(500)
    delivery = enqueue(backend_company)
    delivery_send(delivery_id=delivery.pk)
    time_passes(delivery)
    delivery_send(delivery_id=delivery.pk)
    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.DEAD and delivery.attempt_count == 2

    fake_backend.recover()
    client.force_login(make_member(backend_company, "admin"))
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("admin:audit_delivery_changelist"),
                               {"action": "retry_deliveries", "_selected_action": [delivery.pk]})

    assert response.status_code == 302
    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.SUCCEEDED and delivery.attempt_count == 3
    assert len(fake_backend.answered(200)) == 1
    assert AuditEntry.objects.filter(action="retry", object_id=str(delivery.pk)).count() == 1


def test_retry_now_on_the_change_page_and_retry_since_send_failed_deliveries_again(
        backend_company, fake_backend, client, django_capture_on_commit_callbacks, celery_eager):
    fake_backend.fail(422)
    old, recent = enqueue(backend_company, key="k-old"), enqueue(backend_company, key="k-recent")
    for delivery in (old, recent):
        delivery_send(delivery_id=delivery.pk)
    Delivery.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=2))
    fake_backend.recover()
    client.force_login(make_member(backend_company, "owner"))

    since = (timezone.now() - timedelta(hours=1)).strftime("%Y-%m-%d %H:%M:%S")
    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("admin:audit_delivery_retry_since"), {"since": since})
    assert [r.headers["Idempotency-Key"] for r in fake_backend.answered(200)] == ["k-recent"]

    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("admin:audit_delivery_retry", args=[old.pk]))
    assert sorted(r.headers["Idempotency-Key"] for r in fake_backend.answered(200)) == ["k-old", "k-recent"]


@pytest.mark.parametrize("role", ["editor", "viewer"])
def test_editors_and_viewers_cannot_retry(backend_company, fake_backend, client, role):
    fake_backend.fail(422)
    delivery = enqueue(backend_company)
    delivery_send(delivery_id=delivery.pk)
    client.force_login(make_member(backend_company, role))

    assert client.post(reverse("admin:audit_delivery_retry", args=[delivery.pk])).status_code == 403
    assert client.get(reverse("admin:audit_delivery_retry_since")).status_code == 403
    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.DEAD


def test_another_companys_delivery_cannot_be_retried(backend_company, company_b, fake_backend, client):
    fake_backend.fail(422)
    company_b.backend_url = fake_backend.url
    company_b.save()
    theirs = enqueue(company_b, key="theirs")
    delivery_send(delivery_id=theirs.pk)
    client.force_login(make_member(backend_company, "owner"))

    assert client.post(reverse("admin:audit_delivery_retry", args=[theirs.pk])).status_code == 404


def test_the_circuit_opens_after_repeated_failures_and_holds_deliveries_without_using_tries(
        backend_company, fake_backend, settings):
    settings.DELIVERY_CIRCUIT_FAILURES = 2
    fake_backend.fail(500)
    deliveries = [enqueue(backend_company, key=f"k{n}") for n in range(3)]
    for delivery in deliveries[:2]:
        delivery_send(delivery_id=delivery.pk)

    held = delivery_send(delivery_id=deliveries[2].pk)

    assert held is None
    third = Delivery.objects.get(pk=deliveries[2].pk)
    assert third.attempt_count == 0 and third.status == Delivery.Status.PENDING
    assert third.next_attempt_at > timezone.now() and "Circuit open" in third.last_error
    assert len(fake_backend.requests) == 2


def test_the_sweeper_requeues_a_delivery_stuck_in_flight(backend_company, fake_backend, celery_eager, settings):
    delivery = enqueue(backend_company)
    Delivery.objects.filter(pk=delivery.pk).update(status=Delivery.Status.IN_FLIGHT, attempt_count=1)
    later = timezone.now() + timedelta(seconds=settings.DELIVERY_STUCK_AFTER_SECONDS + 60)

    deliveries_sweep(now=later)
    time_passes(delivery)
    deliveries_sweep(now=later)

    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.SUCCEEDED and delivery.attempt_count == 2
    assert len(fake_backend.answered(200)) == 1


def test_the_admin_offers_retry_now_on_a_dead_delivery_and_the_retry_since_form(backend_company, fake_backend,
                                                                                client):
    fake_backend.fail(422)
    delivery = enqueue(backend_company)
    delivery_send(delivery_id=delivery.pk)
    client.force_login(make_member(backend_company, "owner"))

    page = client.get(reverse("admin:audit_delivery_change", args=[delivery.pk])).content.decode()
    form = client.get(reverse("admin:audit_delivery_retry_since"))
    listing = client.get(reverse("admin:audit_delivery_changelist")).content.decode()

    assert reverse("admin:audit_delivery_retry", args=[delivery.pk]) in page and "Retry now" in page
    assert "422" in page  # the attempt row is shown inline
    assert BACKEND_KEY not in page
    assert form.status_code == 200 and "since" in form.context["form"].fields
    assert reverse("admin:audit_delivery_retry_since") in listing


# --- Every try ends: recorded (redacted), dead at once when it cannot succeed, never past the last --
UNSENDABLE_KEYS = {"en dash": "backend–key-0123456789abcdef", "line break": "backend-key\n0123456789abcdef",
                   "NUL": "backend-key\x000123456789abcdef", "trailing space": "backend-key-0123456789abcdef "}


def everything_recorded(delivery: Delivery, caplog) -> str:
    lines = ActivityLogEntry.objects.filter(company_id=delivery.company_id)
    return "\n".join([delivery.last_error, caplog.text, *(str(a.request_headers) + a.error for a in delivery.attempts.all()),
                      *(line.message + str(line.data) for line in lines)])


@pytest.mark.parametrize("key", UNSENDABLE_KEYS.values(), ids=UNSENDABLE_KEYS)
def test_a_stored_key_that_a_header_cannot_carry_dead_letters_the_delivery_at_once_with_a_redacted_reason(
        backend_company, fake_backend, caplog, key):
    backend_company.backend_api_key = key
    backend_company.save()  # stored before keys were checked when saved
    delivery = enqueue(backend_company)

    with caplog.at_level(logging.DEBUG):
        delivery_send(delivery_id=delivery.pk)

    delivery.refresh_from_db()
    [attempt] = delivery.attempts.all()
    assert delivery.status == Delivery.Status.DEAD and delivery.attempt_count == 1
    assert attempt.number == 1 and attempt.status_code is None
    assert "Authorization header" in attempt.error and "key" in attempt.error
    assert attempt.request_headers["Authorization"] == "[redacted]"
    assert fake_backend.requests == []
    assert "0123456789abcdef" not in everything_recorded(delivery, caplog)


@pytest.mark.parametrize(("call_id", "sent"), [
    ("call_ü", "call_%C3%BC"),
    ("call_–_dash", "call_%E2%80%93_dash"),
    ("call\nnewline", "call%0Anewline"),
    ("call\r\nX-Injected: yes", "call%0D%0AX-Injected:%20yes"),
])
def test_an_idempotency_key_that_a_header_cannot_carry_is_sent_percent_encoded(backend_company, fake_backend,
                                                                               call_id, sent):
    delivery = enqueue(backend_company, key=f"call_record:{call_id}")

    delivery_send(delivery_id=delivery.pk)

    delivery.refresh_from_db()
    [received] = fake_backend.answered(200)
    assert received.headers["Idempotency-Key"] == f"call_record:{sent}"
    assert "X-Injected" not in received.headers
    assert delivery.status == Delivery.Status.SUCCEEDED
    [attempt] = delivery.attempts.all()
    assert attempt.request_headers["Idempotency-Key"] == received.headers["Idempotency-Key"]


def test_a_key_that_no_longer_decrypts_is_a_recorded_try_and_the_delivery_waits_for_the_next(
        backend_company, fake_backend, settings, caplog):
    from cryptography.fernet import Fernet

    delivery = enqueue(backend_company)
    settings.FIELD_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]  # the key it was stored under is gone

    with caplog.at_level(logging.DEBUG):
        delivery_send(delivery_id=delivery.pk)

    delivery.refresh_from_db()
    [attempt] = delivery.attempts.all()
    assert delivery.status == Delivery.Status.FAILED and delivery.next_attempt_at is not None
    assert "SecretDecryptionError" in attempt.error
    assert fake_backend.requests == []
    assert BACKEND_KEY not in everything_recorded(delivery, caplog)


def test_an_answer_the_database_cannot_store_is_still_a_recorded_try(backend_company, fake_backend):
    fake_backend.fail(500, body=b"stack trace with a NUL \x00 and \xff bytes")
    delivery = enqueue(backend_company)

    delivery_send(delivery_id=delivery.pk)

    delivery.refresh_from_db()
    [attempt] = delivery.attempts.all()
    assert delivery.status == Delivery.Status.FAILED and attempt.status_code == 500
    assert "stack trace with a NUL" in attempt.response_excerpt and "\x00" not in attempt.response_excerpt


def stale(delivery: Delivery, *, tries: int) -> None:
    """The state a worker killed mid-try leaves: in flight, its try counted, no attempt row."""
    Delivery.objects.filter(pk=delivery.pk).update(status=Delivery.Status.IN_FLIGHT, attempt_count=tries)


def test_the_sweeper_records_the_try_a_lost_worker_was_making_then_sends_again(
        backend_company, fake_backend, celery_eager, settings):
    delivery = enqueue(backend_company)
    stale(delivery, tries=1)
    later = timezone.now() + timedelta(seconds=settings.DELIVERY_STUCK_AFTER_SECONDS + 60)

    deliveries_sweep(now=later)

    delivery.refresh_from_db()
    [lost] = delivery.attempts.all()
    assert (lost.number, lost.status_code) == (1, None) and "lost" in lost.error
    assert delivery.status == Delivery.Status.FAILED and fake_backend.requests == []

    time_passes(delivery)
    deliveries_sweep(now=later)

    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.SUCCEEDED and delivery.attempt_count == 2
    assert [(a.number, a.status_code) for a in delivery.attempts.all()] == [(1, None), (2, 200)]


def test_a_try_lost_at_the_last_attempt_is_dead_lettered_by_the_sweeper_and_never_sent_again(
        backend_company, fake_backend, celery_eager, settings):
    settings.DELIVERY_MAX_ATTEMPTS = 3
    delivery = enqueue(backend_company)
    stale(delivery, tries=3)
    later = timezone.now() + timedelta(seconds=settings.DELIVERY_STUCK_AFTER_SECONDS + 60)

    for _ in range(3):
        deliveries_sweep(now=later)
        time_passes(delivery)

    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.DEAD and delivery.attempt_count == 3
    assert [a.number for a in delivery.attempts.all()] == [3]
    assert "lost" in delivery.last_error
    assert fake_backend.requests == []
    assert ActivityLogEntry.objects.filter(kind="delivery.dead", data__delivery_id=delivery.pk).count() == 1


def test_a_delivery_already_past_its_last_try_is_dead_lettered_without_another_send(
        backend_company, fake_backend, celery_eager, settings):
    delivery = enqueue(backend_company)
    # what the sweeper used to leave behind: "attempt 9 of max 8"
    Delivery.objects.filter(pk=delivery.pk).update(status=Delivery.Status.FAILED, attempt_count=9, max_attempts=8,
                                                   next_attempt_at=timezone.now() - timedelta(minutes=5))

    deliveries_sweep(now=timezone.now() + timedelta(minutes=5))

    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.DEAD and delivery.attempt_count == 9
    assert fake_backend.requests == []


@pytest.mark.django_db(transaction=True)
def test_a_try_that_ends_after_the_sweeper_recorded_it_as_lost_changes_nothing_more(
        backend_company, fake_backend, celery_eager, settings):
    import threading

    from django.db import connection

    fake_backend.hang(1)  # longer than the read timeout: the try ends with a timeout
    delivery = Delivery.objects.create(company=backend_company, kind=Delivery.Kind.CALL_RECORD,
                                       target_url=fake_backend.url + "/api/calls/record", payload={"call_id": "c"},
                                       idempotency_key="call_record:late", next_attempt_at=timezone.now())

    def worker() -> None:
        try:
            delivery_send(delivery_id=delivery.pk)
        finally:
            connection.close()

    sender = threading.Thread(target=worker)
    sender.start()
    while Delivery.objects.get(pk=delivery.pk).status != Delivery.Status.IN_FLIGHT:
        sender.join(0.02)
    deliveries_sweep(now=timezone.now() + timedelta(seconds=settings.DELIVERY_STUCK_AFTER_SECONDS + 60))
    sender.join()

    delivery.refresh_from_db()
    [lost] = delivery.attempts.all()
    assert lost.number == 1 and "lost" in lost.error
    assert delivery.status == Delivery.Status.FAILED and delivery.attempt_count == 1
