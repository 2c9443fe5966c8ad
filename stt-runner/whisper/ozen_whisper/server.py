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
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Literal

import numpy as np

from . import models
from .config import ServeConfig, serve_config
from .device import choose_device
from .engine import Engine
from .protocol import AudioFrame, BadFrame, JsonFrame, encode_json, read_frame
from .streaming import (
    AudioBuffer,
    DecodeRequest,
    FinalOut,
    Output,
    PartialOut,
    StreamPolicy,
    VadOut,
    join_text,
    keep_segment,
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


class Scheduler:
    """Finals first (FIFO), then speculative finals (started at a pause, not yet confirmed), then
    partial passes: one per session, round robin, built from the latest audio when picked."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._finals: deque[tuple[Session, DecodeRequest]] = deque()
        self._speculative: deque[tuple[Session, DecodeRequest]] = deque()
        self._partials: OrderedDict[str, Session] = OrderedDict()
        self._stopping = False
        self.busy = 0

    def submit_final(self, session: Session, req: DecodeRequest) -> None:
        with self._cond:
            (self._speculative if req.speculative else self._finals).append((session, req))
            self._cond.notify()

    def want_partial(self, session: Session) -> bool:
        """Queue a partial pass for the session; False when one is already queued (coalesced)."""
        with self._cond:
            if session.key in self._partials:
                return False
            self._partials[session.key] = session
            self._cond.notify()
            return True

    def drop_partial(self, session: Session) -> bool:
        with self._cond:
            if self._partials.get(session.key) is session:
                del self._partials[session.key]
                return True
            return False

    def next_job(self) -> tuple[Session, Literal["final", "partial"], DecodeRequest | None] | None:
        """Blocks for the next job; None when stopping and nothing is left."""
        with self._cond:
            while True:
                for queue in (self._finals, self._speculative):
                    if queue:
                        session, req = queue.popleft()
                        self.busy += 1
                        return session, "final", req
                if self._partials:
                    _, session = self._partials.popitem(last=False)
                    self.busy += 1
                    return session, "partial", None
                if self._stopping:
                    return None
                self._cond.wait()

    def job_done(self) -> None:
        with self._cond:
            self.busy -= 1
            self._cond.notify_all()

    def wait_idle(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while self._finals or self._speculative or self._partials or self.busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
            return True

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._partials.clear()
            self._cond.notify_all()

    def depth(self) -> tuple[int, int]:
        with self._cond:
            return len(self._finals) + len(self._speculative), len(self._partials)


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
    errors: int = 0
    decode_errors: int = 0
    sessions_opened: int = 0
    max_utterance_buffer_s: float = 0.0
    speculative_voided: int = 0  # of sessions already closed


# ---------------------------------------------------------------------------- the server


class Server:
    def __init__(self, cfg: ServeConfig, engine: Engine, vad_model: SileroModel, out: FrameWriter):
        self.cfg = cfg
        self.engine = engine
        self.vad_model = vad_model
        self.out = out
        self.sessions: dict[str, Session] = {}
        self.sched = Scheduler()
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
        if not isinstance(hints, list) or not all(isinstance(h, str) for h in hints):
            self._error("bad_frame", "open `hints` must be a list of strings", key)
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
        if session.partial_running or session.closing:
            return
        self.sched.want_partial(session)

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
                    }
                )

    # -- decoding

    def _decode_loop(self) -> None:
        while True:
            job = self.sched.next_job()
            if job is None:
                return
            session, kind, req = job
            try:
                if kind == "final":
                    assert req is not None
                    self._run_final(session, req)
                else:
                    self._run_partial(session)
            except Exception:  # a decode must never take the worker down
                log.exception("decode failed for a %s pass", kind)
            finally:
                self.sched.job_done()

    def _run_partial(self, session: Session) -> None:
        policy = session.policy
        if policy is None:
            return
        with session.lock:
            if session.closing:
                return
            new_ms = policy.pending_new_ms()
            req = policy.take_partial()
            if req is None:
                return
            session.partial_running = True
        step = max(self.cfg.stream.partial_min_new_ms, 1)
        with self._counters_lock:
            self.counters.partials_coalesced += max(0, new_ms // step - 1)
        try:
            outcome = self.engine.decode(req)
        except Exception as e:
            with session.lock:
                policy.partial_cancelled(req)
                session.partial_running = False
            self._decode_error(session, req, e)
            return
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
        try:
            outcome = self.engine.decode(req)
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
                kept = [s for s in outcome.segments if keep_segment(s, self.cfg.stream)]
                outs = [
                    FinalOut(
                        utt=0,
                        text=join_text([s.text for s in kept]),
                        audio_start_ms=req.start_sample * 1000 // SAMPLE_RATE_HZ,
                        audio_end_ms=req.end_sample * 1000 // SAMPLE_RATE_HZ,
                        decode_ms=outcome.decode_ms,
                        beam=req.beam,
                    )
                ]
            self._emit(session, outs)
            session.finals_outstanding -= 1
        self._maybe_closed(session)

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
        voided = sum(s.policy.speculative_voided for s in self.sessions.values() if s.policy)
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
                "errors": c.errors,
                "decode_errors": c.decode_errors,
                "max_utterance_buffer_s": round(c.max_utterance_buffer_s, 3),
                "full_window_retries": self.engine.full_window_retries,
                "speculative_finals_voided": c.speculative_voided + voided,
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
