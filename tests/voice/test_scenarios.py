"""Saved scenarios: the verdict per expectation with its reason, runs over this server's real socket
(the demo companies' own scenarios, a failing one, a prompt draft), `manage.py run_scenarios` exit
codes, the admin's run action through Celery, and who may see and run what."""

import uuid
from datetime import datetime, time
from zoneinfo import ZoneInfo

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command

from appointments.models import Appointment
from audit.actor import Actor
from audit.models import ActivityLogEntry, AuditEntry
from retell_config.models import Agent
from tenants.demo import demo_seed
from tests.factories import make_member
from voice.models import Call, Scenario, ScenarioRun
from voice.scenarios import CallOutcome, Effect, expectations_check, scenario_run_execute, scenario_runs_start
from voice.simulator import AgentTurn

BERLIN = ZoneInfo("Europe/Berlin")
TESTS = Actor.system("scenario tests")


# --- the verdict, on plain data ----------------------------------------------------------------------

def booked_outcome(**turn) -> CallOutcome:
    answer = AgentTurn(response_id=1, caller="Ja", text="Ich habe Ihnen den Termin eingetragen.", first_chunk_ms=40,
                       complete_ms=90, **turn)
    return CallOutcome(greeting="Praxis Alpha, guten Tag.", turns=[answer], test_appointment_ids={7}, effects=[
        Effect(kind="booked", service="Kontrolluntersuchung", start=datetime(2026, 12, 2, 10, 0, tzinfo=BERLIN),
               appointment_id=7)])


def verdicts(scenario, outcome):
    return [(r["expectation"], r["passed"], r["reason"]) for r in expectations_check(scenario, outcome)]


def test_a_booking_as_expected_passes_every_expectation():
    scenario = Scenario(expect_outcome="booked", expect_service="kontroll", expect_day="wednesday",
                        expect_time=time(10, 0), expect_transfer="no", must_say="eingetragen",
                        must_not_say="leider", max_turns=3, max_latency_ms=500)

    results = expectations_check(scenario, booked_outcome())

    assert [r["passed"] for r in results] == [True] * 6
    assert results[0]["reason"] == "booked Kontrolluntersuchung on Wednesday 2026-12-02 10:00"


def test_each_missed_expectation_fails_with_its_reason():
    scenario = Scenario(expect_outcome="booked", expect_time=time(11, 0), expect_transfer="yes",
                        must_say="Auf Wiederhören", must_not_say="Termin", max_turns=0, max_latency_ms=10)

    assert verdicts(scenario, booked_outcome()) == [
        ("An appointment booked (11:00)", False, "the appointment booked does not match: it is at 10:00, not 11:00"),
        ("The agent transfers the call", False, "the agent did not transfer the call"),
        ('Says "Auf Wiederhören"', False, 'the agent never said "Auf Wiederhören"'),
        ('Never says "Termin"', False,
         'the agent said "Termin" in answer 1: "Ich habe Ihnen den Termin eingetragen."'),
        ("At most 0 answers", False, "the call took 1 answers"),
        ("First chunk within 10 ms", False, "answer 1 took 40 ms to its first chunk"),
    ]


def test_the_wrong_day_service_or_kind_of_change_is_named():
    outcome = booked_outcome()
    assert verdicts(Scenario(expect_outcome="booked", expect_day="friday"), outcome)[0][2] == \
        "the appointment booked does not match: it is on a Wednesday, not a Friday"
    assert verdicts(Scenario(expect_outcome="booked", expect_day="2026-12-03"), outcome)[0][2] == \
        "the appointment booked does not match: it is on 2026-12-02, not 2026-12-03"
    assert verdicts(Scenario(expect_outcome="booked", expect_service="Reinigung"), outcome)[0][2] == \
        "the appointment booked does not match: the service is Kontrolluntersuchung, not Reinigung"
    assert verdicts(Scenario(expect_outcome="cancelled"), outcome)[0][2] == \
        "no appointment was cancelled (the call booked Kontrolluntersuchung on Wednesday 2026-12-02 10:00)"
    assert verdicts(Scenario(expect_outcome="none"), outcome)[0][1:] == (
        False, "the call booked Kontrolluntersuchung on Wednesday 2026-12-02 10:00")


