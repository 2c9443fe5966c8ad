"""The agent's audio as ozen takes it: formats, WAV files, and chunks within the protocol's limit.

ozen plays PCM16 (signed 16-bit little-endian, mono) at 8000, 16000, 24000 or 48000 Hz, or mu-law
at 8000 Hz; the edge resamples and encodes what Twilio plays. A chunk carries at most 64 KiB of
audio (``docs/agent-control.md``).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "MAX_CHUNK_BYTES",
    "SUPPORTED_RATES_HZ",
    "AudioFormat",
    "bytes_per_second",
    "read_wav",
    "split_chunks",
]

#: The most audio one chunk may carry, bytes (the edge refuses more: ``chunk_too_large``).
MAX_CHUNK_BYTES = 64 * 1024
SUPPORTED_RATES_HZ = (8000, 16000, 24000, 48000)

Encoding = Literal["pcm16", "mulaw"]


@dataclass(frozen=True, slots=True)
class AudioFormat:
    """An agent audio format: ``pcm16`` at a supported rate, or ``mulaw`` at 8000 Hz."""

    encoding: Encoding
    sample_rate_hz: int

    def __post_init__(self) -> None:
        if self.encoding not in ("pcm16", "mulaw"):
            raise ValueError(f"encoding {self.encoding!r} is not supported; pcm16 or mulaw")
        if self.sample_rate_hz not in SUPPORTED_RATES_HZ or (
            self.encoding == "mulaw" and self.sample_rate_hz != 8000
        ):
            raise ValueError(
                f"{self.encoding} at {self.sample_rate_hz} Hz is not supported; "
                "pcm16 at 8000, 16000, 24000 or 48000 Hz, or mulaw at 8000 Hz"
            )


def bytes_per_second(f: AudioFormat) -> int:
    """Bytes of one second of audio in ``f``."""
    return 8000 if f.encoding == "mulaw" else f.sample_rate_hz * 2


def read_wav(data: bytes) -> tuple[AudioFormat, bytes]:
    """A RIFF/WAVE file's format and audio bytes: mono PCM 16-bit or mu-law (format 7).

    Written here because the standard library's ``wave`` module does not read mu-law files,
    which are what a telephony prompt often is. Raises ``ValueError`` naming what is wrong.
    """
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise ValueError("not a RIFF/WAVE file")
    at = 12
    fmt: AudioFormat | None = None
    while at + 8 <= len(data):
        chunk_id = data[at : at + 4]
        (size,) = struct.unpack_from("<I", data, at + 4)
        body = at + 8
        if chunk_id == b"fmt ":
            if size < 16:
                raise ValueError(f"WAV fmt chunk is {size} bytes, expected at least 16")
            tag, channels, rate = struct.unpack_from("<HHI", data, body)
            (bits,) = struct.unpack_from("<H", data, body + 14)
            if tag == 0xFFFE and size >= 26:  # WAVE_FORMAT_EXTENSIBLE: the subformat's tag
                (tag,) = struct.unpack_from("<H", data, body + 24)
            if channels != 1:
                raise ValueError(f"WAV has {channels} channels, expected mono")
            if tag == 1 and bits == 16:
                fmt = AudioFormat("pcm16", rate)
            elif tag == 7 and bits == 8:
                fmt = AudioFormat("mulaw", rate)
            else:
                raise ValueError(
                    f"WAV format {tag} with {bits} bits is not supported; PCM 16-bit or mu-law"
                )
        elif chunk_id == b"data":
            if fmt is None:
                raise ValueError("WAV data chunk before its fmt chunk")
            end = min(len(data), body + size) if size != 0xFFFFFFFF else len(data)
            audio = data[body:end]
            if fmt.encoding == "pcm16" and len(audio) % 2:
                audio = audio[:-1]
            return fmt, audio
        at = body + size + (size & 1)
    raise ValueError("WAV has no data chunk")


def split_chunks(audio: bytes, fmt: AudioFormat, chunk_ms: int) -> Iterator[bytes]:
    """``audio`` in chunks of ``chunk_ms`` (at most 64 KiB; whole samples for PCM16)."""
    size = max(1, min(MAX_CHUNK_BYTES, bytes_per_second(fmt) * chunk_ms // 1000))
    if fmt.encoding == "pcm16":
        size -= size % 2
        size = max(size, 2)
    for at in range(0, len(audio), size):
        yield audio[at : at + size]
