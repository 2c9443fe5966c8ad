"""Worker-level streaming benchmark: `python -m ozen_whisper.bench --model M --set DIR`.

Plays each 8 kHz file (through mu-law, as Twilio delivers it) into one `serve` process at real-time
pace, ``--concurrency`` calls at a time, and prints JSON: TTFP (first partial after speech onset),
partial interval, TTFS (end of speech to the file's last final), WER of the streaming finals and of
one offline decode of the same audio in the same process, and worker CPU per audio second.
``--flood X`` measures the scheduler's fairness instead: each file alone, then beside one call fed
X times faster than real time, and the ratio of the normal call's latencies. Onset
and end of speech come from an offline Silero pass over the file. This measures the worker alone;
`ozen bench stt` measures the whole path (edge, runner, worker).
"""

from __future__ import annotations

import argparse
import itertools
import json
import subprocess
import sys
import threading
import time
import unicodedata
import wave
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import soxr

from .config import VadConfig
from .protocol import JsonFrame, encode_audio, encode_json, read_frame
from .vad import SileroModel, VadStream

FRAME = 800  # 100 ms at 8 kHz, the relay's block


def mulaw_roundtrip(pcm: npt.NDArray[np.int16]) -> npt.NDArray[np.int16]:
    """PCM16 -> G.711 mu-law -> PCM16 (the telephony path's quantisation)."""
    x = pcm.astype(np.float64) / 32768.0
    mu = 255.0
    y = np.sign(x) * np.log1p(mu * np.abs(x)) / np.log1p(mu)
    q = np.round((y + 1) / 2 * 255) / 255 * 2 - 1
    back = np.sign(q) * np.expm1(np.abs(q) * np.log1p(mu)) / mu
    out: npt.NDArray[np.int16] = np.clip(back * 32768.0, -32768, 32767).astype(np.int16)
    return out


def normalise(text: str) -> str:
    """Lower case, marks (niqqud) and punctuation dropped; maqaf and bidi marks as the data's
    README says (../shared/data/README.md)."""
    text = unicodedata.normalize("NFD", text)
    text = text.replace("\u05be", " ").replace("\u05f3", "").replace("\u05f4", "")
    kept = (c for c in text.lower() if c.isalnum() or c.isspace())
    return " ".join("".join(kept).split())


def speech_bounds(model: SileroModel, pcm: npt.NDArray[np.int16]) -> tuple[int, int] | None:
    vad = VadStream(model, VadConfig(min_silence_ms=300, speech_pad_ms=0))
    events = vad.feed((pcm / 32768).astype(np.float32)) + vad.flush()
    starts = [e.sample for e in events if e.kind == "start"]
    ends = [e.sample for e in events if e.kind == "end"]
    return (starts[0], ends[-1]) if starts and ends else None


