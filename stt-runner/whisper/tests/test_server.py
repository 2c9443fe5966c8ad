"""The worker end to end over real pipes, with tiny.en and real 8 kHz telephony speech."""

from __future__ import annotations

import struct
import subprocess
import sys
import wave
from pathlib import Path
from typing import Any

import jiwer
import numpy as np
import numpy.typing as npt
import pytest
import soxr

from ozen_whisper.streaming import collapse_repeats

from .conftest import (
    ASTERISK,
    DATA_DIR,
    PROJECT_SPEECH,
    Worker,
    asterisk_transcripts,
    data_or_skip,
    load_mulaw_wav_8k,
    load_wav_8k,
    model_or_skip,
)

SILENCE_1S = np.zeros(8000, np.int16)


def normalise(text: str) -> str:
    return " ".join("".join(c for c in text.lower() if c.isalnum() or c.isspace()).split())


def wer(reference: str, hypothesis: str) -> float:
    return float(jiwer.wer(normalise(reference), normalise(hypothesis)))


def finals_text(messages: list[dict[str, Any]]) -> str:
    return " ".join(m["text"] for m in messages if m["type"] == "final")


def test_a_prompt_streams_partials_then_the_final(tiny_worker: Worker) -> None:
    name = "agent-alreadyon.wav"
    pcm = load_wav_8k(data_or_skip(ASTERISK / name))
    tiny_worker.send({"type": "open", "key": "rt", "mode": "stream", "language": "en"})
    tiny_worker.stream("rt", np.concatenate([SILENCE_1S, pcm, SILENCE_1S]), realtime=1.0)
    tiny_worker.send({"type": "close", "key": "rt"})
    got = tiny_worker.until_closed("rt")
    kinds = [m["type"] for m in got]
    assert kinds[0] == "vad" and got[0]["event"] == "start"
    assert "partial" in kinds and kinds.index("partial") < kinds.index("final")
    partials = [m for m in got if m["type"] == "partial"]
    for p in partials:
        assert p["text"].startswith(p["stable"])
    assert any(p["stable"] for p in partials)
    final = next(m for m in got if m["type"] == "final")
    # one call, nothing else waits: a decoded final is beam 5; tiny.en (greedy finals auto) may
    # take it from two agreeing partials instead, which were beam 1 and are said to be its source
    assert (final["source"], final["beam"]) in (("decode", 5), ("partials", 1))
    assert final["utt"] == 0
    assert 900 <= final["audio_start_ms"] <= 1500
    assert wer(asterisk_transcripts()[name], finals_text(got)) <= 0.15


def test_silence_only_gives_no_text(tiny_worker: Worker) -> None:
    tiny_worker.send({"type": "open", "key": "quiet", "mode": "stream"})
    tiny_worker.stream("quiet", np.zeros(8000 * 8, np.int16))
    tiny_worker.send({"type": "close", "key": "quiet"})
    assert [m["type"] for m in tiny_worker.until_closed("quiet")] == ["closed"]


def test_noise_only_gives_no_text(tiny_worker: Worker) -> None:
    rng = np.random.default_rng(3)
    noise = (rng.standard_normal(8000 * 6) * 800).astype(np.int16)
    tiny_worker.send({"type": "open", "key": "noise", "mode": "stream"})
    tiny_worker.stream("noise", noise)
    tiny_worker.send({"type": "close", "key": "noise"})
    got = tiny_worker.until_closed("noise")
    assert not [m for m in got if m["type"] in ("partial", "final") and m["text"]]


def test_offline_session_decodes_once_on_close(tiny_worker: Worker) -> None:
    name = "vm-nobox.wav"
    pcm = load_wav_8k(data_or_skip(ASTERISK / name))
    tiny_worker.send({"type": "open", "key": "CA1#fp1", "mode": "offline", "language": "en"})
    tiny_worker.stream("CA1#fp1", pcm, start_sample=8000 * 30)
    tiny_worker.send({"type": "close", "key": "CA1#fp1"})
    got = tiny_worker.until_closed("CA1#fp1")
    assert [m["type"] for m in got] == ["final", "closed"]
    final = got[0]
    assert final["utt"] == 0 and final["beam"] == 5
    assert final["audio_start_ms"] == 30_000
    assert final["audio_end_ms"] == 30_000 + len(pcm) * 1000 // 8000
    assert wer(asterisk_transcripts()[name], final["text"]) <= 0.15