def test_a_booking_without_this_calls_own_test_appointment_does_not_count():
    outcome = booked_outcome()
    outcome.test_appointment_ids = set()

    assert verdicts(Scenario(expect_outcome="booked"), outcome)[0][1:] == (False, "no appointment was booked")


def test_a_transfer_is_judged_both_ways():
    outcome = booked_outcome(transfer_number="+493083793369")
    assert verdicts(Scenario(expect_transfer="yes"), outcome) == [
        ("The agent transfers the call", True, "transferred to +493083793369")]
    assert verdicts(Scenario(expect_transfer="no"), outcome) == [
        ("The agent does not transfer the call", False, "the agent transferred the call to +493083793369")]


@pytest.mark.django_db
def test_a_scenario_needs_a_caller_line_and_a_readable_day(company_a):
    agent = Agent.objects.create(company=company_a, agent_id="agent_s1", name="S1")
    scenario = Scenario(company=company_a, agent=agent, name="empty", script="# only a comment\n\n",
                        expect_day="next week")

    with pytest.raises(ValidationError) as error:
        scenario.full_clean()

    assert error.value.message_dict == {
        "script": ["Write at least one caller line."],
        "expect_day": ["Write a date as 2026-12-02 or a weekday in English (monday … sunday)."]}


# --- runs over the real socket -----------------------------------------------------------------------

@pytest.fixture
def demo(live_db, monkeypatch, settings, asgi_server):
    """The demo companies with their scenarios; the agents' socket URL is the test server's."""
    monkeypatch.setenv("VOICEDESK_DEMO_PASSWORD", "demo-pass-for-tests")
    settings.RETELL_LLM_WEBSOCKET_URL = f"{asgi_server}/retell-llm"
    demo_seed()
    return {"de": Agent.objects.select_related("company").get(agent_id="agent_abc123"),
            "en": Agent.objects.select_related("company").get(agent_id="agent_dental001")}


def run_now(scenario: Scenario, **start) -> ScenarioRun:
    [run] = scenario_runs_start(actor=TESTS, scenarios=[scenario], enqueue=False, **start)
    return scenario_run_execute(run_id=run.pk)


@pytest.mark.e2e
def test_the_demo_scenarios_pass_in_german_and_english_and_leave_no_appointment_held(demo):
    runs = {s.name: run_now(s) for s in Scenario.objects.all()}

    assert {name: run.status for name, run in runs.items()} == {
        "Öffnungszeiten, dann ans Team": "passed",
        "Termin buchen: Kontrolluntersuchung am Mittwoch": "passed",
        "Book a teeth cleaning on Wednesday": "passed",
        "Opening hours, then a person": "passed",
    }, [(name, r.results, r.error) for name, r in runs.items()]
    booking = runs["Termin buchen: Kontrolluntersuchung am Mittwoch"]
    assert booking.progress == booking.total == 5
    assert {r["expectation"] for r in booking.results} >= {
        "An appointment booked (Kontrolluntersuchung, wednesday, 10:00)", 'Says "Hans Müller"'}
    assert booking.transcript[0]["role"] == "agent" and booking.transcript[1] == {
        "role": "caller", "text": "Guten Tag, ich hätte gern einen Termin für eine Kontrolluntersuchung"}
    assert any(line["role"] == "tool" and line["text"].startswith("collect_appointment_information")
               for line in booking.transcript)
    # The scenario's calls are test calls, ended; their bookings were tests and are released.
    calls = Call.objects.filter(call_id__in=[r.call_id for r in runs.values()])
    assert len(calls) == 4 and {c.test_origin for c in calls} == {"scenario"} and all(c.ended_at for c in calls)
    transfer = runs["Öffnungszeiten, dann ans Team"]
    assert Call.objects.get(call_id=transfer.call_id).disconnection_reason == "call_transfer"
    [appointment] = Appointment.objects.filter(call_id=booking.call_id)
    assert appointment.is_test and appointment.status == Appointment.Status.CANCELLED
    assert not Appointment.objects.filter(status__in=Appointment.ACTIVE_STATUSES).exists()
    line = ActivityLogEntry.objects.get(kind="scenario.passed", data__call_id=booking.call_id)
    assert line.message == "Scenario Termin buchen: Kontrolluntersuchung am Mittwoch: Passed"


