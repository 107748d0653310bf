"""The appointments admin writes through the booking services and shows a tenant-scoped day view."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from appointments.models import Appointment, Resource, ResourceKind, Service
from appointments.services import appointment_book
from audit.actor import Actor
from audit.models import AuditEntry
from tenants.roles import Role
from tests.appointments.conftest import WEEKDAYS_8_TO_18, berlin
from tests.factories import make_company, make_member, make_user

ADD = reverse("admin:appointments_appointment_add")
DAY = reverse("admin:appointments_appointment_day")


def next_monday():
    today = timezone.now().astimezone(berlin(2026, 1, 1).tzinfo).date()
    return today + timedelta(days=7 - today.weekday())


def weekday_within_the_next_week():
    """A working day 1 to 6 days ahead: inside the change list's "Next 7 days" whatever today is."""
    today = timezone.now().astimezone(berlin(2026, 1, 1).tzinfo).date()
    return next(today + timedelta(days=n) for n in range(1, 7) if (today + timedelta(days=n)).weekday() < 5)


@pytest.fixture
def praxis(db):
    return make_company("Praxis Sonnenschein", slug="praxis", opening_hours=WEEKDAYS_8_TO_18)


@pytest.fixture
def kontrolle(praxis):
    return Service.objects.create(company=praxis, name="Kontrolle", duration_minutes=30)


@pytest.fixture
def owner(client, praxis):
    client.force_login(make_member(praxis, Role.OWNER))
    return client


def book(company, day, hour, service, **kwargs):
    return appointment_book(actor=Actor.system("test"), company=company, customer_name=kwargs.pop("name", "Erika"),
                            start=berlin(day.year, day.month, day.day, hour, 0), service=service, **kwargs)


def form(company, service, day, at, **extra):
    return {"customer_name": "Max Mustermann", "phone": "030 1234567", "service": service.pk, "resource": "",
            "start_0": day.isoformat(), "start_1": at, "notes": "", "company": company.pk, **extra}


def test_adding_in_the_admin_books_a_confirmed_appointment_at_the_companys_wall_clock_time(owner, praxis, kontrolle):
    monday = next_monday()

    response = owner.post(ADD, form(praxis, kontrolle, monday, "10:00"))

    assert response.status_code == 302, response.context["adminform"].form.errors
    appointment = Appointment.objects.get()
    assert appointment.start == berlin(monday.year, monday.month, monday.day, 10, 0)
    assert (appointment.status, appointment.phone) == ("confirmed", "+49301234567")
    assert appointment.confirmed_at is not None
    assert AuditEntry.objects.filter(object_id=str(appointment.pk), action="book").exists()


def test_adding_at_a_taken_time_is_refused_on_the_form_with_free_times(owner, praxis, kontrolle):
    monday = next_monday()
    book(praxis, monday, 10, kontrolle)

    response = owner.post(ADD, form(praxis, kontrolle, monday, "10:15"))

    assert response.status_code == 200
    error = response.context["adminform"].form.errors["start"][0]
    assert error.startswith("That time is taken. Free: ")
    assert "10:30" in error
    assert Appointment.objects.count() == 1


def test_adding_on_a_sunday_is_refused_as_outside_opening_hours(owner, praxis, kontrolle):
    sunday = next_monday() - timedelta(days=1) + timedelta(days=7)

    response = owner.post(ADD, form(praxis, kontrolle, sunday, "10:00"))

    assert "outside the opening hours" in response.context["adminform"].form.errors["start"][0]


def test_changing_the_start_reschedules_and_keeps_the_old_row(owner, praxis, kontrolle):
    monday = next_monday()
    appointment = book(praxis, monday, 10, kontrolle, status="confirmed")
    url = reverse("admin:appointments_appointment_change", args=[appointment.pk])

    response = owner.post(url, {**form(praxis, kontrolle, monday, "11:00"), "customer_name": "Erika",
                                "phone": "", "status": "confirmed"})

    assert response.status_code == 302
    appointment.refresh_from_db()
    assert appointment.status == "rescheduled"
    assert appointment.rescheduled_to.start == berlin(monday.year, monday.month, monday.day, 11, 0)
    assert appointment.rescheduled_to.status == "confirmed"


def test_setting_the_status_to_cancelled_cancels_through_the_service(owner, praxis, kontrolle):
    monday = next_monday()
    appointment = book(praxis, monday, 10, kontrolle, status="confirmed")
    url = reverse("admin:appointments_appointment_change", args=[appointment.pk])

    owner.post(url, {**form(praxis, kontrolle, monday, "10:00"), "customer_name": "Erika", "phone": "",
                     "status": "cancelled"})

    appointment.refresh_from_db()
    assert appointment.status == "cancelled"
    assert AuditEntry.objects.filter(object_id=str(appointment.pk), action="cancel").exists()


