"""The console's page and JSON reads: the first screen, filters, and a line's debug information,
with lines made by real signed webhooks through this server's endpoint."""

import json

import pytest
from django.core.cache import cache

from audit.models import ActivityLogEntry
from audit.services import activity_log
from tests.conftest import RETELL_KEY, next_weekday_iso
from tests.factories import make_member
from tests.fakes import retell
from voice.models import Call
from voice.retell_session import state_key

pytestmark = pytest.mark.django_db(transaction=True)  # the receipt writer commits on its own connection
FUNCTIONS_URL = "/api/mcp/retell/custom-function"


def _booking(call_id: str) -> bytes:
    call = retell.call_object(call_id, "agent_abc123", status="ongoing", turns=2)
    args = {"name": "Erika Muster", "date": next_weekday_iso(), "time": "10:00", "service": "Kontrolle"}
    return json.dumps({"name": "collect_appointment_information", "call": call, "args": args}).encode()


def _post(client, body: bytes, key: str = RETELL_KEY):
    return client.post(FUNCTIONS_URL, data=body, content_type="application/json", **retell.headers(body, key))


def _lines(client, company, **params):
    response = client.get("/admin/monitoring/console/lines/", {"company": company.pk, **params})
    return response.status_code, response.json()


def test_a_signed_function_calls_lines_open_to_the_request_our_answer_and_the_circuits(client, bookable_agent):
    company = bookable_agent.company
    Call.objects.create(company=company, call_id="call_console_1", agent=bookable_agent)  # call_started came first
    cache.set(state_key(bookable_agent.pk, "call_console_1"), {"protocol": {"last_response_id": 3}, "effects": []})
    assert _post(client, _booking("call_console_1")).status_code == 200
    client.force_login(make_member(company, "viewer"))

    status, body = _lines(client, company, call_id="call_console_1")
    kinds = [line["kind"] for line in body["lines"]]
    assert status == 200 and "function.received" in kinds and "appointment" in kinds
    received = next(line for line in body["lines"] if line["kind"] == "function.received")

    debug = client.get(f"/admin/monitoring/console/lines/{received['id']}/", {"company": company.pk}).json()
    receipt = debug["receipt"]
    assert json.loads(receipt["body"])["call"]["call_id"] == "call_console_1"
    assert receipt["status"] == "processed" and receipt["endpoint"] == FUNCTIONS_URL
    assert any(name.lower() == "x-retell-signature" for name in receipt["headers"])
    assert receipt["response"]["status"] == 200 and receipt["response"]["body"]["ok"] is True
    assert receipt["timings"]["processing_ms"] is not None and receipt["timings"]["processing_ms"] >= 0
    assert debug["call"]["call_id"] == "call_console_1"
    assert debug["call"]["cache_state"] == {"protocol": {"last_response_id": 3}, "effects": []}
    assert {c["name"]: c["state"] for c in debug["circuits"]}["Retell API"] == "closed"
    assert RETELL_KEY not in json.dumps(debug)


def test_a_rejected_webhook_shows_the_status_and_error_we_answered(client, bookable_agent):
    company = bookable_agent.company
    answer = _post(client, _booking("call_console_2"), key="key_someone_else_000000000")
    assert answer.status_code == 401
    client.force_login(make_member(company, "owner"))

    _, body = _lines(client, company, kind="webhook.rejected")
    [line] = body["lines"]
    debug = client.get(f"/admin/monitoring/console/lines/{line['id']}/", {"company": company.pk}).json()
    assert debug["receipt"]["response"] == {"status": 401, "body": {"error": answer.json()["error"]}}
    assert debug["error"]["code"] == answer.json()["error"]["code"]


def test_the_first_screen_and_a_line_of_another_company_stay_with_that_company(client, two_companies):
    alpha, beta = two_companies["alpha"], two_companies["beta"]
    activity_log(company=alpha, kind="test", message="alpha's line")
    theirs = activity_log(company=beta, kind="test", message="beta's secret line")
    client.force_login(make_member(alpha, "owner"))

    page = client.get("/admin/monitoring/console/", {"company": alpha.pk})
    assert page.status_code == 200
    assert '"message": "alpha\u0027s line"' in page.content.decode()
    assert "beta" not in page.content.decode().lower().replace("beta praxis", "")
    assert client.get("/admin/monitoring/console/", {"company": beta.pk}).status_code == 404
    assert client.get(f"/admin/monitoring/console/lines/{theirs.pk}/", {"company": alpha.pk}).status_code == 404
    refused = client.get(f"/admin/monitoring/console/lines/{theirs.pk}/", {"company": beta.pk})
    assert refused.status_code == 404 and refused.json()["error"]["code"] == "not_found"
    assert [line["message"] for line in _lines(client, alpha)[1]["lines"]] == ["alpha's line"]


def test_a_limited_member_reads_only_lines_of_its_agents(client, two_companies, limited_member):
    alpha = two_companies["alpha"]
    hidden = activity_log(company=alpha, kind="webhook.received", message="backup",
                          data={"call_id": "call_backup_1"})
    activity_log(company=alpha, kind="webhook.received", message="main", data={"call_id": "call_main_1"})
    client.force_login(limited_member)

    assert [line["message"] for line in _lines(client, alpha)[1]["lines"]] == ["main"]
    assert client.get(f"/admin/monitoring/console/lines/{hidden.pk}/", {"company": alpha.pk}).status_code == 404
    status, body = _lines(client, alpha, agent=two_companies["backup"].pk)
    assert status == 400 and body["error"]["code"] == "bad_filter"


def test_filters_after_and_limit_of_the_lines_read(client, two_companies):
    alpha = two_companies["alpha"]
    first = activity_log(company=alpha, kind="webhook.received", message="one", data={"call_id": "call_main_1"})
    activity_log(company=alpha, kind="delivery.dead", level="error", message="two", data={"delivery_id": 999})
    activity_log(company=alpha, kind="webhook.processed", message="three", data={"call_id": "call_backup_1"})
    client.force_login(make_member(alpha, "admin"))

    assert [x["message"] for x in _lines(client, alpha, level="error")[1]["lines"]] == ["two"]
    assert [x["message"] for x in _lines(client, alpha, kind="webhook")[1]["lines"]] == ["one", "three"]
    assert [x["message"] for x in _lines(client, alpha, agent=two_companies["main"].pk)[1]["lines"]] == ["one"]
    assert [x["message"] for x in _lines(client, alpha, after=first.pk)[1]["lines"]] == ["two", "three"]
    assert [x["message"] for x in _lines(client, alpha, limit=1)[1]["lines"]] == ["three"]
    assert _lines(client, alpha, level="loud")[0] == 400
    assert _lines(client, alpha, after="x")[0] == 400
    assert ActivityLogEntry.objects.filter(company=alpha).count() == 3  # reading wrote nothing


def test_the_dashboards_view_logs_opens_the_console(client, two_companies):
    alpha = two_companies["alpha"]
    client.force_login(make_member(alpha, "viewer"))
    page = client.get("/admin/retell-webhook-configuration/", {"company": alpha.pk}).content.decode()
    assert f'href="/admin/monitoring/console/?company={alpha.pk}">View Logs</a>' in page
    assert 'data-soon="View Logs"' not in page
