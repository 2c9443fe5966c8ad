"""The offline side of `ozen bench stt`: for each call's audio (the 8 kHz PCM16 the edge relays,
i.e. the mu-law the simulator sends, decoded), one beam-5 decode of the whole file with the same
model the worker streams with, and the reference speech segments the latencies are measured from.

Reference speech: Silero VAD (the ONNX model inside faster-whisper) over the same audio upsampled
to 16 kHz with soxr, threshold 0.5, 100 ms minimum silence, no padding: segment ends are where
speech really stops, not where a streaming VAD would decide it had.

Runs in the worker's venv (faster-whisper, soxr). Reads a manifest (JSON: model, language, files
[{id, pcm}]) named on the command line; writes one JSON line per file to stdout:
{"id", "text", "speech_ms": [[start, end], ...], "decode_s"}.
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np
import soxr
from faster_whisper import WhisperModel
from faster_whisper.vad import VadOptions, get_speech_timestamps

SOURCE_RATE_HZ = 8000
MODEL_RATE_HZ = 16000
REFERENCE_VAD = VadOptions(
    threshold=0.5,
    min_silence_duration_ms=100,
    speech_pad_ms=0,
    min_speech_duration_ms=60,
)


def main() -> None:
    with open(sys.argv[1], encoding="utf-8") as f:
        manifest = json.load(f)
    model = WhisperModel(
        manifest["model"],
        device="cpu",
        compute_type=manifest.get("compute_type", "int8"),
    )
    for item in manifest["files"]:
        pcm = np.fromfile(item["pcm"], dtype="<i2").astype(np.float32) / 32768.0
        audio = soxr.resample(pcm, SOURCE_RATE_HZ, MODEL_RATE_HZ, quality="HQ").astype(
            np.float32
        )
        speech = [
            [
                round(s["start"] * 1000 / MODEL_RATE_HZ),
                round(s["end"] * 1000 / MODEL_RATE_HZ),
            ]
            for s in get_speech_timestamps(audio, REFERENCE_VAD)
        ]
        t0 = time.perf_counter()
        segments, _ = model.transcribe(
            audio,
            language=manifest["language"],
            beam_size=5,
            temperature=0.0,
            condition_on_previous_text=False,
            vad_filter=False,
        )
        text = " ".join(s.text.strip() for s in segments).strip()
        out = {
            "id": item["id"],
            "text": text,
            "speech_ms": speech,
            "decode_s": time.perf_counter() - t0,
        }
        print(json.dumps(out, ensure_ascii=False), flush=True)


if __name__ == "__main__":
    main()
