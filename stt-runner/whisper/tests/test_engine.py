"""The engine's pure parts: Whisper's tokens into segments, prompts of a batch, the token cap."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from ozen_whisper.engine import _align_prompts, max_new_tokens, split_segments


@dataclass
class Tok:
    """The token ids a faster-whisper Tokenizer gives (a 20 ms timestamp is 100 + n)."""

    eot: int = 50
    sot: int = 10
    sot_prev: int = 11
    timestamp_begin: int = 100


TOK: Any = cast(Any, Tok())


def test_segments_split_at_timestamp_pairs() -> None:
    tokens = [100, 1, 2, 190, 190, 3, 4, 250, 50]  # <0.00> a b <1.80><1.80> c d <3.00> <eot>
    assert split_segments(tokens, TOK, 4.0) == [([1, 2], 0.0, 1.8), ([3, 4], 1.8, 3.0)]


def test_text_after_the_last_timestamp_is_a_segment_to_the_end_of_the_audio() -> None:
    tokens = [100, 1, 2, 190, 190, 3]  # the pass stopped mid-segment (a partial wants it)
    assert split_segments(tokens, TOK, 2.5) == [([1, 2], 0.0, 1.8), ([3], 1.8, 2.5)]
    assert split_segments([5, 6], TOK, 1.0) == [([5, 6], 0.0, 1.0)]  # no timestamps at all
    assert split_segments([100, 150], TOK, 1.0) == []


def test_a_batch_shares_the_start_of_transcript_position() -> None:
    a = [11, 1, 2, 3, 10, 20, 21]  # <prev> three context tokens <sot> ...
    b = [11, 7, 10, 20, 21]  # one context token
    c = [10, 20, 21]  # no context
    assert _align_prompts([a, b], TOK) == [[11, 3, 10, 20, 21], b]
    assert _align_prompts([a, c], TOK) == [[10, 20, 21], c]
    assert _align_prompts([a], TOK) == [a]


def test_the_token_cap_grows_with_the_audio() -> None:
    assert max_new_tokens(0.0) == 12
    assert max_new_tokens(4.0) == 72  # 3-7 tokens/s of speech fits ten times over
    assert max_new_tokens(20.0) > max_new_tokens(10.0)