class Client:
    def __init__(self, args: list[str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ozen_whisper", "serve", *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        self.lock = threading.Lock()
        self.by_key: dict[str, list[tuple[float, dict[str, Any]]]] = {}
        self.other: list[dict[str, Any]] = []
        self.ready = threading.Event()
        self.events = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        stdout: Any = self.proc.stdout
        while (frame := read_frame(stdout)) is not None:
            now = time.monotonic()
            if not isinstance(frame, JsonFrame):
                continue
            m = frame.message
            with self.events:
                if m["type"] == "ready":
                    self.ready.set()
                if "key" in m:
                    self.by_key.setdefault(m["key"], []).append((now, m))
                else:
                    self.other.append(m)
                self.events.notify_all()

    def send(self, data: bytes) -> None:
        assert self.proc.stdin is not None
        with self.lock:
            self.proc.stdin.write(data)
            self.proc.stdin.flush()

    def wait(self, pred: Any, timeout: float = 600) -> None:
        with self.events:
            self.events.wait_for(pred, timeout)


def play(client: Client, key: str, pcm: npt.NDArray[np.int16], language: str) -> float:
    """Real-time play; returns the monotonic time of sample 0."""
    client.send(encode_json({"type": "open", "key": key, "mode": "stream", "language": language}))
    t0 = time.monotonic()
    for i in range(0, len(pcm), FRAME):
        wait = t0 + i / 8000 - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        client.send(encode_audio(key, i, pcm[i : i + FRAME]))
    client.send(encode_json({"type": "close", "key": key}))
    return t0


def play_flood(
    client: Client, key: str, pcm: npt.NDArray[np.int16], speed: float, stop: threading.Event
) -> None:
    """One call fed ``speed`` x faster than real time (round and round ``pcm``) until ``stop``."""
    client.send(encode_json({"type": "open", "key": key, "mode": "stream", "language": "en"}))
    t0 = time.monotonic()
    sent = 0
    while not stop.is_set():
        wait = t0 + sent / 8000 / speed - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        at = sent % len(pcm)
        client.send(encode_audio(key, sent, pcm[at : at + FRAME]))
        sent += len(pcm[at : at + FRAME])
    client.send(encode_json({"type": "close", "key": key}))
    client.wait(lambda: any(m["type"] == "closed" for _, m in client.by_key.get(key, [])))


def call_latencies(
    client: Client, key: str, pcm: npt.NDArray[np.int16], bounds: tuple[int, int], language: str
) -> tuple[float | None, float | None, list[float]]:
    """One call at real time: TTFP, TTFS (ms) and its partial intervals."""
    t0 = play(client, key, pcm, language)
    client.wait(lambda: any(m["type"] == "closed" for _, m in client.by_key.get(key, [])))
    msgs = client.by_key.get(key, [])
    onset, end = bounds
    partials = [t for t, m in msgs if m["type"] == "partial"]
    finals = [t for t, m in msgs if m["type"] == "final"]
    ttfp = (partials[0] - (t0 + onset / 8000)) * 1000 if partials else None
    ttfs = (finals[-1] - (t0 + end / 8000)) * 1000 if finals else None
    return ttfp, ttfs, [(b - a) * 1000 for a, b in itertools.pairwise(partials)]


def flood_bench(
    client: Client,
    audio: dict[str, npt.NDArray[np.int16]],
    bounds: dict[str, tuple[int, int]],
    language: str,
    speed: float,
) -> dict[str, Any]:
    """Each file twice, in turn: alone, then beside one call fed ``speed`` x real time (the
    set's audio back to back). The normal call's latencies, and their ratio to alone."""
    runs: dict[str, dict[str, list[float]]] = {
        "alone": {"ttfp": [], "ttfs": [], "interval": []},
        "beside_flood": {"ttfp": [], "ttfs": [], "interval": []},
    }
    everything = np.concatenate(list(audio.values()))
    for i, n in enumerate(audio):
        for mode in ("alone", "beside_flood"):
            stop = threading.Event()
            flood = threading.Thread(
                target=play_flood, args=(client, f"flood-{i}", everything, speed, stop)
            )
            if mode == "beside_flood":
                flood.start()
                time.sleep(2.0)  # the flood is under way before the call starts
            ttfp, ttfs, intervals = call_latencies(
                client, f"{n}#{mode}", audio[n], bounds[n], language
            )
            if mode == "beside_flood":
                stop.set()
                flood.join()
            r = runs[mode]
            r["ttfp"] += [ttfp] if ttfp is not None else []
            r["ttfs"] += [ttfs] if ttfs is not None else []
            r["interval"] += intervals
    out: dict[str, Any] = {"flood_speed": speed, "files": len(audio)}
    for mode, r in runs.items():
        out[mode] = {f"{k}_ms_p{q}": pct(v, q / 100) for k, v in r.items() for q in (50, 95)}
    out["ratio"] = {
        k: round(b / a, 2) if a and b else None
        for k, a, b in ((k, out["alone"][k], out["beside_flood"][k]) for k in out["alone"])
    }
    return out


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return round(values[min(len(values) - 1, int(q * len(values)))], 1)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m ozen_whisper.bench")
    ap.add_argument("--model", default="tiny.en")
    ap.add_argument("--set", required=True, help="a folder of 8 kHz wavs with transcripts.json")
    ap.add_argument("--limit", type=int, default=20)
    ap.add_argument("--concurrency", type=int, default=1)
    ap.add_argument("--language", default="en")
    ap.add_argument(
        "--flood",
        type=float,
        default=0.0,
        help="fairness: each file alone, then beside one call fed this many times real time",
    )
    ap.add_argument("serve_args", nargs="*", help="extra `serve` flags (after --)")
    args = ap.parse_args(argv)

    import jiwer

    folder = Path(args.set)
    refs = {i["file"]: i["text"] for i in json.loads((folder / "transcripts.json").read_text())}
    names = sorted(refs)[: args.limit]
    vad = SileroModel()
    audio: dict[str, npt.NDArray[np.int16]] = {}
    bounds: dict[str, tuple[int, int]] = {}
    for n in names:
        with wave.open(str(folder / n)) as w:
            rate = w.getframerate()
            pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.int16)
        if rate != 8000:  # telephony: everything goes through 8 kHz first
            down = soxr.resample(pcm.astype(np.float32) / 32768, rate, 8000)
            pcm = np.clip(down * 32768, -32768, 32767).astype(np.int16)
        pcm = mulaw_roundtrip(
            np.concatenate([np.zeros(4000, np.int16), pcm, np.zeros(8000, np.int16)])
        )
        b = speech_bounds(vad, pcm)
        if b:
            audio[n], bounds[n] = pcm, b
    client = Client(["--model", args.model, *args.serve_args])
    client.ready.wait(120)
    if args.flood > 0:
        print(json.dumps(flood_bench(client, audio, bounds, args.language, args.flood), indent=1))
        client.send(encode_json({"type": "shutdown"}))
        client.proc.wait(60)
        return 0
    ttfp: list[float] = []
    ttfs: list[float] = []
    intervals: list[float] = []
    hyps: dict[str, str] = {}
    starts: dict[str, float] = {}
    queue = list(audio)
    threads: list[threading.Thread] = []

    def worker() -> None:
        while True:
            with client.lock:
                if not queue:
                    return
                n = queue.pop(0)
            starts[n] = play(client, n, audio[n], args.language)
            client.wait(lambda n=n: any(m["type"] == "closed" for _, m in client.by_key.get(n, [])))

    t_start = time.monotonic()
    for _ in range(args.concurrency):
        t = threading.Thread(target=worker)
        t.start()
        threads.append(t)
    for t in threads:
        t.join()
    wall = time.monotonic() - t_start
    client.send(encode_json({"type": "stats"}))
    client.wait(lambda: any(m["type"] == "stats" for m in client.other))
    stats = next(m for m in client.other if m["type"] == "stats")
    for n, (onset, end) in bounds.items():
        msgs = client.by_key.get(n, [])
        t0 = starts[n]
        partial_times = [t for t, m in msgs if m["type"] == "partial"]
        final_times = [t for t, m in msgs if m["type"] == "final"]
        hyps[n] = " ".join(m["text"] for _, m in msgs if m["type"] == "final")
        if partial_times:
            ttfp.append((partial_times[0] - (t0 + onset / 8000)) * 1000)
            intervals += [(b - a) * 1000 for a, b in itertools.pairwise(partial_times)]
        if final_times:
            ttfs.append((final_times[-1] - (t0 + end / 8000)) * 1000)
    # Offline: one beam-5 decode of each whole file, in the same process.
    for n in audio:
        key = f"{n}#offline"
        client.send(
            encode_json({"type": "open", "key": key, "mode": "offline", "language": args.language})
        )
        client.send(encode_audio(key, 0, audio[n]))
        client.send(encode_json({"type": "close", "key": key}))
    client.wait(
        lambda: all(
            any(m["type"] == "closed" for _, m in client.by_key.get(f"{n}#offline", []))
            for n in audio
        )
    )
    offline = {
        n: " ".join(m["text"] for _, m in client.by_key[f"{n}#offline"] if m["type"] == "final")
        for n in audio
    }
    client.send(encode_json({"type": "shutdown"}))
    client.proc.wait(60)
    ref_list = [normalise(refs[n]) for n in audio]
    audio_s = sum(len(a) for a in audio.values()) / 8000
    result = {
        "model": args.model,
        "set": str(folder),
        "files": len(audio),
        "audio_s": round(audio_s, 1),
        "concurrency": args.concurrency,
        "ttfp_ms_p50": pct(ttfp, 0.5),
        "ttfp_ms_p95": pct(ttfp, 0.95),
        "partial_interval_ms_p50": pct(intervals, 0.5),
        "ttfs_ms_p50": pct(ttfs, 0.5),
        "ttfs_ms_p95": pct(ttfs, 0.95),
        "wer": round(float(jiwer.wer(ref_list, [normalise(hyps[n]) for n in audio])), 4),
        "wer_offline": round(float(jiwer.wer(ref_list, [normalise(offline[n]) for n in audio])), 4),
        "cpu_s_per_audio_s_streaming": round(stats["cpu_s"] / audio_s, 3),
        "decodes": stats["decodes"],
        "partial_decode_ms_mean": round(
            1000 * stats["partial_decode_s"] / max(stats["partial_decodes"], 1)
        ),
        "final_decode_ms_mean": round(
            1000 * stats["final_decode_s"] / max(stats["final_decodes"], 1)
        ),
        "partials_coalesced": stats["partials_coalesced"],
        "speculative_finals_voided": stats["speculative_finals_voided"],
        "wall_s": round(wall, 1),
    }
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
