"""The ElevenLabs webhook-tool export: a tool pasted into ElevenLabs reaches this server's
custom-function endpoint with what names the company and agent and a key ElevenLabs can send,
is accepted and runs the same handlers; the key is shown once (in the file), stored as its
SHA-256 and replaced by the next export; every export format imports back."""

import hashlib
import json

import pytest
from django.urls import reverse

from appointments.function_specs import FUNCTION_SPECS
from audit.actor import Actor
from audit.models import AuditEntry, WebhookReceipt
from retell_config import services
from retell_config.models import Agent, CustomFunction
from tests.conftest import next_weekday_iso
from tests.fakes.elevenlabs import webhook_tool_request
from tests.factories import make_member

ACTOR = Actor.system("tests")
VARIABLES = {"system__conversation_id": "conv_01jxq4", "system__caller_id": "+4915112345678"}


@pytest.fixture
def tools_agent(bookable_agent, settings):
    settings.PUBLIC_BASE_URL = "https://voicedesk.example.com"
    services.custom_functions_seed(actor=ACTOR, company=bookable_agent.company, agents=[bookable_agent])
    return bookable_agent


def export(client, agent) -> dict:
    response = client.post(reverse("retell-functions-export"),
                           {"company": agent.company_id, "format": "elevenlabs", "agent": agent.pk})
    assert response.status_code == 200, response.content[:300]
    assert "attachment" in response["Content-Disposition"]
    return json.loads(response.content)


def tool(document: dict, name: str) -> dict:
    return next(t["tool_config"] for t in document["tools"] if t["tool_config"]["name"] == name)


def call_as_elevenlabs(client, tool_config: dict, arguments: dict):
    request = webhook_tool_request(tool_config, arguments=arguments, variables=VARIABLES)
    headers = {"HTTP_" + name.upper().replace("-", "_"): value for name, value in request["headers"].items()}
    assert request["method"] == "POST"
    return client.post(request["path_and_query"], data=request["body"], content_type="application/json", **headers)


@pytest.mark.django_db(transaction=True)
def test_an_exported_tool_called_as_elevenlabs_calls_it_is_accepted_and_runs_the_handler(client, tools_agent):
    client.force_login(make_member(tools_agent.company, "owner"))
    config = tool(export(client, tools_agent), "check_availability")

    response = call_as_elevenlabs(client, config, {"date": next_weekday_iso(), "time": "10:00",
                                                   "service": "Kontrolle"})

    assert response.status_code == 200, response.content
    assert response.json()["ok"] is True
    [receipt] = WebhookReceipt.objects.all()
    assert (receipt.provider, receipt.status, receipt.kind) == ("elevenlabs", "processed", "function")
    assert (receipt.company_id, receipt.event_type, receipt.call_id) == (
        tools_agent.company_id, "check_availability", "conv_01jxq4")
    assert receipt.headers["Authorization"] == "[redacted]"


@pytest.mark.django_db(transaction=True)
def test_a_booking_through_the_tool_is_the_callers_and_a_retry_books_once(client, tools_agent):
    client.force_login(make_member(tools_agent.company, "owner"))
    config = tool(export(client, tools_agent), "collect_appointment_information")
    arguments = {"name": "Erika Muster", "date": next_weekday_iso(), "time": "11:00", "service": "Kontrolle"}

    first = call_as_elevenlabs(client, config, arguments)
    again = call_as_elevenlabs(client, config, arguments)

    from appointments.models import Appointment
    [appointment] = Appointment.objects.all()
    assert first.json()["ok"] is True and again.json() == first.json()
    assert (appointment.call_id, appointment.phone) == ("conv_01jxq4", "+4915112345678")


@pytest.mark.django_db(transaction=True)
def test_the_key_is_the_agents_and_the_next_export_replaces_it(client, tools_agent):
    client.force_login(make_member(tools_agent.company, "owner"))
    old = tool(export(client, tools_agent), "check_availability")
    new = tool(export(client, tools_agent), "check_availability")
    other = Agent.objects.create(company=tools_agent.company, agent_id="agent_other", name="Other")
    forged = json.loads(json.dumps(new))
    forged["api_schema"]["query_params_schema"]["properties"]["agent_id"]["constant_value"] = other.agent_id
    arguments = {"date": next_weekday_iso()}

    refused_old = call_as_elevenlabs(client, old, arguments)
    refused_other = call_as_elevenlabs(client, forged, arguments)
    accepted = call_as_elevenlabs(client, new, arguments)

    assert old["api_schema"]["request_headers"] != new["api_schema"]["request_headers"]
    assert (refused_old.status_code, refused_old.json()["error"]["code"]) == (401, "tool_key_invalid")
    assert (refused_other.status_code, refused_other.json()["error"]["code"]) == (401, "tool_key_invalid")
    assert accepted.status_code == 200


