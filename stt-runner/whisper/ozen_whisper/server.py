"""The worker process: the protocol on stdin/stdout, one model, a bounded pool of decode threads.

Threads: the main thread reads frames and feeds sessions (VAD and the streaming policy, both
cheap); ``pool`` decode threads take jobs from the ``Scheduler``. Finals (and offline decodes) go
before partials; a session has at most one partial pass queued, and it is built from the latest
audio when a thread picks it up, so under load partial passes are skipped (coalesced) before any
final waits. Every write to stdout is one whole frame under a lock.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, BinaryIO, Literal

import numpy as np

from . import models
from .config import (
    ServeConfig,
    resolve_greedy_finals,
    resolve_pool,
    resolve_vad_rate,
    serve_config,
)
from .device import choose_device
from .engine import Engine
from .protocol import AudioFrame, BadFrame, JsonFrame, encode_json, hints_problem, read_frame
from .streaming import (
    AudioBuffer,
    DecodeRequest,
    FinalOut,
    Output,
    PartialOut,
    StreamPolicy,
    VadOut,
    keep_segment,
    pass_words,
)
from .vad import SAMPLE_RATE_HZ, SileroModel, VadStream

log = logging.getLogger("ozen_whisper")

_MAX_GAP_SAMPLES = SAMPLE_RATE_HZ * 30  # a jump in start samples filled with silence, at most
_MAX_OFFLINE_SAMPLES = SAMPLE_RATE_HZ * 600  # an offline session holds at most 10 min


class FrameWriter:
    """Serialised, locked writes of whole frames to the runner."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self._lock = threading.Lock()
        self.broken = False

    def send(self, message: dict[str, Any]) -> None:
        frame = encode_json(message)
        with self._lock:
            if self.broken:
                return
            try:
                self._stream.write(frame)
                self._stream.flush()
            except (BrokenPipeError, ValueError, OSError):
                self.broken = True


# ---------------------------------------------------------------------------- sessions


@dataclass
class Session:
    """One open key: a stream (VAD + StreamPolicy) or an offline buffer; fields under ``lock``."""

    key: str
    mode: Literal["stream", "offline"]
    language: str
    lock: threading.Lock = field(default_factory=threading.Lock)
    policy: StreamPolicy | None = None
    vad: VadStream | None = None
    offline_buf: AudioBuffer | None = None
    hints: str | None = None  # offline only (a stream's policy holds its own)
    prompt: str | None = None  # offline only
    origin: int | None = None  # call sample of the first audio sample
    fed: int = 0  # samples fed so far
    finals_outstanding: int = 0
    closing: bool = False
    closed_sent: bool = False
    partial_running: bool = False


JobKind = Literal["final", "partial"]

# How much more decoder time (s, decaying) a session may have used and still go first, by the
# kind of its most urgent job: among sessions with similar use, finals go before speculative
# finals, before the first partial of an utterance, before other partials; a session that has
# used far more than the others (a call fed faster than real time) waits behind all of them.
_CLASS_OFFSET_S = {"final": 0.0, "speculative": 0.25, "first_partial": 0.5, "partial": 1.0}
_USAGE_HALF_LIFE_S = 3.0


@dataclass
class _Queue:
    """One session's jobs in the scheduler."""

    session: Session
    finals: deque[tuple[int, DecodeRequest]] = field(default_factory=deque)
    speculative: deque[tuple[int, DecodeRequest]] = field(default_factory=deque)
    partial_seq: int | None = None  # a partial pass is wanted (queued at this sequence number)
    first_partial: bool = False  # ... and it would be the utterance's first text
    running: int = 0
    usage_s: float = 0.0  # decode seconds, decaying with _USAGE_HALF_LIFE_S
    usage_at: float = 0.0

    def has_work(self) -> bool:
        return bool(self.finals or self.speculative or self.partial_seq is not None)


