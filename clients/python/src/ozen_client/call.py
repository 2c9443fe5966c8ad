"""One call's event stream and the agent's voice on it, over one WebSocket (asyncio).

The protocol is ozen's ``GET /calls/{CallSid}/events`` (``docs/api.md``, Agent event streams)
with ``?control=1`` for the agent's voice (``docs/agent-control.md``). What this module does for
the application:

- **acks**: the edge sends at most ``SUBSCRIBER_WINDOW`` events that were not acknowledged. An
  event counts as read once the application took it from the iterator (or the client handled it
  itself: control and error messages, duplicates); the client sends ``{"ack": N}`` (N = messages
  received on this socket) when the application has caught up, or every ``ack_every`` messages.
  An application that stops reading therefore slows only its own stream, as the protocol means.
- **reconnect**: a socket that closes before the call ended (a network blip, 4008 "too slow") is
  opened again with ``since=`` the last event number received, after a short backoff; the edge
  replays what it still holds (its last 500 events). Events are deduplicated by their number
  ``n``: the application never gets one twice.
- **the voice**: :meth:`CallStream.play` sends an utterance (bytes, a WAV file, or an async
  iterator of chunks as a TTS produces them) in chunks within the protocol's limit, stops sending
  when the utterance is cut (barge-in or clear), and returns a :class:`Playback` whose
  :meth:`Playback.wait` says whether the caller heard it to the end. :meth:`CallStream.clear` and
  :meth:`CallStream.mark` are the protocol's ``clear`` and ``mark``.
- **errors**: the edge answers a refused message with an error on the socket; the client raises
  it as :class:`OzenError` with the edge's code, from the play it names (its ``id``), else from
  the next control call.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import time
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Iterable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote, urlencode

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, InvalidURI

from .audio import AudioFormat, bytes_per_second, read_wav, split_chunks
from .errors import OzenError
from .events import (
    CallEnded,
    ControlState,
    Event,
    PlaybackCleared,
    PlaybackFinished,
    PlaybackMark,
    parse_event,
)

__all__ = ["CallStream", "Mark", "OzenClient", "Playback", "connect_call"]

#: Largest message the client takes from the edge (an event is a few KB; the edge's cap is 256 KB).
MAX_MESSAGE_BYTES = 1 << 20
#: Upgrade answers that a retry cannot fix.
_FATAL_HTTP = {400, 401, 403, 404}
_END = object()


@dataclass(frozen=True, slots=True)
class _Item:
    generation: int
    event: Event | ControlState


def _retrieved(f: asyncio.Future[Any]) -> None:
    # an outcome nobody awaited (the app did not call wait()) is not an error to report
    if not f.cancelled():
        f.exception()


class Playback:
    """One utterance the agent sent: what became of it at the caller."""

    def __init__(self, play_id: str) -> None:
        self.id = play_id
        self._done: asyncio.Future[PlaybackFinished | PlaybackCleared] = (
            asyncio.get_running_loop().create_future()
        )
        self._done.add_done_callback(_retrieved)
        #: The edge cut it (barge-in, clear, the call ended): sending more is pointless.
        self.cleared = False
        self.chunks_sent = 0
        self.audio_ms_sent = 0.0

    def _settle(self, event: PlaybackFinished | PlaybackCleared) -> None:
        if isinstance(event, PlaybackCleared):
            self.cleared = True
        if not self._done.done():
            self._done.set_result(event)

    def _fail(self, error: OzenError) -> None:
        if not self._done.done():
            self._done.set_exception(error)

    @property
    def error(self) -> OzenError | None:
        """The edge's refusal of this utterance, if one came."""
        if self._done.done() and not self._done.cancelled():
            e = self._done.exception()
            return e if isinstance(e, OzenError) else None
        return None

    async def wait(self, timeout_s: float | None = None) -> PlaybackFinished | PlaybackCleared:
        """Until the caller heard it to the end (``PlaybackFinished``) or it was cut
        (``PlaybackCleared``, with ``heard_ms``); raises OzenError when the edge refused it."""
        return await asyncio.wait_for(asyncio.shield(self._done), timeout_s)


