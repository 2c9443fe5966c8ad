"""Writes a caller's side for trying the example agent: one of the project's prompts, a pause
for the agent's answer, another prompt said over the answer, and silence (8 kHz mu-law WAV).

    clients/python/.venv/bin/python clients/python/examples/caller_audio.py caller.wav
"""

from __future__ import annotations

import struct
import sys
from pathlib import Path

from ozen_client import read_wav

SPEECH = Path(__file__).resolve().parents[3] / "tools/speech"


def speech(name: str) -> bytes:
    fmt, audio = read_wav((SPEECH / f"{name}.wav").read_bytes())
    assert fmt.encoding == "mulaw" and fmt.sample_rate_hz == 8000
    return audio


def silence(ms: int) -> bytes:
    return b"\xff" * (8 * ms)


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "caller.wav")
    audio = silence(500) + speech("password") + silence(3000) + speech("channel") + silence(6000)
    fmt = struct.pack("<HHIIHH", 7, 1, 8000, 8000, 1, 8)
    header = b"RIFF" + struct.pack("<I", 4 + 8 + len(fmt) + 8 + len(audio)) + b"WAVE"
    header += b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(audio))
    out.write_bytes(header + audio)
    print(f"wrote {out}: {len(audio) / 8000:.1f} s")


if __name__ == "__main__":
    main()
