"""LocalAgreement-2 and the pure helpers of the streaming policy."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ozen_whisper.config import StreamConfig
from ozen_whisper.streaming import (
    LocalAgreement,
    PassWords,
    Segment,
    collapse_repeats,
    common_prefix_len,
    join_text,
    keep_segment,
    pass_words,
    stuck_word,
    words,
)


def test_common_prefix_ignores_case_and_punctuation() -> None:
    assert common_prefix_len(words("Hello, world. Again"), words("hello world again?")) == 3
    assert common_prefix_len(words("a b c"), words("a x c")) == 1
    assert common_prefix_len([], words("a")) == 0


def test_common_prefix_on_hebrew() -> None:
    assert common_prefix_len(words("שלום, עולם"), words("שלום עולם!")) == 2


def test_first_hypothesis_commits_nothing() -> None:
    la = LocalAgreement()
    stable, tail = la.update(words("please enter your"))
    assert stable == [] and tail == ["please", "enter", "your"]


def test_two_agreeing_hypotheses_commit_their_common_prefix() -> None:
    la = LocalAgreement()
    la.update(words("please enter your pass"))
    stable, tail = la.update(words("please enter your password followed"))
    assert stable == ["please", "enter", "your"]
    assert tail == ["password", "followed"]


def test_stable_never_shrinks() -> None:
    la = LocalAgreement()
    la.update(words("a b c"))
    la.update(words("a b c d"))
    stable, tail = la.update(words("a x"))
    assert stable == ["a", "b", "c"] and tail == []
    stable, _ = la.update(words("a b c d e"))
    assert stable == ["a", "b", "c"]  # "a x" broke the agreement on d
    stable, _ = la.update(words("a b c d e f"))
    assert stable == ["a", "b", "c", "d", "e"]


def test_committed_words_keep_their_first_spelling() -> None:
    la = LocalAgreement()
    la.update(words("Hello world"))
    stable, _ = la.update(words("hello, world and"))
    assert stable == ["hello,", "world"]


def test_reset_forgets_everything() -> None:
    la = LocalAgreement()
    la.update(words("a b"))
    la.update(words("a b"))
    la.reset()
    assert la.update(words("a b")) == ([], ["a", "b"])


def test_keep_segment_drops_silence_and_loops() -> None:
    cfg = StreamConfig()
    ok = Segment("hello", 0, 1, no_speech_prob=0.1, avg_logprob=-0.3, compression_ratio=1.2)
    assert keep_segment(ok, cfg)
    silent = Segment("Thank you.", 0, 1, no_speech_prob=0.8, avg_logprob=-1.2)
    assert not keep_segment(silent, cfg)
    sure_silent = Segment("you", 0, 1, no_speech_prob=0.95, avg_logprob=-0.1)
    assert not keep_segment(sure_silent, cfg)
    loop = Segment("la la la la la la", 0, 1, compression_ratio=3.1)
    assert not keep_segment(loop, cfg)
    assert not keep_segment(Segment("  ", 0, 1), cfg)


def test_join_text_folds_spaces() -> None:
    assert join_text([" a ", "", "b  c"]) == "a b c"


word_lists = st.lists(st.sampled_from(["a", "b", "c", "d", "שלום", "עולם"]), max_size=8)


@given(st.lists(word_lists, min_size=1, max_size=12))
def test_stable_only_grows_and_is_agreed_by_two_passes(hypotheses: list[list[str]]) -> None:
    la = LocalAgreement()
    before: list[str] = []
    previous: list[str] | None = None
    for hyp in hypotheses:
        stable, tail = la.update(hyp)
        assert stable[: len(before)] == before  # never shrinks, never rewritten
        if len(stable) > len(before):  # what it gained, two consecutive passes said
            assert previous is not None
            assert common_prefix_len(previous, hyp) >= len(stable)
        assert tail == hyp[len(stable) :]
        before, previous = stable, hyp


def test_a_phrase_said_three_times_in_a_row_is_kept_once() -> None:
    loop = words("אני חושב, אני חושב, אני חושב, אני חושב, שזה טוב")
    assert collapse_repeats(loop) == words("אני חושב, שזה טוב")
    assert collapse_repeats(words("I think. I think. I think so")) == words("I think. so")
    # a phrase of four words or more, back to back, is a loop already at the second time
    twice = words("I'm not sure if I'm going, I'm not sure if I'm going, to be here.")
    assert collapse_repeats(twice) == words("I'm not sure if I'm going, to be here.")


def test_real_repeats_stay() -> None:
    for text in (
        "no no no",
        "press one or press two",
        "bye bye",
        "to lock or to unlock or to mute",
    ):
        assert collapse_repeats(words(text)) == words(text)
    assert collapse_repeats(words("no no no no")) == ["no"]  # a single word: four times is a loop


@given(st.lists(st.sampled_from(["a", "b", "c", "a.", "B"]), max_size=30))
def test_collapsed_words_hold_no_loop_and_keep_their_order(ws: list[str]) -> None:
    out = collapse_repeats(ws)
    assert collapse_repeats(out) == out  # nothing left to cut
    it = iter(ws)
    assert all(any(w == x for x in it) for w in out)  # a subsequence of the input


def test_pass_words_cuts_a_loop_and_drops_a_pass_that_still_loops() -> None:
    cfg = StreamConfig()
    looped = Segment("I'm not sure. I'm not sure. I'm not sure. I'm not sure.", 0, 3)
    got = pass_words([looped], cfg)
    assert got.words == words("I'm not sure.") and got.looped
    clean = pass_words([Segment("hello there", 0, 1)], cfg)
    assert clean.words == ["hello", "there"] and not clean.looped
    # repetitive, but no phrase three times in a row: still compresses like a loop
    weave = " ".join(f"la li la lo la li la lu {i % 2}" for i in range(12))
    assert pass_words([Segment(weave, 0, 3)], cfg) == PassWords([], True)


def test_a_word_stuck_on_one_token_is_dropped_and_marks_the_pass_looped() -> None:
    # base on he/saspeech sas_02 (8 kHz): the decoder repeated one letter to the end of the pass
    got = pass_words([Segment("תשמי טנננננננננננ.", 0, 2)], StreamConfig())
    assert got.words == ["תשמי"] and got.looped
    assert stuck_word("lalalalala") and stuck_word("Hmmmmm")
    for word in ("1000000", "בבקשה", "aaa", "Mississippi", "ננננ"[:3], "א.א.א."):
        assert not stuck_word(word), word
