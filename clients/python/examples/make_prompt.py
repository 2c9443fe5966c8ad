"""Makes ``prompt.wav``, the example agent's answer: espeak-ng's speech resampled to 16 kHz PCM16
(a rate TTS services give), trimmed to 100 ms of silence on each side.

Committed, so only when the text changes; needs espeak-ng (``apt-get install espeak-ng``) and
numpy with soxr (the whisper worker's venv has both)::

    stt-runner/whisper/.venv/bin/python clients/python/examples/make_prompt.py
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import wave
from pathlib import Path

import numpy as np
import soxr

TEXT = "Thank you. Let me check that for you, one moment please."
VOICE, WORDS_PER_MINUTE = "en-us+f3", 145
RATE_HZ = 16000
PAD_MS = 100


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).with_name("prompt.wav")
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "espeak.wav"
        subprocess.run(
            ["espeak-ng", "-v", VOICE, "-s", str(WORDS_PER_MINUTE), "-w", str(raw), TEXT],
            check=True,
        )
        with wave.open(str(raw)) as w:
            rate = w.getframerate()
            pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float32)
    resampled = soxr.resample(pcm, rate, RATE_HZ, quality="HQ")
    loud = np.flatnonzero(np.abs(resampled) > 300)
    pad = RATE_HZ * PAD_MS // 1000
    start, end = max(0, loud[0] - pad), min(len(resampled), loud[-1] + pad)
    samples = np.clip(np.round(resampled[start:end]), -32768, 32767).astype("<i2")
    with wave.open(str(out), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE_HZ)
        w.writeframes(samples.tobytes())
    print(f"wrote {out}: {len(samples) / RATE_HZ:.2f} s at {RATE_HZ} Hz")


if __name__ == "__main__":
    main()