@pytest.mark.django_db
def test_the_key_is_shown_only_in_the_file_and_stored_as_its_hash(owner_client, company_a, retell_agents):
    main, _ = retell_agents
    services.custom_functions_seed(actor=ACTOR, company=company_a, agents=[main])

    document = export(owner_client, main)
    header = tool(document, "check_availability")["api_schema"]["request_headers"]["Authorization"]
    key = header.removeprefix("Bearer ")
    main.refresh_from_db()
    pages = [owner_client.get(reverse("admin:retell_config_agent_change", args=[main.pk])).content.decode(),
             owner_client.get(reverse("retell-functions"), {"company": company_a.pk}).content.decode()]

    assert header.startswith("Bearer vdtk_")
    assert main.elevenlabs_tool_key_hash == hashlib.sha256(key.encode()).hexdigest()
    assert key not in json.dumps(list(AuditEntry.objects.values_list("changes", flat=True)))
    assert AuditEntry.objects.filter(action="issue_elevenlabs_tool_key", object_id=str(main.pk)).exists()
    assert all(key not in page for page in pages)


@pytest.mark.django_db
def test_only_who_may_change_the_agent_exports_its_tools(client, company_a, retell_agents):
    main, _ = retell_agents
    client.force_login(make_member(company_a, "viewer"))

    response = client.post(reverse("retell-functions-export"),
                           {"company": company_a.pk, "format": "elevenlabs", "agent": main.pk})

    assert response.status_code == 403
    assert Agent.objects.get(pk=main.pk).elevenlabs_tool_key_hash == ""


@pytest.mark.django_db
def test_a_tool_pointing_elsewhere_carries_neither_the_key_nor_the_agent(company_a, retell_agents):
    main, _ = retell_agents
    function = CustomFunction.objects.create(company=company_a, name="crm_lookup", url="https://crm.example.com/x",
                                             parameters={"type": "object", "properties": {"q": {"type": "string"}}})
    function.agents.add(main)

    document = services.functions_export_elevenlabs(actor=ACTOR, company=company_a, agent=main)
    config = tool(document, "crm_lookup")["api_schema"]

    assert config["url"] == "https://crm.example.com/x" and config["request_headers"] == {}
    assert "agent_id" not in config["query_params_schema"]["properties"]


# --- every format imports back -----------------------------------------------------------------
def _functions(company) -> list[dict]:
    return [{**services.selectors.function_dict(f), "agents": sorted(a.agent_id for a in f.agents.all())}
            for f in CustomFunction.objects.filter(company=company).order_by("name")]


@pytest.mark.django_db
@pytest.mark.parametrize("fmt", ["backup", "retell", "elevenlabs"])
def test_every_export_format_imports_back_unchanged(company_a, retell_agents, fmt):
    main, backup_agent = retell_agents
    services.custom_functions_seed(actor=ACTOR, company=company_a, agents=[main])
    CustomFunction.objects.filter(company=company_a, name="check_availability").update(
        args_at_root=True, query_params={"source": "voicedesk"}, timeout_ms=8000)
    before = _functions(company_a)
    document = (services.functions_export_elevenlabs(actor=ACTOR, company=company_a, agent=main)
                if fmt == "elevenlabs" else services.functions_export(company=company_a, fmt=fmt))

    counts = services.functions_import(actor=ACTOR, company=company_a, document=json.loads(json.dumps(document)))

    assert sorted(counts["unchanged"]) == sorted(FUNCTION_SPECS) and not counts["updated"] + counts["created"]
    assert _functions(company_a) == before


@pytest.mark.django_db
def test_an_elevenlabs_export_imported_elsewhere_creates_the_functions(company_a, company_b, retell_agents):
    main, _ = retell_agents
    services.custom_functions_seed(actor=ACTOR, company=company_a, agents=[main])
    document = services.functions_export_elevenlabs(actor=ACTOR, company=company_a, agent=main)

    counts = services.functions_import(actor=ACTOR, company=company_b, document=document)

    assert sorted(counts["created"]) == sorted(FUNCTION_SPECS)
    theirs = {f["name"]: f for f in _functions(company_b)}
    for name, spec in FUNCTION_SPECS.items():
        assert theirs[name]["parameters"] == spec["parameters"]
        assert theirs[name]["url"] == services.selectors.custom_function_endpoint()
        assert theirs[name]["query_params"] == {}
