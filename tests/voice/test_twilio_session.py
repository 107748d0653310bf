"""The Twilio media-stream session with plain frames: the socket is two lists (frames sent, close
codes), Twilio's side is JSON written here, the speech providers and the dialog engine are stand-ins
(the providers through the registry's settings, the engine passed in). The caller's audio is real
speech (eSpeak NG), so the voice activity detection is the real one."""

import asyncio
import base64
import itertools
import json
import time
from collections import deque

import pytest
from channels.db import database_sync_to_async

from appointments.models import Service
from retell_config.models import Agent
from tests.factories import make_company
from tests.fakes import twilio
from voice.dialog.base import DialogEngine, EndCall, TextChunk, ToolCall
from voice.models import Call, TwilioNumber
from voice.selectors import twilio_stream_call
from voice.speech import audio
from voice.speech.stt import CollectingStream, SpeechToText, Transcript
from voice.speech.tts import EspeakTTS, TextToSpeech, VoiceSettings
from voice.twilio_session import TwilioCallSession
from voice.twilio_tokens import stream_token_mint

HOURS = {day: [["07:00", "20:00"]] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
SENTENCE_AUDIO = bytes(range(0, 256, 2)) * 10          # 1280 bytes: 160 ms of (non-silent) μ-law a sentence
HEARD = deque()                                        # what the stand-in recogniser hears, utterance by utterance
_sids = itertools.count(1)


class ScriptedSTT(SpeechToText):
    """Hears HEARD's next line at each commit."""

    name = "scripted"

    def stream(self, *, language, hints=None):
        async def transcribe(ulaw: bytes) -> Transcript:
            return Transcript(HEARD.popleft() if HEARD else "", None, 1)
        return CollectingStream(transcribe)


class ToneTTS(TextToSpeech):
    """Every sentence is SENTENCE_AUDIO, at once."""

    name = "tone"

    async def synthesize_sentence(self, sentence, *, language, voice=None, previous_text=""):
        yield SENTENCE_AUDIO


class ScriptedEngine(DialogEngine):
    """Answers each turn with the next of `answers` (a list of events); remembers the turns."""

    name = "scripted"

    def __init__(self, *answers) -> None:
        self.answers = list(answers)
        self.turns = []
        self.cancelled = []

    async def respond(self, turn, context):
        self.turns.append(turn)
        context.state["answered"] = turn.response_id
        try:
            for event in (self.answers.pop(0) if self.answers else [TextChunk("Sorry?")]):
                if event == "pause":
                    await asyncio.sleep(1.5)
                    continue
                yield event
        except (asyncio.CancelledError, GeneratorExit):
            self.cancelled.append(turn.response_id)
            raise


@pytest.fixture
def practice(live_db, settings):
    settings.SPEECH_STT_PROVIDER = "tests.voice.test_twilio_session.ScriptedSTT"
    settings.SPEECH_TTS_PROVIDER = "tests.voice.test_twilio_session.ToneTTS"
    settings.TWILIO_PLAYBACK_LEAD_SECONDS = 0.05
    HEARD.clear()
    company = make_company("Bright Smile Dental", slug="bright-smile", language="en", timezone="America/New_York",
                           phone="+12125550134", opening_hours=HOURS, twilio_account_sid=twilio.ACCOUNT_SID,
                           twilio_auth_token=twilio.AUTH_TOKEN, twilio_enabled=True)
    Service.objects.create(company=company, name="Check-up", duration_minutes=30)
    agent = Agent.objects.create(company=company, agent_id="agent_dental", name="Sophie", language="en-US",
                                 begin_message="Hello. How can I help?")
    TwilioNumber.objects.create(company=company, phone_number="+12125550100", agent=agent)
    return agent


@pytest.fixture(scope="module")
def speech():
    """A caller's sentence, μ-law 8 kHz (eSpeak NG)."""
    voice = VoiceSettings(voice_id="en-us+klatt6")
    return asyncio.run(_collect(EspeakTTS().synthesize("I would like to book a check-up.", language="en",
                                                       voice=voice)))


async def _collect(chunks) -> bytes:
    return b"".join([chunk async for chunk in chunks])


def run(scenario, timeout: float = 30):
    return asyncio.run(asyncio.wait_for(scenario, timeout))


class Line:
    """Twilio's side of the socket, in plain frames."""

    def __init__(self, engine=None) -> None:
        self.sent: list[tuple[float, dict]] = []
        self.closed: list[int] = []
        self.session = TwilioCallSession(send=self._send, close=self._close, engine=engine)
        self.call_sid = f"CA{next(_sids):032x}"
        self.stream_sid = "MZ" + "0" * 32

    async def _send(self, text: str) -> None:
        self.sent.append((time.monotonic(), json.loads(text)))

    async def _close(self, code: int) -> None:
        self.closed.append(code)

    async def open(self, parameters: dict | None) -> None:
        await self.session.start()
        await self.session.receive(json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"}))
        if parameters is not None:
            await self.session.receive(json.dumps({
                "event": "start", "sequenceNumber": "1", "streamSid": self.stream_sid,
                "start": {"streamSid": self.stream_sid, "callSid": self.call_sid, "accountSid": twilio.ACCOUNT_SID,
                          "tracks": ["inbound"], "customParameters": parameters,
                          "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}}}))

    async def answered(self, agent) -> None:
        """Open with a fresh token of this call, and wait until the greeting is out (not yet heard)."""
        await database_sync_to_async(Call.objects.create)(
            company=agent.company, call_id=self.call_sid, source=Call.Source.TWILIO, from_number="+12125550199",
            to_number="+12125550100")
        await self.open({"token": stream_token_mint(company_id=agent.company_id, agent_id=agent.pk,
                                                    call_sid=self.call_sid)})
        await self.until(lambda: len(self.marks()) == 2)     # the greeting's two sentences are out

    async def media(self, ulaw: bytes, *, paced: bool = False) -> None:
        for frame in audio.frames(ulaw):
            await self.session.receive(json.dumps({"event": "media", "streamSid": self.stream_sid, "media": {
                "track": "inbound", "chunk": "1", "timestamp": "20", "payload": base64.b64encode(frame).decode()}}))
            await asyncio.sleep(0.02 if paced else 0)

    async def say(self, speech: bytes, **kwargs) -> None:
        await self.media(b"\xff" * 1600 + speech + b"\xff" * 8000, **kwargs)

    async def echo(self, name: str) -> None:
        await self.session.receive(json.dumps({"event": "mark", "streamSid": self.stream_sid,
                                               "mark": {"name": name}}))

    async def echo_all(self) -> None:
        for name in self.marks():
            if self.session.stream.played(name) is None:
                await self.echo(name)

    async def until(self, predicate, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError("condition not met in time")
            await asyncio.sleep(0.01)

    def frames(self, event: str) -> list[dict]:
        return [frame for _, frame in self.sent if frame["event"] == event]

    def marks(self) -> list[str]:
        return [frame["mark"]["name"] for frame in self.frames("mark")]


# --- the token at start ------------------------------------------------------------------------------

@pytest.mark.parametrize("case", ["missing", "forged", "reused", "expired", "another call"])
def test_start_without_a_valid_token_closes_with_1008_and_says_nothing(practice, case):
    line = Line()

    async def scenario():
        token = stream_token_mint(company_id=practice.company_id, agent_id=practice.pk, call_sid=line.call_sid,
                                  now=time.time() - (3600 if case == "expired" else 0))
        if case == "reused":
            first = Line()
            first.call_sid = line.call_sid
            await first.open({"token": token})
            await first.until(lambda: first.marks())
            await first.session.stop()
        if case == "another call":
            token = stream_token_mint(company_id=practice.company_id, agent_id=practice.pk, call_sid="CA" + "9" * 32)
        parameters = {"missing": {}, "forged": {"token": token[:-2] + ("xy" if token[-2:] != "xy" else "yz")}}.get(
            case, {"token": token})
        await line.open(parameters)
        await line.until(lambda: line.closed)
        await line.session.stop()

    run(scenario())

    assert line.closed == [1008]
    assert not line.sent


def test_no_start_within_the_timeout_closes_with_1008(practice, settings):
    settings.TWILIO_START_TIMEOUT_SECONDS = 0.2
    line = Line()

    async def scenario():
        await line.open(None)
        await line.until(lambda: line.closed, timeout=2)
        await line.session.stop()

    run(scenario())
    assert line.closed == [1008] and not line.sent


def test_a_token_names_only_its_own_companys_agent(practice):
    other = make_company("Other Practice", slug="other", twilio_enabled=True)
    # a grant that pairs another company with this company's agent opens nothing
    assert twilio_stream_call(company_id=other.pk, agent_id=practice.pk, call_sid="CA1") is None
    assert twilio_stream_call(company_id=practice.company_id, agent_id=practice.pk, call_sid="CA1").agent == practice


# --- speech out ----------------------------------------------------------------------------------

def test_the_greeting_goes_out_as_20ms_frames_then_a_mark_each_frame_with_the_stream_sid(practice):
    line = Line()

    async def scenario():
        await line.answered(practice)
        await line.until(lambda: len(line.marks()) == 2)
        await line.session.stop()

    run(scenario())

    kinds = [frame["event"] for _, frame in line.sent]
    per_sentence = len(SENTENCE_AUDIO) // audio.FRAME_BYTES
    assert kinds == ["media"] * per_sentence + ["mark"] + ["media"] * per_sentence + ["mark"]
    assert all(frame["streamSid"] == line.stream_sid for _, frame in line.sent)
    assert {len(base64.b64decode(f["media"]["payload"])) for f in line.frames("media")} == {audio.FRAME_BYTES}
    assert all(set(f) == {"event", "streamSid", "media"} and set(f["media"]) == {"payload"}
               for f in line.frames("media"))


def test_audio_is_paced_in_real_time_with_the_lead(practice, settings):
    settings.TWILIO_PLAYBACK_LEAD_SECONDS = 0.1
    line = Line()

    async def scenario():
        await line.answered(practice)
        await line.until(lambda: len(line.marks()) == 2)
        await line.session.stop()

    run(scenario())

    times = [at for at, frame in line.sent if frame["event"] == "media"]
    played = len(times) * 0.02
    # 320 ms of audio: the first 100 ms (the lead) at once, the rest at the pace it plays
    assert played - 0.1 - 0.03 <= times[-1] - times[0] <= played + 0.1


def test_a_turn_is_answered_only_once_the_mark_of_its_last_sentence_comes_back(practice, speech):
    engine = ScriptedEngine([TextChunk("Sure. "), TextChunk("Which day?")])
    line = Line(engine)
    HEARD.append("book a check-up")

    async def scenario():
        await line.answered(practice)
        await line.echo_all()
        await line.say(speech)
        await line.until(lambda: len(line.marks()) == 4)
        first, last = line.marks()[2:]
        await line.echo(first)
        state_before = dict(line.session.engine_state)
        await line.echo(last)
        await line.session.stop()
        return state_before

    state_before = run(scenario())

    assert state_before == {}                              # heard in part: not yet answered
    assert line.session.engine_state == {"answered": 1}   # heard whole: the turn's memory is kept
    (turn,) = line.session.turns
    assert (turn.content, turn.superseded) == ("Sure. Which day?", False)
    assert turn.stt_ms == 1 and turn.engine_first_chunk_ms >= 0 and turn.tts_first_byte_ms >= 0
    assert 0 < turn.first_chunk_ms <= turn.complete_ms
    assert line.session.transcript == [{"role": "agent", "content": "Hello. How can I help?"},
                                       {"role": "user", "content": "book a check-up"},
                                       {"role": "agent", "content": "Sure. Which day?"}]
    assert engine.turns[0].transcript[-1] == {"role": "user", "content": "book a check-up"}


# --- barge-in ------------------------------------------------------------------------------------

def test_barge_in_clears_cancels_the_answer_and_keeps_only_the_heard_sentence(practice, speech):
    engine = ScriptedEngine(
        [ToolCall("tc1", "check_availability", {"date": "tomorrow", "time": "10:00", "service": "Check-up"}),
         TextChunk("It is free. "), TextChunk("What is your name? "), "pause", TextChunk("And your number?")],
        [TextChunk("Of course.")])
    line = Line(engine)
    HEARD.extend(["book a check-up tomorrow at ten", "wait"])

    async def scenario():
        await line.answered(practice)
        await line.echo_all()
        await line.say(speech)
        await line.until(lambda: len(line.marks()) == 4)
        await line.echo(line.marks()[2])                  # "It is free." was heard, the next is playing
        sent_before = len(line.sent)
        await line.say(speech)                            # the caller talks over it
        await line.until(lambda: len(line.marks()) >= 5)
        await line.session.stop()
        return sent_before

    sent_before = run(scenario())

    after = [frame for _, frame in line.sent[sent_before:]]
    # then a clear went out before anything else, and no audio of the old answer after it
    assert after[0]["event"] == "clear"
    new_answer = [f for f in after[1:] if f["event"] == "mark"]
    assert [f["mark"]["name"] for f in new_answer] == ["2.0"]
    assert len([f for f in after if f["event"] == "media"]) == len(SENTENCE_AUDIO) // audio.FRAME_BYTES
    # and the old answer's engine was cancelled before "And your number?"
    assert 1 in engine.cancelled
    # and the turn ended superseded with the sentence heard; its tool ran and stays in the ledger, unanswered
    first = line.session.turns[0]
    assert (first.content, first.superseded) == ("It is free.", True)
    assert first.tool_calls[0]["name"] == "check_availability" and "result" in first.tool_calls[0]
    assert [(e["tool_call_id"], e["answered"]) for e in line.session.effects] == [("tc1", False)]
    assert line.session.engine_state == {}               # its memory was not kept
    assert [u["content"] for u in line.session.transcript] == [
        "Hello. How can I help?", "book a check-up tomorrow at ten", "It is free.", "wait"]


# --- DTMF, silence, stop, bad input -----------------------------------------------------------------

def test_pressing_0_transfers_the_call_to_the_companys_number(practice, fake_twilio_api):
    line = Line()
    fake_twilio_api.add_call(line.call_sid)

    async def scenario():
        await line.answered(practice)
        await line.session.receive(json.dumps({"event": "dtmf", "streamSid": line.stream_sid,
                                               "dtmf": {"track": "inbound_track", "digit": "0"}}))
        await line.until(lambda: fake_twilio_api.calls[line.call_sid].twiml)
        await line.session.stop()

    run(scenario())

    (twiml,) = fake_twilio_api.calls[line.call_sid].twiml
    assert "<Dial>+12125550134</Dial>" in twiml
    assert line.frames("clear")        # the greeting still playing was dropped


def test_silence_asks_the_engine_for_a_reminder_and_end_call_hangs_up_after_it_played(practice, settings,
                                                                                       fake_twilio_api):
    settings.TWILIO_REMINDER_SECONDS = 0.3
    engine = ScriptedEngine([TextChunk("Goodbye."), EndCall()])
    line = Line(engine)
    fake_twilio_api.add_call(line.call_sid)

    async def scenario():
        await line.answered(practice)
        await line.echo_all()
        await line.until(lambda: len(line.marks()) == 3)
        await asyncio.sleep(0.3)
        hung_up_early = bool(fake_twilio_api.requests)
        await line.echo_all()
        await line.until(lambda: fake_twilio_api.requests)
        await line.session.stop()
        return hung_up_early

    assert run(scenario()) is False           # not before the goodbye was heard
    assert engine.turns[0].reminder
    assert [r.form.get("Status") for r in fake_twilio_api.requests] == ["completed"]


def test_stop_keeps_the_heard_sentences_and_records_the_open_turn_as_superseded(practice, speech):
    engine = ScriptedEngine([TextChunk("One. "), TextChunk("Two. "), TextChunk("Three.")])
    line = Line(engine)
    HEARD.append("hello")

    async def scenario():
        await line.answered(practice)
        await line.echo_all()
        await line.say(speech)
        await line.until(lambda: len(line.marks()) == 5)
        await line.echo(line.marks()[2])
        await line.session.receive(json.dumps({"event": "stop", "streamSid": line.stream_sid,
                                               "stop": {"callSid": line.call_sid}}))
        await line.until(lambda: line.session._stopped and not line.session._open_turns)
        await line.session.stop()

    run(scenario())

    call = Call.objects.get(call_id=line.call_sid)
    assert call.live_transcript[-1] == {"role": "agent", "content": "One."}
    (turn,) = call.live_turns
    assert (turn["content"], turn["superseded"]) == ("One.", True)
    assert turn["stt_ms"] == 1


def test_bad_frames_are_counted_and_ignored_and_the_call_goes_on(practice, speech):
    engine = ScriptedEngine([TextChunk("Yes?")])
    line = Line(engine)
    HEARD.append("hello")

    async def scenario():
        await line.answered(practice)
        for bad in ("{", b"\x00binary", json.dumps({"event": "nonsense"}), json.dumps([1]),
                    json.dumps({"event": "media", "streamSid": line.stream_sid, "media": {"payload": "%%"}}),
                    json.dumps({"event": "media", "media": {"payload": "A" * 1_000_000}}),
                    json.dumps({"event": "dtmf", "dtmf": {}})):
            await line.session.receive(bad)
        await line.echo_all()
        await line.say(speech)
        await line.until(lambda: len(line.marks()) == 3)
        await line.session.stop()

    run(scenario())

    assert sum(line.session.bad_frames.values()) == 7
    assert line.session.transcript[1] == {"role": "user", "content": "hello"}
    assert not line.closed