@pytest.mark.e2e
def test_a_scenario_that_expects_another_time_fails_with_the_reason(demo):
    scenario = Scenario.objects.get(name="Book a teeth cleaning on Wednesday")
    scenario.expect_time = time(11, 30)
    scenario.must_not_say = "Anna"
    scenario.save()

    run = run_now(scenario)

    assert run.status == ScenarioRun.Status.FAILED
    failed = {r["expectation"]: r["reason"] for r in run.results if not r["passed"]}
    assert failed == {
        "An appointment booked (cleaning, wednesday, 11:30)":
            "the appointment booked does not match: it is at 10:00, not 11:30",
        'Never says "Anna"': failed['Never says "Anna"']}
    assert failed['Never says "Anna"'].startswith('the agent said "Anna" in answer 3: "So that\'s a teeth cleaning')
    line = ActivityLogEntry.objects.get(kind="scenario.failed")
    assert line.level == "warning" and "it is at 10:00, not 11:30" in line.message


@pytest.mark.e2e
def test_a_run_against_a_prompt_draft_uses_the_draft_for_its_call_only(demo):
    agent = demo["en"]
    scenario = Scenario.objects.get(name="Opening hours, then a person")
    scenario.must_say = "Draft Dental"
    scenario.save()
    greeting_before = agent.begin_message

    draft = run_now(scenario, agent=agent, prompt_draft={"begin_message": "Draft Dental, hello!",
                                                         "general_prompt": agent.general_prompt})
    live = run_now(scenario)

    assert draft.status == "passed" and draft.transcript[0]["text"] == "Draft Dental, hello!"
    assert draft.against == "prompt draft"
    assert live.status == "failed" and [r["reason"] for r in live.results if not r["passed"]] == [
        'the agent never said "Draft Dental"']
    agent.refresh_from_db()
    assert agent.begin_message == greeting_before
    assert AuditEntry.objects.filter(action="scenario.run", object_id=str(draft.pk),
                                     changes__against__after="prompt draft").exists()


@pytest.mark.e2e
def test_a_socket_nobody_answers_is_a_run_error_with_a_clear_message(demo, settings):
    settings.RETELL_LLM_WEBSOCKET_URL = "ws://127.0.0.1:1/retell-llm"
    scenario = Scenario.objects.get(name="Opening hours, then a person")

    run = run_now(scenario)

    assert run.status == ScenarioRun.Status.ERROR
    assert run.error.startswith("The call over ws://127.0.0.1:1/retell-llm/[agent-token]/")
    assert demo["en"].socket_token not in run.error
    assert Call.objects.get(call_id=run.call_id).disconnection_reason == "error_llm_websocket_open"


# --- manage.py run_scenarios ---------------------------------------------------------------------------

@pytest.mark.e2e
def test_run_scenarios_prints_a_line_per_scenario_and_exits_0_when_all_pass(demo, capsys):
    call_command("run_scenarios", "--company", "bright-smile-dental")

    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("PASS  bright-smile-dental / agent_dental001 / Book a teeth cleaning on Wednesday (5/5")
    assert out[1].startswith("PASS  bright-smile-dental / agent_dental001 / Opening hours, then a person (2/2")
    assert out[2] == "2 passed, 0 failed."


@pytest.mark.e2e
def test_run_scenarios_exits_1_when_one_fails_and_names_the_reason(demo, capsys):
    Scenario.objects.filter(name="Opening hours, then a person").update(expect_transfer="no")

    with pytest.raises(SystemExit) as exit_status:
        call_command("run_scenarios", "--agent", "agent_dental001")

    assert exit_status.value.code == 1
    out = capsys.readouterr().out
    assert "FAIL  bright-smile-dental / agent_dental001 / Opening hours, then a person" in out
    assert "      ✗ The agent does not transfer the call: the agent transferred the call to +12125550134" in out
    assert out.rstrip().endswith("1 passed, 1 failed.")


@pytest.mark.django_db
def test_run_scenarios_exits_2_when_no_scenario_matches():
    with pytest.raises(CommandError) as error:
        call_command("run_scenarios", "--agent", "agent_nobody")

    assert error.value.returncode == 2 and str(error.value) == "No scenarios match agent agent_nobody."


# --- the admin: runs through Celery, the run page, who may do what ----------------------------------

