"""Concurrent requests on real PostgreSQL connections: one slot is booked once, one retry runs once.

Each thread has its own database connection (Django's per-thread connections) and all
start together at a barrier; `transaction=True` lets them see each other's commits.
"""

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection

from appointments.handlers import run_custom_function
from appointments.models import Appointment, FunctionInvocation, Service
from tests.appointments.conftest import WEEKDAYS_8_TO_18, berlin
from tests.factories import make_company

NOW = berlin(2026, 3, 20, 9, 0)
SLOT = {"name": "Caller", "date": "2026-03-23", "time": "10:00", "service": "Kontrolle"}


def run_together(count: int, work) -> list:
    barrier = threading.Barrier(count)

    def one(index: int):
        try:
            barrier.wait(timeout=30)
            return work(index)
        finally:
            connection.close()  # this thread's own connection

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(one, range(count)))


@pytest.fixture
def practice(transactional_db):
    company = make_company("Praxis Parallel", slug="parallel", opening_hours=WEEKDAYS_8_TO_18)
    Service.objects.create(company=company, name="Kontrolle", duration_minutes=30)
    return company


def test_fifty_concurrent_bookings_of_one_slot_book_exactly_one_and_the_rest_get_alternatives(practice):
    results = run_together(50, lambda i: run_custom_function(
        company=practice, name="collect_appointment_information", args={**SLOT, "name": f"Caller {i}"},
        call_id=f"call_{i}", caller_number=f"+49151000000{i:02d}", now=NOW))

    booked = [r for r in results if r["ok"]]
    refused = [r for r in results if not r["ok"]]
    assert len(booked) == 1
    assert len(refused) == 49
    assert {r["error"] for r in refused} == {"taken"}
    assert all(r["alternatives"] == ["2026-03-23T09:15:00+01:00", "2026-03-23T09:30:00+01:00",
                                     "2026-03-23T10:30:00+01:00"] for r in refused)
    assert Appointment.objects.filter(company=practice, status="pending").count() == 1


def test_a_retry_racing_its_original_runs_once_and_both_get_the_same_answer(practice):
    results = run_together(8, lambda i: run_custom_function(
        company=practice, name="collect_appointment_information", args=SLOT, call_id="call_retried",
        caller_number="+4915112345678", now=NOW))

    assert results[0]["ok"] is True
    assert all(result == results[0] for result in results)
    assert Appointment.objects.filter(company=practice).count() == 1
    invocation = FunctionInvocation.objects.get(call_id="call_retried")
    assert (invocation.seq, invocation.retries_answered) == (1, 7)


def test_a_different_request_racing_in_the_same_call_runs_after_the_first(practice):
    # given: two different bookings of one call arriving together
    slots = [SLOT, {**SLOT, "time": "11:00"}]

    # when: they race for the call's next invocation number
    results = run_together(2, lambda i: run_custom_function(
        company=practice, name="collect_appointment_information", args=slots[i], call_id="call_busy",
        caller_number="+4915112345678", now=NOW))

    # then: both ran, one after the other
    assert [r["ok"] for r in results] == [True, True]
    assert Appointment.objects.filter(company=practice, call_id="call_busy").count() == 2
    assert sorted(FunctionInvocation.objects.filter(call_id="call_busy").values_list("seq", flat=True)) == [1, 2]


def test_the_same_call_twice_in_a_row_books_once(practice):
    first = run_custom_function(company=practice, name="collect_appointment_information", args=SLOT,
                                call_id="call_twice", now=NOW)
    second = run_custom_function(company=practice, name="collect_appointment_information", args=SLOT,
                                 call_id="call_twice", now=NOW)

    assert first == second and first["ok"] is True
    assert Appointment.objects.filter(company=practice).count() == 1


def test_two_racing_confirmations_of_one_call_confirm_each_appointment_once(practice):
    from appointments.services import appointments_confirm_for_call
    from audit.actor import Actor
    from audit.models import AuditEntry

    booked = run_custom_function(company=practice, name="collect_appointment_information", args=SLOT,
                                 call_id="call_ending", now=NOW)

    results = run_together(6, lambda i: appointments_confirm_for_call(
        actor=Actor.system("test"), company=practice, call_id="call_ending"))

    assert sorted(len(confirmed) for confirmed in results) == [0, 0, 0, 0, 0, 1]
    assert Appointment.objects.get(pk=booked["appointment_id"]).status == "confirmed"
    assert AuditEntry.objects.filter(object_id=str(booked["appointment_id"]), action="confirm").count() == 1
