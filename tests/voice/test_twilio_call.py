"""Whole Twilio calls over real sockets: the ASGI application on loopback (uvicorn), PostgreSQL and
Redis; Twilio played by tests.fakes (the signed incoming webhook, the media stream in real time,
the REST API). Speech is the offline providers' (pocketsphinx, eSpeak NG), or for German a fake
OpenAI-compatible transcription server that hears which line of the script the audio is."""

import asyncio
import time

import pytest

from appointments.models import Appointment, Service
from retell_config.models import Agent
from tests.factories import make_company
from tests.fakes import twilio
from tests.fakes.transcription import FakeTranscriptionServer, ScriptListener
from tests.fakes.twilio_api import FakeTwilioAPI
from tests.fakes.twilio_caller import GERMAN_CALLER, TwilioCaller, spoken
from voice.models import Call, TwilioNumber

pytestmark = pytest.mark.e2e

PUBLIC = "https://voice.example.com"
EVERY_DAY = {day: [["07:00", "20:00"]] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
EN_NUMBER, DE_NUMBER = "+12125550100", "+493083793300"
GREETING_EN = "Bright Smile Dental, this is Sophie. How can I help?"
GREETING_DE = "Praxis Weiss, guten Tag. Wie kann ich helfen?"


def run(scenario, timeout: float = 90):
    return asyncio.run(asyncio.wait_for(scenario, timeout))


@pytest.fixture
def twilio_api(settings):
    fake = FakeTwilioAPI(twilio.ACCOUNT_SID, twilio.AUTH_TOKEN).start()
    settings.TWILIO_API_BASE_URL = fake.base_url
    settings.TWILIO_RETRY_BACKOFF_SECONDS = 0
    yield fake
    fake.stop()


def _practice(name, slug, *, language, timezone, phone, number, agent_language, greeting, services):
    company = make_company(name, slug=slug, language=language, timezone=timezone, phone=phone,
                           opening_hours=EVERY_DAY, twilio_account_sid=twilio.ACCOUNT_SID,
                           twilio_auth_token=twilio.AUTH_TOKEN, twilio_enabled=True)
    for service in services:
        Service.objects.create(company=company, name=service, duration_minutes=30)
    agent = Agent.objects.create(company=company, agent_id=f"agent_{slug}", name="Sophie", language=agent_language,
                                 begin_message=greeting, voice_speed=1.15)
    TwilioNumber.objects.create(company=company, phone_number=number, agent=agent)
    return company


@pytest.fixture
def dental(live_db, settings, twilio_api):
    """An English practice answering EN_NUMBER over Twilio, with the offline speech providers."""
    settings.PUBLIC_BASE_URL = PUBLIC
    settings.SPEECH_STT_PROVIDER = settings.SPEECH_TTS_PROVIDER = "offline"
    return _practice("Bright Smile Dental", "bright-smile", language="en", timezone="America/New_York",
                     phone="+12125550134", number=EN_NUMBER, agent_language="en-US", greeting=GREETING_EN,
                     services=("Check-up", "Teeth cleaning"))


@pytest.fixture
def caller(asgi_server, dental, twilio_api):
    http = asgi_server.replace("ws://", "http://")

    def make(**kwargs) -> TwilioCaller:
        made = TwilioCaller(http_base=http, ws_base=asgi_server, public_base=PUBLIC, to=EN_NUMBER, **kwargs)
        twilio_api.add_call(made.call_sid)
        return made
    return make


def _wait_for(predicate, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


def _call_row(call_sid: str) -> Call:
    return Call.objects.get(call_id=call_sid)


# --- (a) a whole English call, offline -------------------------------------------------------------

def test_an_english_call_with_the_offline_providers_books_and_hangs_up(caller, dental, twilio_api):
    phone = caller()

    async def scenario():
        twiml = await phone.dial()
        assert twiml.find("./Connect/Stream") is not None
        await phone.open_stream()
        await phone.listen()                                           # the greeting
        for line in ("I'd like to book a check-up tomorrow at ten.", "My name is Peter Brown.", "Yes, please.",
                     "No, that's all, goodbye."):
            await phone.say(line)
            await phone.listen()
        await asyncio.sleep(1.0)                                       # the hang-up request
        await phone.hang_up()

    run(scenario())

    # then the appointment is booked for the caller, on the practice's calendar
    appointment = Appointment.objects.get(company=dental)
    assert appointment.customer_name == "Peter Brown"
    assert appointment.service.name == "Check-up"
    # and the call was ended over Twilio's REST API once the goodbye had played
    hang_up = [r for r in twilio_api.requests if r.path.endswith(f"/Calls/{phone.call_sid}.json")]
    assert [r.form.get("Status") for r in hang_up] == ["completed"]
    # and the call's row holds the heard transcript and the turns with their speech timings
    _wait_for(lambda: len(_call_row(phone.call_sid).live_turns) >= 4)
    call = _call_row(phone.call_sid)
    assert call.live_transcript[0] == {"role": "agent", "content": GREETING_EN}
    said = [u["content"] for u in call.live_transcript if u["role"] == "user"]
    assert said[1] == "my name is peter brown", said
    booked = [t for t in call.live_turns if any(c["name"] == "collect_appointment_information"
                                                for c in t["tool_calls"])]
    assert len(booked) == 1 and not booked[0]["superseded"]
    last = call.live_turns[-1]
    assert last["end_call"] and "Goodbye" in last["content"]
    for turn in call.live_turns:
        assert turn["stt_ms"] >= 0 and turn["engine_first_chunk_ms"] >= 0 and turn["tts_first_byte_ms"] >= 0
        assert 0 < turn["first_chunk_ms"] <= turn["complete_ms"]
    # and every frame the server sent carried the stream's SID (the fake would have failed otherwise)
    assert phone.marks_echoed and set(phone.marks_echoed) <= set(phone.marks_received)
