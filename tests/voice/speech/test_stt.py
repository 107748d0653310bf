"""Speech-to-text: the offline recogniser with the company's words, ElevenLabs Scribe realtime and an
OpenAI-compatible transcription server, each against what it really speaks (loopback fakes)."""

import asyncio
import base64
import io
import wave

import pytest

from appointments.understanding import match_service
from tests.fakes import free_port
from tests.fakes.elevenlabs import FakeElevenLabs
from tests.fakes.transcription import FakeTranscriptionServer
from voice.speech import audio, espeak
from voice.speech.errors import SpeechProviderError, SpeechUnavailable
from voice.speech.stt import Audio, ElevenLabsRealtimeSTT, OpenAICompatibleSTT, PocketsphinxSTT, SpeechHints

# The caller's voice in these tests: of eSpeak NG's voices, the one pocketsphinx's US-English model
# hears best through the 8 kHz phone path.
CALLER_VOICE, CALLER_WPM = "en-us+klatt6", 160
SERVICES = ("Check-up", "Teeth cleaning", "Whitening consultation")


def said(text: str, voice: str = CALLER_VOICE, wpm: int = CALLER_WPM) -> bytes:
    pcm, rate = espeak.synthesize(text, voice=voice, words_per_minute=wpm)
    return audio.pcm16_to_ulaw8k(pcm, rate)


def run(coroutine):
    return asyncio.run(coroutine)


# --- the interface's plain data ------------------------------------------------------------------

def test_audio_converts_between_mu_law_and_pcm_at_any_rate():
    ulaw = said("Hello.")
    utterance = Audio.ulaw(ulaw)
    assert utterance.duration_ms == audio.duration_ms(ulaw)
    assert len(utterance.as_pcm16(16000)) == 4 * len(ulaw)
    assert Audio.pcm16(utterance.as_pcm16(16000), 16000).as_ulaw8k()[:10] != b""
    with pytest.raises(ValueError):
        Audio(b"", 16000, "ulaw")


def test_hints_give_distinct_terms_services_first():
    hints = SpeechHints(services=("Check-up", "Check-up"), names=("Erika  Mustermann",), phrases=("x" * 60,))
    assert hints.terms() == ["Check-up", "Erika Mustermann"]


# --- offline: pocketsphinx with the company's words ---------------------------------------------------

@pytest.mark.parametrize("line, expect", [
    ("I'd like to book a check-up tomorrow at ten.", ["tomorrow", "ten"]),
    ("My name is John Miller.", ["john", "miller"]),
    ("What are your opening hours?", ["opening", "hours"]),
    ("I need to cancel my appointment.", ["cancel", "appointment"]),
])
def test_the_offline_recogniser_hears_an_english_callers_words(line, expect):
    hints = SpeechHints(services=SERVICES, names=("John Miller",))
    transcript = run(PocketsphinxSTT().transcribe(Audio.ulaw(said(line)), language="en-US", hints=hints))
    words = transcript.text.split()
    assert all(word in words for word in expect), transcript.text
    assert transcript.provider == "offline" and transcript.confidence is None and transcript.ms >= 0


def test_the_offline_recogniser_hears_a_name_asked_for_that_the_cmu_dictionary_lacks():
    hints = SpeechHints(services=SERVICES, names=("Erika Mustermann",))
    transcript = run(PocketsphinxSTT().transcribe(Audio.ulaw(said("My name is Erika Mustermann.")),
                                                  language="en", hints=hints))
    assert transcript.text == "my name is erika mustermann"


def test_the_offline_recogniser_knows_the_companys_services_by_the_words_callers_use():
    hints = SpeechHints(services=SERVICES)
    transcript = run(PocketsphinxSTT().transcribe(
        Audio.ulaw(said("Can I get a teeth cleaning next Tuesday at half past two?")), language="en", hints=hints))
    assert match_service(transcript.text, SERVICES) == "Teeth cleaning", transcript.text


def test_the_offline_stream_gives_the_text_of_what_was_sent_since_the_last_commit():
    async def scenario():
        async with PocketsphinxSTT().stream(language="en", hints=SpeechHints(services=SERVICES)) as stream:
            for frame in audio.frames(said("What are your opening hours?")):
                await stream.send(frame)
            first = await stream.commit()
            for frame in audio.frames(said("I need to cancel my appointment.")):
                await stream.send(frame)
            second = await stream.commit()
        return first, second

    first, second = run(scenario())
    assert "hours" in first.text and "cancel" in second.text and "hours" not in second.text


