"""manage.py simulate_call against the live server: a script's turns printed with their latencies."""

import re
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from appointments.models import Appointment
from appointments.services import service_ensure
from tenants.services import company_create
from tests.voice.test_conversations import EVERY_DAY, SETUP, _agent

pytestmark = pytest.mark.e2e

LATENCY = r"\[first chunk \d+\.\d ms, complete \d+\.\d ms\]"


@pytest.fixture
def agent(live_db):
    company = company_create(actor=SETUP, name="Bright Smile Dental", slug="bright-smile",
                             timezone="America/New_York", language="en", phone="+12125550134",
                             opening_hours=EVERY_DAY)
    service_ensure(actor=SETUP, company=company, name="Cleaning", duration_minutes=30, price=120)
    return _agent(company, "agent_sim_en", "en-US", "Bright Smile Dental, this is Sophie. How can I help?")


def simulate(*args) -> list[str]:
    out = StringIO()
    call_command("simulate_call", *args, stdout=out)
    return out.getvalue().splitlines()


def test_a_scripted_call_prints_each_turn_with_its_latency_and_books(asgi_server, agent, tmp_path):
    script = tmp_path / "booking.txt"
    script.write_text("# a booking\nI'd like to book a cleaning tomorrow at 10 am\n\nMy name is Anna Schmidt\n"
                      "[silence]\nYes please\nNo, that's all, goodbye\nThis line is never said\n", encoding="utf-8")

    lines = simulate("--agent", "agent_sim_en", "--script", str(script), "--url", asgi_server,
                     "--from-number", "+12125550199")

    assert lines[0] == "Calling Sophie (agent_sim_en, Bright Smile Dental) from +12125550199"
    assert re.fullmatch(rf"Socket {asgi_server}/retell-llm/\[agent-token\]/[A-Za-z0-9]{{32}}", lines[1])
    assert agent.socket_token not in "\n".join(lines)
    assert lines[2] == "agent:  Bright Smile Dental, this is Sophie. How can I help?"
    said = [line for line in lines[3:] if line.startswith(("caller:", "agent:"))]
    assert re.sub(LATENCY, "", said[1]).rstrip().endswith(" at 10 AM is available. May I have your name, please?")
    assert [re.sub(LATENCY, "[latency]", line) for line in said] == [
        "caller: I'd like to book a cleaning tomorrow at 10 am",
        "agent:  Let me check. " + said[1].split("Let me check. ")[1].split(" May I")[0]
        + " May I have your name, please?   [latency]",
        "caller: My name is Anna Schmidt",
        "agent:  So that's a cleaning for Anna Schmidt tomorrow at 10 am. Shall I book that?   [latency]",
        "caller: [silence]",
        "agent:  Are you still there? So that's a cleaning for Anna Schmidt tomorrow at 10 am. Shall I book that?   "
        "[latency]",
        "caller: Yes please",
        "agent:  One moment, please. I have booked you in for "
        + said[7].split("I have booked you in for ")[1].split("   [")[0]
        + "   [latency]",
        "caller: No, that's all, goodbye",
        "agent:  Thank you for calling. Goodbye!   [latency]",
    ]
    assert all(re.search(LATENCY, line) for line in said if line.startswith("agent:"))
    assert any(line.startswith("  tool  collect_appointment_information {") and "-> ok: I have booked" in line
               for line in lines)
    assert "The agent ended the call." in lines
    assert re.fullmatch(r"5 turn\(s\); first chunk p50 \d+\.\d ms, max \d+\.\d ms; complete p50 \d+\.\d ms, "
                        r"max \d+\.\d ms; ping_pong: \d+ sent, \d+ from the server; stale frames: 0", lines[-1])
    booked = Appointment.objects.get(company=agent.company)
    assert (booked.customer_name, booked.phone, booked.status) == ("Anna Schmidt", "+12125550199", "pending")


def test_an_unknown_agent_is_a_clear_error(asgi_server, agent):
    with pytest.raises(CommandError, match="No agent agent_nobody"):
        simulate("--agent", "agent_nobody", "--url", asgi_server)


def test_a_socket_the_server_refuses_is_a_clear_error(asgi_server, agent, tmp_path):
    script = tmp_path / "hello.txt"
    script.write_text("Hello\n", encoding="utf-8")
    company = agent.company
    company.is_active = False  # the server refuses the tokens of inactive companies at the handshake
    company.save()

    with pytest.raises(CommandError, match="HTTP 403"):
        simulate("--agent", "agent_sim_en", "--script", str(script), "--url", asgi_server)
