"""eSpeak NG through ctypes: the library and its voice data come from the `espeakng-loader` wheel,
so nothing is installed on the system and nothing is downloaded.

libespeak-ng keeps one global synthesizer per process (one voice, one callback), so every
synthesis runs under one lock; a sentence takes a few milliseconds. The synchronous output
mode hands the samples to a callback while `espeak_Synth` runs.
"""

from __future__ import annotations

import ctypes
import threading

import espeakng_loader

from .errors import SpeechUnavailable

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000  # report a data error instead of exit()ing the process
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_RATE, _PITCH = 1, 3
MIN_WPM, MAX_WPM = 80, 450
DEFAULT_WPM = 175

_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)

_lock = threading.Lock()
_library = None
_sample_rate = 0
_collected: list[bytes] = []


@_CALLBACK
def _on_samples(wave, count, events):  # called by libespeak-ng inside espeak_Synth, under _lock
    if wave and count > 0:
        _collected.append(ctypes.string_at(wave, count * 2))
    return 0  # 0: go on


def _load():
    global _library, _sample_rate
    if _library is not None:
        return _library
    library = ctypes.CDLL(espeakng_loader.get_library_path())
    library.espeak_Initialize.restype = ctypes.c_int
    library.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    library.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
    library.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
    library.espeak_Synth.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
                                     ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
    rate = library.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, espeakng_loader.get_data_path().encode(),
                                     _INITIALIZE_DONT_EXIT)
    if rate <= 0:
        raise SpeechUnavailable("eSpeak NG could not load its voice data")
    library.espeak_SetSynthCallback(_on_samples)
    _library, _sample_rate = library, rate
    return library


def synthesize(text: str, *, voice: str = "en-us", words_per_minute: int = DEFAULT_WPM,
               pitch: int = 50) -> tuple[bytes, int]:
    """Speak `text` with the eSpeak NG voice `voice` ("en-us", "de", "en-us+f2": language, then an
    optional +variant). Returns (int16 little-endian PCM, sample rate in Hz: 22050).

    Raises SpeechUnavailable for a voice the data does not have. Blocking: a few milliseconds a
    sentence; run it in a thread from async code."""
    encoded = text.encode("utf-8")
    with _lock:
        library = _load()
        if library.espeak_SetVoiceByName(voice.encode("utf-8")) != 0:
            raise SpeechUnavailable(f"eSpeak NG has no voice {voice!r}")
        library.espeak_SetParameter(_RATE, max(MIN_WPM, min(MAX_WPM, int(words_per_minute))), 0)
        library.espeak_SetParameter(_PITCH, max(0, min(100, int(pitch))), 0)
        _collected.clear()
        library.espeak_Synth(encoded, len(encoded) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
        library.espeak_Synchronize()
        pcm = b"".join(_collected)
        _collected.clear()
        return pcm, _sample_rate


_PHONEMES_IPA = 0x02


def phonemes(text: str, *, voice: str = "en-us") -> str:
    """How the eSpeak NG voice `voice` pronounces `text`, in IPA ("Mustermann" -> "mˈʌstɚmən");
    clauses are separated by a space. Raises SpeechUnavailable for an unknown voice."""
    buffer = ctypes.create_string_buffer(text.encode("utf-8"))
    position = ctypes.c_void_p(ctypes.addressof(buffer))
    clauses: list[str] = []
    with _lock:
        library = _load()
        library.espeak_TextToPhonemes.restype = ctypes.c_char_p
        library.espeak_TextToPhonemes.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_int, ctypes.c_int]
        if library.espeak_SetVoiceByName(voice.encode("utf-8")) != 0:
            raise SpeechUnavailable(f"eSpeak NG has no voice {voice!r}")
        while position.value:  # libespeak-ng advances the pointer clause by clause, to NULL at the end
            clause = library.espeak_TextToPhonemes(ctypes.byref(position), _CHARS_UTF8, _PHONEMES_IPA)
            if clause:
                clauses.append(clause.decode("utf-8"))
    return " ".join(clauses)
