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
                                 begin_message=greeting, voice_speed=1.5)
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


# --- (b) a German call: a transcription server hears the caller -------------------------------------

GERMAN_SCRIPT = ("Guten Tag, ich hätte gern einen Termin zur Zahnreinigung.", "Morgen um 9 Uhr.",
                 "Mein Name ist Hans Müller.", "Ja, genau.", "Nein danke, auf Wiederhören.")


@pytest.fixture
def transcription(settings):
    server = FakeTranscriptionServer(api_key="sk-whisper").start()
    settings.STT_OPENAI_BASE_URL, settings.STT_OPENAI_API_KEY = server.base_url, "sk-whisper"
    yield server
    server.close()


def test_a_german_call_through_a_transcription_server_and_the_offline_german_voice_books(
        asgi_server, live_db, settings, twilio_api, transcription):
    settings.PUBLIC_BASE_URL = PUBLIC
    praxis = _practice("Praxis Weiss", "praxis-weiss", language="de", timezone="Europe/Berlin", phone="+493083793369",
                       number=DE_NUMBER, agent_language="de-DE", greeting=GREETING_DE,
                       services=("Zahnreinigung", "Kontrolle"))
    # the number's own choice: German speech goes to the OpenAI-compatible server
    TwilioNumber.objects.filter(phone_number=DE_NUMBER).update(stt_provider="openai")
    recordings = {line: asyncio.run(spoken(line, language="de", voice=GERMAN_CALLER)) for line in GERMAN_SCRIPT}
    listener = ScriptListener(recordings)
    transcription.transcribe = listener
    phone = TwilioCaller(http_base=asgi_server.replace("ws://", "http://"), ws_base=asgi_server, public_base=PUBLIC,
                         to=DE_NUMBER, language="de")
    twilio_api.add_call(phone.call_sid)

    async def scenario():
        await phone.dial()
        await phone.open_stream()
        await phone.listen()
        for line in GERMAN_SCRIPT:
            await phone.say_audio(recordings[line])
            await phone.listen()
        await asyncio.sleep(1.0)
        await phone.hang_up()

    run(scenario())

    # then the server heard each line (from the audio alone) and booked the appointment
    assert listener.heard == list(GERMAN_SCRIPT)
    assert all(r["fields"]["language"] == "de" for r in transcription.requests)
    appointment = Appointment.objects.get(company=praxis)
    assert (appointment.customer_name, appointment.service.name) == ("Hans Müller", "Zahnreinigung")
    assert [r.form.get("Status") for r in twilio_api.requests if r.path.endswith(f"{phone.call_sid}.json")] == \
        ["completed"]
    _wait_for(lambda: _call_row(phone.call_sid).live_transcript)
    assert _call_row(phone.call_sid).live_transcript[0] == {"role": "agent", "content": GREETING_DE}


# --- (c) barge-in ----------------------------------------------------------------------------------

def test_the_caller_talking_over_the_answer_clears_it_and_the_transcript_keeps_only_what_was_heard(caller):
    phone = caller()
    facts = {}

    async def scenario():
        await phone.dial()
        await phone.open_stream()
        await phone.listen()
        asked_at = len(phone.marks_echoed)
        await phone.say("I'd like to book a check-up tomorrow at ten.")
        # the answer is "Let me check. May I have your name, please?": the caller talks once the first
        # sentence has played, while the second plays
        deadline = time.monotonic() + 15
        while len(phone.marks_echoed) == asked_at and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        facts["first_heard"] = phone.marks_echoed[-1]
        facts["marks_before"] = list(phone.marks_received)
        talking = asyncio.create_task(phone.say("My name is Peter Brown."))
        await talking
        facts["speech_end"] = time.monotonic()
        await phone.listen()
        await phone.hang_up()

    run(scenario())

    onset, cleared = phone.speech_onsets[-1], phone.clears[0]
    # then a clear came within 300 ms of the caller's first sound
    assert len(phone.clears) == 1 and 0 < cleared - onset <= 0.3, cleared - onset
    # and no audio of the old answer came after it: the next audio is the next answer, after the caller spoke
    after = phone.heard_after(cleared)
    assert after and after[0].at > facts["speech_end"]
    # and the transcript holds only the sentence the caller heard of the interrupted answer
    _wait_for(lambda: any(t["superseded"] for t in _call_row(phone.call_sid).live_turns))
    call = _call_row(phone.call_sid)
    interrupted = next(t for t in call.live_turns if t["superseded"])
    assert interrupted["content"] == "Let me check."
    assert [c["name"] for c in interrupted["tool_calls"]] == ["check_availability"]
    agent_lines = [u["content"] for u in call.live_transcript if u["role"] == "agent"]
    assert agent_lines[:2] == [GREETING_EN, "Let me check."]
    assert not any("May I have your name" in line for line in agent_lines[:2])


