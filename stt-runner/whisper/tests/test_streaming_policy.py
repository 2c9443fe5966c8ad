"""The streaming policy, pure: VAD events and decode results given by hand, no model, no clock."""

from __future__ import annotations

import numpy as np

from ozen_whisper.config import StreamConfig
from ozen_whisper.streaming import (
    AudioBuffer,
    DecodeRequest,
    FinalOut,
    PartialOut,
    Segment,
    StreamPolicy,
    VadOut,
    resample_8k_to_16k,
)
from ozen_whisper.vad import VadEvent

MS = 8  # samples per ms at 8 kHz


def chunk(ms: int) -> np.ndarray:
    return np.zeros(ms * MS, np.float32)


def seg(text: str, start_s: float = 0.0, end_s: float = 1.0) -> Segment:
    return Segment(text, start_s, end_s)


def policy(**cfg: object) -> StreamPolicy:
    return StreamPolicy(
        StreamConfig(**cfg),  # type: ignore[arg-type]
        language="he",
        hints=["ozen"],
        prompt="earlier",
    )


def test_partials_wait_for_enough_audio_and_for_the_last_pass() -> None:
    p = policy(first_partial_min_ms=300, partial_min_new_ms=200)
    p.feed(chunk(100), [VadEvent("start", 0)])
    assert not p.partial_due()
    p.feed(chunk(200), [])
    assert p.partial_due()
    req = p.take_partial()
    assert req is not None and req.kind == "partial" and req.beam == 1
    assert len(req.audio_8k) == 300 * MS and req.language == "he"
    assert req.hotwords == "ozen" and req.prompt == "earlier"
    p.feed(chunk(400), [])
    assert not p.partial_due()  # the last pass is not done
    p.on_partial(req, [seg("hello")], 50)
    assert p.partial_due()  # 400 ms arrived meanwhile


def test_partials_show_the_agreed_prefix_as_stable() -> None:
    p = policy(first_partial_min_ms=100, partial_min_new_ms=100)
    p.feed(chunk(200), [VadEvent("start", 0)])
    r1 = p.take_partial()
    assert r1 is not None
    (o1,) = p.on_partial(r1, [seg("please enter")], 40)
    assert isinstance(o1, PartialOut) and o1.stable == "" and o1.text == "please enter"
    p.feed(chunk(200), [])
    r2 = p.take_partial()
    assert r2 is not None
    (o2,) = p.on_partial(r2, [seg("please enter your")], 40)
    assert isinstance(o2, PartialOut)
    assert o2.stable == "please enter" and o2.text == "please enter your"
    assert o2.audio_start_ms == 0 and o2.audio_end_ms == 400


def test_a_trailing_ellipsis_is_not_part_of_the_partial() -> None:
    p = policy(first_partial_min_ms=100, partial_min_new_ms=100)
    p.feed(chunk(200), [VadEvent("start", 0)])
    req = p.take_partial()
    assert req is not None
    (out,) = p.on_partial(req, [seg("That agent is already logged...")], 40)
    assert isinstance(out, PartialOut) and out.text == "That agent is already logged"


def test_end_of_speech_requests_a_beam_5_final_and_drops_the_stale_partial() -> None:
    p = policy(first_partial_min_ms=100, partial_min_new_ms=100, speculative_finals=False)
    p.feed(chunk(1000), [VadEvent("start", 0)])
    partial = p.take_partial()
    assert partial is not None
    outs, finals = p.feed(chunk(500), [VadEvent("end", 1200 * MS)])
    assert outs == [VadOut("end", 1200)]
    (final,) = finals
    assert final.kind == "final" and final.beam == 5 and len(final.audio_8k) == 1200 * MS
    assert p.on_partial(partial, [seg("late")], 30) == []
    (out,) = p.on_final(final, [seg(" hello there ")], 120)
    assert out == FinalOut(0, "hello there", 0, 1200, 120, 5)


def test_call_time_comes_from_the_first_start_sample() -> None:
    p = policy(speculative_finals=False)
    p.set_origin(8000 * 60)  # the session joined a minute into the call
    outs, _ = p.feed(chunk(500), [VadEvent("start", 100 * MS)])
    assert outs == [VadOut("start", 60_100)]
    _, (final,) = p.feed(chunk(500), [VadEvent("end", 900 * MS)])
    (out,) = p.on_final(final, [seg("hi")], 10)
    assert isinstance(out, FinalOut) and (out.audio_start_ms, out.audio_end_ms) == (60_100, 60_900)