def test_the_offline_recogniser_serves_english_only():
    with pytest.raises(SpeechUnavailable, match="serves en, not 'de-DE'"):
        run(PocketsphinxSTT().transcribe(Audio.ulaw(said("Hallo.")), language="de-DE"))


# --- ElevenLabs Scribe realtime -------------------------------------------------------------------

@pytest.fixture
def elevenlabs():
    fake = FakeElevenLabs(api_key="xi-test-key").start()
    yield fake
    fake.close()


def scribe(fake, **kwargs) -> ElevenLabsRealtimeSTT:
    return ElevenLabsRealtimeSTT(api_key=kwargs.pop("api_key", fake.api_key), ws_url=fake.ws_url, **kwargs)


def test_scribe_gets_twilios_mu_law_as_it_is_and_commits_at_the_end_of_the_turn(elevenlabs):
    # given the fake transcribes the first commit as the caller's sentence
    elevenlabs.transcripts = ["I'd like to book a check-up."]
    ulaw = said("I'd like to book a check-up.")
    partials = []

    async def scenario():
        stt = scribe(elevenlabs)
        async with stt.stream(language="en-US", hints=SpeechHints(services=SERVICES, names=("Erika",))) as stream:
            for frame in audio.frames(ulaw):
                await stream.send(frame)
            await asyncio.sleep(0.05)
            partials.append(stream.partial)
            return await stream.commit()

    transcript = run(scenario())
    assert transcript.text == "I'd like to book a check-up." and transcript.provider == "elevenlabs"
    (session,) = elevenlabs.stt_sessions
    # the session is opened as the reference gives it, with the company's words as key terms
    assert session["query"]["model_id"] == ["scribe_v2_realtime"]
    assert session["query"]["audio_format"] == ["ulaw_8000"]
    assert session["query"]["commit_strategy"] == ["manual"]
    assert session["query"]["language_code"] == ["en"]
    assert session["query"]["keyterms"] == [*SERVICES, "Erika"]
    assert session["headers"]["xi-api-key"] == "xi-test-key"
    # every chunk is an input_audio_chunk of raw μ-law, and the last a commit without audio
    chunks = session["messages"]
    assert all(m["message_type"] == "input_audio_chunk" and m["sample_rate"] == 8000 for m in chunks)
    assert chunks[-1]["commit"] is True and chunks[-1]["audio_base_64"] == ""
    assert b"".join(base64.b64decode(m["audio_base_64"]) for m in chunks[:-1])[:len(ulaw)] == ulaw
    assert session["commits"][0][:len(ulaw)] == ulaw
    assert partials[0]  # partial transcripts were taken in while the caller spoke


def test_scribe_keeps_one_session_for_several_turns_and_passes_the_previous_text(elevenlabs):
    elevenlabs.transcripts = ["Tomorrow at ten.", "Yes, please."]

    async def scenario():
        async with scribe(elevenlabs).stream(language="en") as stream:
            await stream.send(said("Tomorrow at ten."))
            first = await stream.commit()
            await stream.send(said("Yes, please."))
            second = await stream.commit()
        return first.text, second.text

    assert run(scenario()) == ("Tomorrow at ten.", "Yes, please.")
    (session,) = elevenlabs.stt_sessions
    commits = [m for m in session["messages"] if m["commit"]]
    assert "previous_text" not in commits[0] and commits[1]["previous_text"] == "Tomorrow at ten."


def test_scribe_transcribes_a_whole_utterance_in_one_call(elevenlabs):
    elevenlabs.transcripts = ["Guten Tag."]
    transcript = run(scribe(elevenlabs).transcribe(Audio.ulaw(said("Guten Tag.", voice="de")), language="de"))
    assert transcript.text == "Guten Tag."
    assert elevenlabs.stt_sessions[0]["query"]["language_code"] == ["de"]


def test_a_refused_scribe_key_is_unavailable_without_the_key_in_the_message(elevenlabs):
    with pytest.raises(SpeechUnavailable, match="auth_error") as refused:
        run(scribe(elevenlabs, api_key="wrong-key-123").transcribe(Audio.ulaw(said("Hi.")), language="en"))
    assert "wrong-key-123" not in str(refused.value)


