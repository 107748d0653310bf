"""The other resources of /api/v1/ (companies and opening hours, services, closures, calls,
webhook receipts, deliveries), and the tenancy rule on every resource: another company's rows
never appear, in a list or by id."""

import pytest

from appointments.models import Appointment, Closure, Service
from audit.models import AuditEntry, Delivery, DeliveryAttempt, WebhookReceipt
from retell_config.models import Agent, CustomFunction, PromptVersion, SyncRun
from tenants.models import Company
from tests.factories import make_call, make_for
from voice.models import Call

pytestmark = pytest.mark.django_db

# Each resource, its model and how its row is named in a path.
RESOURCES = {
    "companies": (Company, "pk"),
    "agents": (Agent, "agent_id"),
    "custom-functions": (CustomFunction, "pk"),
    "prompt-versions": (PromptVersion, "pk"),
    "sync-runs": (SyncRun, "pk"),
    "services": (Service, "pk"),
    "closures": (Closure, "pk"),
    "appointments": (Appointment, "pk"),
    "calls": (Call, "pk"),
    "webhook-receipts": (WebhookReceipt, "pk"),
    "deliveries": (Delivery, "pk"),
}


def company_ids(resource: str, rows: list[dict]) -> set[int]:
    return {row["id"] if resource == "companies" else row["company"] for row in rows}


@pytest.mark.parametrize("resource", sorted(RESOURCES))
def test_another_companys_rows_never_appear(resource, alpha, beta, owner, beta_owner):
    model, lookup = RESOURCES[resource]
    if model is WebhookReceipt:
        row = WebhookReceipt.objects.create(provider="retell", company=alpha, endpoint="/api/retell/webhook",
                                            body=b"{}", status="processed")
    else:
        row = make_for(model, alpha)
    mine = make_for(model, beta) if model is not WebhookReceipt else WebhookReceipt.objects.create(
        provider="retell", company=beta, endpoint="/api/retell/webhook", body=b"{}", status="processed")

    listed = beta_owner.get(f"/api/v1/{resource}/")
    assert listed.status_code == 200
    assert company_ids(resource, listed.json()["results"]) == {beta.pk}
    assert beta_owner.get(f"/api/v1/{resource}/{getattr(row, lookup)}/").status_code == 404
    assert beta_owner.get(f"/api/v1/{resource}/{getattr(mine, lookup)}/").status_code == 200
    # Asked by the other company's id, the list is empty rather than an error that tells it exists.
    if resource != "companies":
        for company_id in (alpha.pk, 10 ** 9):
            filtered = beta_owner.get(f"/api/v1/{resource}/", {"company": company_id})
            assert (filtered.status_code, filtered.json()["results"]) == (200, [])
    assert company_ids(resource, owner.get(f"/api/v1/{resource}/").json()["results"]) == {alpha.pk}


def test_companies_show_no_credentials(owner, alpha):
    alpha.retell_api_key = "key_secret_value_123456"
    alpha.save()
    response = owner.get(f"/api/v1/companies/{alpha.pk}/")
    assert "key_secret_value_123456" not in response.content.decode()
    assert not {"retell_api_key", "twilio_auth_token", "backend_api_key", "llm_api_key"} & set(response.json())


def test_opening_hours_are_replaced_by_owners_with_if_match_and_audited(owner, viewer, alpha):
    path = f"/api/v1/companies/{alpha.pk}/opening-hours/"
    read = owner.get(path)
    assert read.json()["timezone"] == "Europe/Berlin"
    hours = {"mon": [["08:00", "12:00"], ["13:00", "18:00"]], "sat": [["09:00", "12:00"]]}

    assert viewer.put(path, {"opening_hours": hours}, **{"If-Match": read["ETag"]}).status_code == 403
    assert owner.put(path, {"opening_hours": hours}).status_code == 428
    bad = owner.put(path, {"opening_hours": {"mon": [["18:00", "08:00"]]}}, **{"If-Match": read["ETag"]})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid"
    saved = owner.put(path, {"opening_hours": hours}, **{"If-Match": read["ETag"]})
    assert saved.status_code == 200, saved.content
    assert saved.json()["opening_hours"] == hours
    alpha.refresh_from_db()
    assert alpha.opening_hours == hours
    entry = AuditEntry.objects.filter(object_type="tenants.company", action="update").latest("id")
    assert entry.actor_kind == "token" and entry.changes["opening_hours"]["after"] == hours
    assert owner.put(path, {"opening_hours": {}}, **{"If-Match": read["ETag"]}).status_code == 412


