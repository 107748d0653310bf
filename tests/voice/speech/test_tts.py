"""Text-to-speech: sentences, the offline eSpeak NG voice and ElevenLabs streaming against its fake."""

import asyncio
import time

import numpy as np
import pytest

from tests.fakes.elevenlabs import MS_PER_CHARACTER, FakeElevenLabs
from voice.speech import audio
from voice.speech.errors import SpeechProviderError, SpeechUnavailable
from voice.speech.tts import (
    ElevenLabsTTS,
    EspeakTTS,
    SentenceBuffer,
    VoiceSettings,
    speak,
    speak_sentences,
    split_sentences,
)


def collect(iterator) -> list[bytes]:
    async def run():
        return [chunk async for chunk in iterator]
    return asyncio.run(run())


def loudness(ulaw: bytes) -> float:
    return float(np.sqrt(np.mean(np.frombuffer(audio.ulaw_to_pcm16(ulaw), dtype="<i2").astype(float) ** 2)))


# --- sentences -----------------------------------------------------------------------------------

def test_text_is_split_into_sentences_keeping_abbreviations_and_dates_whole():
    assert split_sentences("Hello! Dr. Smith is in. Am 3. Mai um 10 Uhr? Ja.") == [
        "Hello!", "Dr. Smith is in.", "Am 3. Mai um 10 Uhr?", "Ja."]


def test_a_sentence_is_handed_out_once_the_next_piece_shows_it_ended():
    buffer = SentenceBuffer()
    assert buffer.feed("One moment") == []
    assert buffer.feed(", please.") == []            # the period may yet be "please.5"
    assert buffer.feed(" I have") == ["One moment, please."]
    assert buffer.feed(" ten free.") == []
    assert buffer.flush() == ["I have ten free."]


def test_a_long_clause_without_a_period_is_handed_out_at_its_last_comma():
    buffer = SentenceBuffer()
    text = "I could offer Monday at nine, " * 8
    sentences = buffer.feed(text)
    assert sentences and all(len(s) <= 160 for s in sentences)
    assert sentences[0].endswith(",")


# --- offline: eSpeak NG -----------------------------------------------------------------------------

@pytest.mark.parametrize("language", ["en", "de", "en-US", "de-DE"])
def test_the_offline_voice_speaks_english_and_german_as_8k_mu_law(language):
    text = "Hello, this is the practice." if language.startswith("en") else "Guten Tag, hier ist die Praxis."
    chunks = collect(EspeakTTS().synthesize(text, language=language))
    speech = b"".join(chunks)
    # about 1.5 to 3 seconds of 8000 bytes a second, and not silence
    assert 8000 < len(speech) < 8000 * 4
    assert loudness(speech) > 500
    assert all(len(c) <= 1600 for c in chunks)


def test_the_offline_voice_yields_the_first_sentence_before_making_the_second():
    # given a synthesizer that records when each sentence is made
    made: list[str] = []

    class Recording(EspeakTTS):
        def sentence_ulaw(self, sentence, voice_name, speed=1.0):
            made.append(sentence)
            return super().sentence_ulaw(sentence, voice_name, speed)

    async def first_chunk():
        iterator = Recording().synthesize("Good morning. How can I help you today?", language="en")
        chunk = await iterator.__anext__()
        await iterator.aclose()
        return chunk

    # when the first chunk arrives / then only the first sentence has been made
    assert asyncio.run(first_chunk())
    assert made == ["Good morning."]


def test_the_offline_voice_refuses_a_language_it_has_no_voice_for():
    with pytest.raises(SpeechUnavailable, match="offline voice"):
        collect(EspeakTTS().synthesize("Bonjour.", language="fr"))


def test_an_espeak_voice_name_chooses_the_offline_voice_and_speed_shortens_it():
    slow = b"".join(collect(EspeakTTS().synthesize("Thank you for calling.", language="en",
                                                    voice=VoiceSettings(voice_id="en-us+m3", speed=0.8))))
    fast = b"".join(collect(EspeakTTS().synthesize("Thank you for calling.", language="en",
                                                    voice=VoiceSettings(voice_id="en-us+m3", speed=1.4))))
    assert len(fast) < len(slow)


def test_speak_synthesizes_each_sentence_while_the_text_is_still_arriving():
    # given an engine that streams two sentences in pieces, the second only after the first was spoken
    spoken_before_second: list[int] = []
    chunks: list[bytes] = []

    async def run():
        async def pieces():
            yield "Let me "
            yield "check. "
            await asyncio.sleep(0)
            spoken_before_second.append(len(chunks))
            yield "Monday is free."

        async for chunk in speak(pieces(), EspeakTTS(), language="en"):
            chunks.append(chunk)

    asyncio.run(run())
    # then audio of the first sentence went out before the second was written
    assert spoken_before_second[0] > 0
    assert len(chunks) > spoken_before_second[0]


# --- ElevenLabs streaming ---------------------------------------------------------------------------

@pytest.fixture
def elevenlabs():
    fake = FakeElevenLabs(api_key="xi-test-key").start()
    yield fake
    fake.close()


