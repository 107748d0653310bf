"""Appointments over the REST API: booked, moved and cancelled through the booking rules (so
never double-booked), idempotent POSTs, the filters, and who may do what."""

from datetime import datetime, timedelta

import pytest
from guardian.shortcuts import assign_perm

from appointments.models import Appointment, Closure, Service
from audit.models import AuditEntry
from retell_config.models import Agent
from tests.api.conftest import next_weekday
from tests.factories import make_call, make_member

pytestmark = pytest.mark.django_db


@pytest.fixture
def service(alpha):
    return Service.objects.create(company=alpha, name="Kontrolle", duration_minutes=30)


def booking(company, service, clock="10:00", day=None, **extra):
    return {"company": company.pk, "customer_name": "Erika Muster", "phone": "0151 23456789", "service": service.pk,
            "start": f"{day or next_weekday()}T{clock}", **extra}


def test_a_booking_goes_through_the_booking_rules_and_is_audited_as_the_token(owner, alpha, service):
    response = owner.post("/api/v1/appointments/", booking(alpha, service))

    assert response.status_code == 201
    made = response.json()
    # Wall-clock time without an offset is read in the company's zone (Berlin).
    start = datetime.fromisoformat(made["start"].replace("Z", "+00:00")).astimezone(alpha.zone)
    assert (start.date(), start.strftime("%H:%M")) == (next_weekday(), "10:00")
    assert made["phone"] == "+4915123456789" and made["status"] == "confirmed"
    assert response["ETag"]
    entry = AuditEntry.objects.get(object_type="appointments.appointment", object_id=str(made["id"]))
    assert (entry.action, entry.actor_kind) == ("book", "token")


def test_double_booking_is_refused_with_409_and_the_nearest_free_starts(owner, alpha, service):
    assert owner.post("/api/v1/appointments/", booking(alpha, service)).status_code == 201

    refused = owner.post("/api/v1/appointments/", booking(alpha, service, customer_name="Max Mustermann"))

    assert refused.status_code == 409
    error = refused.json()["error"]
    assert error["code"] == "slot_taken"
    assert error["alternatives"], "a refusal offers the nearest free starts"
    taken = datetime.combine(next_weekday(), datetime.strptime("10:00", "%H:%M").time(), alpha.zone)
    for alternative in error["alternatives"]:
        moment = datetime.fromisoformat(alternative.replace("Z", "+00:00"))
        assert not taken <= moment < taken + timedelta(minutes=30)
    assert Appointment.objects.filter(company=alpha).count() == 1


@pytest.mark.parametrize("clock, closed, code", [("07:00", False, "slot_outside_hours"), ("10:00", True, "slot_closed")])
def test_times_the_practice_does_not_offer_are_refused(owner, alpha, service, clock, closed, code):
    day = next_weekday()
    if closed:
        Closure.objects.create(company=alpha, first_day=day, last_day=day, reason="Training")
    refused = owner.post("/api/v1/appointments/", booking(alpha, service, clock=clock, day=day))
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == code


def test_an_idempotency_key_books_once_and_answers_the_repeat_with_the_first_answer(owner, alpha, service):
    key = {"Idempotency-Key": "booking-7f3a"}
    first = owner.post("/api/v1/appointments/", booking(alpha, service), **key)
    again = owner.post("/api/v1/appointments/", booking(alpha, service), **key)

    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    assert Appointment.objects.filter(company=alpha).count() == 1
    assert AuditEntry.objects.filter(object_type="appointments.appointment", action="book").count() == 1

    reused = owner.post("/api/v1/appointments/", booking(alpha, service, clock="11:00"), **key)
    assert reused.status_code == 422
    assert reused.json()["error"]["code"] == "idempotency_key_reused"


