"""Migrations that rewrite rows: run forwards (and back) on a database holding old rows."""

from datetime import datetime, timedelta, timezone

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = [("appointments", "0003_restrict_service_and_resource_deletion")]
AFTER = [("appointments", "0004_function_invocation_seq_per_call")]


def migrate(targets) -> MigrationExecutor:
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return MigrationExecutor(connection)


@pytest.mark.django_db(transaction=True)
def test_function_invocations_are_numbered_per_call_in_the_order_they_were_made():
    # given: invocations stored under the old scheme (one row per call, function and arguments)
    old = migrate(BEFORE).loader.project_state(BEFORE).apps
    company = old.get_model("tenants", "Company").objects.create(name="Alt", slug="alt")
    invocation = old.get_model("appointments", "FunctionInvocation")
    t0 = datetime(2026, 3, 20, 9, 0, tzinfo=timezone.utc)
    made = [("call_b", "check_availability", "h1", 0), ("call_a", "cancel_appointment", "h2", 3),
            ("call_a", "collect_appointment_information", "h1", 1), ("call_a", "check_availability", "h1", 2)]
    for call_id, name, args_hash, minutes in made:
        row = invocation.objects.create(company=company, call_id=call_id, name=name, args_hash=args_hash)
        invocation.objects.filter(pk=row.pk).update(created_at=t0 + timedelta(minutes=minutes))

    try:
        # when: the migration runs
        new = migrate(AFTER).loader.project_state(AFTER).apps

        # then: each call's rows are 1, 2, 3 by creation time
        rows = new.get_model("appointments", "FunctionInvocation").objects.order_by("call_id", "seq")
        assert [(r.call_id, r.seq, r.name, r.retries_answered) for r in rows] == [
            ("call_a", 1, "collect_appointment_information", 0), ("call_a", 2, "check_availability", 0),
            ("call_a", 3, "cancel_appointment", 0), ("call_b", 1, "check_availability", 0)]
    finally:
        migrate(migrate(AFTER).loader.graph.leaf_nodes())


@pytest.mark.django_db(transaction=True)
def test_going_back_keeps_the_first_of_each_call_function_and_arguments():
    # given: a call that asked the same thing twice with another request between
    apps = migrate(AFTER).loader.project_state(AFTER).apps
    company = apps.get_model("tenants", "Company").objects.create(name="Neu", slug="neu")
    invocation = apps.get_model("appointments", "FunctionInvocation")
    for seq, name in enumerate(["cancel_appointment", "check_availability", "cancel_appointment"], start=1):
        invocation.objects.create(company=company, call_id="call_a", seq=seq, name=name, args_hash="h")

    try:
        # when: the migration is reversed
        old = migrate(BEFORE).loader.project_state(BEFORE).apps

        # then: the old unique constraint holds again, with the first row of each kept
        rows = old.get_model("appointments", "FunctionInvocation").objects.order_by("pk")
        assert [r.name for r in rows] == ["cancel_appointment", "check_availability"]
    finally:
        migrate(migrate(AFTER).loader.graph.leaf_nodes())
