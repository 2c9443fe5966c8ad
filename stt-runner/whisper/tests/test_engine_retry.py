"""A final the short encoder window reads badly is decoded again with the full 30 s window (real
base model, a real 2 s Hebrew utterance)."""

from __future__ import annotations

import numpy as np
import pytest

from ozen_whisper.bench import mulaw_roundtrip
from ozen_whisper.config import StreamConfig
from ozen_whisper.engine import Engine, weak_final
from ozen_whisper.streaming import DecodeRequest, Segment, keep_segment, pass_words

from .conftest import DATA_DIR, data_or_skip, model_or_skip
from .test_server import load_wav_as_8k

# he/saspeech sas_02 ("אוי מוצא שמי טנדוגמה" at 20 or 30 s) cut where base at a 10 s window read
# it as nothing, or as "ע ע" (mean log-probability -1.17), on this machine
CUTS = [(1760, 800), (1920, 800)]


@pytest.fixture(scope="module")
def engine() -> Engine:
    cfg = StreamConfig()
    return Engine(
        model_or_skip("base"),
        final_min_window_ms=10_000,
        keep_segment=lambda s: keep_segment(s, cfg),
        log_prob_threshold=cfg.log_prob_threshold,
    )


def final(audio: np.ndarray, expect_words: bool) -> DecodeRequest:
    return DecodeRequest(
        kind="final",
        utt=0,
        audio_8k=audio,
        start_sample=0,
        beam=5,
        language="he",
        prompt=None,
        hotwords=None,
        expect_words=expect_words,
    )


def test_a_weak_final_after_partials_read_words_gets_the_full_window(engine: Engine) -> None:
    pcm = load_wav_as_8k(data_or_skip(DATA_DIR / "he" / "saspeech" / "sas_02.wav"))
    x = mulaw_roundtrip(pcm).astype(np.float32) / 32768
    before = engine.full_window_retries
    for start, cut in CUTS:
        out = engine.decode(final(x[start : len(x) - cut], expect_words=True))
        got = pass_words(out.segments, StreamConfig()).words
        assert len(got) >= 3, (start, cut, got)
    assert engine.full_window_retries > before


def test_no_second_decode_for_an_utterance_no_partial_read() -> None:
    """Noise the VAD took for speech: what Whisper makes of it is not worth a second decode
    unless a partial pass read words in it; a confident final never is."""
    cfg = StreamConfig()
    keep = lambda s: keep_segment(s, cfg)  # noqa: E731
    silence = np.zeros(8000, np.float32)
    no_speech = Segment(" ע ע", 0, 1.0, no_speech_prob=0.7, avg_logprob=-1.5)
    unsure = Segment(" ע ע", 0, 1.0, no_speech_prob=0.05, avg_logprob=-1.17)
    sure = Segment(" שלום לכם", 0, 1.0, no_speech_prob=0.05, avg_logprob=-0.4)
    for segments in ([], [no_speech], [unsure]):
        assert not weak_final(final(silence, expect_words=False), segments, keep, -1.0)
        assert weak_final(final(silence, expect_words=True), segments, keep, -1.0)
    assert not weak_final(final(silence, expect_words=True), [sure], keep, -1.0)