def test_a_refused_booking_leaves_its_key_free_for_the_retry(owner, alpha, service):
    owner.post("/api/v1/appointments/", booking(alpha, service))
    key = {"Idempotency-Key": "retry-me"}
    assert owner.post("/api/v1/appointments/", booking(alpha, service, customer_name="Max"), **key).status_code == 409

    Appointment.objects.filter(company=alpha).update(status="cancelled")
    assert owner.post("/api/v1/appointments/", booking(alpha, service, customer_name="Max"), **key).status_code == 201


def test_keys_are_per_user(alpha, service, api_as):
    first, second = api_as(make_member(alpha, "owner")), api_as(make_member(alpha, "admin"))
    assert first.post("/api/v1/appointments/", booking(alpha, service), **{"Idempotency-Key": "k"}).status_code == 201
    # Another user's same key is a new request: here it meets the booking rules.
    refused = second.post("/api/v1/appointments/", booking(alpha, service), **{"Idempotency-Key": "k"})
    assert refused.status_code == 409


def test_move_and_cancel_go_through_the_services(owner, alpha, service):
    made = owner.post("/api/v1/appointments/", booking(alpha, service)).json()

    moved = owner.post(f"/api/v1/appointments/{made['id']}/move/", {"start": f"{next_weekday()}T14:00"})
    assert moved.status_code == 200
    new = moved.json()
    assert new["id"] != made["id"]
    old = Appointment.objects.get(pk=made["id"])
    assert (old.status, old.rescheduled_to_id) == ("rescheduled", new["id"])

    cancelled = owner.post(f"/api/v1/appointments/{new['id']}/cancel/", {"reason": "Caller is ill"})
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    assert "Cancelled: Caller is ill" in cancelled.json()["notes"]
    actions = list(AuditEntry.objects.filter(object_type="appointments.appointment").values_list("action", flat=True))
    assert {"book", "reschedule", "cancel"} <= set(actions)

    again = owner.post(f"/api/v1/appointments/{made['id']}/move/", {"start": f"{next_weekday()}T15:00"})
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "not_active"


def test_a_move_onto_a_taken_time_changes_nothing(owner, alpha, service):
    first = owner.post("/api/v1/appointments/", booking(alpha, service)).json()
    second = owner.post("/api/v1/appointments/", booking(alpha, service, clock="12:00")).json()

    refused = owner.post(f"/api/v1/appointments/{second['id']}/move/", {"start": f"{next_weekday()}T10:00"})

    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "slot_taken"
    assert Appointment.objects.get(pk=second["id"]).status == "confirmed"
    assert Appointment.objects.get(pk=first["id"]).status == "confirmed"


def test_a_move_with_a_stale_etag_is_refused(owner, alpha, service):
    made = owner.post("/api/v1/appointments/", booking(alpha, service))
    etag = made["ETag"]
    path = f"/api/v1/appointments/{made.json()['id']}/"
    assert owner.patch(path, {"notes": "Bring X-rays"}, **{"If-Match": etag}).status_code == 200

    stale = owner.post(path + "move/", {"start": f"{next_weekday()}T14:00"}, **{"If-Match": etag})
    assert stale.status_code == 412
    assert Appointment.objects.get(pk=made.json()["id"]).status == "confirmed"


def test_the_list_filters_by_day_status_agent_and_phone(owner, alpha, service):
    agent = Agent.objects.create(company=alpha, agent_id="agent_abc123", name="Main")
    call = make_call(alpha, agent)
    day, later = next_weekday(), next_weekday(10)
    in_call = owner.post("/api/v1/appointments/", booking(alpha, service, day=day)).json()
    Appointment.objects.filter(pk=in_call["id"]).update(call_id=call.call_id)
    other = owner.post("/api/v1/appointments/", booking(alpha, service, day=later, phone="+49 30 1234567")).json()
    owner.post(f"/api/v1/appointments/{other['id']}/cancel/")

    def ids(**params):
        response = owner.get("/api/v1/appointments/", params)
        assert response.status_code == 200, response.content
        return [row["id"] for row in response.json()["results"]]

    assert ids(day=str(day)) == [in_call["id"]]
    assert ids(status="cancelled") == [other["id"]]
    assert ids(agent="agent_abc123") == [in_call["id"]]
    assert ids(phone="030 1234567") == [other["id"]]
    assert ids(phone="+4915123456789") == [in_call["id"]]
    assert owner.get(f"/api/v1/appointments/{in_call['id']}/").json()["agent_id"] == "agent_abc123"
    assert owner.get("/api/v1/appointments/", {"day": "not-a-day"}).status_code == 400


