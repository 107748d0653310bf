"""The offline speech path end to end, as a Twilio call carries it: eSpeak NG says the caller's
sentence -> μ-law 8 kHz in 20 ms frames (base64 payloads, as in `media` messages) -> voice
activity and end of turn -> pocketsphinx with the company's vocabulary -> the understanding
reads the booking from the text."""

import asyncio

from appointments.understanding import match_service, understand
from voice.speech import audio
from voice.speech.stt import Audio, PocketsphinxSTT, SpeechHints
from voice.speech.tts import EspeakTTS, VoiceSettings
from voice.speech.turns import SpeechEnded, TurnDetector, TurnSettings

SERVICES = ("Check-up", "Teeth cleaning", "Whitening consultation")
# The caller's voice: of eSpeak NG's voices, the one the US-English model hears best on the phone path.
CALLER = VoiceSettings(voice_id="en-us+klatt6", speed=160 / 175)


def test_a_spoken_booking_request_comes_out_as_text_with_the_service_the_day_and_the_time():
    async def call() -> tuple[list, str]:
        # given the caller's sentence spoken offline, framed as Twilio sends it, after a moment of line silence
        spoken = b"".join([chunk async for chunk in EspeakTTS().synthesize(
            "I'd like to book a check-up tomorrow at ten.", language="en", voice=CALLER)])
        payloads = [audio.to_base64(frame) for frame in audio.frames(b"\xff" * 4000 + spoken + b"\xff" * 8000)]
        # when the frames pass the turn detector and the turn's utterance the recogniser
        detector = TurnDetector(TurnSettings(end_silence_ms=700))
        events, texts = [], []
        for payload in payloads:
            for event in detector.feed(audio.from_base64(payload)):
                events.append(event)
                if isinstance(event, SpeechEnded):
                    transcript = await PocketsphinxSTT().transcribe(
                        Audio.ulaw(event.ulaw), language="en-US", hints=SpeechHints(services=SERVICES))
                    texts.append(transcript.text)
        return events, texts

    events, texts = asyncio.run(call())
    # then one turn was heard, and its text holds the service, "tomorrow" and "ten"
    assert [type(e).__name__ for e in events] == ["SpeechStarted", "SpeechEnded"]
    (text,) = texts
    assert match_service(text, SERVICES) == "Check-up", text
    assert "tomorrow" in text.split() and "ten" in text.split(), text
    # and the understanding reads the booking from it
    heard = understand(text, SERVICES)
    assert "book" in heard.intents and heard.dates == ["tomorrow"] and heard.clock is not None