def test_services_and_closures_are_saved_as_the_admin_saves_them(owner, viewer, alpha):
    made = owner.post("/api/v1/services/", {"company": alpha.pk, "name": "Reinigung", "duration_minutes": 45,
                                            "price": "80.00"})
    assert made.status_code == 201
    duplicate = owner.post("/api/v1/services/", {"company": alpha.pk, "name": "Reinigung"})
    assert duplicate.status_code == 400
    closure = owner.post("/api/v1/closures/", {"company": alpha.pk, "first_day": "2030-12-24",
                                               "last_day": "2030-12-26", "reason": "Holidays"})
    assert closure.status_code == 201
    backwards = owner.post("/api/v1/closures/", {"company": alpha.pk, "first_day": "2030-12-26",
                                                 "last_day": "2030-12-24"})
    assert backwards.status_code == 400 and set(backwards.json()["error"]["fields"]) == {"last_day"}
    assert viewer.post("/api/v1/closures/", {"company": alpha.pk, "first_day": "2031-01-01",
                                             "last_day": "2031-01-01"}).status_code == 403
    assert [c["reason"] for c in owner.get("/api/v1/closures/", {"since": "2030-12-25"}).json()["results"]] == [
        "Holidays"]
    assert owner.get("/api/v1/closures/", {"since": "2030-12-27"}).json()["results"] == []
    assert set(AuditEntry.objects.filter(action="create").values_list("object_type", flat=True)) >= {
        "appointments.service", "appointments.closure"}


def test_a_service_in_use_cannot_be_deleted(owner, alpha):
    appointment = make_for(Appointment, alpha)
    path = f"/api/v1/services/{appointment.service_id}/"
    response = owner.delete(path, **{"If-Match": owner.get(path)["ETag"]})
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "in_use"
    assert Service.objects.filter(pk=appointment.service_id).exists()


def test_a_call_is_read_with_its_turns(owner, alpha):
    call = make_call(alpha)
    call.transcript_turns = [{"role": "agent", "content": "Praxis Alpha, guten Tag."},
                             {"role": "user", "content": "Ich brauche einen Termin."}]
    call.save()

    listed = owner.get("/api/v1/calls/").json()["results"]
    assert [c["call_id"] for c in listed] == [call.call_id] and "turns" not in listed[0]
    detail = owner.get(f"/api/v1/calls/{call.pk}/").json()
    assert detail["turns"][1] == {"role": "user", "content": "Ich brauche einen Termin."}
    assert detail["transcript"].startswith("Agent: Praxis Alpha")


def test_receipts_are_read_with_their_redacted_headers(owner, alpha):
    receipt = WebhookReceipt.objects.create(provider="retell", company=alpha, endpoint="/api/retell/webhook",
                                            body=b'{"event": "call_ended"}', headers={"x-retell-signature": "[redacted]"},
                                            event_type="call_ended", status="processed")
    detail = owner.get(f"/api/v1/webhook-receipts/{receipt.pk}/").json()
    assert detail["body"] == '{"event": "call_ended"}' and detail["headers"] == {"x-retell-signature": "[redacted]"}
    assert owner.get("/api/v1/webhook-receipts/", {"status": "rejected"}).json()["results"] == []


def test_a_dead_delivery_is_retried_by_an_owner_not_by_a_viewer(owner, viewer, alpha, django_capture_on_commit_callbacks):
    delivery = Delivery.objects.create(company=alpha, kind="call_record", target_url="https://backend.example.com/x",
                                       payload={"call_id": "c1"}, idempotency_key="call_record:c1", status="dead",
                                       attempt_count=8, max_attempts=8, last_error="HTTP 500")
    DeliveryAttempt.objects.create(company=alpha, delivery=delivery, number=1, started_at=delivery.created_at,
                                   status_code=500)

    assert viewer.post(f"/api/v1/deliveries/{delivery.pk}/retry/").status_code == 403
    read = owner.get(f"/api/v1/deliveries/{delivery.pk}/")
    assert read.json()["attempts"][0]["status_code"] == 500
    with django_capture_on_commit_callbacks(execute=False):
        retried = owner.post(f"/api/v1/deliveries/{delivery.pk}/retry/", **{"If-Match": read["ETag"]})
    assert retried.status_code == 200, retried.content
    assert retried.json()["status"] == "pending" and retried.json()["max_attempts"] == 16
    entry = AuditEntry.objects.get(object_type="audit.delivery", action="retry")
    assert entry.actor_kind == "token" and entry.changes["status"] == {"before": "dead", "after": "pending"}