def eleven(fake, **kwargs) -> ElevenLabsTTS:
    return ElevenLabsTTS(api_key=kwargs.pop("api_key", fake.api_key), base_url=fake.base_url, **kwargs)


def test_elevenlabs_is_asked_for_ulaw_8000_with_the_agents_voice_settings_and_a_fast_model(elevenlabs):
    voice = VoiceSettings(voice_id="EXAVITQu4vr4xnSDxMaL", stability=0.3, similarity_boost=0.9, speed=1.1)
    speech = b"".join(collect(eleven(elevenlabs).synthesize("Hello there. How are you?", language="en-US",
                                                            voice=voice)))
    first, second = elevenlabs.tts_requests
    assert first["path"] == "/v1/text-to-speech/EXAVITQu4vr4xnSDxMaL/stream"
    assert first["query"] == {"output_format": ["ulaw_8000"]}
    assert first["headers"]["xi-api-key"] == "xi-test-key"
    assert first["json"] == {"text": "Hello there.", "model_id": "eleven_flash_v2_5", "language_code": "en",
                             "voice_settings": {"stability": 0.3, "similarity_boost": 0.9, "speed": 1.1}}
    # the second sentence is its own request, with the first as context
    assert second["json"]["text"] == "How are you?" and second["json"]["previous_text"] == "Hello there."
    assert len(speech) == 8 * MS_PER_CHARACTER * (len("Hello there.") + len("How are you?"))


def test_elevenlabs_audio_is_yielded_as_it_streams_in(elevenlabs):
    elevenlabs.chunk_bytes = 400
    chunks = collect(eleven(elevenlabs).synthesize("One moment, please.", language="en"))
    assert len(chunks) > 3


def test_a_wav_header_from_elevenlabs_never_reaches_the_caller(elevenlabs):
    elevenlabs.wav_header = True
    speech = b"".join(collect(eleven(elevenlabs).synthesize("Hello.", language="en")))
    assert b"RIFF" not in speech and len(speech) == 8 * MS_PER_CHARACTER * len("Hello.")


def test_a_refused_elevenlabs_key_is_unavailable_and_the_message_holds_no_key(elevenlabs):
    with pytest.raises(SpeechUnavailable) as refused:
        collect(eleven(elevenlabs, api_key="wrong-key-123").synthesize("Hello.", language="en"))
    assert "401" in str(refused.value) and "wrong-key-123" not in str(refused.value)


def test_an_elevenlabs_server_error_is_a_provider_error(elevenlabs):
    elevenlabs.fail_tts(503)
    with pytest.raises(SpeechProviderError, match="503"):
        collect(eleven(elevenlabs).synthesize("Hello.", language="en"))


def test_an_unreachable_elevenlabs_is_a_provider_error():
    from tests.fakes import free_port

    tts = ElevenLabsTTS(api_key="k", base_url=f"http://127.0.0.1:{free_port()}")
    with pytest.raises(SpeechProviderError, match="ConnectError"):
        collect(tts.synthesize("Hello.", language="en"))


def test_elevenlabs_without_a_key_is_unavailable():
    with pytest.raises(SpeechUnavailable, match="no API key"):
        collect(ElevenLabsTTS(api_key="").synthesize("Hello.", language="en"))


def test_stopping_the_answer_hangs_up_on_elevenlabs_and_requests_no_further_sentence(elevenlabs):
    # given an answer of three sentences, the first a long one, streamed slowly
    elevenlabs.chunk_bytes, elevenlabs.chunk_delay = 400, 0.01
    first_sentence = "One moment while I look at the calendar for you."

    async def barge_in():
        iterator = eleven(elevenlabs).synthesize(f"{first_sentence} Two. Three.", language="en")
        first = await iterator.__anext__()
        # when the caller barges in and the session stops the iteration
        await iterator.aclose()
        return first

    assert asyncio.run(barge_in())
    # then only the first sentence was asked for, and its stream was left at once, not read to the end
    assert [r["json"]["text"] for r in elevenlabs.tts_requests] == [first_sentence]
    deadline = time.monotonic() + 10
    while not elevenlabs.tts_answers and time.monotonic() < deadline:
        time.sleep(0.02)
    assert elevenlabs.tts_answers == ["abandoned"]


def test_spoken_chunks_name_their_sentence_and_each_sentence_ends_with_an_empty_marker():
    async def run():
        async def pieces():
            yield "Good morning. How can "
            yield "I help?"
        return [chunk async for chunk in speak_sentences(pieces(), EspeakTTS(chunk_ms=100), language="en")]

    chunks = asyncio.run(run())
    # the audio of sentence 0, its end, the audio of sentence 1, its end
    ends = [i for i, c in enumerate(chunks) if c.sentence_end]
    assert [chunks[i].index for i in ends] == [0, 1] and ends[-1] == len(chunks) - 1
    assert all(c.audio == b"" for c in chunks if c.sentence_end)
    first, second = chunks[:ends[0]], chunks[ends[0] + 1:ends[1]]
    assert first and all(c.sentence == "Good morning." and c.index == 0 and c.audio for c in first)
    assert second and all(c.sentence == "How can I help?" and c.index == 1 and c.audio for c in second)
