"""Fuzzing the worker's side of the wire format (ozen_whisper/protocol.py) with hypothesis.

Random bodies, valid frame streams with bytes damaged, and JSON a parser finds hard (deep nesting,
huge numbers, lone surrogates) spliced into valid messages. Properties: nothing raises; every
rejection is a ``BadFrame`` with a message; a damaged body never desyncs the frames after it; what
is accepted can be answered (encoded back); valid frames round-trip.

Each target runs ``OZEN_FUZZ_EXAMPLES`` examples (default 200: a second or two each on a quiet
machine), so CI stays short and a long local hunt is one variable away. A failure prints the shrunk
counterexample; keep it as a regression test (the end of this file).
"""

from __future__ import annotations

import io
import json
import os
import struct
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ozen_whisper.protocol import (
    FRAME_AUDIO,
    FRAME_JSON,
    AudioFrame,
    BadFrame,
    Frame,
    JsonFrame,
    decode_body,
    encode_audio,
    encode_json,
    read_frame,
)

FUZZ = settings(
    max_examples=int(os.environ.get("OZEN_FUZZ_EXAMPLES", "200")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def well_formed(frame: Frame | None) -> None:
    """A frame keeps the decoder's promise: typed, or a BadFrame that says what is wrong."""
    assert isinstance(frame, JsonFrame | AudioFrame | BadFrame)
    if isinstance(frame, BadFrame):
        assert isinstance(frame.message, str) and frame.message
    elif isinstance(frame, JsonFrame):
        assert isinstance(frame.message, dict) and isinstance(frame.message["type"], str)
        # whatever the worker accepted it can answer about (keys are echoed in its replies)
        encode_json(frame.message)
    else:
        assert isinstance(frame.key, str) and frame.start_sample >= 0
        assert frame.pcm.dtype == np.int16


def read_all(data: bytes) -> list[Frame]:
    stream = io.BytesIO(data)
    frames: list[Frame] = []
    while (frame := read_frame(stream, max_bytes=1 << 16)) is not None:
        frames.append(frame)
    return frames


text = st.text(max_size=20)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
    max_leaves=8,
)
field_names = st.sampled_from(["key", "mode", "language", "x"]) | text
#: messages as the runner sends them (open, close, stats, shutdown) and anything shaped like one
messages = st.builds(
    lambda t, extra: {**extra, "type": t},
    st.sampled_from(["open", "close", "stats", "shutdown"]) | text,
    st.dictionaries(field_names, json_values, max_size=4),
)
audio = st.tuples(
    st.text(max_size=30),
    st.integers(min_value=0, max_value=2**52),
    st.lists(st.integers(min_value=-32768, max_value=32767), max_size=200),
)


def encode_any(frame: dict[str, Any] | tuple[str, int, list[int]]) -> bytes:
    if isinstance(frame, dict):
        return encode_json(frame)
    key, start, samples = frame
    return encode_audio(key, start, np.array(samples, dtype=np.int16))


frames = st.lists(messages | audio, min_size=1, max_size=4)
kinds = st.sampled_from([b"\x01", b"\x02"])
bytes_ = st.integers(min_value=0, max_value=255)

#: JSON text a parser finds hard: deep nesting, numbers past int conversion limits, escapes
hard_json = st.one_of(
    st.integers(min_value=1, max_value=200_000).map(lambda n: "[" * n + "]" * n),
    st.integers(min_value=1, max_value=200_000).map(lambda n: "[" * n),
    st.integers(min_value=1, max_value=20_000).map(lambda n: "9" * n),
    st.integers(min_value=1, max_value=20_000).map(lambda n: "1e" + "9" * n),
    st.sampled_from(['"\\ud800"', '"\\udfff\\ud800"', '"\\u0000"', "NaN", "-Infinity", '"\\x"']),
)


@FUZZ
@given(frames)
def test_valid_frames_round_trip(sent: list[dict[str, Any] | tuple[str, int, list[int]]]) -> None:
    got = read_all(b"".join(encode_any(f) for f in sent))
    assert len(got) == len(sent)
    for f, g in zip(sent, got, strict=True):
        if isinstance(f, dict):
            assert isinstance(g, JsonFrame) and g.message == f
        else:
            assert isinstance(g, AudioFrame)
            assert (g.key, g.start_sample, g.pcm.tolist()) == f


@FUZZ
@given(st.binary(max_size=300) | st.builds(bytes.__add__, kinds, st.binary()))
def test_any_body_is_a_frame_or_a_reason(body: bytes) -> None:
    well_formed(decode_body(body))


@FUZZ
@given(st.binary(max_size=400))
def test_any_byte_stream_is_frames_or_reasons(data: bytes) -> None:
    for frame in read_all(data):
        well_formed(frame)


@FUZZ
@given(
    frames,
    st.lists(st.tuples(st.integers(min_value=0), bytes_), min_size=1),
    st.sampled_from([FRAME_JSON, FRAME_AUDIO, 0, 7, 0xFF, None]),
    frames,
)
def test_a_damaged_body_is_one_frame_and_the_rest_decode(
    victims: list[dict[str, Any] | tuple[str, int, list[int]]],
    edits: list[tuple[int, int]],
    kind: int | None,
    after: list[dict[str, Any] | tuple[str, int, list[int]]],
) -> None:
    frame = bytearray(encode_any(victims[0]))
    for at, byte in edits:  # the length prefix stays, the body takes the damage
        if len(frame) > 4:
            frame[4 + at % (len(frame) - 4)] = byte
    if kind is not None and len(frame) > 4:
        frame[4] = kind
    got = read_all(bytes(frame) + b"".join(encode_any(f) for f in after))
    assert len(got) == 1 + len(after)
    well_formed(got[0])
    assert all(not isinstance(g, BadFrame) for g in got[1:])


@FUZZ
@given(messages, hard_json, st.integers(min_value=0))
def test_hard_json_in_a_message_is_a_frame_or_a_reason(
    message: dict[str, Any], hard: str, at: int
) -> None:
    valid = json.dumps(message, ensure_ascii=False)
    # as the value of a field, and spliced in anywhere
    for body in (
        valid[:-1] + ', "hard": ' + hard + "}",
        valid[: at % (len(valid) + 1)] + hard + valid[at % (len(valid) + 1) :],
    ):
        well_formed(decode_body(bytes([FRAME_JSON]) + body.encode("utf-8", "surrogatepass")))


# ---- found by fuzzing: each raised out of decode_body and ended the worker (every call on it)


def test_deeply_nested_json_is_a_bad_frame() -> None:
    frame = decode_body(b"\x01" + b"[" * 100_000)
    assert isinstance(frame, BadFrame) and "not UTF-8 JSON" in frame.message


def test_a_number_past_the_int_conversion_limit_is_a_bad_frame() -> None:
    frame = decode_body(b'\x01{"type":"open","n":' + b"9" * 5000 + b"}")
    assert isinstance(frame, BadFrame) and "not UTF-8 JSON" in frame.message


def test_a_lone_surrogate_is_a_bad_frame_not_a_reply_that_cannot_be_encoded() -> None:
    frame = decode_body(b'\x01{"type":"open","key":"CA1\\ud800"}')
    assert frame == BadFrame("JSON frame has text that is not valid Unicode (a lone surrogate)")


def test_a_bad_frame_is_read_past() -> None:
    data = struct.pack(">IB", 6, FRAME_JSON) + b"[[[[[" + encode_json({"type": "stats"})
    assert read_all(data)[1] == JsonFrame({"type": "stats"})
