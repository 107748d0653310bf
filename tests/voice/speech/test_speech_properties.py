"""Properties of the speech components over arbitrary input (hypothesis): bad audio or text never
raises anything but what the docstrings promise."""

from hypothesis import given, settings
from hypothesis import strategies as st

from voice.speech import audio
from voice.speech.tts import SentenceBuffer
from voice.speech.turns import SpeechEnded, SpeechStarted, TurnDetector, TurnSettings


@settings(max_examples=100, deadline=None, database=None)
@given(st.binary(max_size=2000))
def test_mu_law_decoded_and_encoded_again_decodes_to_the_same_samples(ulaw):
    pcm = audio.ulaw_to_pcm16(ulaw)
    assert audio.ulaw_to_pcm16(audio.pcm16_to_ulaw(pcm)) == pcm


@settings(max_examples=100, deadline=None, database=None)
@given(st.text(max_size=300))
def test_any_payload_text_is_bytes_or_a_value_error(text):
    try:
        assert isinstance(audio.from_base64(text), bytes)
    except ValueError:
        pass


@settings(max_examples=60, deadline=None, database=None)
@given(st.lists(st.binary(min_size=0, max_size=900), max_size=30), st.integers(0, 3))
def test_any_audio_in_any_pieces_gives_turns_that_start_before_they_end(pieces, aggressiveness):
    detector = TurnDetector(TurnSettings(aggressiveness=aggressiveness, min_speech_ms=40, end_silence_ms=100))
    events = [event for piece in pieces for event in detector.feed(piece)] + detector.finish()
    kinds = [type(event) for event in events]
    assert kinds == [SpeechStarted, SpeechEnded] * (len(kinds) // 2)
    for event in events:
        if isinstance(event, SpeechEnded):
            assert len(event.pcm) == 2 * len(event.ulaw) and event.ended_ms >= event.started_ms


@settings(max_examples=150, deadline=None, database=None)
@given(st.lists(st.text(alphabet=st.sampled_from("ab .!?,\n3Dr"), max_size=40), max_size=12))
def test_sentences_handed_out_hold_all_of_the_text_in_order(pieces):
    buffer = SentenceBuffer()
    sentences = [s for piece in pieces for s in buffer.feed(piece)] + buffer.flush()
    assert " ".join(" ".join(sentences).split()) == " ".join("".join(pieces).split())
    assert all(s and s == s.strip() for s in sentences)
