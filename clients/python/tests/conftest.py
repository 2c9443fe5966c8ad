"""The real stack for the client's tests: the edge on workerd and a runner process, started by
``ozen stack`` (Node), and simulated Twilio calls placed by ``ozen call`` (Twilio's buffer model,
``--heard``). Nothing here fakes the edge."""

from __future__ import annotations

import json
import math
import os
import secrets
import signal
import struct
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ozen_client import read_wav

REPO = Path(__file__).resolve().parents[3]
OZEN = ["node", str(REPO / "tools/bin/ozen.js")]
SPEECH = REPO / "tools/speech"
READ_ONLY_TOKEN = "read-only-token"


@dataclass
class Stack:
    url: str
    public_url: str
    auth_token: str
    api_token: str
    proc: subprocess.Popen[str]


def start_stack(
    *settings: str, engine: str = "null", model: str | None = None, port: int | None = None
) -> Stack:
    """``ozen stack`` with ``NAME=VALUE`` edge settings; stops when the test run's stdin closes."""
    args = [*OZEN, "stack", "--engine", engine, "--until-stdin-closes"]
    if model:
        args += ["--model", model]
    if port:
        args += ["--port", str(port)]
    for s in settings:
        args += ["--set", s]
    proc = subprocess.Popen(
        args,
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        proc.wait(10)
        raise RuntimeError(f"ozen stack exited {proc.returncode} before it was up")
    info = json.loads(line)
    return Stack(info["url"], info["publicUrl"], info["authToken"], info["apiToken"], proc)


def stop_stack(stack: Stack) -> None:
    assert stack.proc.stdin is not None
    stack.proc.stdin.close()
    try:
        stack.proc.wait(20)
    except subprocess.TimeoutExpired:
        os.killpg(stack.proc.pid, signal.SIGTERM)
        stack.proc.wait(10)


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    """The null engine (with the runner's speech activity detector: ``speech.started``),
    ``BARGE_IN=speech``, nothing played on start, a small event window and a 3 s queue."""
    s = start_stack(
        "GREETING=agent",
        "BARGE_IN=speech",
        f"EVENTS_TOKEN={READ_ONLY_TOKEN}",
        "SUBSCRIBER_WINDOW=4",
        "PLAYBACK_QUEUE_MS=3000",
    )
    yield s
    stop_stack(s)


# ---- audio


def new_call_sid() -> str:
    return "CA" + secrets.token_hex(16)


def mulaw_wav(mulaw: bytes) -> bytes:
    """An 8 kHz mono mu-law WAV (format 7) around ``mulaw``."""
    fmt = struct.pack("<HHIIHH", 7, 1, 8000, 8000, 1, 8)
    return (
        b"RIFF"
        + struct.pack("<I", 4 + 8 + len(fmt) + 8 + len(mulaw))
        + b"WAVE"
        + b"fmt "
        + struct.pack("<I", len(fmt))
        + fmt
        + b"data"
        + struct.pack("<I", len(mulaw))
        + mulaw
    )


def pcm_wav(pcm: bytes, rate_hz: int) -> bytes:
    """A mono PCM16 WAV around ``pcm`` (little-endian samples)."""
    fmt = struct.pack("<HHIIHH", 1, 1, rate_hz, rate_hz * 2, 2, 16)
    return (
        b"RIFF"
        + struct.pack("<I", 4 + 8 + len(fmt) + 8 + len(pcm))
        + b"WAVE"
        + b"fmt "
        + struct.pack("<I", len(fmt))
        + fmt
        + b"data"
        + struct.pack("<I", len(pcm))
        + pcm
    )


def silence(ms: int) -> bytes:
    """mu-law 8 kHz silence."""
    return b"\xff" * (8 * ms)


def speech(name: str) -> bytes:
    """The project's own prompt ``tools/speech/{name}.wav``, mu-law 8 kHz."""
    fmt, audio = read_wav((SPEECH / f"{name}.wav").read_bytes())
    assert fmt.encoding == "mulaw"
    return audio


def tone(rate_hz: int, ms: int, freq_hz: float = 440.0, amplitude: int = 6000) -> bytes:
    """A sine tone, PCM16 little-endian."""
    n = rate_hz * ms // 1000
    w = 2 * math.pi * freq_hz / rate_hz
    return struct.pack(f"<{n}h", *(round(amplitude * math.sin(w * i)) for i in range(n)))


def heard_segments(heard_wav: Path, threshold: int = 200) -> list[tuple[int, int]]:
    """Where the caller heard something, as [start_ms, end_ms) runs of 20 ms frames."""
    fmt, pcm = read_wav(heard_wav.read_bytes())
    assert fmt.encoding == "pcm16" and fmt.sample_rate_hz == 8000
    samples = struct.unpack(f"<{len(pcm) // 2}h", pcm)
    runs: list[tuple[int, int]] = []
    for f in range(len(samples) // 160):
        loud = max(abs(s) for s in samples[f * 160 : (f + 1) * 160]) > threshold
        if not loud:
            continue
        start, end = f * 20, (f + 1) * 20
        if runs and runs[-1][1] >= start - 60:  # gaps of up to 60 ms (a word's pause) join
            runs[-1] = (runs[-1][0], end)
        else:
            runs.append((start, end))
    return runs


class SimulatedCall:
    """``ozen call`` in the background: a Twilio call with ``mulaw`` (8 kHz), then hang-up."""

    def __init__(self, stack: Stack, mulaw: bytes, *, heard: bool = True) -> None:
        self.call_sid = new_call_sid()
        self._dir = tempfile.TemporaryDirectory()
        d = Path(self._dir.name)
        (d / "caller.wav").write_bytes(mulaw_wav(mulaw))
        self.heard_path = d / "heard.wav"
        self.summary_path = d / "summary.json"
        args = [
            *OZEN,
            "call",
            stack.url,
            "--audio",
            str(d / "caller.wav"),
            "--auth-token",
            stack.auth_token,
            "--public-url",
            stack.public_url,
            "--call-sid",
            self.call_sid,
            "--json",
            str(self.summary_path),
        ]
        if heard:
            args += ["--heard", str(self.heard_path)]
        self.proc = subprocess.Popen(args, cwd=REPO, stdin=subprocess.DEVNULL)

    def wait(self, timeout_s: float = 60) -> dict[str, Any]:
        """Until the call hung up; its summary."""
        code = self.proc.wait(timeout_s)
        summary: dict[str, Any] = json.loads(self.summary_path.read_text())
        assert code == 0, summary
        return summary

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self._dir.cleanup()


@pytest.fixture
def place_call(stack: Stack) -> Iterator[Any]:
    calls: list[SimulatedCall] = []

    def place(mulaw: bytes, **kw: Any) -> SimulatedCall:
        c = SimulatedCall(stack, mulaw, **kw)
        calls.append(c)
        return c

    yield place
    for c in calls:
        c.close()