class Mark:
    """An agent mark: :meth:`wait` returns its echo (``cleared`` when a clear came first)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._echo: asyncio.Future[PlaybackMark] = asyncio.get_running_loop().create_future()
        self._echo.add_done_callback(_retrieved)

    async def wait(self, timeout_s: float | None = None) -> PlaybackMark:
        return await asyncio.wait_for(asyncio.shield(self._echo), timeout_s)


AudioSource = (
    bytes | bytearray | memoryview | str | os.PathLike[str] | AsyncIterable[bytes] | Iterable[bytes]
)


class CallStream:
    """A call's events (``async for``) and, with ``control=True``, its voice. Use ``async with``."""

    def __init__(
        self,
        base_url: str,
        token: str,
        call_sid: str,
        *,
        control: bool = True,
        since: int | None = 0,
        ack_every: int = 16,
        max_reconnects: int = 20,
        open_timeout_s: float = 10.0,
    ) -> None:
        if not base_url.startswith(("http://", "https://", "ws://", "wss://")):
            raise ValueError(f"base_url {base_url!r} must start with http(s):// or ws(s)://")
        self.call_sid = call_sid
        self.control = control
        self._ws_base = "ws" + base_url.rstrip("/").removeprefix("http").removeprefix("ws")
        self._token = token
        self._ack_every = max(1, ack_every)
        self._max_reconnects = max_reconnects
        self._open_timeout_s = open_timeout_s
        #: The highest event number received: the next socket asks ``since=`` it.
        self.last_n: int | None = since
        self._queue: asyncio.Queue[_Item | object] = asyncio.Queue()
        self._ws: ClientConnection | None = None
        self._generation = 0
        # this socket's counts, for acks
        self._received = 0
        self._pending = 0
        self._acked = 0
        self._granted = asyncio.Event()
        self._plays: dict[str, Playback] = {}
        self._marks: dict[str, deque[Mark]] = {}
        self._errors: deque[OzenError] = deque()
        self._play_lock = asyncio.Lock()
        self._play_ids = itertools.count(1)
        self._reader: asyncio.Task[None] | None = None
        self._closing = False
        self._ended = False
        self._fatal: BaseException | None = None
        self._finished = False
        #: Sockets opened (1 + reconnects), duplicates dropped, for tests and logs.
        self.connections = 0
        self.duplicates_dropped = 0

    # ---- lifecycle

    async def __aenter__(self) -> CallStream:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def open(self) -> None:
        """Opens the first socket; raises OzenError (``http_401``, ...) when the edge refuses it.
        Opening an open stream does nothing."""
        if self._reader is not None:
            return
        ws = await self._connect()
        self._reader = asyncio.create_task(self._run(ws))

    async def close(self) -> None:
        """Closes the socket; the event iterator ends."""
        self._closing = True
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        self._finish()

    @property
    def has_control(self) -> bool:
        """Whether this socket controls the call's voice now."""
        return self._granted.is_set()

    @property
    def ended(self) -> bool:
        """The call ended (``call.ended`` came, or the edge closed the stream with 1000)."""
        return self._ended

    def _url(self) -> str:
        q: dict[str, str] = {}
        if self.control:
            q["control"] = "1"
        if self.last_n is not None:
            q["since"] = str(self.last_n)
        query = ("?" + urlencode(q)) if q else ""
        return f"{self._ws_base}/calls/{quote(self.call_sid, safe='')}/events{query}"

    async def _connect(self) -> ClientConnection:
        try:
            ws = await connect(
                self._url(),
                additional_headers={"Authorization": f"Bearer {self._token}"},
                max_size=MAX_MESSAGE_BYTES,
                open_timeout=self._open_timeout_s,
                compression=None,
            )
        except InvalidStatus as e:
            status = e.response.status_code
            body = e.response.body.decode("utf-8", "replace")[:200] if e.response.body else ""
            raise OzenError(f"http_{status}", body or f"the edge answered HTTP {status}") from e
        except InvalidURI as e:
            raise OzenError("bad_url", str(e)) from e
        self._ws = ws
        self._generation += 1
        self._received = self._pending = self._acked = 0
        self._granted.clear()
        self.connections += 1
        return ws

    async def _run(self, ws: ClientConnection) -> None:
        failures = 0
        try:
            while True:
                try:
                    async for message in ws:
                        if isinstance(message, str):
                            await self._on_text(message)
                except ConnectionClosed:
                    pass
                self._granted.clear()
                code = ws.close_code
                if self._closing or self._ended or code == 1000:
                    self._ended = self._ended or code == 1000
                    return
                # closed before the call ended: open again with since= what was received
                while True:
                    delay = min(5.0, 0.1 * 2**failures)
                    failures += 1
                    if failures > self._max_reconnects:
                        raise OzenError(
                            "connection_lost",
                            f"the event socket closed ({code}) and {self._max_reconnects} "
                            "reconnects failed",
                        )
                    await asyncio.sleep(delay)
                    try:
                        ws = await self._connect()
                        failures = 0
                        break
                    except OzenError as e:
                        if e.code.startswith("http_") and int(e.code[5:]) in _FATAL_HTTP:
                            raise
                    except (OSError, TimeoutError):
                        pass
        except asyncio.CancelledError:
            raise
        except BaseException as e:
            self._fatal = e
        finally:
            self._finish()

    def _finish(self) -> None:
        """The stream is over: the iterator ends, what still waits is told."""
        if self._finished:
            return
        self._finished = True
        ended = OzenError("call_ended", "the call's event stream ended")
        for p in self._plays.values():
            p._fail(self._fatal if isinstance(self._fatal, OzenError) else ended)
        for marks in self._marks.values():
            for m in marks:
                if not m._echo.done():
                    m._echo.set_exception(ended)
        self._marks.clear()
        self._queue.put_nowait(_END)

    # ---- receiving

    async def _on_text(self, text: str) -> None:
        self._received += 1
        try:
            value: Any = json.loads(text)
        except ValueError:
            value = None
        if not isinstance(value, dict):
            await self._maybe_ack()
            return
        kind = value.get("type")
        if kind == "error":
            self._on_error(value)
        elif kind == "control":
            state = value.get("state")
            if state in ("granted", "lost"):
                if state == "granted":
                    self._granted.set()
                else:
                    self._granted.clear()
                reason = value.get("reason")
                self._deliver(
                    ControlState(state=state, reason=reason if isinstance(reason, str) else None)
                )
        else:
            n = value.get("n")
            if isinstance(n, int) and self.last_n is not None and n <= self.last_n:
                self.duplicates_dropped += 1
            else:
                if isinstance(n, int):
                    self.last_n = n
                event = parse_event(value)
                self._note(event)
                self._deliver(event)
        await self._maybe_ack()

    def _on_error(self, value: dict[str, Any]) -> None:
        code = str(value.get("code", "error"))
        message = str(value.get("message", ""))
        play_id = value.get("id") if isinstance(value.get("id"), str) else None
        error = OzenError(code, message, play_id)
        playback = self._plays.get(play_id) if play_id else None
        if playback is not None:
            playback._fail(error)
        else:
            self._errors.append(error)

    def _note(self, event: Event) -> None:
        """Bookkeeping of the voice: playbacks and marks settle on their events."""
        if isinstance(event, PlaybackFinished | PlaybackCleared):
            p = self._plays.pop(event.play_id, None)
            if p is not None:
                p._settle(event)
        elif isinstance(event, PlaybackMark):
            waiting = self._marks.get(event.name)
            if waiting:
                m = waiting.popleft()
                if not m._echo.done():
                    m._echo.set_result(event)
        elif isinstance(event, CallEnded):
            self._ended = True

    def _deliver(self, event: Event | ControlState) -> None:
        self._pending += 1
        self._queue.put_nowait(_Item(self._generation, event))

    async def _maybe_ack(self) -> None:
        consumed = self._received - self._pending
        if consumed <= self._acked:
            return
        if self._pending > 0 and consumed - self._acked < self._ack_every:
            return
        ws = self._ws
        if ws is None:
            return
        self._acked = consumed
        with contextlib.suppress(ConnectionClosed):
            await ws.send(json.dumps({"ack": consumed}))

    def __aiter__(self) -> AsyncIterator[Event | ControlState]:
        return self

    async def __anext__(self) -> Event | ControlState:
        item = await self._queue.get()
        if item is _END:
            self._queue.put_nowait(_END)  # every later call ends too
            if self._fatal is not None:
                raise self._fatal
            raise StopAsyncIteration
        assert isinstance(item, _Item)
        if item.generation == self._generation:
            self._pending -= 1
            await self._maybe_ack()
        return item.event

    # ---- the voice

    def _raise_pending_error(self) -> None:
        if self._errors:
            raise self._errors.popleft()

    async def _controller(self) -> ClientConnection:
        self._raise_pending_error()
        if not self.control:
            raise OzenError("not_controller", "this stream was opened read-only (control=False)")
        try:
            await asyncio.wait_for(self._granted.wait(), self._open_timeout_s)
        except TimeoutError as e:
            raise OzenError("not_controller", "the edge has not granted control") from e
        assert self._ws is not None
        return self._ws

    async def _send(self, ws: ClientConnection, message: dict[str, Any]) -> None:
        try:
            await ws.send(json.dumps(message, separators=(",", ":")))
        except ConnectionClosed as e:
            raise OzenError("connection_lost", "the event socket closed") from e

    async def clear(self) -> None:
        """Stops the agent's voice now (``clear``): every queued or playing utterance is cut."""
        ws = await self._controller()
        await self._send(ws, {"type": "clear"})

    async def mark(self, name: str) -> Mark:
        """A named point after everything sent so far; ``await mark.wait()`` for its echo."""
        ws = await self._controller()
        m = Mark(name)
        self._marks.setdefault(name, deque()).append(m)
        await self._send(ws, {"type": "mark", "name": name})
        return m

    async def play(
        self,
        audio: AudioSource,
        *,
        play_id: str | None = None,
        audio_format: AudioFormat | None = None,
        chunk_ms: int = 200,
        max_ahead_ms: float = 10_000,
    ) -> Playback:
        """Speaks one utterance; returns once all of it is sent (or it was cut meanwhile).

        ``audio``: WAV bytes or a WAV file's path (its format is read from it), raw bytes in
        ``audio_format``, or an (async) iterable of raw chunks in ``audio_format`` as a TTS yields
        them. Chunks go as they come, split to ``chunk_ms`` (at most 64 KiB); a prerecorded
        utterance is sent at most ``max_ahead_ms`` ahead of real time, so a long file never
        fills the edge's queue. Sending stops when the edge cuts the utterance (barge-in,
        ``clear``). Raises OzenError with the edge's code when it refuses the utterance.
        """
        fmt, source = _audio_source(audio, audio_format)
        async with self._play_lock:
            ws = await self._controller()
            generation = self._generation
            pid = play_id or f"play-{next(self._play_ids)}"
            playback = Playback(pid)
            self._plays[pid] = playback
            await self._send(
                ws,
                {
                    "type": "play",
                    "id": pid,
                    "encoding": fmt.encoding,
                    "sampleRate": fmt.sample_rate_hz,
                },
            )
            rate = bytes_per_second(fmt)
            started = time.monotonic()
            carry = b""
            async for piece in source:
                for chunk in split_chunks(carry + bytes(piece), fmt, chunk_ms):
                    carry = b""
                    if fmt.encoding == "pcm16" and len(chunk) % 2:
                        chunk, carry = chunk[:-1], chunk[-1:]
                    if not chunk:
                        continue
                    await self._check_play(playback, generation)
                    if playback.cleared:
                        break
                    ahead_ms = playback.audio_ms_sent - (time.monotonic() - started) * 1000
                    if ahead_ms > max_ahead_ms:
                        await asyncio.sleep((ahead_ms - max_ahead_ms) / 1000)
                        await self._check_play(playback, generation)
                        if playback.cleared:
                            break
                    await self._send(
                        ws,
                        {"type": "play", "id": pid, "audio": base64.b64encode(chunk).decode()},
                    )
                    playback.chunks_sent += 1
                    playback.audio_ms_sent += len(chunk) * 1000 / rate
                if playback.cleared:
                    break
            await self._check_play(playback, generation)
            if not playback.cleared:
                await self._send(ws, {"type": "play", "id": pid, "last": True})
            await asyncio.sleep(0)
            await self._check_play(playback, generation)
            return playback

    async def _check_play(self, playback: Playback, generation: int) -> None:
        await asyncio.sleep(0)  # let the reader take what arrived (a barge-in, an error)
        if playback.error is not None:
            raise playback.error
        if generation != self._generation and not playback.cleared:
            raise OzenError(
                "connection_lost",
                "the socket was replaced mid-utterance; the edge ended what it got",
                playback.id,
            )


