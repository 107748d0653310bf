"""Twilio Media Streams as a sans-IO state machine: plain frames in, events and frames out."""

import base64
import json

import pytest

from voice.protocols.twilio_media import (
    MAX_FRAME_BYTES,
    Connected,
    Dtmf,
    Ignored,
    Malformed,
    Media,
    MarkPlayed,
    MediaStream,
    ProtocolUsageError,
    Started,
    Stopped,
)

START = {"event": "start", "sequenceNumber": "1", "streamSid": "MZ123",
         "start": {"accountSid": "AC1", "streamSid": "MZ123", "callSid": "CA123", "tracks": ["inbound"],
                   "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
                   "customParameters": {"token": "t0k3n", "n": 5}}}


def started() -> MediaStream:
    stream = MediaStream()
    stream.receive(json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"}))
    stream.receive(json.dumps(START))
    return stream


def media_frame(audio: bytes, chunk: int = 1, timestamp: int = 20) -> str:
    return json.dumps({"event": "media", "sequenceNumber": str(chunk + 1), "streamSid": "MZ123",
                       "media": {"track": "inbound", "chunk": str(chunk), "timestamp": str(timestamp),
                                 "payload": base64.b64encode(audio).decode()}})


def test_connected_then_start_gives_the_stream_and_the_custom_parameters_as_strings():
    stream = MediaStream()

    connected = stream.receive(json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"}))
    start = stream.receive(json.dumps(START))

    assert connected == [Connected("Call", "1.0.0")]
    assert start == [Started("MZ123", "CA123", "AC1", {"token": "t0k3n", "n": "5"}, ("inbound",))]
    assert (stream.stream_sid, stream.call_sid) == ("MZ123", "CA123")


def test_media_is_decoded_mulaw_with_twilios_string_numbers_read_as_numbers():
    stream = started()

    [event] = stream.receive(media_frame(b"\xff" * 160, chunk=7, timestamp=140))

    assert event == Media(b"\xff" * 160, timestamp_ms=140, chunk=7)


@pytest.mark.parametrize("frame, reason", [
    (b'{"event": "media"}', "binary frame"),
    ("not json", "not JSON"),
    ("[1, 2]", "not an object"),
    (json.dumps({"event": "media", "media": {"payload": "AAAA"}}), "media before start"),
    ("x" * (MAX_FRAME_BYTES + 1), "too large"),
])
def test_bad_frames_are_reported_and_never_raise(frame, reason):
    [event] = MediaStream().receive(frame)

    assert isinstance(event, Malformed) and reason in event.reason


def test_a_payload_that_is_not_base64_and_an_unknown_event_do_not_stop_the_stream():
    stream = started()

    bad = stream.receive(json.dumps({"event": "media", "streamSid": "MZ123", "media": {"payload": "@@@"}}))
    unknown = stream.receive(json.dumps({"event": "hello"}))
    good = stream.receive(media_frame(b"\x7f" * 160))

    assert isinstance(bad[0], Malformed) and unknown == [Ignored("hello")]
    assert isinstance(good[0], Media)


def test_every_frame_we_send_carries_the_stream_sid_and_media_is_raw_base64():
    stream = started()

    media = json.loads(stream.media(b"\x00\x01\x02"))
    mark = json.loads(stream.mark("r1-0"))
    clear = json.loads(stream.clear())

    assert media == {"event": "media", "streamSid": "MZ123", "media": {"payload": "AAEC"}}
    assert mark == {"event": "mark", "streamSid": "MZ123", "mark": {"name": "r1-0"}}
    assert clear == {"event": "clear", "streamSid": "MZ123"}


def test_nothing_can_be_sent_before_start():
    with pytest.raises(ProtocolUsageError):
        MediaStream().media(b"\xff")


def test_a_mark_echoed_before_a_clear_was_played_and_one_echoed_by_the_clear_was_not():
    # Given two pieces of audio, each followed by a mark, when the first mark is echoed,
    # the caller barges in (clear) and Twilio then echoes the second, then only the first was heard.
    stream = started()
    stream.media(b"\xff" * 800)
    stream.mark("a")
    stream.media(b"\xff" * 800)
    stream.mark("b")

    first = stream.receive(json.dumps({"event": "mark", "streamSid": "MZ123", "mark": {"name": "a"}}))
    assert stream.pending_marks == ["b"]
    stream.clear()
    second = stream.receive(json.dumps({"event": "mark", "streamSid": "MZ123", "mark": {"name": "b"}}))

    assert first == [MarkPlayed("a")]
    assert isinstance(second[0], Ignored)
    assert (stream.played("a"), stream.played("b")) == (True, False)
    assert stream.samples_sent == 1600 and stream.pending_marks == []


def test_dtmf_and_stop():
    stream = started()

    digit = stream.receive(json.dumps({"event": "dtmf", "streamSid": "MZ123",
                                       "dtmf": {"track": "inbound_track", "digit": "0"}}))
    stop = stream.receive(json.dumps({"event": "stop", "streamSid": "MZ123",
                                      "stop": {"accountSid": "AC1", "callSid": "CA123"}}))
    after = stream.receive(media_frame(b"\xff" * 160))

    assert digit == [Dtmf("0")] and stop == [Stopped("CA123")]
    assert isinstance(after[0], Ignored) and stream.stopped


def test_a_second_start_is_refused():
    stream = started()

    [event] = stream.receive(json.dumps(START))

    assert isinstance(event, Malformed) and stream.call_sid == "CA123"