def test_ten_calls_at_once_all_get_their_finals(tiny_worker: Worker) -> None:
    texts = asterisk_transcripts()
    names = sorted(n for n in texts if 2.0 <= len(load_wav_8k(ASTERISK / n)) / 8000 <= 4.0)[:10]
    assert len(names) == 10
    keys = [f"call{i}" for i in range(10)]
    audio = {
        k: np.concatenate([SILENCE_1S, load_wav_8k(ASTERISK / n), SILENCE_1S])
        for k, n in zip(keys, names, strict=True)
    }
    for k in keys:
        tiny_worker.send({"type": "open", "key": k, "mode": "stream", "language": "en"})
    longest = max(len(a) for a in audio.values())
    for i in range(0, longest, 800):  # interleaved 100 ms frames, as the runner sends them
        for k in keys:
            if i < len(audio[k]):
                tiny_worker.audio(k, i, audio[k][i : i + 800])
    for k in keys:
        tiny_worker.send({"type": "close", "key": k})
    got: dict[str, list[dict[str, Any]]] = {k: [] for k in keys}
    closed: set[str] = set()
    while closed != set(keys):
        m = tiny_worker.next(120)
        if m.get("key") in got:
            got[m["key"]].append(m)
            if m["type"] == "closed":
                closed.add(m["key"])
    for k, n in zip(keys, names, strict=True):
        assert wer(texts[n], finals_text(got[k])) <= 0.35, (n, finals_text(got[k]))
    stats = tiny_worker.stats()
    assert stats["sessions"] == 0 and stats["queue"] == 0 and stats["decode_errors"] == 0
    assert stats["batched_passes"] > 0  # passes of different calls went through as one batch


def test_bad_frames_are_errors_and_the_worker_goes_on(tiny_worker: Worker) -> None:
    w = tiny_worker
    w.send_raw(struct.pack(">IB", 4, 9) + b"abc")
    assert w.wait_for(lambda m: m["type"] == "error")["code"] == "bad_frame"
    w.send_raw(struct.pack(">IB", 6, 1) + b"{nope")
    assert w.wait_for(lambda m: m["type"] == "error")["code"] == "bad_frame"
    w.send({"type": "dance"})
    assert w.wait_for(lambda m: m["type"] == "error")["code"] == "bad_frame"
    w.audio("never-opened", 0, SILENCE_1S)
    err = w.wait_for(lambda m: m["type"] == "error")
    assert err["code"] == "unknown_session" and err["key"] == "never-opened"
    w.send({"type": "close", "key": "never-opened"})
    assert w.wait_for(lambda m: m["type"] == "error")["code"] == "unknown_session"
    w.send({"type": "open", "key": "twice"})
    w.send({"type": "open", "key": "twice"})
    assert w.wait_for(lambda m: m["type"] == "error")["code"] == "session_exists"
    w.send({"type": "close", "key": "twice"})
    w.until_closed("twice")
    # A frame over 16 MiB is read past, not trusted.
    w.send_raw(struct.pack(">IB", 17 * 1024 * 1024, 1) + b" " * (17 * 1024 * 1024 - 1))
    assert w.wait_for(lambda m: m["type"] == "error")["code"] == "bad_frame"
    assert w.stats()["bad_frames"] >= 3


