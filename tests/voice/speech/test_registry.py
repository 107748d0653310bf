"""Which speech providers a company's call gets, with which keys and settings."""

import pytest

from appointments.models import Service
from retell_config.models import Agent
from voice.speech import registry
from voice.speech.errors import SpeechUnavailable
from voice.speech.stt import ElevenLabsRealtimeSTT, OpenAICompatibleSTT, PocketsphinxSTT
from voice.speech.tts import ElevenLabsTTS, EspeakTTS


@pytest.fixture
def offline_defaults(settings):
    settings.SPEECH_STT_PROVIDER = settings.SPEECH_TTS_PROVIDER = "offline"
    settings.STT_OPENAI_BASE_URL = settings.STT_OPENAI_API_KEY = ""
    settings.ELEVENLABS_API_KEY = ""
    return settings


def test_an_english_call_gets_the_offline_providers_by_default(offline_defaults, company_b):
    assert isinstance(registry.speech_to_text_for(company_b, language="en-US"), PocketsphinxSTT)
    tts = registry.text_to_speech_for(company_b, language="en-US")
    assert isinstance(tts, EspeakTTS) and tts.voices == {"en": "en-us+f2", "de": "de+f2"}


def test_a_german_call_goes_to_the_transcription_server_when_one_is_configured(offline_defaults, company_a):
    # given the platform default is offline (English only) and a Whisper server is configured
    offline_defaults.STT_OPENAI_BASE_URL = "http://whisper.internal:8000/v1"
    offline_defaults.STT_OPENAI_API_KEY = "sk-platform"
    offline_defaults.STT_OPENAI_MODEL = "Systran/faster-whisper-small"
    # when a German call asks for its recogniser / then it is the server, with the platform's key
    stt = registry.speech_to_text_for(company_a, language="de-DE")
    assert isinstance(stt, OpenAICompatibleSTT)
    assert (stt.base_url, stt.api_key, stt.model) == ("http://whisper.internal:8000/v1", "sk-platform",
                                                      "Systran/faster-whisper-small")
    # and the offline voice speaks German itself
    assert isinstance(registry.text_to_speech_for(company_a, language="de-DE"), EspeakTTS)


def test_a_german_call_without_a_provider_for_german_is_refused_by_name(offline_defaults, company_a):
    with pytest.raises(SpeechUnavailable, match="no configured STT provider serves 'de-DE'"):
        registry.speech_to_text_for(company_a, language="de-DE")


def test_a_provider_chosen_for_the_company_is_never_swapped_for_another(offline_defaults, company_a):
    offline_defaults.STT_OPENAI_BASE_URL = "http://whisper.internal:8000/v1"
    with pytest.raises(SpeechUnavailable, match="chosen for this company does not serve 'de'"):
        registry.speech_to_text_for(company_a, choice="offline", language="de")


def test_elevenlabs_uses_the_companys_own_key_before_the_platforms(offline_defaults, company_a, company_b):
    offline_defaults.ELEVENLABS_API_KEY = "xi-platform"
    offline_defaults.ELEVENLABS_WS_URL = "ws://127.0.0.1:9/"
    company_a.elevenlabs_api_key = "xi-company-alpha"
    company_a.save()
    company_a.refresh_from_db()
    own = registry.speech_to_text_for(company_a, choice="elevenlabs", language="de")
    platform = registry.text_to_speech_for(company_b, choice="elevenlabs", language="en")
    assert isinstance(own, ElevenLabsRealtimeSTT) and own.api_key == "xi-company-alpha"
    assert own.ws_url == "ws://127.0.0.1:9/" and own.model_id == "scribe_v2_realtime"
    assert isinstance(platform, ElevenLabsTTS) and platform.api_key == "xi-platform"
    assert platform.model_id == "eleven_flash_v2_5"


def test_the_companys_configured_provider_comes_before_the_platform_default(offline_defaults, company_b):
    offline_defaults.ELEVENLABS_API_KEY = "xi-platform"
    company_b.stt_provider = "elevenlabs"  # the admin's per-company choice (a colleague adds the field)
    assert isinstance(registry.speech_to_text_for(company_b, language="en"), ElevenLabsRealtimeSTT)


def test_an_unknown_provider_name_is_refused(offline_defaults, company_b):
    with pytest.raises(SpeechUnavailable, match="no speech-to-text provider 'deepgram'"):
        registry.speech_to_text_for(company_b, choice="deepgram", language="en")


def test_the_hints_are_the_companys_active_services_and_name(company_b):
    Service.objects.create(company=company_b, name="Teeth cleaning", duration_minutes=30)
    Service.objects.create(company=company_b, name="Check-up", duration_minutes=30)
    Service.objects.create(company=company_b, name="Retired", duration_minutes=30, active=False)
    hints = registry.speech_hints_for(company_b, names=("Erika Mustermann",))
    assert hints.services == ("Check-up", "Teeth cleaning")
    assert hints.names == ("Erika Mustermann",) and hints.phrases == ("Beta Dental",)


def test_the_agents_voice_settings_are_its_elevenlabs_voice(company_b):
    agent = Agent.objects.create(company=company_b, agent_id="agent_voice_1", name="Desk", voice_id="11labs-Adrian",
                                 elevenlabs_voice_id="EXAVITQu4vr4xnSDxMaL", voice_stability=0.3,
                                 voice_similarity_boost=0.9, voice_speed=1.1)
    voice = registry.voice_settings_for(agent)
    assert (voice.voice_id, voice.stability, voice.similarity_boost, voice.speed) == (
        "EXAVITQu4vr4xnSDxMaL", 0.3, 0.9, 1.1)


def test_turn_settings_come_from_the_vad_settings(settings):
    settings.VAD_AGGRESSIVENESS, settings.VAD_MIN_SPEECH_MS = 3, 160
    settings.VAD_END_SILENCE_MS, settings.VAD_MAX_UTTERANCE_MS = 500, 9000
    turns = registry.turn_settings()
    assert (turns.aggressiveness, turns.min_speech_ms, turns.end_silence_ms, turns.max_utterance_ms) == (
        3, 160, 500, 9000)
