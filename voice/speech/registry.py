"""Which speech providers a call uses, with which keys: the one module of `voice.speech` that reads
Django settings and the company.

    stt = speech_to_text_for(company, language="en-US")           # SpeechToText
    tts = text_to_speech_for(company, language="de-DE")           # TextToSpeech
    hints = speech_hints_for(company)                             # the company's words
    voice = voice_settings_for(agent)                             # the agent's voice
    detector = TurnDetector(turn_settings())

A platform default may also be a provider class's dotted path (SPEECH_STT_PROVIDER=
"package.module.Class", built without arguments), so a benchmark or a new provider plugs in
through settings. The provider is the one chosen for the company or its number (`choice`, or the company's
`stt_provider` / `tts_provider` where the admin has those fields), else the platform's
SPEECH_STT_PROVIDER / SPEECH_TTS_PROVIDER. When the platform default does not serve the call's
language (the offline recogniser is English only), the first other provider that is configured
and serves it is used: OpenAI-compatible (STT_OPENAI_BASE_URL set), then ElevenLabs (a key).
A provider chosen explicitly is never swapped: a German call on an English-only choice raises
SpeechUnavailable, so the admin's choice is not silently ignored.

Keys: ElevenLabs uses the company's encrypted key, else ELEVENLABS_API_KEY. The OpenAI-compatible
transcription server is the platform's (STT_OPENAI_BASE_URL / _API_KEY / _MODEL).
"""

from __future__ import annotations

from django.conf import settings

from .errors import SpeechUnavailable
from .stt import ElevenLabsRealtimeSTT, OpenAICompatibleSTT, PocketsphinxSTT, SpeechHints, SpeechToText
from .tts import ElevenLabsTTS, EspeakTTS, TextToSpeech, VoiceSettings
from .turns import TurnSettings

OFFLINE, ELEVENLABS, OPENAI = "offline", "elevenlabs", "openai"
STT_PROVIDERS = {
    OFFLINE: "Offline (pocketsphinx; English only)",
    ELEVENLABS: "ElevenLabs Scribe realtime",
    OPENAI: "OpenAI-compatible transcription (e.g. a self-hosted Whisper server)",
}
TTS_PROVIDERS = {
    OFFLINE: "Offline (eSpeak NG; English and German)",
    ELEVENLABS: "ElevenLabs (the agent's voice)",
}
STT_CHOICES = list(STT_PROVIDERS.items())
TTS_CHOICES = list(TTS_PROVIDERS.items())


def elevenlabs_api_key(company) -> str:
    """The company's ElevenLabs key, else the platform's ELEVENLABS_API_KEY ("" for none)."""
    secret = getattr(company, "elevenlabs_api_key", None) if company is not None else None
    return secret.reveal() if secret else settings.ELEVENLABS_API_KEY


def _by_path(name: str):
    """A provider class named by its dotted path (a setting may name one outside this package, e.g.
    a benchmark's stand-in), built without arguments; None for the names above."""
    if "." not in name:
        return None
    from django.utils.module_loading import import_string

    try:
        return import_string(name)()
    except ImportError as error:
        raise SpeechUnavailable(f"no speech provider class {name!r}") from error


def _stt(name: str, company) -> SpeechToText:
    if (provider := _by_path(name)) is not None:
        return provider
    if name == OFFLINE:
        return PocketsphinxSTT(processes=settings.OFFLINE_STT_PROCESSES)
    if name == ELEVENLABS:
        return ElevenLabsRealtimeSTT(api_key=elevenlabs_api_key(company), ws_url=settings.ELEVENLABS_WS_URL,
                                     model_id=settings.ELEVENLABS_STT_MODEL,
                                     connect_timeout=settings.SPEECH_CONNECT_TIMEOUT,
                                     read_timeout=settings.SPEECH_READ_TIMEOUT)
    if name == OPENAI:
        return OpenAICompatibleSTT(base_url=settings.STT_OPENAI_BASE_URL, api_key=settings.STT_OPENAI_API_KEY,
                                   model=settings.STT_OPENAI_MODEL, connect_timeout=settings.SPEECH_CONNECT_TIMEOUT,
                                   read_timeout=settings.SPEECH_READ_TIMEOUT)
    raise SpeechUnavailable(f"no speech-to-text provider {name!r}; choose one of {', '.join(STT_PROVIDERS)}")


