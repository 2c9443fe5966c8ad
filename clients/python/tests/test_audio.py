"""WAV files (PCM16, mu-law, WAVE_FORMAT_EXTENSIBLE) and chunks within the protocol's limit."""

from __future__ import annotations

import struct

import pytest
from conftest import mulaw_wav, pcm_wav
from hypothesis import given, settings
from hypothesis import strategies as st

from ozen_client import MAX_CHUNK_BYTES, AudioFormat, read_wav
from ozen_client.audio import split_chunks


def test_reads_pcm16_and_mulaw_wavs() -> None:
    assert read_wav(pcm_wav(b"\x01\x00\x02\x00", 24000)) == (
        AudioFormat("pcm16", 24000),
        b"\x01\x00\x02\x00",
    )
    assert read_wav(mulaw_wav(b"\x7f\xff")) == (AudioFormat("mulaw", 8000), b"\x7f\xff")


def test_reads_wave_format_extensible_with_the_pcm_subformat() -> None:
    fmt = struct.pack("<HHIIHHHHI", 0xFFFE, 1, 16000, 32000, 2, 16, 22, 16, 0) + struct.pack(
        "<H14s", 1, b"\x00" * 14
    )
    wav = b"RIFF" + struct.pack("<I", 0) + b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
    wav += b"data" + struct.pack("<I", 4) + b"\x00\x01\x00\x02"
    assert read_wav(wav) == (AudioFormat("pcm16", 16000), b"\x00\x01\x00\x02")


@pytest.mark.parametrize(
    ("wav", "message"),
    [
        (b"OggS" + b"\x00" * 40, "not a RIFF/WAVE"),
        (pcm_wav(b"", 22050), "22050 Hz is not supported"),
        (pcm_wav(b"", 16000).replace(b"\x01\x00\x01\x00", b"\x01\x00\x02\x00", 1), "expected mono"),
    ],
)
def test_refuses_what_ozen_cannot_play(wav: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        read_wav(wav)


# correctness, not speed: building 300 KB of audio can take longer than Hypothesis' 200 ms
# deadline on a loaded machine
@settings(deadline=None)
@given(
    st.integers(0, 300_000),
    st.sampled_from(
        [AudioFormat("pcm16", r) for r in (8000, 16000, 24000, 48000)]
        + [AudioFormat("mulaw", 8000)]
    ),
    st.integers(1, 5000),
)
def test_chunks_are_within_64_kib_whole_samples_and_lose_nothing(
    size: int, fmt: AudioFormat, chunk_ms: int
) -> None:
    audio = bytes(i % 251 for i in range(size))
    chunks = list(split_chunks(audio, fmt, chunk_ms))
    assert b"".join(chunks) == audio
    assert all(len(c) <= MAX_CHUNK_BYTES for c in chunks)
    if fmt.encoding == "pcm16":
        assert all(len(c) % 2 == 0 for c in chunks[:-1])
