"""The runner <-> worker wire format (docs/whisper-protocol.md), pure: bytes in, frames out.

Each frame: ``u32 BE`` length of what follows, ``u8`` kind, payload. Kind 0x01 is one UTF-8 JSON
object with a string ``type``; kind 0x02 (runner -> worker) is audio: ``u16 BE`` key length, the
key, ``f64 BE`` start sample (8 kHz), PCM16 LE mono. Hand-written like the runner's side
(stt-runner/src/engines/whisper/protocol.ts): a length-prefixed frame is a few lines, and no
library owns this format.
"""

from __future__ import annotations

import json
import math
import re
import struct
from dataclasses import dataclass
from typing import Any, BinaryIO

import numpy as np
import numpy.typing as npt

FRAME_JSON = 0x01
FRAME_AUDIO = 0x02
MAX_FRAME_BYTES = 16 * 1024 * 1024

MAX_OPEN_HINTS = 200
"""Phrase hints one ``open`` may carry (the runner merges at most this many for a call)."""
MAX_HINT_CHARS = 100
"""Characters one hint may have (the runner's limit for a phrase, Google's)."""

# C0 and C1 controls (tab and newline among them), line and paragraph separators, lone surrogates
# (JSON may carry "\ud800"): the set the runner refuses in a phrase (shared/src/relay/phrases.ts)
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")


@dataclass(frozen=True)
class JsonFrame:
    message: dict[str, Any]


@dataclass(frozen=True)
class AudioFrame:
    key: str
    start_sample: int
    pcm: npt.NDArray[np.int16]


@dataclass(frozen=True)
class BadFrame:
    """What was wrong with a frame; the stream goes on after it."""

    message: str


Frame = JsonFrame | AudioFrame | BadFrame


def hints_problem(hints: object) -> str | None:
    """What is wrong with an ``open``'s ``hints`` (None: nothing), for a ``bad_frame`` error.

    At most MAX_OPEN_HINTS strings, each at most MAX_HINT_CHARS characters with no control
    character. The worker checks them itself: they go into the decoder's prompt of every pass,
    and a runner's cap is not the worker's guarantee.
    """
    if not isinstance(hints, list):
        return "open `hints` must be a list of strings"
    if len(hints) > MAX_OPEN_HINTS:
        return f"open `hints` has {len(hints)} phrases, at most {MAX_OPEN_HINTS}"
    for i, hint in enumerate(hints):
        if not isinstance(hint, str):
            return f"open `hints[{i}]` is not a string"
        if len(hint) > MAX_HINT_CHARS:
            return f"open `hints[{i}]` is {len(hint)} characters, at most {MAX_HINT_CHARS}"
        control = _CONTROL.search(hint)
        if control:
            return f"open `hints[{i}]` holds a control character (U+{ord(control.group()):04X})"
    return None


def encode_json(message: dict[str, Any]) -> bytes:
    body = json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return struct.pack(">IB", len(body) + 1, FRAME_JSON) + body


def encode_audio(key: str, start_sample: int, pcm: npt.NDArray[np.int16]) -> bytes:
    """An audio frame (the runner's job; here for tests and tools)."""
    k = key.encode("utf-8")
    payload = pcm.astype("<i2").tobytes()
    body_len = 1 + 2 + len(k) + 8 + len(payload)
    return (
        struct.pack(">IBH", body_len, FRAME_AUDIO, len(k))
        + k
        + struct.pack(">d", float(start_sample))
        + payload
    )


def decode_body(body: bytes) -> Frame:
    """One frame body (kind + payload) -> a frame, or what is wrong with it."""
    if not body:
        return BadFrame("empty frame (length 0)")
    kind = body[0]
    if kind == FRAME_JSON:
        try:
            value = json.loads(body[1:].decode("utf-8"))
        # ValueError: also a number past Python's int conversion limit; RecursionError: deep nesting
        except (ValueError, RecursionError):
            return BadFrame(f"JSON frame of {len(body) - 1} bytes is not UTF-8 JSON")
        if not isinstance(value, dict):
            return BadFrame("JSON frame is not an object")
        if not isinstance(value.get("type"), str):
            return BadFrame("JSON frame has no string `type`")
        # the worker echoes what it was sent (a session's key) in its replies: they must encode
        try:
            encode_json(value)
        except UnicodeEncodeError:
            return BadFrame("JSON frame has text that is not valid Unicode (a lone surrogate)")
        except RecursionError:
            return BadFrame("JSON frame is nested too deep")
        return JsonFrame(value)
    if kind == FRAME_AUDIO:
        if len(body) < 3:
            return BadFrame(f"audio frame is {len(body)} bytes, too short for a key")
        (key_len,) = struct.unpack_from(">H", body, 1)
        pcm_at = 3 + key_len + 8
        if len(body) < pcm_at:
            return BadFrame(
                f"audio frame is {len(body)} bytes, its {key_len}-byte key needs {pcm_at}"
            )
        if (len(body) - pcm_at) % 2:
            return BadFrame("audio frame has an odd number of PCM bytes")
        try:
            key = body[3 : 3 + key_len].decode("utf-8")
        except UnicodeDecodeError:
            return BadFrame("audio frame key is not UTF-8")
        (start,) = struct.unpack_from(">d", body, 3 + key_len)
        if not math.isfinite(start) or start < 0:
            return BadFrame(f"audio frame start sample is {start}")
        pcm = np.frombuffer(body, dtype="<i2", offset=pcm_at).astype(np.int16, copy=False)
        return AudioFrame(key, int(start), pcm)
    return BadFrame(f"unknown frame kind {kind}")


def _read_exact(stream: BinaryIO, n: int) -> bytes | None:
    """n bytes, or None at end of stream (a frame cut short counts as the end)."""
    chunks: list[bytes] = []
    while n > 0:
        chunk = stream.read(n)
        if not chunk:
            return None
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def read_frame(stream: BinaryIO, max_bytes: int = MAX_FRAME_BYTES) -> Frame | None:
    """The next frame from a blocking byte stream; None at end of stream.

    A frame over ``max_bytes`` is read past (discarded in chunks) and reported as bad, as the
    protocol asks: the worker goes on with the next frame.
    """
    head = _read_exact(stream, 4)
    if head is None:
        return None
    (length,) = struct.unpack(">I", head)
    if length > max_bytes:
        left = length
        while left > 0:
            chunk = stream.read(min(left, 1 << 20))
            if not chunk:
                return None
            left -= len(chunk)
        return BadFrame(f"frame length {length} is over the limit {max_bytes}")
    body = _read_exact(stream, length) if length else b""
    if body is None:
        return None
    return decode_body(body)