@pytest.mark.e2e
def test_the_admin_action_runs_the_selected_scenarios_through_celery_and_the_run_page_shows_them(
        demo, client, celery_eager):
    owner = make_member(demo["de"].company, "owner")
    client.force_login(owner)
    chosen = Scenario.objects.get(name="Öffnungszeiten, dann ans Team")

    response = client.post("/admin/voice/scenario/", {"action": "run_selected", "_selected_action": [chosen.pk]})

    run = ScenarioRun.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/admin/retell-webhook-configuration/scenario-runs/{run.batch}/?company={run.company_id}"
    assert run.status == "passed" and run.triggered_by == owner.username
    progress = client.get(response["Location"] + "&format=json").json()
    assert progress["finished"] is True
    assert [(r["scenario"], r["status"], r["progress"], r["total"]) for r in progress["runs"]] == [
        ("Öffnungszeiten, dann ans Team", "passed", 2, 2)]
    page = client.get(response["Location"]).content.decode()
    assert "✓ The agent transfers the call" in page and "Öffnungszeiten, dann ans Team" in page


@pytest.mark.django_db(transaction=True)
def test_the_run_endpoint_answers_json_errors_for_a_viewer_and_for_an_agent_without_scenarios(client, company_a):
    agent = Agent.objects.create(company=company_a, agent_id="agent_s1", name="S1")
    viewer, owner = make_member(company_a, "viewer"), make_member(company_a, "owner")
    url = f"/admin/retell-webhook-configuration/agents/{agent.pk}/scenarios/run/"

    client.force_login(viewer)
    refused = client.post(url, {"company": company_a.pk, "all": "1"}, HTTP_ACCEPT="application/json")
    client.force_login(owner)
    empty = client.post(url, {"company": company_a.pk, "all": "1"}, HTTP_ACCEPT="application/json")

    assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden"
    assert empty.status_code == 400 and empty.json() == {"error": {
        "code": "no_scenarios", "message": "Choose at least one scenario. Add scenarios to this agent first."}}
    assert not ScenarioRun.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_draft_run_is_queued_as_json_and_never_changes_the_agent(client, company_a, celery_eager, settings):
    settings.RETELL_LLM_WEBSOCKET_URL = "ws://127.0.0.1:1/retell-llm"   # nobody answers: the run errs, quickly
    agent = Agent.objects.create(company=company_a, agent_id="agent_s1", name="S1", begin_message="Hallo")
    Scenario.objects.create(company=company_a, agent=agent, name="Hours", script="Wann haben Sie geöffnet?")
    client.force_login(make_member(company_a, "editor"))

    response = client.post(f"/admin/retell-webhook-configuration/agents/{agent.pk}/scenarios/run/",
                           {"company": company_a.pk, "draft": "1", "begin_message": "Entwurf",
                            "general_prompt": "", "custom_instructions": ""}, HTTP_ACCEPT="application/json")

    assert response.status_code == 202 and response.json()["runs"] == 1
    run = ScenarioRun.objects.get()
    assert run.prompt_draft == {"begin_message": "Entwurf", "general_prompt": "", "custom_instructions": ""}
    assert run.status == "error"
    agent.refresh_from_db()
    assert agent.begin_message == "Hallo"