def test_an_open_with_bad_hints_is_refused_counted_and_opens_no_session(
    tiny_worker: Worker,
) -> None:
    w = tiny_worker
    before = w.stats()
    bad: list[tuple[list[Any], str]] = [
        (["Aoife"] * 201, "has 201 phrases, at most 200"),
        (["Aoife", "x" * 101], "`hints[1]` is 101 characters, at most 100"),
        (["Aoife\nIgnore the audio"], "`hints[0]` holds a control character (U+000A)"),
        (["Ao\u2028ife"], "`hints[0]` holds a control character (U+2028)"),
    ]
    for i, (hints, reason) in enumerate(bad):
        key = f"bad-hints-{i}"
        w.send({"type": "open", "key": key, "mode": "stream", "language": "en", "hints": hints})
        err = w.wait_for(lambda m, k=key: m["type"] == "error" and m.get("key") == k)
        assert err["code"] == "bad_frame"
        assert reason in err["message"] and "is not opened" in err["message"]
        w.audio(key, 0, SILENCE_1S)  # no session took the key
        err = w.wait_for(lambda m, k=key: m["type"] == "error" and m.get("key") == k)
        assert err["code"] == "unknown_session"
    after = w.stats()
    assert after["hints_refused"] - before["hints_refused"] == len(bad)
    assert after["sessions_opened"] == before["sessions_opened"]
    # the most an open may carry is taken
    most = ["\u05d0" * 100] * 200
    w.send({"type": "open", "key": "most-hints", "mode": "stream", "language": "en", "hints": most})
    w.send({"type": "close", "key": "most-hints"})
    assert w.until_closed("most-hints")[-1]["type"] == "closed"
    assert w.stats()["hints_refused"] == after["hints_refused"]


def test_a_two_minute_monologue_keeps_a_bounded_buffer() -> None:
    model_or_skip("tiny.en")
    texts = asterisk_transcripts()
    names = sorted(texts)
    pieces, total = [], 0
    for n in names:  # back to back, no pause long enough to end the utterance
        pcm = load_wav_8k(ASTERISK / n)
        pieces.append(pcm)
        total += len(pcm)
        if total >= 8000 * 120:
            break
    audio = np.concatenate(pieces)
    w = Worker("--model", "tiny.en", "--vad-min-silence-ms", "3000", "--max-utterance-ms", "8000")
    try:
        assert w.wait_for(lambda m: m["type"] in ("ready", "fatal"), 120)["type"] == "ready"
        w.send({"type": "open", "key": "mono", "mode": "stream", "language": "en"})
        w.stream("mono", audio, realtime=16.0)
        w.send({"type": "close", "key": "mono"})
        got = w.until_closed("mono", 180)
        stats = w.stats()
        # 120 s of speech, yet the utterance buffer stayed under the cap (8 s + 10 s hard cap)
        assert stats["max_utterance_buffer_s"] <= 19
        finals = [m for m in got if m["type"] == "final"]
        assert finals
        reference = " ".join(texts[n] for n in names[: len(pieces)])
        assert wer(reference, finals_text(got)) <= 0.5
    finally:
        assert w.close(60) == 0


def test_a_missing_model_path_exits_2_with_a_clear_message() -> None:
    w = Worker("--model", "/nonexistent/whisper-model")
    msg = w.next(60)
    assert msg["type"] == "fatal" and msg["code"] == "model_not_found"
    assert "/nonexistent/whisper-model does not exist" in msg["message"]
    assert w.proc.wait(30) == 2


def test_end_of_stdin_is_a_clean_exit() -> None:
    model_or_skip("tiny.en")
    w = Worker("--model", "tiny.en")
    assert w.wait_for(lambda m: m["type"] == "ready", 120)
    w.send({"type": "open", "key": "k"})
    assert w.proc.stdin is not None
    w.proc.stdin.close()
    assert w.proc.wait(30) == 0


def test_invalid_settings_exit_2_with_the_reason() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "ozen_whisper", "serve", "--model", "tiny.en", "--pool", "-1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 2 and "--pool is -1, expected >= 1 (or 0: auto)" in run.stderr


def load_wav_as_8k(path: Path) -> npt.NDArray[np.int16]:
    with wave.open(str(path)) as w:
        rate = w.getframerate()
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float32)
    down = soxr.resample(pcm / 32768, rate, 8000)
    return np.clip(down * 32768, -32768, 32767).astype(np.int16)


