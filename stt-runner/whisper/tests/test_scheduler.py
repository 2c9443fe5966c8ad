"""The scheduler's order: finals, then speculative finals, then one partial pass per session."""

from __future__ import annotations

import numpy as np

from ozen_whisper.server import Scheduler, Session
from ozen_whisper.streaming import DecodeRequest


def request(kind: str = "final", speculative: bool = False) -> DecodeRequest:
    return DecodeRequest(
        kind=kind,  # type: ignore[arg-type]
        utt=0,
        audio_8k=np.zeros(800, np.float32),
        start_sample=0,
        beam=5,
        language="he",
        prompt=None,
        hotwords=None,
        speculative=speculative,
    )


def test_finals_go_before_speculative_finals_before_partials() -> None:
    s = Scheduler()
    a, b, c = (Session(key=k, mode="stream", language="he") for k in "abc")
    s.want_partial(a)
    spec = request(speculative=True)
    s.submit_final(b, spec)
    final = request()
    s.submit_final(c, final)
    order = [s.next_job() for _ in range(3)]
    assert [(j[0].key, j[1]) for j in order if j] == [
        ("c", "final"),
        ("b", "final"),
        ("a", "partial"),
    ]
    assert order[0] and order[0][2] is final and order[1] and order[1][2] is spec


def test_a_session_has_at_most_one_partial_queued() -> None:
    s = Scheduler()
    a = Session(key="a", mode="stream", language="he")
    assert s.want_partial(a)
    assert not s.want_partial(a)  # coalesced: the queued pass will take the latest audio
    assert s.depth() == (0, 1)


def test_partials_are_served_round_robin() -> None:
    s = Scheduler()
    a, b = (Session(key=k, mode="stream", language="he") for k in "ab")
    s.want_partial(a)
    s.want_partial(b)
    first = s.next_job()
    s.job_done()
    s.want_partial(a)  # a asks again right away: b still goes first
    second = s.next_job()
    assert first and first[0] is a and second and second[0] is b


def test_an_ended_utterance_drops_its_queued_partial() -> None:
    s = Scheduler()
    a = Session(key="a", mode="stream", language="he")
    s.want_partial(a)
    assert s.drop_partial(a) and s.depth() == (0, 0)


def test_stop_wakes_idle_threads() -> None:
    s = Scheduler()
    s.stop()
    assert s.next_job() is None
