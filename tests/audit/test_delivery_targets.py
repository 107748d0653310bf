"""Each try of a delivery goes to the company's backend as it is configured now (issue 12, item 2).

The payload and the Idempotency-Key stay as the delivery was created; the URL and the key
are read at each try, and each attempt row records the URL it was sent to.
"""

import pytest
from django.urls import reverse
from django.utils import timezone

from audit.deliveries import delivery_send
from audit.models import Delivery
from appointments.backend import CALL_RECORD_PATH, backend_forward_call_end
from tests.factories import make_call, make_member
from tests.fakes.backend import FakeBackend

pytestmark = pytest.mark.django_db
OLD_KEY, NEW_KEY = "backend-key-old-0123456789", "backend-key-new-9876543210"


@pytest.fixture
def wrong_backend():
    """A host that is not the practice's backend: it has no such path (404) until told otherwise."""
    backend = FakeBackend()
    backend.fail(404)
    yield backend
    backend.close()


@pytest.fixture
def misconfigured(company_a, wrong_backend, settings):
    settings.DELIVERY_CIRCUIT_FAILURES = 1000  # the circuit has its own tests
    company_a.backend_url, company_a.backend_api_key = wrong_backend.url, OLD_KEY
    company_a.save()
    return company_a


def call_record(company) -> Delivery:
    call = make_call(company)
    [delivery] = backend_forward_call_end(company=company, call=call, appointments=[])
    return delivery


def fix_backend(company, url: str) -> None:
    company.backend_url, company.backend_api_key = url, NEW_KEY
    company.save()


def test_retry_now_after_fixing_the_url_posts_to_the_new_url(
        misconfigured, wrong_backend, fake_backend, client, celery_eager, django_capture_on_commit_callbacks):
    # given: a call record dead-lettered at a wrong backend URL
    delivery = call_record(misconfigured)
    delivery_send(delivery_id=delivery.pk)
    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.DEAD
    created = (delivery.payload, delivery.idempotency_key)

    # when the owner fixes the URL (and key) on the company and presses "Retry now"
    fix_backend(misconfigured, fake_backend.url)
    client.force_login(make_member(misconfigured, "owner"))
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("admin:audit_delivery_retry", args=[delivery.pk]))

    # then: the try goes to the new URL with the new key, payload and idempotency key as created
    assert response.status_code == 302
    [received] = fake_backend.answered(200)
    assert received.path == CALL_RECORD_PATH
    assert (received.body, received.headers["Idempotency-Key"]) == created
    assert received.headers["Authorization"] == f"Bearer {NEW_KEY}"
    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.SUCCEEDED
    assert delivery.target_url == fake_backend.url + CALL_RECORD_PATH
    assert [a.url for a in delivery.attempts.order_by("number")] == [
        wrong_backend.url + CALL_RECORD_PATH, fake_backend.url + CALL_RECORD_PATH]


def test_a_delivery_retrying_a_failing_url_follows_a_fix_at_its_next_try(
        misconfigured, wrong_backend, fake_backend):
    # given: a delivery failing at a URL that answers 503 (retried later)
    wrong_backend.fail(503)
    delivery = call_record(misconfigured)
    delivery_send(delivery_id=delivery.pk)
    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.FAILED

    # when the URL is fixed and the backoff has passed
    fix_backend(misconfigured, fake_backend.url)
    Delivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now())
    delivery_send(delivery_id=delivery.pk)

    # then: the next try went to the new URL, and only one reached the old one
    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.SUCCEEDED
    assert len(wrong_backend.requests) == 1 and len(fake_backend.answered(200)) == 1
    assert [(a.number, a.url, a.status_code) for a in delivery.attempts.order_by("number")] == [
        (1, wrong_backend.url + CALL_RECORD_PATH, 503), (2, fake_backend.url + CALL_RECORD_PATH, 200)]


def test_a_company_whose_backend_url_was_removed_dead_letters_with_the_reason(misconfigured, settings):
    settings.BACKEND_URL = ""
    delivery = call_record(misconfigured)
    misconfigured.backend_url = ""
    misconfigured.save()

    delivery_send(delivery_id=delivery.pk)

    delivery.refresh_from_db()
    [attempt] = delivery.attempts.all()
    assert delivery.status == Delivery.Status.DEAD
    assert "No backend URL" in attempt.error and attempt.url == delivery.target_url
