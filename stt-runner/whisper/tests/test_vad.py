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


def test_both_model_rates_report_in_call_samples(model: SileroModel) -> None:
    """The 16 kHz model hears the upsampled audio, but its events are 8 kHz stream samples."""
    pcm = load_wav_8k(data_or_skip(ASTERISK / "agent-pass.wav"))
    padded = np.concatenate([np.zeros(8000, np.int16), pcm, np.zeros(8000, np.int16)])
    at8 = [e for e in run(model, padded, model_rate_hz=8000) if e.kind in ("start", "end")]
    at16 = [e for e in run(model, padded, model_rate_hz=16000) if e.kind in ("start", "end")]
    assert [e.kind for e in at8] == [e.kind for e in at16]
    for a, b in zip(at8, at16, strict=True):
        assert abs(a.sample - b.sample) <= 8000 * 3 // 10, (a, b)


def test_16k_model_ends_speech_sooner_than_8k(model: SileroModel) -> None:
    """What the 16 kHz default is for: over these prompts its end of speech comes earlier."""
    names = ["agent-pass.wav", "conf-kicked.wav", "conf-onlyperson.wav", "demo-thanks.wav"]
    names += ["confbridge-lock-out.wav", "conf-hasjoin.wav", "confbridge-remove-last-in.wav"]
    total = {8000: 0, 16000: 0}
    for name in names:
        pcm = load_wav_8k(data_or_skip(ASTERISK / name))
        padded = np.concatenate([pcm, np.zeros(8000, np.int16)])
        for rate in total:
            ends = [e for e in run(model, padded, model_rate_hz=rate) if e.kind == "end"]
            assert ends[-1].speech_end is not None
            total[rate] += ends[-1].speech_end
    assert total[16000] < total[8000] - len(names) * 8000 * 3 // 100  # > 30 ms sooner on average


def test_unknown_model_rate_is_refused(model: SileroModel) -> None:
    with pytest.raises(ValueError, match="11025"):
        VadStream(model, VadConfig(model_rate_hz=11025))
