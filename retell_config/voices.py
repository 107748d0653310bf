"""The ElevenLabs voices offered for agents (reference B2). Legacy voices stay usable by id."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Voice:
    name: str
    voice_id: str
    description: str
    legacy: bool = False


VOICES = [
    Voice("Rachel", "21m00Tcm4TlvDq8ikWAM", "Professional female; recommended for a dental reception", legacy=True),
    Voice("Adam", "pNInz6obpgDQGcFmaJgB", "Professional male", legacy=True),
    Voice("Bella / Sarah", "EXAVITQu4vr4xnSDxMaL", "Warm, friendly female (ElevenLabs now names it Sarah)"),
    Voice("Antoni", "ErXwobaYiN019PkySvjV", "Calm, reassuring male", legacy=True),
    Voice("George", "JBFqnCBsd6RMkjVDRZzb", "Warm British male"),
    Voice("Laura", "FGY2WhTYpPnrIDTdsKH5", "Upbeat American female"),
]
VOICE_CHOICES = [(v.voice_id, f"{v.name} ({v.voice_id})") for v in VOICES]
DEFAULT_VOICE_ID = "21m00Tcm4TlvDq8ikWAM"
