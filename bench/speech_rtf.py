"""Real-time factor of the offline speech providers (not a test: prints figures).

    .venv/bin/python bench/speech_rtf.py                 # English and German sentences
    .venv/bin/python bench/speech_rtf.py --repeat 5      # each sentence five times

Text-to-speech: eSpeak NG (English and German voices) from text to μ-law 8 kHz, resampling
included. Speech-to-text: pocketsphinx (US English only) with a dental practice's vocabulary,
from μ-law 8 kHz (as Twilio sends it) to text; its input is eSpeak NG's speech of the same
sentences. The real-time factor is seconds of compute per second of audio: 0.05 means one
core keeps up with about 20 callers speaking at once, for that stage alone. Runs in this
process, one item at a time; needs no database.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from voice.speech import audio, espeak  # noqa: E402
from voice.speech.rtf import stt_real_time_factor, tts_real_time_factor  # noqa: E402
from voice.speech.stt import Audio, PocketsphinxSTT, SpeechHints  # noqa: E402
from voice.speech.tts import EspeakTTS  # noqa: E402

SENTENCES = {
    "en": ["Hello, I'd like to book a check-up tomorrow at ten.", "My name is John Miller.", "Yes, please.",
           "Can I get a teeth cleaning next Tuesday at half past two?", "What are your opening hours?",
           "No, thank you. Goodbye."],
    "de": ["Guten Tag, ich hätte gern einen Termin zur Kontrolle morgen um zehn.", "Mein Name ist Erika Mustermann.",
           "Ja, bitte.", "Haben Sie am Dienstag um halb drei etwas frei?", "Wann haben Sie geöffnet?",
           "Nein, danke. Auf Wiederhören."],
}
CALLER_VOICES = {"en": ("en-us+klatt6", 160), "de": ("de", 160)}
HINTS = SpeechHints(services=("Check-up", "Teeth cleaning", "Whitening consultation"), names=("John Miller",))


def line(label: str, factor) -> str:
    return (f"{label:<38} {factor.items:>3} items {factor.audio_seconds:7.1f} s audio   "
            f"RTF cpu {factor.cpu_factor:6.3f}   wall {factor.wall_factor:6.3f}   "
            f"(~{1 / factor.cpu_factor:5.0f} streams/core)")


async def main(repeat: int) -> None:
    tts = EspeakTTS()
    for language, sentences in SENTENCES.items():
        factor = await tts_real_time_factor(tts, sentences * repeat, language=language)
        print(line(f"TTS offline eSpeak NG ({language})", factor))
    stt = PocketsphinxSTT()
    for language, sentences in SENTENCES.items():
        if not stt.serves(language):
            print(f"{'STT offline pocketsphinx (' + language + ')':<38} n/a: serves en only "
                  "(German: an OpenAI-compatible server or ElevenLabs)")
            continue
        voice, wpm = CALLER_VOICES[language]
        utterances = []
        for sentence in sentences * repeat:
            pcm, rate = espeak.synthesize(sentence, voice=voice, words_per_minute=wpm)
            utterances.append(Audio.ulaw(audio.pcm16_to_ulaw8k(pcm, rate)))
        factor = await stt_real_time_factor(stt, utterances, language=language, hints=HINTS)
        print(line(f"STT offline pocketsphinx ({language})", factor))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="times each sentence is run")
    asyncio.run(main(parser.parse_args().repeat))