def test_finals_carry_previous_finals_as_prompt() -> None:
    p = policy(speculative_finals=False)
    p.feed(chunk(600), [VadEvent("start", 0)])
    _, (f1,) = p.feed(chunk(100), [VadEvent("end", 600 * MS)])
    p.on_final(f1, [seg("first sentence.")], 10)
    p.feed(chunk(600), [VadEvent("start", 800 * MS)])
    _, (f2,) = p.feed(chunk(100), [VadEvent("end", 1300 * MS)])
    assert f2.prompt == "earlier first sentence." and f2.utt == 1


def test_silence_decoded_to_nothing_emits_no_final() -> None:
    p = policy(speculative_finals=False)
    p.feed(chunk(600), [VadEvent("start", 0)])
    _, (final,) = p.feed(chunk(100), [VadEvent("end", 600 * MS)])
    hallucination = Segment("Thank you.", 0, 0.6, no_speech_prob=0.97, avg_logprob=-0.5)
    assert p.on_final(final, [hallucination], 10) == []


def test_speculative_final_at_a_pause_becomes_the_final_when_silence_lasts() -> None:
    p = policy()
    p.feed(chunk(1000), [VadEvent("start", 0)])
    _, (spec,) = p.feed(chunk(100), [VadEvent("pause", 1000 * MS)])
    assert spec.kind == "final" and len(spec.audio_8k) == 1000 * MS
    assert not p.partial_due()  # no partial passes while paused
    assert p.on_final(spec, [seg("done")], 80) == []  # held: the end is not certain yet
    outs, finals = p.feed(chunk(300), [VadEvent("end", 1000 * MS)])
    assert finals == []
    assert outs == [VadOut("end", 1000), FinalOut(0, "done", 0, 1000, 80, 5)]


def test_speculative_final_still_decoding_at_the_end_is_emitted_when_done() -> None:
    p = policy()
    p.feed(chunk(1000), [VadEvent("start", 0)])
    _, (spec,) = p.feed(chunk(100), [VadEvent("pause", 1000 * MS)])
    outs, finals = p.feed(chunk(300), [VadEvent("end", 1000 * MS)])
    assert finals == [] and outs == [VadOut("end", 1000)]
    assert p.on_final(spec, [seg("done")], 80) == [FinalOut(0, "done", 0, 1000, 80, 5)]


def test_speech_resuming_voids_the_speculative_final() -> None:
    p = policy()
    p.feed(chunk(1000), [VadEvent("start", 0)])
    _, (spec,) = p.feed(chunk(100), [VadEvent("pause", 1000 * MS)])
    p.feed(chunk(100), [VadEvent("resume", 1100 * MS)])
    assert p.on_final(spec, [seg("half")], 80) == []
    _, (final,) = p.feed(chunk(900), [VadEvent("end", 2000 * MS)])
    assert len(final.audio_8k) == 2000 * MS
    assert p.on_final(final, [seg("whole sentence")], 90)[0] == FinalOut(
        0, "whole sentence", 0, 2000, 90, 5
    )


def test_close_ends_an_open_utterance() -> None:
    p = policy(speculative_finals=False)
    p.feed(chunk(700), [VadEvent("start", 0)])
    outs, (final,) = p.close()
    assert outs == [VadOut("end", 700)] and final.end_sample == 700 * MS