def test_a_scribe_session_refused_for_its_format_is_a_provider_error(elevenlabs):
    with pytest.raises(SpeechProviderError, match="input_error"):
        run(scribe(elevenlabs, model_id="scribe_v1").transcribe(Audio.ulaw(said("Hi.")), language="en"))


def test_an_unreachable_scribe_is_a_provider_error():
    stt = ElevenLabsRealtimeSTT(api_key="k", ws_url=f"ws://127.0.0.1:{free_port()}", connect_timeout=2)
    with pytest.raises(SpeechProviderError):
        run(stt.transcribe(Audio.ulaw(b"\xff" * 800), language="en"))


def test_scribe_without_a_key_is_unavailable():
    with pytest.raises(SpeechUnavailable, match="no API key"):
        run(ElevenLabsRealtimeSTT(api_key="").transcribe(Audio.ulaw(b"\xff" * 800), language="en"))


# --- OpenAI-compatible /v1/audio/transcriptions -----------------------------------------------------

@pytest.fixture
def whisper():
    server = FakeTranscriptionServer(api_key="sk-test").start()
    yield server
    server.close()


def test_a_german_utterance_goes_as_a_16k_wav_with_model_language_and_the_companys_words(whisper):
    whisper.transcripts = ["Ich hätte gern einen Termin zur Kontrolle."]
    ulaw = said("Ich hätte gern einen Termin zur Kontrolle.", voice="de")
    stt = OpenAICompatibleSTT(base_url=whisper.base_url, api_key="sk-test", model="Systran/faster-whisper-small")
    transcript = run(stt.transcribe(Audio.ulaw(ulaw), language="de-DE",
                                    hints=SpeechHints(services=("Kontrolluntersuchung", "Zahnreinigung"))))
    assert transcript.text == "Ich hätte gern einen Termin zur Kontrolle." and transcript.provider == "openai"
    (request,) = whisper.requests
    assert request["fields"] == {"model": "Systran/faster-whisper-small", "language": "de",
                                 "response_format": "json", "prompt": "Kontrolluntersuchung, Zahnreinigung"}
    assert request["headers"]["Authorization"] == "Bearer sk-test"
    assert request["filename"] == "speech.wav" and request["content_type"] == "audio/wav"
    with wave.open(io.BytesIO(request["file"])) as wav:
        assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (16000, 1, 2)
        assert abs(wav.getnframes() - 2 * len(ulaw)) <= 4


def test_the_openai_compatible_stream_transcribes_what_was_sent_at_commit(whisper):
    whisper.transcripts = ["Morgen um zehn."]

    async def scenario():
        stream = OpenAICompatibleSTT(base_url=whisper.base_url, api_key="sk-test").stream(language="de")
        for frame in audio.frames(said("Morgen um zehn.", voice="de")):
            await stream.send(frame)
        assert whisper.requests == []           # nothing goes out before the turn ends
        return await stream.commit()

    assert run(scenario()).text == "Morgen um zehn."
    assert len(whisper.requests) == 1


def test_a_refused_transcription_key_is_unavailable(whisper):
    stt = OpenAICompatibleSTT(base_url=whisper.base_url, api_key="sk-wrong-123")
    with pytest.raises(SpeechUnavailable, match="401: Incorrect API key") as refused:
        run(stt.transcribe(Audio.ulaw(said("Hallo.", voice="de")), language="de"))
    assert "sk-wrong-123" not in str(refused.value)


def test_a_transcription_server_error_is_a_provider_error(whisper):
    whisper.fail_next(500)
    stt = OpenAICompatibleSTT(base_url=whisper.base_url, api_key="sk-test")
    with pytest.raises(SpeechProviderError, match="500"):
        run(stt.transcribe(Audio.ulaw(said("Hallo.", voice="de")), language="de"))


def test_an_unreachable_transcription_server_is_a_provider_error():
    stt = OpenAICompatibleSTT(base_url=f"http://127.0.0.1:{free_port()}/v1")
    with pytest.raises(SpeechProviderError, match="ConnectError"):
        run(stt.transcribe(Audio.ulaw(b"\x7f" * 1600), language="de"))