def _tts(name: str, company) -> TextToSpeech:
    if (provider := _by_path(name)) is not None:
        return provider
    if name == OFFLINE:
        return EspeakTTS(voices={"en": settings.OFFLINE_VOICE_EN, "de": settings.OFFLINE_VOICE_DE})
    if name == ELEVENLABS:
        return ElevenLabsTTS(api_key=elevenlabs_api_key(company), base_url=settings.ELEVENLABS_BASE_URL,
                             model_id=settings.ELEVENLABS_TTS_MODEL, default_voice_id=settings.ELEVENLABS_VOICE_ID,
                             connect_timeout=settings.SPEECH_CONNECT_TIMEOUT,
                             read_timeout=settings.SPEECH_READ_TIMEOUT)
    raise SpeechUnavailable(f"no text-to-speech provider {name!r}; choose one of {', '.join(TTS_PROVIDERS)}")


def _configured(name: str, company) -> bool:
    if name == OPENAI:
        return bool(settings.STT_OPENAI_BASE_URL)
    if name == ELEVENLABS:
        return bool(elevenlabs_api_key(company))
    return name == OFFLINE


def _choose(kind: str, company, choice: str, language: str, build, names) -> object:
    chosen = choice or (getattr(company, f"{kind}_provider", "") if company is not None else "")
    if chosen:
        provider = build(chosen, company)
        if language and not provider.serves(language):
            raise SpeechUnavailable(f"the {kind.upper()} provider {chosen!r} chosen for this company does not "
                                    f"serve {language!r}")
        return provider
    default = getattr(settings, f"SPEECH_{kind.upper()}_PROVIDER")
    provider = build(default, company)
    if not language or provider.serves(language):
        return provider
    for name in names:
        if name != default and _configured(name, company):
            candidate = build(name, company)
            if candidate.serves(language):
                return candidate
    raise SpeechUnavailable(f"no configured {kind.upper()} provider serves {language!r} (the default "
                            f"{default!r} does not)")


def speech_to_text_for(company=None, *, choice: str = "", language: str = "") -> SpeechToText:
    """The speech-to-text provider for a call of `company` in `language` ("en-US", "de"); `choice`
    overrides the company's (a number's own choice). Raises SpeechUnavailable as described above."""
    return _choose("stt", company, choice, language, _stt, (OPENAI, ELEVENLABS))


def text_to_speech_for(company=None, *, choice: str = "", language: str = "") -> TextToSpeech:
    """The text-to-speech provider for a call of `company` in `language`; as speech_to_text_for."""
    return _choose("tts", company, choice, language, _tts, (ELEVENLABS,))


def voice_settings_for(agent) -> VoiceSettings:
    """The agent's voice for this server's own speech: its ElevenLabs voice id (empty: the provider's
    default), stability, similarity boost and speed (not its Retell voice, which is Retell's id)."""
    return VoiceSettings(voice_id=agent.elevenlabs_voice_id or "", stability=agent.voice_stability,
                         similarity_boost=agent.voice_similarity_boost, speed=agent.voice_speed)


def speech_hints_for(company, *, names: tuple[str, ...] = ()) -> SpeechHints:
    """The company's words for the recognisers: its active services, and `names` (the names the
    call has asked for or knows, e.g. the caller's from the backend)."""
    from appointments.models import Service

    services = tuple(Service.objects.filter(company=company, active=True).order_by("name")
                     .values_list("name", flat=True))
    return SpeechHints(services=services, names=tuple(names), phrases=(company.name,))


def turn_settings() -> TurnSettings:
    """The voice activity and end-of-turn settings (VAD_*)."""
    return TurnSettings(aggressiveness=settings.VAD_AGGRESSIVENESS, min_speech_ms=settings.VAD_MIN_SPEECH_MS,
                        end_silence_ms=settings.VAD_END_SILENCE_MS, max_utterance_ms=settings.VAD_MAX_UTTERANCE_MS)
