"""Voices, two kinds (reference retell.md §5.6, twilio_elevenlabs.md B2).

- A Retell agent's `voice_id` is Retell's own id ("11labs-Adrian", "retell-Cimo"), as Retell's
  voice list (GET /list-voices) gives it. The list a company's workspace offers is read with
  the SDK (`retell_config.selectors.retell_voices`); RETELL_VOICES is the offline default,
  shown when Retell cannot be asked.
- This server's own speech (the Twilio path) speaks through ElevenLabs with an ElevenLabs
  voice id (20 letters and digits), stability and similarity: ELEVENLABS_VOICES are offered
  for it. Legacy ElevenLabs voices stay usable by id.
"""

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class RetellVoice:
    """One of Retell's voices, with the fields of its VoiceResponse this product shows."""

    voice_id: str
    voice_name: str
    provider: str
    gender: str
    accent: str = ""

    @property
    def label(self) -> str:
        details = ", ".join(part for part in (self.provider, self.gender, self.accent) if part)
        return f"{self.voice_name} ({details}) — {self.voice_id}"

    @classmethod
    def from_response(cls, item: dict) -> "RetellVoice":
        """A VoiceResponse of Retell's voice list, its fields read liberally (absent: empty)."""
        return cls(voice_id=str(item.get("voice_id") or ""), voice_name=str(item.get("voice_name") or ""),
                   provider=str(item.get("provider") or ""), gender=str(item.get("gender") or ""),
                   accent=str(item.get("accent") or ""))


# A snapshot of voices every Retell workspace offers; Retell's own list wins whenever it can be read.
RETELL_VOICES = [
    RetellVoice("11labs-Adrian", "Adrian", "elevenlabs", "male", "American"),
    RetellVoice("11labs-Brynne", "Brynne", "elevenlabs", "female", "American"),
    RetellVoice("11labs-Chloe", "Chloe", "elevenlabs", "female", "Australian"),
    RetellVoice("11labs-Marissa", "Marissa", "elevenlabs", "female", "American"),
    RetellVoice("openai-Nova", "Nova", "openai", "female", "American"),
    RetellVoice("openai-Shimmer", "Shimmer", "openai", "female", "American"),
    RetellVoice("retell-Cimo", "Cimo", "platform", "male"),
]
DEFAULT_VOICE_ID = "11labs-Adrian"


@dataclass(frozen=True)
class ElevenLabsVoice:
    name: str
    voice_id: str
    description: str
    legacy: bool = False


ELEVENLABS_VOICES = [
    ElevenLabsVoice("Rachel", "21m00Tcm4TlvDq8ikWAM", "Professional female; recommended for a dental reception",
                    legacy=True),
    ElevenLabsVoice("Adam", "pNInz6obpgDQGcFmaJgB", "Professional male", legacy=True),
    ElevenLabsVoice("Bella / Sarah", "EXAVITQu4vr4xnSDxMaL", "Warm, friendly female (ElevenLabs now names it Sarah)"),
    ElevenLabsVoice("Antoni", "ErXwobaYiN019PkySvjV", "Calm, reassuring male", legacy=True),
    ElevenLabsVoice("George", "JBFqnCBsd6RMkjVDRZzb", "Warm British male"),
    ElevenLabsVoice("Laura", "FGY2WhTYpPnrIDTdsKH5", "Upbeat American female"),
]
ELEVENLABS_VOICE_CHOICES = [(v.voice_id, f"{v.name} ({v.voice_id})") for v in ELEVENLABS_VOICES]

_ELEVENLABS_ID = re.compile(r"[A-Za-z0-9]{20}")


def is_elevenlabs_voice_id(voice_id: str) -> bool:
    """Is this an ElevenLabs voice id (20 letters and digits), not one of Retell's ("11labs-Adrian")?"""
    return bool(_ELEVENLABS_ID.fullmatch(voice_id or ""))
