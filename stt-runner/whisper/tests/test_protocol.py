"""The wire format: round trips (property-tested) and what a bad frame becomes."""

from __future__ import annotations

import io
import struct

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from ozen_whisper.protocol import (
    MAX_HINT_CHARS,
    MAX_OPEN_HINTS,
    AudioFrame,
    BadFrame,
    JsonFrame,
    decode_body,
    encode_audio,
    encode_json,
    hints_problem,
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


# Text a hint may hold: any character but controls, line/paragraph separators and surrogates.
_HINT_CHARS = st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters="\u2028\u2029")
_CONTROLS = st.sampled_from(
    ["\x00", "\t", "\n", "\r", "\x1b", "\x7f", "\x85", "\x9f", "\u2028", "\u2029", "\ud800"]
)


@given(st.lists(st.text(_HINT_CHARS, max_size=MAX_HINT_CHARS), max_size=MAX_OPEN_HINTS))
def test_hints_within_the_limits_are_taken(hints: list[str]) -> None:
    assert hints_problem(hints) is None


def test_the_largest_hints_an_open_may_carry_are_taken() -> None:
    assert hints_problem(["א" * MAX_HINT_CHARS] * MAX_OPEN_HINTS) is None
    assert hints_problem([]) is None


@given(
    st.lists(st.text(_HINT_CHARS, max_size=20), min_size=1, max_size=10),
    st.data(),
)
def test_a_control_character_anywhere_refuses_the_hints_naming_which(
    hints: list[str], data: st.DataObject
) -> None:
    i = data.draw(st.integers(0, len(hints) - 1))
    at = data.draw(st.integers(0, len(hints[i])))
    control = data.draw(_CONTROLS)
    hints[i] = hints[i][:at] + control + hints[i][at:]
    problem = hints_problem(hints)
    assert problem == f"open `hints[{i}]` holds a control character (U+{ord(control):04X})"


def test_too_many_too_long_or_not_strings_are_refused_with_the_reason() -> None:
    assert (
        hints_problem(["a"] * (MAX_OPEN_HINTS + 1)) == "open `hints` has 201 phrases, at most 200"
    )
    long = ["ok", "x" * (MAX_HINT_CHARS + 1)]
    assert hints_problem(long) == "open `hints[1]` is 101 characters, at most 100"
    assert hints_problem(["ok", 7]) == "open `hints[1]` is not a string"
    assert hints_problem("Aoife") == "open `hints` must be a list of strings"
    assert hints_problem({"a": 1}) == "open `hints` must be a list of strings"
