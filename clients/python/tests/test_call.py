"""The client against the real edge on workerd (``ozen stack``), with calls placed by ``ozen call``:
events, acks with a small window, reconnect with ``since=``, play/clear/mark, barge-in, errors."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest
from conftest import (
    READ_ONLY_TOKEN,
    SimulatedCall,
    Stack,
    heard_segments,
    new_call_sid,
    pcm_wav,
    silence,
    speech,
    tone,
)

from ozen_client import (
    AudioFormat,
    BargeIn,
    CallStarted,
    CallStream,
    ControlState,
    Event,
    OzenClient,
    OzenError,
    PlaybackCleared,
    PlaybackFinished,
    PlaybackStarted,
    SpeechStarted,
)

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def call_stats(stack: Stack, call_sid: str) -> dict[str, Any]:
    req = urllib.request.Request(
        f"{stack.url}/calls/{call_sid}/stats",
        headers={"Authorization": f"Bearer {stack.api_token}"},
    )
    with urllib.request.urlopen(req, timeout=10) as res:
        value: dict[str, Any] = json.load(res)
        return value


def held_events(stack: Stack, call_sid: str) -> list[dict[str, Any]]:
    req = urllib.request.Request(
        f"{stack.url}/calls/{call_sid}/events",
        headers={"Authorization": f"Bearer {stack.api_token}"},
    )
    with urllib.request.urlopen(req, timeout=10) as res:
        value: dict[str, Any] = json.load(res)
        events: list[dict[str, Any]] = value["events"]
        return events


class Collector:
    """Reads a stream's events in the background, as an agent's loop would."""

    def __init__(self, call: CallStream) -> None:
        self.call = call
        self.events: list[Event | ControlState] = []
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for e in self.call:
            self.events.append(e)

    def of(self, kind: type[T]) -> list[T]:
        return [e for e in self.events if isinstance(e, kind)]

    async def until(self, what: str, ready: Callable[[], object], timeout_s: float = 15) -> None:
        deadline = asyncio.get_running_loop().time() + timeout_s
        while not ready():
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"timed out waiting for {what}; got {self.events}")
            await asyncio.sleep(0.02)


async def streaming(stack: Stack, call: SimulatedCall, **kw: Any) -> tuple[CallStream, Collector]:
    """The call's stream (control), once the call is streaming (its ``call.started``)."""
    stream = OzenClient(stack.url, stack.api_token).call(call.call_sid, **kw)
    await stream.open()
    events = Collector(stream)
    await events.until("call.started", lambda: events.of(CallStarted))
    return stream, events


def test_plays_a_wav_file_and_the_caller_hears_all_of_it(
    stack: Stack, place_call: Callable[..., SimulatedCall], tmp_path: Path
) -> None:
    call = place_call(silence(3500))
    wav = tmp_path / "answer.wav"
    wav.write_bytes(pcm_wav(tone(24000, 1000), 24000))

    async def agent() -> PlaybackFinished | PlaybackCleared:
        stream, events = await streaming(stack, call)
        async with stream:
            playback = await stream.play(wav, play_id="answer")
            outcome = await playback.wait(10)
            started = events.of(PlaybackStarted)
            assert [s.play_id for s in started] == ["answer"]
            return outcome

    outcome = run(agent())
    assert isinstance(outcome, PlaybackFinished)
    assert outcome.play_id == "answer" and outcome.duration_ms == pytest.approx(1000, abs=20)
    call.wait()
    runs = heard_segments(call.heard_path)
    assert len(runs) == 1
    assert runs[0][1] - runs[0][0] == pytest.approx(1000, abs=40)


def test_streams_tts_chunks_and_clear_stops_it_mid_utterance(
    stack: Stack, place_call: Callable[..., SimulatedCall]
) -> None:
    call = place_call(silence(5000))
    fmt = AudioFormat("pcm16", 16000)

    async def tts() -> AsyncIterator[bytes]:
        # a TTS that makes 100 ms of audio every 50 ms, for 3 s of speech
        for _ in range(30):
            yield tone(16000, 100)
            await asyncio.sleep(0.05)

    async def agent() -> float:
        stream, events = await streaming(stack, call)
        async with stream:
            speaking = asyncio.create_task(stream.play(tts(), play_id="long", audio_format=fmt))
            await events.until("playback.started", lambda: events.of(PlaybackStarted))
            await asyncio.sleep(0.5)
            await stream.clear()
            playback = await speaking
            assert playback.cleared
            assert 0 < playback.chunks_sent < 30  # the rest of the TTS was never sent
            cleared = await playback.wait(5)
            assert isinstance(cleared, PlaybackCleared)
            assert cleared.reason == "clear" and 300 <= cleared.heard_ms <= 1500
            # speaking again after a clear, with a mark after it
            again = await stream.play(tone(16000, 200), play_id="short", audio_format=fmt)
            mark = await stream.mark("after-short")
            echo = await mark.wait(5)
            assert echo.name == "after-short" and not echo.cleared
            assert isinstance(await again.wait(5), PlaybackFinished)
            return cleared.heard_ms

    heard_ms = run(agent())
    call.wait()
    # what the caller heard: the long one until the clear, then the short one; the edge's
    # heard_ms is estimated between mark echoes, which come every 200 ms of audio
    heard = sum(end - start for start, end in heard_segments(call.heard_path))
    assert heard == pytest.approx(heard_ms + 200, abs=220)