def test_a_viewer_reads_but_cannot_book_move_or_cancel(owner, viewer, alpha, service):
    made = owner.post("/api/v1/appointments/", booking(alpha, service)).json()

    assert viewer.get(f"/api/v1/appointments/{made['id']}/").status_code == 200
    for response in (viewer.post("/api/v1/appointments/", booking(alpha, service, clock="12:00")),
                     viewer.post(f"/api/v1/appointments/{made['id']}/move/", {"start": f"{next_weekday()}T14:00"}),
                     viewer.post(f"/api/v1/appointments/{made['id']}/cancel/")):
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "permission_denied"
    assert Appointment.objects.filter(company=alpha).count() == 1


def test_another_company_neither_sees_nor_books_into_alpha(owner, beta_owner, alpha, service):
    made = owner.post("/api/v1/appointments/", booking(alpha, service)).json()

    assert beta_owner.get("/api/v1/appointments/").json()["results"] == []
    for response in (beta_owner.get(f"/api/v1/appointments/{made['id']}/"),
                     beta_owner.post(f"/api/v1/appointments/{made['id']}/cancel/")):
        assert response.status_code == 404
    # Alpha's company and service are ids beta cannot name.
    refused = beta_owner.post("/api/v1/appointments/", booking(alpha, service, clock="12:00"))
    assert refused.status_code == 400
    assert set(refused.json()["error"]["fields"]) == {"company", "service"}
    assert Appointment.objects.get(pk=made["id"]).status == "confirmed"


def test_a_member_limited_to_an_agent_sees_only_that_agents_appointments(owner, alpha, service, api_as):
    main = Agent.objects.create(company=alpha, agent_id="agent_main", name="Main")
    backup = Agent.objects.create(company=alpha, agent_id="agent_backup", name="Backup")
    rows = {}
    for name, agent, clock in (("main", main, "09:00"), ("backup", backup, "11:00")):
        made = owner.post("/api/v1/appointments/", booking(alpha, service, clock=clock)).json()
        Appointment.objects.filter(pk=made["id"]).update(call_id=make_call(alpha, agent).call_id)
        rows[name] = made["id"]
    user = make_member(alpha, "editor", limited=True)
    assign_perm("retell_config.view_agent", user, main)
    limited = api_as(user)

    seen = [row["id"] for row in limited.get("/api/v1/appointments/").json()["results"]]

    assert seen == [rows["main"]]
    assert limited.get(f"/api/v1/appointments/{rows['backup']}/").status_code == 404
    assert limited.post(f"/api/v1/appointments/{rows['backup']}/cancel/").status_code == 404


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_posts_with_one_key_book_once(alpha, api_as):
    """The key's row is written in the booking's transaction: the second request waits for the first
    and replays its answer, even when both arrive at once."""
    import threading

    from django.db import connection

    service = Service.objects.create(company=alpha, name="Kontrolle", duration_minutes=30)
    api = api_as(make_member(alpha, "owner"))
    body = booking(alpha, service)
    answers, start = [], threading.Barrier(2)

    def post():
        try:
            start.wait(timeout=10)
            answers.append(api.post("/api/v1/appointments/", body, **{"Idempotency-Key": "same-key"}))
        finally:
            connection.close()

    threads = [threading.Thread(target=post) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert sorted(a.status_code for a in answers) == [201, 201]
    assert answers[0].json()["id"] == answers[1].json()["id"]
    assert Appointment.objects.filter(company=alpha).count() == 1