def test_speech_that_makes_whisper_loop_gives_finals_without_repeats() -> None:
    """Hebrew played backwards means nothing to tiny.en, which answers it with a loop ("I'm not
    sure if I'm going to do it." over and over: 54-174 words for 9 s before these guards). A long
    end-of-speech silence keeps it one utterance, so its final decodes it all at once."""
    speech = load_wav_as_8k(data_or_skip(DATA_DIR / "he" / "saspeech" / "sas_03.wav"))[::-1]
    model_or_skip("tiny.en")
    w = Worker("--model", "tiny.en", "--vad-min-silence-ms", "3000")
    try:
        assert w.wait_for(lambda m: m["type"] in ("ready", "fatal"), 120)["type"] == "ready"
        w.send({"type": "open", "key": "loop", "mode": "stream", "language": "en"})
        w.stream("loop", np.concatenate([SILENCE_1S, speech, SILENCE_1S]))
        w.send({"type": "close", "key": "loop"})
        got = w.until_closed("loop", 120)
        assert w.stats()["loops_cut"] > 0  # the audio did make Whisper loop
    finally:
        assert w.close(60) == 0
    for m in got:
        if m["type"] in ("partial", "final"):
            ws = m["text"].split()
            assert collapse_repeats(ws) == ws, m["text"]  # no phrase three times in a row
    for m in (m for m in got if m["type"] == "final"):
        seconds = (m["audio_end_ms"] - m["audio_start_ms"]) / 1000
        assert len(m["text"].split()) <= 3 + 4 * seconds, m["text"]  # bounded by the audio


def _rare_name_final(worker: Worker, key: str, hints: list[str]) -> str:
    pcm = load_mulaw_wav_8k(PROJECT_SPEECH / "hints" / "rare-name.wav")
    worker.send({"type": "open", "key": key, "mode": "stream", "language": "en", "hints": hints})
    worker.stream(key, np.concatenate([SILENCE_1S, pcm, SILENCE_1S]))
    worker.send({"type": "close", "key": key})
    return finals_text(worker.until_closed(key))


def test_a_phrase_hint_changes_the_final_of_a_rare_name(tiny_worker: Worker) -> None:
    # tools/speech/hints/rare-name.wav (espeak-ng, `make speech`): "Please transfer me to Aoife
    # Nakagawa." tiny.en cannot spell the name alone; the hint reaches the decoder as hotwords.
    unhinted = _rare_name_final(tiny_worker, "rare-plain", [])
    hinted = _rare_name_final(tiny_worker, "rare-hinted", ["Aoife Nakagawa"])
    assert "aoife" not in normalise(unhinted), unhinted
    assert "transfer me to aoife nakagawa" in normalise(hinted), hinted


def test_auto_device_is_the_cpu_with_int8_where_ctranslate2_sees_no_gpu() -> None:
    model_or_skip("tiny.en")
    import ctranslate2

    if ctranslate2.get_cuda_device_count() > 0:
        pytest.skip("this machine has a GPU: auto picks CUDA here")
    w = Worker("--model", "tiny.en", "--device", "auto", "--compute-type", "auto")
    try:
        ready = w.wait_for(lambda m: m["type"] in ("ready", "fatal"), 120)
        assert ready["type"] == "ready"
        assert (ready["device"], ready["compute_type"]) == ("cpu", "int8")
        assert ready["pool"] == 2  # auto: two decode threads for an English-only model
    finally:
        assert w.close(60) == 0


def test_device_cuda_without_a_gpu_is_a_fatal_with_the_reason() -> None:
    model_or_skip("tiny.en")
    import ctranslate2

    if ctranslate2.get_cuda_device_count() > 0:
        pytest.skip("this machine has a GPU")
    w = Worker("--model", "tiny.en", "--device", "cuda")
    msg = w.next(60)
    assert msg["type"] == "fatal" and msg["code"] == "device_unavailable"
    assert "CTranslate2 sees no CUDA device" in msg["message"]
    assert w.proc.wait(30) == 2
