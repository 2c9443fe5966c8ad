"""Parsing events: every v1 type typed, anything else passed through raw, never a crash."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from ozen_client import (
    BargeIn,
    CallStream,
    Final,
    Partial,
    PlaybackCleared,
    SpeechStarted,
    UnknownEvent,
    parse_event,
)

SID = "CA" + "0" * 32
BASE = {"v": 1, "callSid": SID, "wallMs": 1_700_000_000_000}


def test_types_each_v1_event_with_snake_case_fields() -> None:
    final = parse_event(
        {
            **BASE,
            "type": "final",
            "utteranceId": f"{SID}:u1",
            "text": "שלום.",
            "rawText": "שלום",
            "stable": True,
            "engine": "whisper",
            "audioStartMs": 100,
            "audioEndMs": 900,
            "latencyMs": 250,
            "alternatives": [{"engine": "google-v1", "text": "שלום"}],
            "n": 7,
        }
    )
    assert isinstance(final, Final)
    assert (final.text, final.audio_start_ms, final.latency_ms, final.n) == ("שלום.", 100, 250, 7)
    assert final.alternatives == ({"engine": "google-v1", "text": "שלום"},)
    partial = parse_event(
        {
            **BASE,
            "type": "partial",
            "utteranceId": f"{SID}:u2",
            "seq": 0,
            "text": "a b",
            "stable": "a",
            "volatile": "b",
            "revised": False,
            "audioEndMs": 400,
        }
    )
    assert isinstance(partial, Partial) and partial.audio_start_ms is None
    barge_in = parse_event(
        {
            **BASE,
            "type": "barge_in",
            "policy": "speech",
            "playId": "turn-1",
            "speechAudioMs": 5000,
            "audioMs": 5200,
        }
    )
    assert isinstance(barge_in, BargeIn) and barge_in.latency_ms is None
    cleared = parse_event(
        {
            **BASE,
            "type": "playback.cleared",
            "playId": "turn-1",
            "audioMs": 5200,
            "heardMs": 1200,
            "reason": "barge_in",
        }
    )
    assert isinstance(cleared, PlaybackCleared) and cleared.heard_ms == 1200
    assert isinstance(parse_event({**BASE, "type": "speech.started", "audioMs": 3}), SpeechStarted)


def test_an_unknown_type_or_version_is_passed_through_raw() -> None:
    newer = parse_event({**BASE, "type": "sentiment", "score": 0.5, "n": 3})
    assert isinstance(newer, UnknownEvent)
    assert newer.type == "sentiment" and newer.raw["score"] == 0.5 and newer.n == 3
    v2 = parse_event({**BASE, "v": 2, "type": "final"})
    assert isinstance(v2, UnknownEvent) and "version" in v2.problem


def test_a_known_type_with_a_bad_field_is_unknown_naming_the_field() -> None:
    bad = parse_event({**BASE, "type": "speech.started", "audioMs": "soon"})
    assert isinstance(bad, UnknownEvent) and bad.problem == "audioMs is not a number"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=6)
    ),
    max_leaves=20,
)
event_like = st.fixed_dictionaries(
    {
        "v": st.sampled_from([1, 1, 1, 2, "1"]),
        "type": st.sampled_from(
            [
                "final",
                "partial",
                "meaningful",
                "call.started",
                "call.ended",
                "engine.switched",
                "speech.started",
                "speech.ended",
                "dtmf",
                "playback.started",
                "playback.finished",
                "playback.cleared",
                "playback.mark",
                "barge_in",
                "other",
            ]
        ),
    },
    optional={
        k: json_values
        for k in [
            "callSid",
            "wallMs",
            "text",
            "audioMs",
            "playId",
            "utteranceId",
            "seq",
            "n",
            "reason",
        ]
    },
)


@given(st.one_of(json_values, event_like))
def test_parse_event_never_raises(value: Any) -> None:
    parse_event(value)


def test_the_stream_drops_an_event_number_it_already_delivered() -> None:
    async def main() -> list[int | None]:
        stream = CallStream("http://127.0.0.1:1", "t", SID, since=0)
        for n in [1, 2, 2, 3, 1, 4]:
            await stream._on_text(
                json.dumps({**BASE, "type": "speech.started", "audioMs": n, "n": n})
            )
        got = []
        while not stream._queue.empty():
            got.append(getattr(await stream.__anext__(), "n", None))
        assert stream.duplicates_dropped == 2
        return got

    assert asyncio.run(main()) == [1, 2, 3, 4]
