"""Shared test helpers: the data folder, installed models, and a worker driven over real pipes."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import subprocess
import sys
import threading
import time
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from ozen_whisper import models
from ozen_whisper.protocol import JsonFrame, encode_audio, encode_json, read_frame

WORKER_DIR = Path(__file__).resolve().parent.parent
REPO_ROOT = WORKER_DIR.parent.parent
# The evaluation sets: ../shared/data beside the repository, or where OZEN_SHARED_DATA points;
# OZEN_SHARED_DATA=none hides them, as for a clone on its own (as tools/src/speech-data.ts does).
_SHARED_DATA = os.environ.get("OZEN_SHARED_DATA", "")
DATA_DIR = (
    Path(_SHARED_DATA).resolve()
    if _SHARED_DATA not in ("", "none")
    else REPO_ROOT.parent / "shared" / "data"
)
ASTERISK = DATA_DIR / "en" / "asterisk-8k"


def data_or_skip(path: Path) -> Path:
    """`path` inside an evaluation set, or a skip saying which set and how to get it."""
    parts = path.relative_to(DATA_DIR).parts
    evaluation_set = "/".join(parts[:1] if parts[0] == "vad" else parts[:2])
    how = (
        "put the shared speech data at ../shared/data or point OZEN_SHARED_DATA at it "
        "(docs/benchmarks.md, evaluation sets)"
    )
    if _SHARED_DATA == "none":
        hidden = "hidden by OZEN_SHARED_DATA=none; to run it"
        pytest.skip(f"evaluation set {evaluation_set} {hidden}, {how}")
    if not path.exists():
        pytest.skip(f"evaluation set {evaluation_set} not found at {path}: {how}")
    return path


def load_wav_8k(path: Path) -> npt.NDArray[np.int16]:
    with wave.open(str(path)) as w:
        assert w.getframerate() == 8000 and w.getnchannels() == 1 and w.getsampwidth() == 2
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.int16)


PROJECT_SPEECH = REPO_ROOT / "tools" / "speech"


def load_mulaw_wav_8k(path: Path) -> npt.NDArray[np.int16]:
    """An 8 kHz mono mu-law WAV (format 7, as `make speech` writes tools/speech) as PCM16,
    decoded by G.711's formula (Python's `wave` reads PCM only)."""
    data = path.read_bytes()
    assert data[:4] == b"RIFF" and data[8:12] == b"WAVE"
    pos, fmt, body = 12, b"", b""
    while pos + 8 <= len(data):
        chunk, size = data[pos : pos + 4], int.from_bytes(data[pos + 4 : pos + 8], "little")
        if chunk == b"fmt ":
            fmt = data[pos + 8 : pos + 8 + size]
        elif chunk == b"data":
            body = data[pos + 8 : pos + 8 + size]
        pos += 8 + size + (size & 1)
    tag, channels, rate = (int.from_bytes(fmt[a:b], "little") for a, b in ((0, 2), (2, 4), (4, 8)))
    assert (tag, channels, rate) == (7, 1, 8000), (tag, channels, rate)
    u = ~np.frombuffer(body, dtype=np.uint8).astype(np.int32) & 0xFF
    magnitude = (((u & 0x0F) << 3) + 0x84 << ((u >> 4) & 0x07)) - 0x84
    return np.where(u & 0x80, -magnitude, magnitude).astype(np.int16)


def asterisk_transcripts() -> dict[str, str]:
    items = json.loads((data_or_skip(ASTERISK) / "transcripts.json").read_text())
    return {i["file"]: i["text"] for i in items}


def model_or_skip(name: str) -> str:
    try:
        return models.resolve_model(name).path
    except models.ModelNotFoundError as e:
        pytest.skip(f"{e} (run `make install`)")


class Worker:
    """`python -m ozen_whisper serve` as a child process; messages collected by a reader thread."""

    def __init__(self, *args: str) -> None:
        env = dict(os.environ, HF_HUB_OFFLINE="1")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ozen_whisper", "serve", *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=WORKER_DIR,
            env=env,
        )
        self.messages: queue.Queue[dict[str, Any]] = queue.Queue()
        self.seen: list[dict[str, Any]] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self._stderr: list[bytes] = []
        threading.Thread(target=self._drain_stderr, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        while True:
            frame = read_frame(self.proc.stdout)
            if frame is None:
                return
            assert isinstance(frame, JsonFrame), frame
            self.messages.put(frame.message)

    def _drain_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self._stderr.append(line)

    @property
    def stderr(self) -> str:
        return b"".join(self._stderr).decode(errors="replace")

    def send_raw(self, data: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def send(self, message: dict[str, Any]) -> None:
        self.send_raw(encode_json(message))

    def audio(self, key: str, start_sample: int, pcm: npt.NDArray[np.int16]) -> None:
        self.send_raw(encode_audio(key, start_sample, pcm))

    def next(self, timeout_s: float = 60) -> dict[str, Any]:
        msg = self.messages.get(timeout=timeout_s)
        self.seen.append(msg)
        return msg

    def wait_for(self, pred: Any, timeout_s: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no matching message in {timeout_s}s; saw {self.seen[-5:]}")
            msg = self.next(left)
            if pred(msg):
                return msg

    def until_closed(self, key: str, timeout_s: float = 60) -> list[dict[str, Any]]:
        """Every message for key up to and including its `closed`."""
        out: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout_s
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{key} not closed in {timeout_s}s; got {out[-5:]}")
            msg = self.next(left)
            if msg.get("key") == key:
                out.append(msg)
                if msg["type"] == "closed":
                    return out

    def stats(self) -> dict[str, Any]:
        self.send({"type": "stats"})
        return self.wait_for(lambda m: m["type"] == "stats", 30)

    def stream(
        self,
        key: str,
        pcm: npt.NDArray[np.int16],
        *,
        realtime: float = 0.0,
        frame_samples: int = 800,
        start_sample: int = 0,
    ) -> None:
        """Send pcm in 100 ms frames; realtime=1 paces at real time, 0 sends at once."""
        t0 = time.monotonic()
        for i in range(0, len(pcm), frame_samples):
            self.audio(key, start_sample + i, pcm[i : i + frame_samples])
            if realtime:
                wait = t0 + (i + frame_samples) / 8000 / realtime - time.monotonic()
                if wait > 0:
                    time.sleep(wait)

    def close(self, timeout_s: float = 30) -> int:
        if self.proc.poll() is None:
            with contextlib.suppress(BrokenPipeError, OSError):
                self.send({"type": "shutdown"})
        try:
            return self.proc.wait(timeout=timeout_s)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()


@pytest.fixture(scope="module")
def tiny_worker() -> Iterator[Worker]:
    model_or_skip("tiny.en")
    w = Worker("--model", "tiny.en", "--pool", "2", "--cpu-threads", "1")
    ready = w.wait_for(lambda m: m["type"] in ("ready", "fatal"), 120)
    assert ready["type"] == "ready", ready
    yield w
    assert w.close() == 0