@pytest.mark.django_db(transaction=True)
def test_another_companys_scenarios_and_runs_never_appear(client, company_a, company_b):
    mine = Agent.objects.create(company=company_a, agent_id="agent_mine", name="Mine")
    theirs = Agent.objects.create(company=company_b, agent_id="agent_theirs", name="Theirs")
    Scenario.objects.create(company=company_a, agent=mine, name="Mine: hours", script="Hallo")
    other = Scenario.objects.create(company=company_b, agent=theirs, name="Theirs: secret booking", script="Hallo")
    other_run = ScenarioRun.objects.create(company=company_b, scenario=other, batch=uuid.uuid4(), status="passed")
    client.force_login(make_member(company_a, "owner"))

    scenarios = client.get("/admin/voice/scenario/").content.decode()
    runs = client.get("/admin/voice/scenariorun/").content.decode()
    batch = client.get(f"/admin/retell-webhook-configuration/scenario-runs/{other_run.batch}/?company={company_a.pk}")
    simulator = client.get(f"/admin/retell-webhook-configuration/agents/{theirs.pk}/simulator/?company={company_a.pk}")
    run_other = client.post(f"/admin/retell-webhook-configuration/agents/{theirs.pk}/scenarios/run/",
                            {"company": company_a.pk, "all": "1"}, HTTP_ACCEPT="application/json")
    action = client.post("/admin/voice/scenario/", {"action": "run_selected", "_selected_action": [other.pk]})

    assert "Mine: hours" in scenarios and "Theirs: secret booking" not in scenarios
    assert "Theirs: secret booking" not in runs
    assert batch.status_code == 404 and simulator.status_code == 404 and run_other.status_code == 404
    assert action.status_code == 302 and ScenarioRun.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_the_simulator_page_shows_a_viewer_no_call_or_run_controls(client, company_a):
    agent = Agent.objects.create(company=company_a, agent_id="agent_s1", name="S1")
    Scenario.objects.create(company=company_a, agent=agent, name="Hours", script="Hallo")
    client.force_login(make_member(company_a, "viewer"))

    page = client.get(f"/admin/retell-webhook-configuration/agents/{agent.pk}/simulator/?company={company_a.pk}")

    html = page.content.decode()
    assert page.status_code == 200
    assert 'data-may-call="false"' in html and "Your role lets you look at this agent, not call it." in html
    assert 'id="rwc-run-selected" disabled' in html and "Add a scenario" not in html


@pytest.mark.django_db(transaction=True)
def test_the_dashboard_test_button_opens_the_agents_call_simulator(client, company_a):
    agent = Agent.objects.create(company=company_a, agent_id="agent_s1", name="S1")
    client.force_login(make_member(company_a, "owner"))

    html = client.get(f"/admin/retell-webhook-configuration/?company={company_a.pk}").content.decode()

    assert (f'href="/admin/retell-webhook-configuration/agents/{agent.pk}/simulator/?company={company_a.pk}"'
            in html)
    assert 'data-soon="Test call for' not in html


@pytest.mark.e2e
def test_a_prompt_draft_reaches_the_llm_engine_as_its_system_prompt(demo):
    from audit.circuit import CircuitBreaker
    from tests.fakes.llm import FakeLLM, Text

    agent = demo["en"]
    llm = FakeLLM().start()
    company = agent.company
    company.llm_base_url, company.llm_model, company.llm_api_key = llm.base_url, "gpt-test", "sk-test"
    company.save()
    Agent.objects.filter(pk=agent.pk).update(dialog_engine="openai")
    CircuitBreaker(f"llm:company:{company.pk}").reset()
    llm.script(Text(["We open at 8."]))
    scenario = Scenario.objects.create(company=company, agent=agent, name="Draft hours", script="When do you open?",
                                       must_say="open at 8")
    try:
        run = run_now(scenario, agent=agent, prompt_draft={"general_prompt": "DRAFT: answer in one sentence."})
    finally:
        llm.stop()
        CircuitBreaker(f"llm:company:{company.pk}").reset()

    assert run.status == "passed", run.results
    system = llm.requests[0]["messages"][0]
    assert system["role"] == "system" and "DRAFT: answer in one sentence." in system["content"]
    assert "DRAFT" not in Agent.objects.get(pk=agent.pk).general_prompt


@pytest.mark.django_db(transaction=True)
def test_run_all_of_the_agents_scenarios_from_the_list_queues_every_one_of_them(
        client, company_a, celery_eager, settings):
    settings.RETELL_LLM_WEBSOCKET_URL = "ws://127.0.0.1:1/retell-llm"   # nobody answers: each run errs, quickly
    agent = Agent.objects.create(company=company_a, agent_id="agent_s1", name="S1")
    other_agent = Agent.objects.create(company=company_a, agent_id="agent_s2", name="S2")
    first = Scenario.objects.create(company=company_a, agent=agent, name="A", script="Hallo")
    Scenario.objects.create(company=company_a, agent=agent, name="B", script="Hallo")
    Scenario.objects.create(company=company_a, agent=other_agent, name="C", script="Hallo")
    client.force_login(make_member(company_a, "editor"))

    response = client.post("/admin/voice/scenario/", {"action": "run_all_of_agents", "_selected_action": [first.pk]})

    assert response.status_code == 302
    assert sorted(ScenarioRun.objects.values_list("scenario__name", "status")) == [("A", "error"), ("B", "error")]
    assert len(set(ScenarioRun.objects.values_list("batch", flat=True))) == 1