def _audio_source(
    audio: AudioSource, audio_format: AudioFormat | None
) -> tuple[AudioFormat, AsyncIterator[bytes]]:
    if isinstance(audio, str | os.PathLike):
        fmt, data = read_wav(Path(audio).read_bytes())
        return fmt, _once(data)
    if isinstance(audio, bytes | bytearray | memoryview):
        data = bytes(audio)
        if data[:4] == b"RIFF":
            fmt, data = read_wav(data)
            return fmt, _once(data)
        if audio_format is None:
            raise ValueError("raw audio needs audio_format (or pass a WAV file)")
        return audio_format, _once(data)
    if audio_format is None:
        raise ValueError("streamed audio needs audio_format")
    if isinstance(audio, AsyncIterable):
        return audio_format, aiter(audio)
    return audio_format, _from_iterable(audio)


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def _from_iterable(chunks: Iterable[bytes]) -> AsyncIterator[bytes]:
    for c in chunks:
        yield c


class OzenClient:
    """An ozen edge and a token (``API_TOKEN`` to control; ``EVENTS_TOKEN`` reads only)."""

    def __init__(self, base_url: str, token: str) -> None:
        self.base_url = base_url
        self.token = token

    def call(
        self, call_sid: str, *, control: bool = True, since: int | None = 0, **kw: Any
    ) -> CallStream:
        """The call's stream: ``async with client.call(sid) as call: async for event in call: ...``.

        ``since=0`` (the default) replays the call's events from its start, so an agent that
        connects late misses nothing; ``since=None`` only takes new ones.
        """
        return CallStream(self.base_url, self.token, call_sid, control=control, since=since, **kw)


async def connect_call(
    base_url: str, token: str, call_sid: str, *, control: bool = True, since: int | None = 0
) -> CallStream:
    """Opens a call's stream (close it with ``await call.close()``)."""
    stream = CallStream(base_url, token, call_sid, control=control, since=since)
    await stream.open()
    return stream