class Scheduler:
    """Which decode runs next, fairly across sessions.

    Each session queues finals (FIFO), speculative finals (started at a pause, not yet
    confirmed) and at most one partial pass, built from its latest audio when picked (so under
    load passes coalesce). The next job is the most urgent job of the session with the lowest
    score: its recent decode time (seconds, halving every ``_USAGE_HALF_LIFE_S``) plus the
    offset of that job's kind (``_CLASS_OFFSET_S``). So with sessions alike, finals go first
    and partials round-robin; a session fed faster than real time, which piles up decode time,
    is served after every other session's work, finals included, and its own latency pays for
    it. With ``pool`` decode threads and other sessions open, only the session with the least
    recent decode time may take every thread; the others leave one free, so a call that turns
    up is not kept waiting behind a busy one's decodes. ``clock`` (s) is injected for tests.
    """

    def __init__(self, pool: int = 1, clock: Callable[[], float] = time.monotonic) -> None:
        self._cond = threading.Condition()
        self._pool = pool
        self._clock = clock
        self._queues: dict[str, _Queue] = {}
        self._seq = 0
        self._stopping = False
        self.busy = 0

    def _queue(self, session: Session) -> _Queue:
        q = self._queues.get(session.key)
        if q is None or q.session is not session:
            q = _Queue(session, usage_at=self._clock())
            self._queues[session.key] = q
        return q

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def submit_final(self, session: Session, req: DecodeRequest) -> None:
        with self._cond:
            q = self._queue(session)
            (q.speculative if req.speculative else q.finals).append((self._next_seq(), req))
            self._cond.notify()

    def want_partial(self, session: Session, first: bool = False) -> bool:
        """Queue a partial pass for the session; False when one is already queued (coalesced).
        ``first``: it would be the utterance's first text (served before other partials)."""
        with self._cond:
            q = self._queue(session)
            if q.partial_seq is not None:
                q.first_partial = q.first_partial or first
                return False
            q.partial_seq = self._next_seq()
            q.first_partial = first
            self._cond.notify()
            return True

    def drop_partial(self, session: Session) -> bool:
        with self._cond:
            q = self._queues.get(session.key)
            if q is not None and q.session is session and q.partial_seq is not None:
                q.partial_seq = None
                return True
            return False

    def _usage(self, q: _Queue, now: float) -> float:
        if now > q.usage_at:
            q.usage_s *= 0.5 ** ((now - q.usage_at) / _USAGE_HALF_LIFE_S)
            q.usage_at = now
        return q.usage_s

    def _head(self, q: _Queue) -> tuple[str, int] | None:
        """The session's most urgent job: its class and its queue sequence number."""
        if q.finals:
            return "final", q.finals[0][0]
        if q.speculative:
            return "speculative", q.speculative[0][0]
        if q.partial_seq is not None:
            return ("first_partial" if q.first_partial else "partial"), q.partial_seq
        return None

    def _cap(self, q: _Queue, now: float) -> int:
        """How many decodes the session may run at once."""
        if self._pool <= 1 or len(self._queues) <= 1:
            return self._pool
        least = min(self._usage(other, now) for other in self._queues.values())
        return self._pool if self._usage(q, now) <= least else self._pool - 1

    def _pick(self, partials_only: bool = False) -> _Queue | None:
        now = self._clock()
        candidates = [
            q for q in self._queues.values() if q.has_work() and q.running < self._cap(q, now)
        ]
        if partials_only:
            candidates = [q for q in candidates if (h := self._head(q)) and "partial" in h[0]]
        if any(q.running == 0 for q in candidates):
            candidates = [q for q in candidates if q.running == 0]
        best: tuple[float, int] | None = None
        chosen = None
        for q in candidates:
            head = self._head(q)
            assert head is not None
            key = (self._usage(q, now) + _CLASS_OFFSET_S[head[0]], head[1])
            if best is None or key < best:
                best, chosen = key, q
        return chosen

    def take_job(self) -> tuple[Session, JobKind, DecodeRequest | None] | None:
        """The next job if one may run now, else None (never blocks)."""
        with self._cond:
            q = self._pick()
            return None if q is None else self._start(q)

    def _start(self, q: _Queue) -> tuple[Session, JobKind, DecodeRequest | None]:
        q.running += 1
        self.busy += 1
        if q.finals:
            return q.session, "final", q.finals.popleft()[1]
        if q.speculative:
            return q.session, "final", q.speculative.popleft()[1]
        q.partial_seq = None
        q.first_partial = False
        return q.session, "partial", None

    def next_job(self) -> tuple[Session, JobKind, DecodeRequest | None] | None:
        """Blocks for the next job; None when stopping and nothing is left."""
        jobs = self.next_jobs(1)
        return jobs[0] if jobs else None

    def take_jobs(self, max_partials: int) -> list[tuple[Session, JobKind, DecodeRequest | None]]:
        """The next job, and when it is a partial pass, up to ``max_partials`` - 1 more partial
        passes of other sessions, next in the same order, to decode as one batch. Never blocks."""
        with self._cond:
            first = self.take_job()
            if first is None:
                return []
            jobs = [first]
            while first[1] == "partial" and len(jobs) < max_partials:
                q = self._pick(partials_only=True)
                if q is None:
                    break
                jobs.append(self._start(q))
            return jobs

    def next_jobs(self, max_partials: int) -> list[tuple[Session, JobKind, DecodeRequest | None]]:
        """``take_jobs``, blocking until there is one; [] when stopping and nothing is left."""
        with self._cond:
            while True:
                jobs = self.take_jobs(max_partials)
                if jobs:
                    return jobs
                if self._stopping:
                    return []
                self._cond.wait()

    def job_done(self, session: Session, decode_s: float = 0.0) -> None:
        """A job of ``session`` finished after ``decode_s`` seconds of decoding."""
        with self._cond:
            self.busy -= 1
            q = self._queues.get(session.key)
            if q is not None and q.session is session:
                q.running -= 1
                q.usage_s = self._usage(q, self._clock()) + decode_s
            self._cond.notify_all()

    def forget(self, session: Session) -> None:
        """The session is closed: its usage is dropped once its last job is out."""
        with self._cond:
            q = self._queues.get(session.key)
            if q is not None and q.session is session and not q.has_work() and not q.running:
                del self._queues[session.key]

    def usage(self, session: Session) -> float:
        """The session's recent decode time, s (decaying)."""
        with self._cond:
            q = self._queues.get(session.key)
            return 0.0 if q is None else self._usage(q, self._clock())

    def wait_idle(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while self.busy or any(q.has_work() for q in self._queues.values()):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
            return True

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            for q in self._queues.values():
                q.partial_seq = None
            self._cond.notify_all()

    def others_waiting(self, session: Session) -> bool:
        """Whether a session other than ``session`` has a job queued."""
        with self._cond:
            return any(q.has_work() for q in self._queues.values() if q.session is not session)

    def depth(self) -> tuple[int, int]:
        """Queued finals (speculative included) and queued partial passes."""
        with self._cond:
            finals = sum(len(q.finals) + len(q.speculative) for q in self._queues.values())
            partials = sum(q.partial_seq is not None for q in self._queues.values())
            return finals, partials


@dataclass
class Counters:
    decodes: int = 0
    partial_decodes: int = 0
    final_decodes: int = 0
    decode_s: float = 0.0
    partial_decode_s: float = 0.0
    final_decode_s: float = 0.0
    partials_coalesced: int = 0
    partials_dropped: int = 0
    partials_sent: int = 0
    finals_sent: int = 0
    audio_s: float = 0.0
    bad_frames: int = 0
    hints_refused: int = 0  # opens refused for their hints (no session)
    errors: int = 0
    decode_errors: int = 0
    sessions_opened: int = 0
    max_utterance_buffer_s: float = 0.0
    speculative_voided: int = 0  # of sessions already closed
    finals_from_partials: int = 0  # of sessions already closed
    finals_fell_back: int = 0  # of sessions already closed
    segments_committed: int = 0  # of sessions already closed
    loops_cut: int = 0  # of sessions already closed
    batched_passes: int = 0  # partial passes decoded in a batch with others
    greedy_finals: int = 0  # finals decoded with beam 1 because other work waited


# ---------------------------------------------------------------------------- the server


class Server:
    def __init__(self, cfg: ServeConfig, engine: Engine, vad_model: SileroModel, out: FrameWriter):
        self.cfg = cfg
        self.engine = engine
        self.vad_model = vad_model
        self.out = out
        self.sessions: dict[str, Session] = {}
        self.sched = Scheduler(pool=cfg.pool)
        self.counters = Counters()
        self._counters_lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._decode_loop, name=f"decode-{i}", daemon=True)
            for i in range(cfg.pool)
        ]
        self._started = time.monotonic()
        self._cpu_started = time.process_time()

    def start(self) -> None:
        for t in self._threads:
            t.start()

    # -- input

    def handle(self, frame: JsonFrame | AudioFrame | BadFrame) -> bool:
        """One frame from the runner; False when the worker should stop (shutdown)."""
        if isinstance(frame, BadFrame):
            self.counters.bad_frames += 1
            self._error("bad_frame", frame.message)
            return True
        if isinstance(frame, AudioFrame):
            self._audio(frame)
            return True
        msg = frame.message
        kind = msg["type"]
        if kind == "open":
            self._open(msg)
        elif kind == "close":
            self._close(msg)
        elif kind == "stats":
            self.out.send(self.stats())
        elif kind == "shutdown":
            return False
        else:
            self._error("bad_frame", f"unknown message type {kind!r}", msg.get("key"))
        return True

    def internal_error(self, frame: JsonFrame | AudioFrame | BadFrame, e: Exception) -> None:
        key = frame.key if isinstance(frame, AudioFrame) else None
        if isinstance(frame, JsonFrame):
            key = frame.message.get("key")
        self._error("internal", f"{type(e).__name__}: {e}", key)

    def _error(self, code: str, message: str, key: object = None) -> None:
        self.counters.errors += 1
        body: dict[str, Any] = {"type": "error", "code": code, "message": message}
        if isinstance(key, str):
            body["key"] = key
        self.out.send(body)

    def _open(self, msg: dict[str, Any]) -> None:
        key = msg.get("key")
        if not isinstance(key, str) or not key:
            self._error("bad_frame", "open needs a non-empty string `key`")
            return
        if key in self.sessions:
            self._error("session_exists", f"session {key} is already open", key)
            return
        mode = msg.get("mode", "stream")
        if mode not in ("stream", "offline"):
            self._error("bad_frame", f"open mode is {mode!r}, expected stream or offline", key)
            return
        language = msg.get("language") or self.cfg.stream.language
        hints = msg.get("hints") or []
        prompt = msg.get("prompt") or ""
        if not isinstance(language, str) or not isinstance(prompt, str):
            self._error("bad_frame", "open `language` and `prompt` must be strings", key)
            return
        problem = hints_problem(hints)
        if problem is not None:
            self.counters.hints_refused += 1
            self._error("bad_frame", f"{problem}; session {key} is not opened", key)
            return
        if not self.engine.multilingual:
            language = "en"
        session = Session(key=key, mode=mode, language=language)
        if mode == "stream":
            session.policy = StreamPolicy(
                self.cfg.stream, language=language, hints=hints, prompt=prompt
            )
            session.vad = VadStream(self.vad_model, self.cfg.vad)
        else:
            session.offline_buf = AudioBuffer()
            session.hints = " ".join(h.strip() for h in hints if h.strip()) or None
            session.prompt = prompt[-self.cfg.stream.prompt_chars :] or None
        self.sessions[key] = session
        self.counters.sessions_opened += 1

    def _audio(self, frame: AudioFrame) -> None:
        session = self.sessions.get(frame.key)
        if session is None:
            self._error("unknown_session", f"audio for {frame.key}, which is not open", frame.key)
            return
        pcm = frame.pcm.astype(np.float32) / 32768.0
        with session.lock:
            if session.origin is None:
                session.origin = frame.start_sample
                if session.policy is not None:
                    session.policy.set_origin(frame.start_sample)
            expected = session.origin + session.fed
            if frame.start_sample > expected:  # a gap: keep the clock with silence
                gap = min(frame.start_sample - expected, _MAX_GAP_SAMPLES)
                pcm = np.concatenate([np.zeros(gap, np.float32), pcm])
            elif frame.start_sample < expected:  # overlap: drop what was already fed
                pcm = pcm[min(expected - frame.start_sample, len(pcm)) :]
            if not len(pcm):
                return
            session.fed += len(pcm)
            self.counters.audio_s += len(pcm) / SAMPLE_RATE_HZ
            if session.mode == "offline":
                assert session.offline_buf is not None
                if session.fed > _MAX_OFFLINE_SAMPLES:
                    if session.fed - len(pcm) <= _MAX_OFFLINE_SAMPLES:  # said once
                        self._error("bad_frame", "offline audio over 600 s is dropped", session.key)
                    return
                session.offline_buf.append(pcm)
                return
            assert session.vad is not None and session.policy is not None
            events = session.vad.feed(pcm)
            outs, finals = session.policy.feed(pcm, events)
            session.finals_outstanding += len(finals)
            want = session.policy.partial_due()
            buf_s = session.policy.max_buffer_samples / SAMPLE_RATE_HZ
            self._emit(session, outs)  # under the lock: a session's messages keep their order
        if buf_s > self.counters.max_utterance_buffer_s:
            with self._counters_lock:
                self.counters.max_utterance_buffer_s = max(
                    self.counters.max_utterance_buffer_s, buf_s
                )
        self._submit_finals(session, finals)
        if want:
            self._want_partial(session)

    def _want_partial(self, session: Session) -> None:
        if session.partial_running or session.closing or session.policy is None:
            return
        self.sched.want_partial(session, first=session.policy.awaiting_first_partial())

    def _submit_finals(self, session: Session, finals: list[DecodeRequest]) -> None:
        """Queue finals already counted in ``finals_outstanding`` (under the session lock, where
        they were made, so a decode thread never sees a closing session with none in flight)."""
        if not finals:
            return
        ended = any(not f.speculative for f in finals)
        if ended and self.sched.drop_partial(session):  # the utterance ended: its partial is moot
            self.counters.partials_dropped += 1
        for req in finals:
            self.sched.submit_final(session, req)

    def _close(self, msg: dict[str, Any]) -> None:
        key = msg.get("key")
        session = self.sessions.pop(key, None) if isinstance(key, str) else None
        if session is None:
            self._error("unknown_session", f"close for {key}, which is not open", key)
            return
        finals: list[DecodeRequest] = []
        outs: list[Output] = []
        with session.lock:
            session.closing = True
            if session.mode == "stream":
                assert session.vad is not None and session.policy is not None
                o1, f1 = session.policy.feed(np.zeros(0, np.float32), session.vad.flush())
                o2, f2 = session.policy.close()
                outs, finals = [*o1, *o2], [*f1, *f2]
                self.counters.speculative_voided += session.policy.speculative_voided
            else:
                finals = [self._offline_request(session)]
            session.finals_outstanding += len(finals)
            self._emit(session, outs)
        if self.sched.drop_partial(session):
            self.counters.partials_dropped += 1
        self._submit_finals(session, finals)
        self._maybe_closed(session)

    def _offline_request(self, session: Session) -> DecodeRequest:
        buf = session.offline_buf
        assert buf is not None
        origin = session.origin or 0
        return DecodeRequest(
            kind="final",
            utt=0,
            audio_8k=buf.copy(buf.origin, buf.end),
            start_sample=origin,
            beam=self.cfg.stream.beam_final,
            language=session.language,
            prompt=session.prompt,
            hotwords=session.hints,
        )

    def _maybe_closed(self, session: Session) -> None:
        with session.lock:
            done = session.closing and session.finals_outstanding == 0 and not session.closed_sent
            if done:
                session.closed_sent = True
        if done:
            if session.policy is not None:  # its last final is out: its counters are final too
                with self._counters_lock:
                    self.counters.finals_from_partials += session.policy.finals_from_partials
                    self.counters.finals_fell_back += session.policy.finals_fell_back
                    self.counters.segments_committed += session.policy.segments_committed
                    self.counters.loops_cut += session.policy.loops_cut
            self.sched.forget(session)
            self.out.send({"type": "closed", "key": session.key})

    # -- output

    def _emit(self, session: Session, outs: list[Output]) -> None:
        for o in outs:
            if isinstance(o, VadOut):
                self.out.send({"type": "vad", "key": session.key, "event": o.event, "ms": o.ms})
            elif isinstance(o, PartialOut):
                self.counters.partials_sent += 1
                self.out.send(
                    {
                        "type": "partial",
                        "key": session.key,
                        "utt": o.utt,
                        "text": o.text,
                        "stable": o.stable,
                        "audio_start_ms": o.audio_start_ms,
                        "audio_end_ms": o.audio_end_ms,
                        "decode_ms": o.decode_ms,
                    }
                )
            elif isinstance(o, FinalOut):
                self.counters.finals_sent += 1
                if self.cfg.log_text:
                    log.info("final %s utt=%d: %s", session.key, o.utt, o.text)
                self.out.send(
                    {
                        "type": "final",
                        "key": session.key,
                        "utt": o.utt,
                        "text": o.text,
                        "audio_start_ms": o.audio_start_ms,
                        "audio_end_ms": o.audio_end_ms,
                        "decode_ms": o.decode_ms,
                        "beam": o.beam,
                        "source": "partials" if o.from_partials else "decode",
                    }
                )

    # -- decoding

    def _decode_loop(self) -> None:
        while True:
            jobs = self.sched.next_jobs(self.cfg.batch)
            if not jobs:
                return
            session, kind, req = jobs[0]
            if kind == "partial":
                self._run_partials([s for s, _, _ in jobs])
                continue
            t0 = time.perf_counter()
            try:
                assert req is not None
                self._run_final(session, req)
            except Exception:  # a decode must never take the worker down
                log.exception("decode failed for a final")
            finally:
                self.sched.job_done(session, time.perf_counter() - t0)

    def _take_partial(self, session: Session) -> DecodeRequest | None:
        """The session's partial pass over its latest audio, if one is still due."""
        policy = session.policy
        if policy is None:
            return None
        with session.lock:
            if session.closing:
                return None
            new_ms = policy.pending_new_ms()
            req = policy.take_partial()
            if req is None:
                return None
            session.partial_running = True
        step = max(self.cfg.stream.partial_min_new_ms, 1)
        with self._counters_lock:
            self.counters.partials_coalesced += max(0, new_ms // step - 1)
        return req

    def _run_partials(self, sessions: list[Session]) -> None:
        """Partial passes of one or more sessions (in the scheduler's order). Passes the engine
        can decode together (same window, beam, language) go as one batch, batch by batch in
        order, each batch's partials sent as soon as it is done: a call is never kept waiting
        for a longer pass of another call that could not share its batch."""
        done: set[int] = set()
        try:
            taken = [(s, r) for s in sessions if (r := self._take_partial(s)) is not None]
            for session in sessions:  # nothing to decode after all
                if all(s is not session for s, _ in taken):
                    self.sched.job_done(session, 0.0)
                    done.add(id(session))
            batches: dict[object, list[tuple[Session, DecodeRequest]]] = {}
            for session, req in taken:
                batches.setdefault(self.engine.batch_key(req), []).append((session, req))
            for batch in batches.values():
                t0 = time.perf_counter()
                try:
                    self._decode_partials(batch)
                except Exception:  # a decode must never take the worker down
                    log.exception("decode failed for a batch of partial passes")
                finally:
                    share = (time.perf_counter() - t0) / len(batch)
                    for session, _ in batch:
                        self.sched.job_done(session, share)
                        done.add(id(session))
        finally:
            for session in sessions:
                if id(session) not in done:
                    self.sched.job_done(session, 0.0)

    def _decode_partials(self, batch: list[tuple[Session, DecodeRequest]]) -> None:
        try:
            outcomes = self.engine.decode_many([r for _, r in batch])
        except Exception as e:
            for session, req in batch:
                assert session.policy is not None
                with session.lock:
                    session.policy.partial_cancelled(req)
                    session.partial_running = False
                self._decode_error(session, req, e)
            return
        if len(batch) > 1:
            with self._counters_lock:
                self.counters.batched_passes += len(batch)
        for (session, req), outcome in zip(batch, outcomes, strict=True):
            policy = session.policy
            assert policy is not None
            with session.lock:
                outs = policy.on_partial(req, outcome.segments, outcome.decode_ms)
                session.partial_running = False
                want = policy.partial_due() and not session.closing
                self._emit(session, outs)
            self._count_decode("partial", outcome.decode_ms)
            if want:
                self._want_partial(session)

    def _run_final(self, session: Session, req: DecodeRequest) -> None:
        if session.policy is not None:
            with session.lock:
                wanted = session.policy.final_wanted(req)
            if not wanted:  # a speculative final that speech resuming voided while it queued
                with session.lock:
                    session.finals_outstanding -= 1
                self._maybe_closed(session)
                return
        if session.policy is not None and self._greedy_now(session, req):
            req = replace(req, beam=self.cfg.stream.beam_partial)
            with self._counters_lock:
                self.counters.greedy_finals += 1
        try:
            offline = session.policy is None
            outcome = self.engine.decode_offline(req) if offline else self.engine.decode(req)
        except Exception as e:
            if session.policy is not None:
                with session.lock:
                    session.policy.final_failed(req)
            self._decode_error(session, req, e)
            with session.lock:
                session.finals_outstanding -= 1
            self._maybe_closed(session)
            return
        self._count_decode("final", outcome.decode_ms)
        with session.lock:
            if session.policy is not None:
                outs = session.policy.on_final(req, outcome.segments, outcome.decode_ms)
            else:  # offline: one final for the whole buffer, even when it says nothing
                outs = [
                    FinalOut(
                        utt=0,
                        text=" ".join(pass_words(outcome.segments, self.cfg.stream).words),
                        audio_start_ms=req.start_sample * 1000 // SAMPLE_RATE_HZ,
                        audio_end_ms=req.end_sample * 1000 // SAMPLE_RATE_HZ,
                        decode_ms=outcome.decode_ms,
                        beam=req.beam,
                    )
                ]
            self._emit(session, outs)
            session.finals_outstanding -= 1
        self._maybe_closed(session)

    def _greedy_now(self, session: Session, req: DecodeRequest) -> bool:
        """A stream final is decoded greedily (where greedy finals are allowed) while other
        calls' work waits: under load its latency counts more than beam 5's fraction of a point
        of WER."""
        if not self.cfg.stream.greedy_finals or req.beam <= self.cfg.stream.beam_partial:
            return False
        return self.sched.others_waiting(session)

    def _count_decode(self, kind: Literal["partial", "final"], decode_ms: int) -> None:
        with self._counters_lock:
            c = self.counters
            c.decodes += 1
            c.decode_s += decode_ms / 1000
            if kind == "partial":
                c.partial_decodes += 1
                c.partial_decode_s += decode_ms / 1000
            else:
                c.final_decodes += 1
                c.final_decode_s += decode_ms / 1000

    def _decode_error(self, session: Session, req: DecodeRequest, e: Exception) -> None:
        with self._counters_lock:
            self.counters.decode_errors += 1
        log.error("decode error (%s pass): %s", req.kind, e)
        self._error("decode_error", f"{req.kind} decode failed: {e}", session.key)

    # -- stats and lifecycle

    def stats(self) -> dict[str, Any]:
        finals, partials = self.sched.depth()
        live = [s.policy for s in self.sessions.values() if s.policy]
        voided = sum(p.speculative_voided for p in live)
        with self._counters_lock:
            c = self.counters
            wall = time.monotonic() - self._started
            return {
                "type": "stats",
                "sessions": len(self.sessions),
                "queue": finals + partials,
                "queue_finals": finals,
                "queue_partials": partials,
                "busy": self.sched.busy,
                "pool": self.cfg.pool,
                "partials_coalesced": c.partials_coalesced,
                "partials_dropped": c.partials_dropped,
                "partials_sent": c.partials_sent,
                "finals_sent": c.finals_sent,
                "decodes": c.decodes,
                "partial_decodes": c.partial_decodes,
                "final_decodes": c.final_decodes,
                "decode_s": round(c.decode_s, 3),
                "partial_decode_s": round(c.partial_decode_s, 3),
                "final_decode_s": round(c.final_decode_s, 3),
                "audio_s": round(c.audio_s, 3),
                "cpu_s": round(time.process_time() - self._cpu_started, 3),
                "uptime_s": round(wall, 3),
                "sessions_opened": c.sessions_opened,
                "bad_frames": c.bad_frames,
                "hints_refused": c.hints_refused,
                "errors": c.errors,
                "decode_errors": c.decode_errors,
                "max_utterance_buffer_s": round(c.max_utterance_buffer_s, 3),
                "full_window_retries": self.engine.full_window_retries,
                "speculative_finals_voided": c.speculative_voided + voided,
                "finals_from_partials": c.finals_from_partials
                + sum(p.finals_from_partials for p in live),
                "finals_fell_back": c.finals_fell_back + sum(p.finals_fell_back for p in live),
                "segments_committed": c.segments_committed
                + sum(p.segments_committed for p in live),
                "loops_cut": c.loops_cut + sum(p.loops_cut for p in live),
                "batched_passes": c.batched_passes,
                "greedy_finals": c.greedy_finals,
                "capped_passes": self.engine.capped_passes,
            }

    def shutdown(self, wait: bool) -> None:
        if wait:
            self.sched.wait_idle(timeout_s=120)
        self.sched.stop()


def _fatal(out: FrameWriter, code: str, message: str) -> int:
    log.error("%s: %s", code, message)
    out.send({"type": "fatal", "code": code, "message": message})
    return 2


def serve(cfg: ServeConfig, stdin: BinaryIO, stdout: BinaryIO) -> int:
    """Run the worker until EOF or shutdown; returns the exit code."""
    out = FrameWriter(stdout)
    try:
        info = models.resolve_model(cfg.model)
    except models.ModelNotFoundError as e:
        return _fatal(out, "model_not_found", str(e))
    cfg = resolve_vad_rate(resolve_pool(cfg, info.multilingual), info.multilingual)
    try:
        choice = choose_device(cfg.device, cfg.compute_type)
    except ValueError as e:
        return _fatal(out, "device_unavailable", str(e))
    cpu_threads = cfg.cpu_threads or max(1, (os.cpu_count() or 1) // cfg.pool)
    t0 = time.monotonic()
    try:
        engine = Engine(
            info.path,
            device=choice.device,
            compute_type=choice.compute_type,
            cpu_threads=cpu_threads,
            pool=cfg.pool,
            window_margin_ms=cfg.window_margin_ms,
            min_window_ms=cfg.min_window_ms,
            final_min_window_ms=cfg.final_min_window_ms,
            loop_compression_ratio=cfg.stream.compression_ratio_threshold,
            keep_segment=lambda seg: keep_segment(seg, cfg.stream),
            log_prob_threshold=cfg.stream.log_prob_threshold,
        )
        vad_model = SileroModel()
        engine.warm_up()
    except Exception as e:  # a corrupt model, a device that is not there
        return _fatal(out, "model_load_failed", f"{info.path}: {e}")
    log.info(
        "model %s (%s) loaded in %.1fs: %s %s, pool %d x %d threads",
        info.name,
        info.path,
        time.monotonic() - t0,
        choice.device,
        choice.compute_type,
        cfg.pool,
        cpu_threads,
    )
    cfg = resolve_greedy_finals(cfg, engine.multilingual)
    server = Server(cfg, engine, vad_model, out)
    server.start()
    out.send(
        {
            "type": "ready",
            "model": info.name,
            "path": info.path,
            "multilingual": engine.multilingual,
            "device": choice.device,
            "compute_type": choice.compute_type,
            "pool": cfg.pool,
            "cpu_threads": cpu_threads,
        }
    )
    while True:
        frame = read_frame(stdin)
        if frame is None:  # EOF: the runner is gone; nothing to answer to
            server.shutdown(wait=False)
            log.info("stdin closed; exiting")
            return 0
        try:
            go_on = server.handle(frame)
        except Exception as e:  # a bug must cost one frame, not every call on this worker
            log.exception("frame handling failed")
            server.internal_error(frame, e)
            go_on = True
        if not go_on:
            server.shutdown(wait=True)
            log.info("shutdown; exiting")
            return 0
        if out.broken:
            server.shutdown(wait=False)
            return 0


def serve_main(args: argparse.Namespace) -> int:
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.INFO,
        format="%(asctime)s whisper-worker %(levelname)s %(message)s",
    )
    logging.getLogger("faster_whisper").setLevel(logging.WARNING)  # it logs every decode
    try:
        cfg = serve_config(args)
    except ValueError as e:
        print(f"whisper worker: {e}", file=sys.stderr)
        return 2
    return serve(cfg, sys.stdin.buffer, sys.stdout.buffer)