def test_barge_in_cuts_the_agent_and_play_stops_sending(
    stack: Stack, place_call: Callable[..., SimulatedCall]
) -> None:
    # the caller is quiet for 1.5 s, then speaks over the agent
    call = place_call(silence(1500) + speech("password") + silence(1500))
    fmt = AudioFormat("pcm16", 8000)

    async def tts() -> AsyncIterator[bytes]:
        for _ in range(60):  # 6 s of speech at twice real time
            yield tone(8000, 100)
            await asyncio.sleep(0.05)

    async def agent() -> None:
        stream, events = await streaming(stack, call)
        async with stream:
            playback = await stream.play(tts(), play_id="talk", audio_format=fmt)
            assert playback.cleared and playback.chunks_sent < 60
            cleared = await playback.wait(5)
            assert isinstance(cleared, PlaybackCleared) and cleared.reason == "barge_in"
            await events.until("barge_in", lambda: events.of(BargeIn))
            barge_in = events.of(BargeIn)[0]
            assert barge_in.policy == "speech" and barge_in.play_id == "talk"
            onset = events.of(SpeechStarted)[0]
            assert barge_in.speech_audio_ms == onset.audio_ms
            assert barge_in.latency_ms is not None

    run(agent())
    call.wait()
    runs = heard_segments(call.heard_path)
    assert len(runs) == 1
    # the agent was heard from its start until a little after the caller's onset (1.75 s in)
    assert runs[0][1] < 1750 + 1000


def test_edge_errors_raise_with_their_code(
    stack: Stack, place_call: Callable[..., SimulatedCall]
) -> None:
    call = place_call(silence(4000), heard=False)

    async def agent() -> None:
        with pytest.raises(OzenError) as wrong:
            await OzenClient(stack.url, "wrong-token").call(call.call_sid).open()
        assert wrong.value.code == "http_401"
        with pytest.raises(OzenError) as read_only:
            await OzenClient(stack.url, READ_ONLY_TOKEN).call(call.call_sid).open()
        assert read_only.value.code == "http_403"

        stream, _ = await streaming(stack, call)
        async with stream:
            # 8 s sent at once into a 3 s queue (PLAYBACK_QUEUE_MS=3000): the edge refuses
            with pytest.raises(OzenError) as full:
                flood = await stream.play(
                    b"\x55" * 64000,
                    play_id="flood",
                    audio_format=AudioFormat("mulaw", 8000),
                    max_ahead_ms=60_000,
                )
                await flood.wait(5)
            assert full.value.code == "queue_full" and full.value.play_id == "flood"

        reader = OzenClient(stack.url, stack.api_token).call(call.call_sid, control=False)
        async with reader:
            with pytest.raises(OzenError) as not_controller:
                await reader.clear()
            assert not_controller.value.code == "not_controller"

    run(agent())


def test_play_before_the_call_streams_is_refused_not_streaming(stack: Stack) -> None:
    async def agent() -> None:
        async with OzenClient(stack.url, stack.api_token).call(new_call_sid()) as stream:
            with pytest.raises(OzenError) as early:
                p = await stream.play(silence(200), audio_format=AudioFormat("mulaw", 8000))
                await p.wait(5)
            assert early.value.code == "not_streaming"

    run(agent())


def test_a_small_window_keeps_flowing_because_the_client_acks(
    stack: Stack, place_call: Callable[..., SimulatedCall]
) -> None:
    call = place_call(silence(5000), heard=False)
    fmt = AudioFormat("pcm16", 8000)

    async def agent() -> None:
        stream, events = await streaming(stack, call)
        async with stream:
            for i in range(8):  # 16 playback events and more, through a window of 4
                p = await stream.play(tone(8000, 60), play_id=f"u{i}", audio_format=fmt)
                await p.wait(5)
            await events.until("8 finished", lambda: len(events.of(PlaybackFinished)) == 8)
            stats = call_stats(stack, call.call_sid)
            subscriber = stats["eventStream"]["subscribers"]["list"][0]
            assert subscriber["closed"] is None
            assert subscriber["sent"] >= 18 and subscriber["acked"] == subscriber["sent"]

    run(agent())


def test_reconnects_with_since_and_delivers_every_event_once(
    stack: Stack, place_call: Callable[..., SimulatedCall]
) -> None:
    call = place_call(silence(6000), heard=False)
    fmt = AudioFormat("pcm16", 8000)

    async def agent() -> list[int]:
        stream, events = await streaming(stack, call)
        async with stream:
            for i in range(6):
                if i == 3:
                    # the network drops the socket (no close handshake) mid-call
                    assert stream._ws is not None
                    stream._ws.transport.abort()
                    await asyncio.sleep(0.05)
                p = await stream.play(tone(8000, 60), play_id=f"r{i}", audio_format=fmt)
                await p.wait(10)
            assert stream.connections == 2
            await events.until("6 finished", lambda: len(events.of(PlaybackFinished)) == 6)
        return [e.n for e in events.events if not isinstance(e, ControlState) and e.n is not None]

    numbers = run(agent())
    call.wait()
    assert numbers == list(range(1, len(numbers) + 1))  # each once, in order, no gap
    held = [e["n"] for e in held_events(stack, call.call_sid)]
    assert numbers == held[: len(numbers)]
