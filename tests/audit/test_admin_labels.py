"""What the receipt and delivery pages say is so: the body's truncation flag, and which try of
how many a delivery attempt was."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from audit.models import Delivery, DeliveryAttempt, WebhookReceipt


@pytest.fixture
def owner_page(owner_client):
    def page(url: str) -> str:
        response = owner_client.get(url)
        assert response.status_code == 200
        return response.content.decode()
    return page


def receipt(company, body: bytes = b'{"event": "call_ended"}', **fields) -> WebhookReceipt:
    return WebhookReceipt.objects.create(provider="retell", company=company, endpoint="/api/retell/webhook",
                                         body=body, status="processed", **fields)


@pytest.mark.django_db
def test_a_whole_body_is_not_said_to_be_over_the_size_limit(owner_page, company_a):
    html = owner_page(reverse("admin:audit_webhookreceipt_change", args=[receipt(company_a).pk]))

    assert "No: the whole body is stored." in html
    assert "size limit" not in html


@pytest.mark.django_db
def test_a_truncated_body_says_what_was_kept(owner_page, company_a, settings):
    settings.WEBHOOK_MAX_BODY_BYTES = 1024

    html = owner_page(reverse("admin:audit_webhookreceipt_change",
                              args=[receipt(company_a, body=b"{" * 1024, body_truncated=True).pk]))

    assert "Yes: the request was larger than the size limit (WEBHOOK_MAX_BODY_BYTES, 1024 bytes); only its first " \
           "1024 bytes are stored." in html


@pytest.mark.django_db
def test_an_attempt_is_counted_against_the_deliverys_max_attempts(owner_page, company_a):
    deliveries = [Delivery.objects.create(company=company_a, kind="call_record", target_url="https://b.example/r",
                                          payload={}, idempotency_key=f"call_record:c{n}", max_attempts=8,
                                          attempt_count=1, status="failed") for n in range(3)]
    delivery = next(d for d in deliveries if d.pk != 8)
    DeliveryAttempt.objects.create(company=company_a, delivery=delivery, number=1,
                                   started_at=timezone.now() - timedelta(seconds=5), status_code=503)

    html = owner_page(reverse("admin:audit_delivery_change", args=[delivery.pk]))

    assert "attempt 1 of 8" in html
    assert f"attempt 1 of {delivery.pk}<" not in html