# --- (d) DTMF ----------------------------------------------------------------------------------------

def test_pressing_0_puts_the_caller_through_to_the_practice(caller, twilio_api):
    phone = caller()

    async def scenario():
        await phone.dial()
        await phone.open_stream()
        await phone.listen()
        await phone.press("0")
        deadline = time.monotonic() + 10
        while not twilio_api.calls[phone.call_sid].twiml and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await phone.hang_up()

    run(scenario())

    (dial,) = twilio_api.calls[phone.call_sid].twiml
    assert "<Dial>+12125550134</Dial>" in dial


# --- (e) the stream's token ------------------------------------------------------------------------

@pytest.mark.parametrize("case", ["forged", "missing", "replayed", "no start"])
def test_a_stream_without_a_valid_fresh_token_is_closed_with_1008(caller, settings, case):
    settings.TWILIO_START_TIMEOUT_SECONDS = 1.0
    phone = caller()

    async def scenario():
        await phone.dial()
        token = phone.parameters["token"]
        if case == "replayed":
            await phone.open_stream()
            await phone.listen()
            await phone.hang_up()
            phone.media.clear()
        parameters = {"forged": {"token": token[:-3] + ("aaa" if token[-3:] != "aaa" else "bbb")},
                      "missing": {}, "replayed": {"token": token}, "no start": None}[case]
        await phone.open_stream(parameters=parameters, start=parameters is not None)
        code = await phone.closed(timeout=5)
        return code

    assert run(scenario()) == 1008
    assert not phone.media


# --- (f) bad input -------------------------------------------------------------------------------------

def test_bad_frames_on_the_socket_are_ignored_and_the_call_goes_on(caller):
    phone = caller()

    async def scenario():
        await phone.dial()
        await phone.open_stream(start=False)
        await phone.send({"event": "media", "streamSid": "MZ0", "media": {"payload": "//8="}})    # before start
        await phone.send_raw("{not json")
        await phone.start(phone.parameters)
        await phone.listen()
        # while the call is on
        await phone.send_raw(b"\x00\x01binary")
        await phone.send({"event": "telepathy", "streamSid": phone.stream_sid})
        await phone.send_raw('{"event": "media", "media": {"payload": "' + "A" * 1_000_000 + '"}}')
        await phone.send({"event": "media", "streamSid": phone.stream_sid, "media": {"payload": "not base64!"}})
        await phone.send_raw("[1, 2, 3]")
        await phone.say("I'd like to book a check-up tomorrow at ten.")
        answer = await phone.listen()
        await phone.hang_up()
        return answer

    answer = run(scenario())

    # then the greeting and the answer came (the call went on), and the turn ran its availability check
    assert len(answer) > 8000
    _wait_for(lambda: _call_row(phone.call_sid).live_turns)
    (turn,) = _call_row(phone.call_sid).live_turns
    assert [c["name"] for c in turn["tool_calls"]] == ["check_availability"]
    assert turn["content"].startswith("Let me check.") and turn["content"].endswith("May I have your name, please?")
