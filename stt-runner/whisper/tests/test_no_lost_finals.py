"""Nothing lost because the machine is slow: every utterance of a short prompt gets exactly one
final, on a starved worker (one decode thread of one CPU thread, many calls at once) and on a
worker stopped (SIGSTOP) around the end of speech, with the close arriving in the same burst.

The prompts are the ones that got no final (or a repeated one) in a loaded bench run of
2026-11-26 (en/asterisk-8k, tiny.en): short utterances whose decode with an encoder window of
audio + 1 s looped or came out empty (filtered), so no final was sent at all.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

import jiwer
import numpy as np
import numpy.typing as npt
import pytest

from .conftest import (
    ASTERISK,
    Worker,
    asterisk_transcripts,
    data_or_skip,
    load_wav_8k,
    model_or_skip,
)

LOST_IN_THE_LOADED_RUN = [
    "conf-hasjoin.wav",
    "conf-now-recording.wav",
    "conf-waitforleader.wav",
    "dir-nomore.wav",
    "number-not-answering.wav",
    "please-try-call-later.wav",
    "queue-thankyou.wav",
    "spy-misdn.wav",
    "vm-reachoper.wav",
    "vm-review-urgent.wav",  # came out twice ("Press 4 ... urgent. Press 4 ... urgent.")
]
SILENCE_1S = np.zeros(8000, np.int16)
TAIL = np.zeros(3 * 8000, np.int16)  # the bench's 3 s before the hang-up


def _norm(text: str) -> str:
    return " ".join("".join(c for c in text.lower() if c.isalnum() or c.isspace()).split())


def _check_one_final(name: str, reference: str, got: list[dict[str, Any]]) -> None:
    finals = [m for m in got if m["type"] == "final"]
    assert len(finals) == 1, (name, finals)
    # letters compared without spaces ("M-I-S-D-N." for "M I S D N"); a repeat shows in the length
    text = _norm(finals[0]["text"]).replace(" ", "")
    ref = _norm(reference).replace(" ", "")
    assert float(jiwer.cer(ref, text)) <= 0.25, (name, finals[0]["text"])
    assert len(text) <= 1.3 * len(ref), (name, "repeated", finals[0]["text"])
    assert got[-1]["type"] == "closed", (name, got[-3:])


def _collect(worker: Worker, keys: set[str], timeout_s: float) -> dict[str, list[dict[str, Any]]]:
    got: dict[str, list[dict[str, Any]]] = {k: [] for k in keys}
    closed: set[str] = set()
    deadline = time.monotonic() + timeout_s
    while closed != keys:
        m = worker.next(max(0.1, deadline - time.monotonic()))
        if m.get("key") in got:
            got[m["key"]].append(m)
            if m["type"] == "closed":
                closed.add(m["key"])
    return got


@pytest.fixture(scope="module")
def starved_worker() -> Iterator[Worker]:
    model_or_skip("tiny.en")
    data_or_skip(ASTERISK)
    w = Worker("--model", "tiny.en", "--pool", "1", "--cpu-threads", "1")
    ready = w.wait_for(lambda m: m["type"] in ("ready", "fatal"), 120)
    assert ready["type"] == "ready", ready
    yield w
    assert w.close() == 0


def _audio() -> dict[str, npt.NDArray[np.int16]]:
    return {
        n: np.concatenate([SILENCE_1S, load_wav_8k(ASTERISK / n)]) for n in LOST_IN_THE_LOADED_RUN
    }


def test_every_short_prompt_gets_one_final_on_a_starved_worker(starved_worker: Worker) -> None:
    texts = asterisk_transcripts()
    audio = {n: np.concatenate([a, TAIL]) for n, a in _audio().items()}
    for n in audio:
        starved_worker.send({"type": "open", "key": n, "mode": "stream", "language": "en"})
    longest = max(len(a) for a in audio.values())
    for i in range(0, longest, 800):  # interleaved 100 ms frames, as the runner sends them
        for n, a in audio.items():
            if i < len(a):
                starved_worker.audio(n, i, a[i : i + 800])
    for n in audio:
        starved_worker.send({"type": "close", "key": n})
    got = _collect(starved_worker, set(audio), 300)
    for n in audio:
        _check_one_final(n, texts[n], got[n])
    stats = starved_worker.stats()
    assert stats["sessions"] == 0 and stats["queue"] == 0 and stats["decode_errors"] == 0


def test_a_worker_stopped_at_the_end_of_speech_still_sends_every_final(
    starved_worker: Worker,
) -> None:
    """Speech in real time, the worker stopped as the speech ends (a speculative final may be
    queued or decoding), the tail and the close written while it is stopped, then it goes on."""
    texts = asterisk_transcripts()
    speech = _audio()
    names = list(speech)[:4]
    keys = {f"stop-{n}": n for n in names}
    for k in keys:
        starved_worker.send({"type": "open", "key": k, "mode": "stream", "language": "en"})
    longest = max(len(speech[n]) for n in names)
    t0 = time.monotonic()
    for i in range(0, longest, 800):
        for k, n in keys.items():
            if i < len(speech[n]):
                starved_worker.audio(k, i, speech[n][i : i + 800])
        wait = t0 + (i + 800) / 8000 - time.monotonic()
        if wait > 0:
            time.sleep(wait)
    time.sleep(0.3)  # the pause after the speech: speculative finals start
    pid = starved_worker.proc.pid
    os.kill(pid, signal.SIGSTOP)
    try:

        def rest() -> None:
            for k, n in keys.items():
                starved_worker.audio(k, len(speech[n]), TAIL)
                starved_worker.send({"type": "close", "key": k})

        writer = threading.Thread(target=rest, daemon=True)
        writer.start()
        time.sleep(1.5)
    finally:
        os.kill(pid, signal.SIGCONT)
    writer.join(30)
    got = _collect(starved_worker, set(keys), 300)
    for k, n in keys.items():
        _check_one_final(n, texts[n], got[k])