def test_long_monologue_is_trimmed_at_segment_boundaries_and_stays_bounded() -> None:
    """Two minutes of speech with no pause: the buffer never grows past the cap."""
    cfg = dict(max_utterance_ms=20_000, first_partial_min_ms=300, partial_min_new_ms=1000)
    p = policy(**cfg)
    p.feed(chunk(100), [VadEvent("start", 0)])
    finals: list[DecodeRequest] = []
    partial_texts: list[str] = []
    for _ in range(1200):  # 120 s in 100 ms frames
        _, f = p.feed(chunk(100), [])
        finals += f
        req = p.take_partial()
        if req is not None:
            secs = len(req.audio_8k) / 8000
            # One 5 s sentence after another, as Whisper would segment them.
            segs = [
                seg(f"sentence {i}.", i * 5.0, min((i + 1) * 5.0, secs))
                for i in range(int(secs // 5) + 1)
            ]
            for o in p.on_partial(req, segs, 100):
                assert isinstance(o, PartialOut)
                partial_texts.append(o.text)
    assert p.max_buffer_samples <= (20_000 + 10_000 + 1000) * MS
    assert p.max_buffer_samples < 31 * 8000
    # Trimmed text is kept: the partial text still starts at the utterance's first sentence.
    assert partial_texts[-1].startswith("sentence 0.")
    _, (final,) = p.close()
    (out,) = p.on_final(final, [seg("the rest.")], 100)
    assert isinstance(out, FinalOut) and out.text.startswith("sentence 0.")
    assert out.text.endswith("the rest.") and out.audio_start_ms == 0


def test_hard_cap_finalises_when_no_segment_boundary_exists() -> None:
    p = policy(max_utterance_ms=5000, speculative_finals=False)
    p.feed(chunk(100), [VadEvent("start", 0)])
    finals: list[DecodeRequest] = []
    for _ in range(200):  # 20 s, never a partial result
        finals += p.feed(chunk(100), [])[1]
    assert finals and all(len(f.audio_8k) <= 15_000 * MS for f in finals)
    assert p.max_buffer_samples <= 16_000 * MS


def test_audio_buffer_keeps_stream_addresses_across_cuts() -> None:
    b = AudioBuffer(capacity=16)
    b.append(np.arange(10, dtype=np.float32))
    b.drop_before(4)
    b.append(np.arange(10, 30, dtype=np.float32))
    assert b.origin == 4 and b.end == 30
    assert b.copy(5, 8).tolist() == [5, 6, 7]
    assert b.copy(0, 6).tolist() == [4, 5]


def test_resample_doubles_the_rate() -> None:
    t = np.arange(8000) / 8000
    tone = np.sin(2 * np.pi * 440 * t).astype(np.float32)
    out = resample_8k_to_16k(tone)
    assert out.dtype == np.float32 and abs(len(out) - 16000) <= 1
    assert abs(float(np.abs(out[1000:15000]).max()) - 1.0) < 0.05


def agreeing_passes(p: StreamPolicy, text: str, until_ms: int) -> None:
    """Two partial passes that say ``text``, the second over the audio up to ``until_ms``."""
    for _ in range(2):
        req = p.take_partial()
        assert req is not None
        p.on_partial(req, [seg(text)], 40)
        have = p.pending_new_ms()
        p.feed(chunk(max(0, until_ms - (req.end_sample // MS) - have)), [])


def test_the_final_comes_from_two_agreeing_partials_that_heard_the_speech_to_its_end() -> None:
    p = policy(first_partial_min_ms=100, partial_min_new_ms=100)
    p.feed(chunk(900), [VadEvent("start", 0)])
    agreeing_passes(p, "please enter your password", 1000)
    assert p.awaiting_first_partial() is False
    # the speech stopped at 950 ms; the pass over 0..1000 ms heard it all
    outs, finals = p.feed(chunk(100), [VadEvent("pause", 1050 * MS, speech_end=950 * MS)])
    assert finals == []  # nothing to decode
    outs, finals = p.feed(chunk(200), [VadEvent("end", 1050 * MS, speech_end=950 * MS)])
    assert finals == []
    assert outs == [
        VadOut("end", 1050),
        FinalOut(0, "please enter your password", 0, 1050, 0, 1, from_partials=True),
    ]
    assert p.finals_from_partials == 1 and p.finals_requested == 1


def test_partials_that_disagree_or_stopped_short_get_a_decoded_final() -> None:
    disagree = policy(first_partial_min_ms=100, partial_min_new_ms=100)
    disagree.feed(chunk(900), [VadEvent("start", 0)])
    r1 = disagree.take_partial()
    assert r1 is not None
    disagree.on_partial(r1, [seg("please enter your pass")], 40)
    disagree.feed(chunk(100), [])
    r2 = disagree.take_partial()
    assert r2 is not None
    disagree.on_partial(r2, [seg("please enter your password")], 40)
    _, (spec,) = disagree.feed(chunk(100), [VadEvent("pause", 1050 * MS, speech_end=950 * MS)])
    assert spec.kind == "final" and spec.beam == 5

    short = policy(first_partial_min_ms=100, partial_min_new_ms=100)
    short.feed(chunk(600), [VadEvent("start", 0)])
    agreeing_passes(short, "please enter", 700)
    # the speech went on to 950 ms: the passes over 0..700 ms did not hear its end
    _, (spec,) = short.feed(chunk(400), [VadEvent("pause", 1050 * MS, speech_end=950 * MS)])
    assert spec.kind == "final"
    assert short.finals_from_partials == 0


def test_a_decoded_final_the_guards_empty_takes_the_words_two_agreeing_partials_showed() -> None:
    # base on a 2 s Hebrew utterance (he/saspeech sas_02) with a 10 s window: the beam-5 final
    # said "ע ע" with low confidence and no-speech, which keep_segment drops; the partials had
    # agreed on words, and a turn the caller spoke must not end with no final
    p = policy(first_partial_min_ms=100, partial_min_new_ms=100, greedy_finals=False)
    p.feed(chunk(900), [VadEvent("start", 0)])
    agreeing_passes(p, "הוא רוצה דוגמה", 1000)
    _, (final,) = p.feed(chunk(300), [VadEvent("end", 1050 * MS, speech_end=950 * MS)])
    assert final.kind == "final" and final.beam == 5  # decoded: no greedy finals here
    dropped = Segment(" ע ע", 0, 1.0, no_speech_prob=0.7, avg_logprob=-1.5)
    (out,) = p.on_final(final, [dropped], 300)
    assert out == FinalOut(0, "הוא רוצה דוגמה", 0, 1050, 300, 5, from_partials=True)
    assert p.finals_fell_back == 1 and p.finals_from_partials == 0
    # a decode that keeps words is the final, whatever the partials said
    p.feed(chunk(900), [VadEvent("start", 1400 * MS)])
    agreeing_passes(p, "שלום", 2400)
    _, (final,) = p.feed(chunk(300), [VadEvent("end", 2450 * MS, speech_end=2350 * MS)])
    (out,) = p.on_final(final, [seg(" שלום לכם")], 300)
    assert out.text == "שלום לכם" and not out.from_partials
    assert p.finals_fell_back == 1


def test_an_empty_final_has_no_fallback_without_two_agreeing_partials() -> None:
    p = policy(first_partial_min_ms=100, partial_min_new_ms=100, greedy_finals=False)
    p.feed(chunk(900), [VadEvent("start", 0)])
    r1 = p.take_partial()
    assert r1 is not None
    p.on_partial(r1, [seg("Thank you.")], 40)  # one pass on noise: nothing agreed
    _, (final,) = p.feed(chunk(300), [VadEvent("end", 1050 * MS, speech_end=950 * MS)])
    noise = Segment("Thank you.", 0, 1.0, no_speech_prob=0.97, avg_logprob=-0.5)
    assert p.on_final(final, [noise], 10) == []
    assert p.finals_fell_back == 0


def test_the_first_partial_of_an_utterance_is_awaited_until_one_shows_text() -> None:
    p = policy(first_partial_min_ms=100, partial_min_new_ms=100)
    assert not p.awaiting_first_partial()  # no utterance
    p.feed(chunk(300), [VadEvent("start", 0)])
    assert p.awaiting_first_partial()
    req = p.take_partial()
    assert req is not None
    p.on_partial(req, [], 30)  # nothing heard yet
    assert p.awaiting_first_partial()
    p.feed(chunk(100), [])
    req = p.take_partial()
    assert req is not None
    p.on_partial(req, [seg("hello")], 30)
    assert not p.awaiting_first_partial()


def test_committed_segments_are_cut_off_and_move_to_the_prompt() -> None:
    p = policy(first_partial_min_ms=100, partial_min_new_ms=100, commit_stable_segments=True)
    p.feed(chunk(3000), [VadEvent("start", 0)])
    two = [seg("Please enter your password.", 0.0, 1.8), seg("Followed by", 1.8, 3.0)]
    for _ in range(2):
        req = p.take_partial()
        assert req is not None and req.start_sample == 0
        (out,) = p.on_partial(req, two, 40)
        p.feed(chunk(100), [])
    assert isinstance(out, PartialOut)
    assert out.text == "Please enter your password. Followed by"
    assert p.segments_committed == 1
    nxt = p.take_partial()
    assert nxt is not None
    assert nxt.start_sample == 1800 * MS  # only the audio after the committed segment
    assert nxt.prompt == "earlier Please enter your password."
    (out,) = p.on_partial(nxt, [seg("Followed by the pound key.", 0.0, 1.3)], 40)
    assert isinstance(out, PartialOut)
    assert out.text == "Please enter your password. Followed by the pound key."
    assert out.stable.startswith("Please enter your password. Followed by")


def test_a_closing_pass_at_a_pause_lets_agreeing_partials_make_the_final() -> None:
    """The pause came before a pass heard the speech to its end: one more pass runs beside the
    speculative final, and when it agrees with the pass before, its words are the final at the
    end, without waiting for the decode."""
    p = policy(first_partial_min_ms=100, partial_min_new_ms=100)
    p.feed(chunk(600), [VadEvent("start", 0)])
    agreeing_passes(p, "please enter your password", 700)
    # the speech stopped at 950 ms; the passes over 0..700 ms did not hear its end
    _, (spec,) = p.feed(chunk(400), [VadEvent("pause", 1050 * MS, speech_end=950 * MS)])
    assert spec.kind == "final" and spec.speculative
    assert spec.expect_words  # the partials read words: a weak decode gets the full window
    assert p.partial_due()  # the closing pass, though the VAD is paused
    closing = p.take_partial()
    assert closing is not None and closing.end_sample >= 950 * MS
    assert not p.partial_due()  # one closing pass, not more
    (partial,) = p.on_partial(closing, [seg("please enter your password")], 40)
    assert isinstance(partial, PartialOut)
    outs, finals = p.feed(chunk(200), [VadEvent("end", 1050 * MS, speech_end=950 * MS)])
    assert finals == []
    assert outs == [
        VadOut("end", 1050),
        FinalOut(0, "please enter your password", 0, 1050, 0, 1, from_partials=True),
    ]
    assert not p.final_wanted(spec)  # the decode, should it still be queued, is skipped
    assert p.on_final(spec, [seg("please enter your pass word")], 300) == []
    assert p.finals_requested == 1 and p.finals_from_partials == 1


def test_a_closing_pass_that_disagrees_leaves_the_speculative_final() -> None:
    p = policy(first_partial_min_ms=100, partial_min_new_ms=100)
    p.feed(chunk(600), [VadEvent("start", 0)])
    agreeing_passes(p, "please enter", 700)
    _, (spec,) = p.feed(chunk(400), [VadEvent("pause", 1050 * MS, speech_end=950 * MS)])
    closing = p.take_partial()
    assert closing is not None
    p.on_partial(closing, [seg("please enter your password")], 40)
    outs, finals = p.feed(chunk(200), [VadEvent("end", 1050 * MS, speech_end=950 * MS)])
    assert finals == [] and outs == [VadOut("end", 1050)]  # the speculative decode is the final
    (out,) = p.on_final(spec, [seg("please enter your password.")], 300)
    assert out == FinalOut(0, "please enter your password.", 0, 1050, 300, 5)
    # a decode already back when the end comes is the final, whatever the partials say
    q = policy(first_partial_min_ms=100, partial_min_new_ms=100)
    q.feed(chunk(600), [VadEvent("start", 0)])
    agreeing_passes(q, "please enter your password", 700)
    _, (spec,) = q.feed(chunk(400), [VadEvent("pause", 1050 * MS, speech_end=950 * MS)])
    assert q.on_final(spec, [seg("Please enter your password.")], 90) == []  # held
    closing = q.take_partial()
    assert closing is not None
    q.on_partial(closing, [seg("please enter your password")], 40)
    outs, _ = q.feed(chunk(200), [VadEvent("end", 1050 * MS, speech_end=950 * MS)])
    assert outs[-1] == FinalOut(0, "Please enter your password.", 0, 1050, 90, 5)


def test_no_closing_pass_without_greedy_finals() -> None:
    p = policy(first_partial_min_ms=100, partial_min_new_ms=100, greedy_finals=False)
    p.feed(chunk(600), [VadEvent("start", 0)])
    agreeing_passes(p, "please enter", 700)
    p.feed(chunk(400), [VadEvent("pause", 1050 * MS, speech_end=950 * MS)])
    assert not p.partial_due()


def test_a_final_no_partial_read_words_for_expects_none() -> None:
    p = policy(speculative_finals=False)
    p.feed(chunk(600), [VadEvent("start", 0)])
    _, (final,) = p.feed(chunk(600), [VadEvent("end", 1050 * MS, speech_end=950 * MS)])
    assert not final.expect_words
