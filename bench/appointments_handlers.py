"""How fast the custom-function handlers answer (not a test: prints figures).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/voicedesk_bench .venv/bin/python bench/appointments_handlers.py

Migrates the database named by DATABASE_URL, makes a throw-away company with a few
hundred appointments, then times in-process calls of run_custom_function (the code the
HTTP endpoint and the dialog engine run): check_availability, a booking, a retry
answered from the stored result, a refusal with alternatives, and 50 concurrent
bookings of one slot. Removes its company at the end.
"""

import os
import secrets
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402

from appointments.handlers import run_custom_function  # noqa: E402
from appointments.models import Appointment, Service  # noqa: E402
from tenants.models import Company  # noqa: E402

BERLIN = ZoneInfo("Europe/Berlin")
NOW = datetime(2026, 3, 20, 9, 0, tzinfo=BERLIN)  # a Friday


def timed(label: str, runs: int, work) -> None:
    spent = []
    for i in range(runs):
        began = time.perf_counter()
        work(i)
        spent.append((time.perf_counter() - began) * 1000)
    spent.sort()
    p99 = spent[min(len(spent) - 1, int(len(spent) * 0.99))]
    print(f"{label:<46} n={runs:<4} p50 {statistics.median(spent):6.1f} ms   p99 {p99:6.1f} ms   max {spent[-1]:6.1f} ms")


def main() -> None:
    if connection.vendor != "postgresql":
        sys.exit("Point DATABASE_URL at PostgreSQL.")
    call_command("migrate", verbosity=0)
    hours = {d: [["08:00", "18:00"]] for d in ("mon", "tue", "wed", "thu", "fri")}
    company = Company.objects.create(name="Bench Praxis", slug=f"bench-{secrets.token_hex(4)}", opening_hours=hours)
    try:
        service = Service.objects.create(company=company, name="Kontrolle", duration_minutes=30)
        # Three weeks of mornings mostly booked: realistic work for the alternatives search.
        day = datetime(2026, 3, 23, 8, 0, tzinfo=BERLIN)
        rows = []
        for d in range(21):
            for slot in range(16):
                start = day + timedelta(days=d, minutes=30 * slot)
                if start.weekday() < 5:
                    rows.append(Appointment(company=company, customer_name="Filler", service=service, start=start,
                                            end=start + timedelta(minutes=30), blocked_until=start + timedelta(minutes=30),
                                            status="confirmed"))
        Appointment.objects.bulk_create(rows)
        print(f"company with {len(rows)} confirmed appointments (weekday mornings 8-16 booked, three weeks)")

        def fn(name, args, call_id):
            return run_custom_function(company=company, name=name, args=args, call_id=call_id,
                                       caller_number="+4915112345678", now=NOW)

        timed("check_availability (a whole day)", 100,
              lambda i: fn("check_availability", {"date": "Montag"}, f"avail-{i}"))
        timed("collect_appointment_information (books)", 100, lambda i: fn(
            "collect_appointment_information",
            {"name": f"P{i}", "date": (day + timedelta(days=i // 4)).date().isoformat(),
             "time": f"{16 + (i % 4) // 2}:{'00' if i % 2 == 0 else '30'}"}, f"book-{i}"))
        timed("collect_appointment_information (retry)", 100, lambda i: fn(
            "collect_appointment_information",
            {"name": f"P{i}", "date": (day + timedelta(days=i // 4)).date().isoformat(),
             "time": f"{16 + (i % 4) // 2}:{'00' if i % 2 == 0 else '30'}"}, f"book-{i}"))
        timed("collect_appointment_information (taken)", 100, lambda i: fn(
            "collect_appointment_information", {"name": "X", "date": "Montag", "time": "10 Uhr"}, f"taken-{i}"))

        barrier = threading.Barrier(50)

        def racer(i):
            try:
                barrier.wait()
                began = time.perf_counter()
                result = fn("collect_appointment_information",
                            {"name": f"R{i}", "date": "2026-04-17", "time": "17:00"}, f"race-{i}")
                return result["ok"], (time.perf_counter() - began) * 1000
            finally:
                connection.close()

        with ThreadPoolExecutor(50) as pool:
            outcomes = list(pool.map(racer, range(50)))
        spent = sorted(ms for _, ms in outcomes)
        print(f"{'50 concurrent bookings of one slot':<46} booked {sum(ok for ok, _ in outcomes)}, "
              f"refused {sum(not ok for ok, _ in outcomes)}   p50 {statistics.median(spent):6.1f} ms   "
              f"max {spent[-1]:6.1f} ms")
    finally:
        company.delete()


if __name__ == "__main__":
    main()
