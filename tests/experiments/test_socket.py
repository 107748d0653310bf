"""A running experiment on the Retell socket (the ASGI application on loopback, spoken to by
voice/simulator.py as Retell speaks): each call hears its variant's greeting and its LLM gets
that variant's prompt; the same caller hears the same variant on a second call."""

import asyncio

import pytest

from audit.circuit import CircuitBreaker
from experiments.assignment import assign
from experiments.selectors import experiment_plan
from experiments.services import experiment_create, experiment_start
from retell_config.models import Agent
from tests.experiments.conftest import SYSTEM
from tests.factories import make_company
from tests.fakes import retell
from tests.fakes.llm import FakeLLM, Text
from tests.voice.conftest import asgi_server, live_db  # noqa: F401  (the running server and its database)
from voice.models import Call
from voice.services import call_apply_event
from voice.simulator import SimulatedCall

pytestmark = pytest.mark.e2e

GREETINGS = {"A": "Bright Smile Dental, this is Sophie. How can I help?",
             "B": "Hi, thanks for calling Bright Smile! What can I do for you today?"}
PROMPTS = {"A": "You are Sophie, the receptionist.", "B": "You are Sophie. Be warm and offer the next free slot."}


@pytest.fixture
def llm():
    fake = FakeLLM().start()
    fake.script(Text(["Sure, one moment."]))
    yield fake
    fake.stop()


@pytest.fixture
def agent(live_db, llm):  # noqa: F811
    company = make_company("Bright Smile Dental", slug="bright-smile-exp", timezone="America/New_York",
                           language="en", llm_base_url=llm.base_url, llm_model="gpt-test", llm_api_key="sk-test")
    CircuitBreaker(f"llm:company:{company.pk}").reset()
    return Agent.objects.create(company=company, agent_id="agent_dental_exp", name="Sophie", language="en-US",
                                dialog_engine="openai", begin_message=GREETINGS["A"], general_prompt=PROMPTS["A"])


@pytest.fixture
def running(agent):
    experiment = experiment_create(actor=SYSTEM, agent=agent, name="Warmer greeting", variants=[
        {"name": "A", "weight": 50},
        {"name": "B", "weight": 50, "begin_message": GREETINGS["B"], "general_prompt": PROMPTS["B"]}])
    return experiment_start(actor=SYSTEM, experiment=experiment)


def number_in(agent, name: str) -> str:
    plan = experiment_plan(agent_id=agent.pk)
    numbers = (f"+1212555{n:04d}" for n in range(10_000))
    return next(n for n in numbers if assign(plan, caller_number=n, call_id="")[0].name == name)


def started(agent, call_id: str, number: str) -> None:
    """Retell's call_started, applied by the service the webhook uses, before the socket opens."""
    call_apply_event(company=agent.company, event="call_started", agent=agent, call_payload=retell.call_object(
        call_id, agent.agent_id, status="ongoing", from_number=number, to_number="+12125550134"))


async def one_call(url: str, call_id: str, number: str) -> tuple[str, str]:
    call = SimulatedCall(url, call_id=call_id, agent_id="agent_dental_exp", from_number=number,
                         to_number="+12125550134")
    greeting = await call.connect()
    turn = await call.say("I'd like an appointment please.")
    await call.hang_up()
    return greeting, turn.text


def system_prompt_of(llm, index: int) -> str:
    return next(m["content"] for m in llm.requests[index]["messages"] if m["role"] == "system")


def test_each_call_hears_its_variants_greeting_and_prompt_and_a_caller_keeps_the_variant(
        asgi_server, agent, running, llm):  # noqa: F811
    url = f"{asgi_server}/retell-llm/{agent.socket_token}"
    caller_a, caller_b = number_in(agent, "A"), number_in(agent, "B")
    calls = [("call_a1", caller_a), ("call_b1", caller_b), ("call_b2", caller_b)]   # caller B calls again
    heard = []
    for call_id, number in calls:
        started(agent, call_id, number)
        heard.append(asyncio.run(asyncio.wait_for(one_call(f"{url}/{call_id}", call_id, number), 30)))

    assert [greeting for greeting, _ in heard] == [GREETINGS["A"], GREETINGS["B"], GREETINGS["B"]]
    assert all(answer == "Sure, one moment." for _, answer in heard)
    prompts = [system_prompt_of(llm, i) for i in range(3)]
    assert prompts[0].startswith(PROMPTS["A"]) and PROMPTS["B"] not in prompts[0]
    assert prompts[1].startswith(PROMPTS["B"]) and prompts[2].startswith(PROMPTS["B"])
    variants = dict(Call.objects.filter(call_id__in=["call_a1", "call_b1", "call_b2"])
                    .values_list("call_id", "experiment_variant__name"))
    assert variants == {"call_a1": "A", "call_b1": "B", "call_b2": "B"}


def test_a_simulated_call_hears_its_variant_and_is_marked_as_a_test(asgi_server, agent, running, llm):  # noqa: F811
    number = number_in(agent, "B")
    Call.objects.create(company=agent.company, agent=agent, call_id="sim_1", from_number=number,
                        test_origin=Call.TestOrigin.CALL_SIMULATOR)

    greeting, _ = asyncio.run(asyncio.wait_for(one_call(
        f"{asgi_server}/retell-llm/{agent.socket_token}/sim_1", "sim_1", number), 30))

    assert greeting == GREETINGS["B"]
    call = Call.objects.get(call_id="sim_1")
    assert call.experiment_variant.name == "B" and call.is_test


def test_a_call_whose_row_comes_later_gets_its_variant_from_call_details(asgi_server, agent, running, llm):  # noqa: F811
    number = number_in(agent, "B")   # no call_started yet: only call_details tell the caller's number

    greeting, _ = asyncio.run(asyncio.wait_for(one_call(
        f"{asgi_server}/retell-llm/{agent.socket_token}/late_row", "late_row", number), 30))

    assert greeting == GREETINGS["B"]
    assert system_prompt_of(llm, 0).startswith(PROMPTS["B"])
    assert Call.objects.get(call_id="late_row").experiment_variant.name == "B"
