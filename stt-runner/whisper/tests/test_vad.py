"""Silero VAD at 8 kHz: speech in real telephony prompts, none in silence or noise."""

from __future__ import annotations

import numpy as np
import pytest

from ozen_whisper.config import VadConfig
from ozen_whisper.vad import SileroModel, VadEvent, VadStream

from .conftest import ASTERISK, DATA_DIR, data_or_skip, load_wav_8k


@pytest.fixture(scope="module")
def model() -> SileroModel:
    return SileroModel()


def run(model: SileroModel, pcm16: np.ndarray, chunk: int = 800, **cfg: object) -> list[VadEvent]:
    vad = VadStream(model, VadConfig(**cfg))  # type: ignore[arg-type]
    audio = pcm16.astype(np.float32) / 32768
    events: list[VadEvent] = []
    for i in range(0, len(audio), chunk):
        events += vad.feed(audio[i : i + chunk])
    return events + vad.flush()


@pytest.mark.parametrize("name", ["agent-pass.wav", "conf-kicked.wav", "vm-nobox.wav"])
def test_speech_found_in_asterisk_prompts(model: SileroModel, name: str) -> None:
    pcm = load_wav_8k(data_or_skip(ASTERISK / name))
    padded = np.concatenate([np.zeros(8000, np.int16), pcm, np.zeros(8000, np.int16)])
    events = run(model, padded)
    starts = [e for e in events if e.kind == "start"]
    ends = [e for e in events if e.kind == "end"]
    assert starts and len(starts) == len(ends)
    # Speech begins after the second of silence we put in front (less the padding) ...
    assert 7000 <= starts[0].sample <= 8000 + len(pcm) // 4
    # ... and the last end falls inside the trailing second of silence.
    assert 8000 + len(pcm) * 3 // 4 <= ends[-1].sample <= len(padded)


def test_no_speech_in_silence(model: SileroModel) -> None:
    assert run(model, np.zeros(8000 * 10, np.int16)) == []


def test_no_speech_in_white_noise(model: SileroModel) -> None:
    rng = np.random.default_rng(7)
    noise = (rng.standard_normal(8000 * 10) * 1500).astype(np.int16)
    assert run(model, noise) == []


def test_state_carried_across_feeds_of_any_size(model: SileroModel) -> None:
    """The same audio cut in odd pieces gives the same events as in 100 ms frames."""
    pcm = load_wav_8k(data_or_skip(ASTERISK / "dir-instr.wav"))
    assert run(model, pcm, chunk=800) == run(model, pcm, chunk=97)


def test_multi_speaker_call_splits_into_utterances(model: SileroModel) -> None:
    pcm = load_wav_8k(data_or_skip(DATA_DIR / "vad" / "aepyx_8k.wav"))
    events = run(model, pcm[: 8000 * 60])
    assert len([e for e in events if e.kind == "start"]) >= 3


def test_pause_precedes_end_at_the_same_sample(model: SileroModel) -> None:
    pcm = load_wav_8k(data_or_skip(ASTERISK / "agent-pass.wav"))
    padded = np.concatenate([pcm, np.zeros(8000, np.int16)])
    events = run(model, padded, min_silence_ms=400, speech_pad_ms=100)
    pauses = [e for e in events if e.kind == "pause"]
    end = [e for e in events if e.kind == "end"][-1]
    assert pauses and pauses[-1].sample == end.sample


def test_min_silence_controls_splitting(model: SileroModel) -> None:
    pcm = load_wav_8k(data_or_skip(ASTERISK / "demo-echotest.wav"))
    short = run(model, pcm, min_silence_ms=200)
    long = run(model, pcm, min_silence_ms=2000)
    count = lambda ev: len([e for e in ev if e.kind == "start"])  # noqa: E731
    assert count(short) > count(long) >= 1
