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
    s.job_done(a)
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


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_session_that_used_far_more_decode_time_waits_behind_the_others() -> None:
    clock = FakeClock()
    s = Scheduler(clock=clock)
    busy, quiet = (Session(key=k, mode="stream", language="he") for k in ("busy", "quiet"))
    s.want_partial(busy)
    job = s.take_job()
    assert job and job[0] is busy
    s.job_done(busy, 4.0)  # four seconds of decoding in a moment: a call fed faster than real time
    s.submit_final(busy, request())
    s.want_partial(quiet)
    first = s.take_job()
    assert first and first[0] is quiet and first[1] == "partial"  # before busy's final
    s.job_done(quiet, 0.1)
    clock.now += 30.0  # the usage decays: alike again, finals first
    s.want_partial(quiet)
    second = s.take_job()
    assert second and second[0] is busy and second[1] == "final"


def test_the_first_partial_of_an_utterance_goes_before_other_partials() -> None:
    s = Scheduler(clock=FakeClock())
    a, b = (Session(key=k, mode="stream", language="he") for k in "ab")
    s.want_partial(a)
    s.want_partial(b, first=True)
    job = s.take_job()
    assert job and job[0] is b


def test_with_two_threads_a_busy_session_leaves_one_for_the_others() -> None:
    clock = FakeClock()
    s = Scheduler(pool=2, clock=clock)
    busy, quiet = (Session(key=k, mode="stream", language="he") for k in ("busy", "quiet"))
    s.want_partial(quiet)
    s.job_done(*take_session(s, quiet), 0.2)  # quiet has decoded a little
    s.submit_final(busy, request())
    s.submit_final(busy, request())
    assert take_session(s, busy)
    s.job_done(busy, 0.5)
    assert take_session(s, busy)
    assert s.take_job() is None  # busy's second final waits: quiet may turn up at any time
    # alone, a session may use every thread
    solo = Scheduler(pool=2, clock=clock)
    only = Session(key="only", mode="stream", language="he")
    solo.submit_final(only, request())
    solo.submit_final(only, request())
    assert take_session(solo, only) and take_session(solo, only)


def take_session(s: Scheduler, session: Session) -> tuple[Session]:
    job = s.take_job()
    assert job is not None and job[0] is session, job
    return (session,)


def simulate(speeds: dict[str, float], pool: int, seconds: float = 30.0) -> dict[str, list[float]]:
    """A virtual-time run of the scheduler: each session's audio comes in 100 ms blocks at
    ``speed`` x real time, a partial pass is wanted after 200 ms of new audio (one at a time),
    a final every 2 s of audio; a partial costs 80 ms, a final 120 ms, one per thread.
    Returns each session's latencies (want or submit to done), s."""
    clock = FakeClock()
    sched = Scheduler(pool=pool, clock=clock)
    sessions = {k: Session(key=k, mode="stream", language="he") for k in speeds}
    block_s = {k: 0.1 / v for k, v in speeds.items()}
    next_block = dict.fromkeys(speeds, 0.0)
    blocks = dict.fromkeys(speeds, 0)
    since_pass = dict.fromkeys(speeds, 0)
    partial_wanted_at: dict[str, float | None] = dict.fromkeys(speeds, None)
    final_at: dict[int, float] = {}
    running: list[tuple[float, str, str, float]] = []  # (done at, key, kind, asked at)
    latencies: dict[str, list[float]] = {k: [] for k in speeds}
    step = 0.001
    while clock.now < seconds:
        for k in speeds:
            while next_block[k] <= clock.now:
                next_block[k] += block_s[k]
                blocks[k] += 1
                since_pass[k] += 1
                if since_pass[k] >= 2 and partial_wanted_at[k] is None:
                    partial_wanted_at[k] = clock.now
                    sched.want_partial(sessions[k])
                if blocks[k] % 20 == 0:
                    req = request()
                    final_at[id(req)] = clock.now
                    sched.submit_final(sessions[k], req)
        for done in [r for r in running if r[0] <= clock.now]:
            running.remove(done)
            _, k, kind, asked = done
            latencies[k].append(clock.now - asked)
            sched.job_done(sessions[k], 0.08 if kind == "partial" else 0.12)
        while len(running) < pool and (job := sched.take_job()) is not None:
            session, kind, req = job
            if kind == "partial":
                asked = partial_wanted_at[session.key]
                assert asked is not None
                partial_wanted_at[session.key] = None
                since_pass[session.key] = 0
                running.append((clock.now + 0.08, session.key, "partial", asked))
            else:
                assert req is not None
                running.append((clock.now + 0.12, session.key, "final", final_at.pop(id(req))))
        clock.now += step
    return latencies


def mean(xs: list[float]) -> float:
    return sum(xs) / len(xs)


def p95(xs: list[float]) -> float:
    return sorted(xs)[int(0.95 * (len(xs) - 1))]


def test_a_call_fed_five_times_faster_leaves_a_normal_calls_latency_within_20_percent() -> None:
    # Two decode threads (the default on two cores). With one thread no order can do this: a
    # decode is not interrupted, so every job of the normal call would wait for half a flood
    # decode on average (this simulation: +69 % mean latency).
    alone = simulate({"normal": 1.0}, pool=2)["normal"]
    beside = simulate({"normal": 1.0, "flood": 5.0}, pool=2)
    assert len(beside["normal"]) >= 0.95 * len(alone)  # the normal call's passes still run
    assert mean(beside["normal"]) <= 1.2 * mean(alone), (mean(beside["normal"]), mean(alone))
    assert p95(beside["normal"]) <= 1.2 * p95(alone)
    assert beside["flood"]  # the flood is served too, after the normal call


def test_partial_passes_of_several_sessions_go_as_one_batch_finals_alone() -> None:
    s = Scheduler(clock=FakeClock())
    a, b, c, d = (Session(key=k, mode="stream", language="he") for k in "abcd")
    for x in (a, b, c):
        s.want_partial(x)
    s.submit_final(d, request())
    first = s.take_jobs(4)
    assert [(j[0].key, j[1]) for j in first] == [("d", "final")]  # a final is decoded alone
    batch = s.take_jobs(2)
    assert [(j[0].key, j[1]) for j in batch] == [("a", "partial"), ("b", "partial")]
    assert [(j[0].key, j[1]) for j in s.take_jobs(4)] == [("c", "partial")]
    assert s.take_jobs(4) == []
