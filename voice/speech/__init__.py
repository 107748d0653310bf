"""Speech in and out for the Twilio path, as components with no Django and no sockets in their core.

    audio       μ-law 8 kHz <-> 16-bit PCM, resampling, 20 ms framing, base64 for Twilio payloads
    turns       voice activity and end of turn: μ-law frames in, speech_started / speech_ended out
    stt         speech-to-text providers behind one interface (offline pocketsphinx, ElevenLabs
                Scribe realtime, any OpenAI-compatible /v1/audio/transcriptions)
    vocabulary  the offline recogniser's language model, built from a company's own words
    tts         text-to-speech providers behind one interface (offline eSpeak NG, ElevenLabs
                streaming), sentence by sentence
    registry    which provider a company uses, and its keys (the one module that reads settings)
    rtf         real-time factor of the offline providers, for the benchmarks
"""
