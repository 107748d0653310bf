"""The function simulator: the real handler in a rolled-back transaction (what it would write,
nothing kept), the live argument check of the schema, sending signed to the function's URL,
and who may run what."""

import json

import pytest

from appointments.models import Appointment, FunctionInvocation
from audit.models import ActivityLogEntry, AuditEntry
from retell_config.models import CustomFunction
from tests.conftest import next_weekday_iso
from tests.factories import make_member
from voice import tester
from voice.models import Call

SCHEMA = {"type": "object", "properties": {"name": {"type": "string"}, "date": {"type": "string"},
                                           "time": {"type": "string"}, "service": {"type": "string"}},
          "required": ["name", "date", "time"]}


@pytest.fixture
def booking_function(bookable_agent):
    function = CustomFunction.objects.create(company=bookable_agent.company, name="collect_appointment_information",
                                             url="https://voicedesk.example.com/api/mcp/retell/custom-function",
                                             parameters=SCHEMA)
    function.agents.add(bookable_agent)
    return function


def run(client, function, **data):
    return client.post(f"/admin/retell-webhook-configuration/functions/{function.pk}/simulate/run/"
                       f"?company={function.company_id}", data=json.dumps(data), content_type="application/json")


def valid_args() -> dict:
    return {"name": "Erika Muster", "date": next_weekday_iso(), "time": "10:00", "service": "Kontrolle"}


@pytest.mark.django_db
def test_a_dry_run_answers_as_the_handler_and_shows_what_it_would_write_but_keeps_nothing(
        owner_client, booking_function):
    audit_before = AuditEntry.objects.count()

    response = run(owner_client, booking_function, mode="dry_run", args=valid_args())

    answer = response.json()
    assert response.status_code == 200, answer
    assert answer["result"]["ok"] is True and answer["schema_errors"] == []
    assert answer["spoken"] == answer["result"]["message"] and answer["spoken"]
    created = {(row["model"], row["action"]) for row in answer["writes"]["rows"]}
    assert ("appointments.Appointment", "create") in created
    assert ("appointments.FunctionInvocation", "create") in created
    assert any(entry["object_type"] == "appointments.appointment" for entry in answer["writes"]["audit"])
    assert answer["elapsed_ms"] > 0
    # Nothing stays: no appointment, no invocation, no audit entry, no activity line of the handler.
    assert Appointment.objects.count() == 0 and FunctionInvocation.objects.count() == 0
    assert AuditEntry.objects.count() == audit_before
    assert list(ActivityLogEntry.objects.values_list("kind", flat=True)) == ["simulator.dry_run"]


@pytest.mark.django_db
def test_invalid_arguments_show_the_schema_errors_and_the_handlers_spoken_refusal(owner_client, booking_function):
    answer = run(owner_client, booking_function, mode="dry_run", args={"name": 42}).json()

    assert any(e.startswith("name:") and "not of type 'string'" in e for e in answer["schema_errors"])
    assert any("'date' is a required property" in e for e in answer["schema_errors"])
    assert answer["result"]["error"] == "invalid_arguments" and answer["spoken"]
    assert Appointment.objects.count() == 0


@pytest.mark.django_db
def test_the_live_check_answers_as_the_editors_does(owner_client, booking_function):
    url = (f"/admin/retell-webhook-configuration/functions/{booking_function.pk}/simulate/validate/"
           f"?company={booking_function.company_id}")

    missing = owner_client.post(url, data='{"name": "Erika"}', content_type="application/json").json()
    fine = owner_client.post(url, data=json.dumps(valid_args()), content_type="application/json").json()
    broken = owner_client.post(url, data='{"name": ', content_type="application/json").json()

    assert missing == {"errors": ["(arguments): 'date' is a required property",
                                  "(arguments): 'time' is a required property"]}
    assert fine == {"errors": []}
    assert broken["errors"][0].startswith("Not JSON")


@pytest.mark.django_db
def test_a_function_without_a_handler_here_says_so(owner_client, company_a):
    function = CustomFunction.objects.create(company=company_a, name="weather", url="https://example.org/weather",
                                             parameters={"type": "object", "properties": {"city": {"type": "string"}}})

    answer = run(owner_client, function, mode="dry_run", args={"city": "Berlin"}).json()

    assert answer["error"]["code"] == "no_handler" and answer["result"] is None


@pytest.mark.django_db
def test_the_simulator_page_builds_its_form_from_the_schema(owner_client, booking_function):
    page = owner_client.get(f"/admin/retell-webhook-configuration/functions/{booking_function.pk}/simulate/",
                            {"company": booking_function.company_id})

    assert page.status_code == 200
    schema = page.context["schema"]
    assert schema == SCHEMA and '"required": ["name", "date", "time"]' in page.content.decode()
    assert set(json.loads(page.context["sample"])) == {"name", "date", "time"}
    listing = owner_client.get("/admin/retell-webhook-configuration/functions/", {"company": booking_function.company_id})
    assert f"/functions/{booking_function.pk}/simulate/?company=" in listing.content.decode()


@pytest.mark.django_db
def test_a_viewer_may_look_but_not_run(client, booking_function):
    client.force_login(make_member(booking_function.company, "viewer"))
    page = client.get(f"/admin/retell-webhook-configuration/functions/{booking_function.pk}/simulate/",
                      {"company": booking_function.company_id})

    response = run(client, booking_function, mode="dry_run", args=valid_args())

    assert page.status_code == 200 and 'id="vdt-dry-run" disabled' in page.content.decode()
    assert response.status_code == 403 and response.json()["error"]["code"] == "forbidden"
    assert not ActivityLogEntry.objects.exists()


@pytest.mark.django_db
def test_another_companys_function_is_not_found(client, booking_function, company_b):
    client.force_login(make_member(company_b, "owner"))

    as_beta = client.post(f"/admin/retell-webhook-configuration/functions/{booking_function.pk}/simulate/run/"
                          f"?company={company_b.pk}", data=json.dumps({"mode": "dry_run", "args": valid_args()}),
                          content_type="application/json")
    in_alpha = run(client, booking_function, mode="dry_run", args=valid_args())

    assert as_beta.status_code == 404 and in_alpha.status_code == 404
    assert Appointment.objects.count() == 0


@pytest.mark.django_db
def test_an_unknown_mode_is_a_clear_error(owner_client, booking_function):
    response = run(owner_client, booking_function, mode="explode", args={})
    assert response.status_code == 400 and response.json()["error"]["code"] == "bad_mode"


@pytest.mark.django_db(transaction=True)
def test_send_posts_the_call_signed_to_the_functions_url_and_books_a_test_appointment_here(
        owner_client, booking_function, bookable_agent, live_server, settings, celery_eager):
    settings.PUBLIC_BASE_URL = live_server.url
    booking_function.url = live_server.url + tester.CUSTOM_FUNCTION_PATH
    booking_function.save()

    answer = run(owner_client, booking_function, mode="send", agent=bookable_agent.pk, args=valid_args()).json()

    assert answer["response"]["status"] == 200, answer
    assert answer["signature"]["verifies_here"] is True
    assert answer["result"]["ok"] is True and answer["spoken"] == answer["result"]["message"]
    appointment = Appointment.objects.get(pk=answer["result"]["appointment_id"])
    assert appointment.is_test and appointment.call_id == answer["call_id"]
    assert Call.objects.get(call_id=answer["call_id"]).test_origin == Call.TestOrigin.WEBHOOK_TESTER
