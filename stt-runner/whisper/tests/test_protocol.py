"""The wire format: round trips (property-tested) and what a bad frame becomes."""

from __future__ import annotations

import io
import struct

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from ozen_whisper.protocol import (
    AudioFrame,
    BadFrame,
    JsonFrame,
    decode_body,
    encode_audio,
    encode_json,
    read_frame,
)


@given(
    key=st.text(min_size=1, max_size=40),
    start=st.integers(min_value=0, max_value=2**40),
    samples=st.lists(st.integers(min_value=-32768, max_value=32767), max_size=400),
)
def test_audio_frames_round_trip(key: str, start: int, samples: list[int]) -> None:
    pcm = np.array(samples, dtype=np.int16)
    frame = read_frame(io.BytesIO(encode_audio(key, start, pcm)))
    assert isinstance(frame, AudioFrame)
    assert frame.key == key and frame.start_sample == start
    assert frame.pcm.tolist() == samples


@given(st.dictionaries(st.text(max_size=10), st.integers() | st.text(max_size=20), max_size=5))
def test_json_frames_round_trip(extra: dict[str, object]) -> None:
    message = {**extra, "type": "open"}
    frame = read_frame(io.BytesIO(encode_json(message)))
    assert isinstance(frame, JsonFrame) and frame.message == message


@given(st.binary(max_size=64))
def test_any_body_decodes_to_a_frame_or_a_reason(body: bytes) -> None:
    assert isinstance(decode_body(body), JsonFrame | AudioFrame | BadFrame)


def test_bad_frames_say_what_is_wrong() -> None:
    assert decode_body(b"") == BadFrame("empty frame (length 0)")
    assert decode_body(b"\x07abc") == BadFrame("unknown frame kind 7")
    assert decode_body(b"\x01{nope") == BadFrame("JSON frame of 5 bytes is not UTF-8 JSON")
    assert decode_body(b'\x01{"a":1}') == BadFrame("JSON frame has no string `type`")
    assert decode_body(b"\x01[1]") == BadFrame("JSON frame is not an object")
    short = b"\x02\x00\x05ab"
    assert isinstance(decode_body(short), BadFrame)
    odd = b"\x02\x00\x01k" + struct.pack(">d", 0) + b"\x01"
    assert decode_body(odd) == BadFrame("audio frame has an odd number of PCM bytes")
    negative = b"\x02\x00\x01k" + struct.pack(">d", -1)
    assert decode_body(negative) == BadFrame("audio frame start sample is -1.0")


def test_an_oversized_frame_is_skipped_and_the_next_one_read() -> None:
    big = struct.pack(">IB", 101, 1) + b"x" * 100
    stream = io.BytesIO(big + encode_json({"type": "stats"}))
    assert read_frame(stream, max_bytes=50) == BadFrame("frame length 101 is over the limit 50")
    assert read_frame(stream, max_bytes=50) == JsonFrame({"type": "stats"})
    assert read_frame(stream) is None


def test_a_frame_cut_short_is_the_end_of_the_stream() -> None:
    assert read_frame(io.BytesIO(encode_json({"type": "stats"})[:-2])) is None