def test_the_changelist_filters_by_status_and_service(owner, praxis, kontrolle):
    monday = weekday_within_the_next_week()
    cleaning = Service.objects.create(company=praxis, name="Reinigung", duration_minutes=60)
    pending = book(praxis, monday, 10, kontrolle)
    confirmed = book(praxis, monday, 12, cleaning, status="confirmed")
    changelist = reverse("admin:appointments_appointment_changelist")

    by_status = owner.get(changelist, {"status__exact": "pending"}).context["cl"].queryset
    by_service = owner.get(changelist, {"service__id__exact": cleaning.pk}).context["cl"].queryset
    upcoming = owner.get(changelist, {"when": "week"}).context["cl"].queryset

    assert list(by_status) == [pending]
    assert list(by_service) == [confirmed]
    assert set(upcoming) == {pending, confirmed}


def test_the_cancel_action_cancels_the_selection(owner, praxis, kontrolle):
    monday = next_monday()
    first, second = book(praxis, monday, 10, kontrolle), book(praxis, monday, 11, kontrolle)

    owner.post(reverse("admin:appointments_appointment_changelist"),
               {"action": "cancel_selected", "_selected_action": [first.pk, second.pk]})

    assert set(Appointment.objects.values_list("status", flat=True)) == {"cancelled"}


def test_the_day_view_lists_the_days_appointments_per_staff_member_and_links_the_neighbour_days(owner, praxis):
    monday = next_monday()
    service = Service.objects.create(company=praxis, name="Beratung", duration_minutes=30,
                                     resource_kind=ResourceKind.STAFF)
    Resource.objects.create(company=praxis, name="Dr. Anna", kind=ResourceKind.STAFF)
    Resource.objects.create(company=praxis, name="Dr. Ben", kind=ResourceKind.STAFF)
    book(praxis, monday, 9, service, name="Alice")
    book(praxis, monday, 9, service, name="Bob")
    book(praxis, monday + timedelta(days=1), 9, service, name="Tuesday Tom")
    other = make_company("Other Praxis", slug="other", opening_hours=WEEKDAYS_8_TO_18)
    book(other, monday, 9, None, name="Stranger")

    response = owner.get(DAY, {"day": monday.isoformat()})

    assert response.status_code == 200
    columns = dict(response.context["columns"])
    assert [a.customer_name for a in columns["Dr. Anna (Staff member)"]] == ["Alice"]
    assert [a.customer_name for a in columns["Dr. Ben (Staff member)"]] == ["Bob"]
    page = response.content.decode()
    assert "Stranger" not in page and "Tuesday Tom" not in page
    assert f"day={(monday + timedelta(days=1)).isoformat()}" in page
    assert f"day={(monday - timedelta(days=1)).isoformat()}" in page
    assert "09:00–09:30" in page


def test_the_day_view_counts_the_day_in_the_companys_zone_across_dst(owner, praxis):
    # The Monday after the change to summer time: 08:00 is 06:00 UTC, 23:30 is 21:30 UTC.
    from datetime import date

    Appointment.objects.create(company=praxis, customer_name="Early", start=berlin(2026, 3, 30, 0, 30),
                               end=berlin(2026, 3, 30, 1, 0), blocked_until=berlin(2026, 3, 30, 1, 0),
                               status="confirmed")
    Appointment.objects.create(company=praxis, customer_name="Sunday night", start=berlin(2026, 3, 29, 23, 30),
                               end=berlin(2026, 3, 30, 0, 0), blocked_until=berlin(2026, 3, 30, 0, 0),
                               status="confirmed")

    response = owner.get(DAY, {"day": date(2026, 3, 30).isoformat()})

    names = [a.customer_name for _, rows in response.context["columns"] for a in rows]
    assert names == ["Early"]
    assert "00:30–01:00" in response.content.decode()


def test_the_day_view_refuses_another_companys_id_and_users_without_a_role(client, owner, praxis):
    other = make_company("Other Praxis", slug="other")
    assert owner.get(DAY, {"company": other.pk}).status_code == 404

    client.force_login(make_user())  # staff, but a member of no company
    assert client.get(DAY).status_code == 403


def test_a_viewer_sees_the_day_view(client, praxis, kontrolle):
    book(praxis, next_monday(), 10, kontrolle, name="Visible")
    client.force_login(make_member(praxis, Role.VIEWER))

    response = client.get(DAY, {"day": next_monday().isoformat()})

    assert response.status_code == 200
    assert "Visible" in response.content.decode()
