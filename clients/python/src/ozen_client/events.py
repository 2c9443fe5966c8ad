"""ozen's events, version 1, as typed dataclasses.

One class per event type of the schema (``shared/src/transcript/events.ts`` in the ozen
repository; ``docs/api.md`` and ``docs/agent-control.md`` describe them). Field names are the
schema's in snake_case (``callSid`` -> ``call_sid``); times keep their units in the name
(``wall_ms`` is the edge's or runner's clock, ms since the epoch; ``audio_ms`` and
``audio_start_ms``/``audio_end_ms`` are call audio time, ms since the caller's audio began).

``parse_event`` never raises: an event of a type this version does not know, or one whose fields
do not fit its type, comes back as :class:`UnknownEvent` with the raw object, so a newer edge
never crashes an older client. Every event keeps its raw JSON object in ``raw``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "BargeIn",
    "CallEnded",
    "CallStarted",
    "ControlState",
    "Dtmf",
    "EngineSwitched",
    "Event",
    "Final",
    "Meaningful",
    "Partial",
    "PlaybackCleared",
    "PlaybackFinished",
    "PlaybackMark",
    "PlaybackStarted",
    "SpeechEnded",
    "SpeechStarted",
    "UnknownEvent",
    "parse_event",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class _Base:
    type: str
    call_sid: str
    #: When it was emitted, ms since the epoch.
    wall_ms: float
    #: Its number in the call's event stream (1, 2, ...); None outside a stream (a webhook).
    n: int | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class CallStarted(_Base):
    """The call's first event: the engine transcribing it and its profile."""

    engine: str
    language: str | None = None
    profile: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CallEnded(_Base):
    """The call's last event."""

    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class EngineSwitched(_Base):
    """The call moved to another engine (failover, or back)."""

    from_engine: str
    to_engine: str
    reason: str
    resume_from_ms: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class _Utterance(_Base):
    #: ``{callSid}:u{n}``.
    utterance_id: str
    #: The audio's arrival at the runner -> this event, ms (when known).
    latency_ms: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Partial(_Utterance):
    """An interim hypothesis of the utterance: ``stable`` prefix and ``volatile`` tail."""

    seq: int
    text: str
    stable: str
    volatile: str
    revised: bool
    audio_end_ms: float
    audio_start_ms: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Meaningful(_Utterance):
    """Once per utterance: the first partial that says something (10 letters or a third word)."""

    seq: int
    text: str
    audio_end_ms: float
    audio_start_ms: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Final(_Utterance):
    """The utterance's text, polished; closes the utterance."""

    text: str
    raw_text: str
    engine: str
    audio_start_ms: float
    audio_end_ms: float
    confidence: float | None = None
    alternatives: tuple[Mapping[str, Any], ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class SpeechStarted(_Base):
    """The runner's voice activity detector heard the caller start speaking at ``audio_ms``."""

    audio_ms: float


@dataclass(frozen=True, slots=True, kw_only=True)
class SpeechEnded(_Base):
    """The caller stopped speaking at ``audio_ms`` (started at ``start_audio_ms``)."""

    audio_ms: float
    start_audio_ms: float


@dataclass(frozen=True, slots=True, kw_only=True)
class Dtmf(_Base):
    """The caller pressed a key (``0-9 * # A-D``)."""

    digit: str
    audio_ms: float


@dataclass(frozen=True, slots=True, kw_only=True)
class PlaybackStarted(_Base):
    """Twilio began playing the utterance ``play_id``."""

    play_id: str
    audio_ms: float
    #: Its first chunk at the edge -> its first frame to Twilio, ms.
    queued_ms: float


@dataclass(frozen=True, slots=True, kw_only=True)
class PlaybackFinished(_Base):
    """The caller heard the last frame of ``play_id``."""

    play_id: str
    audio_ms: float
    duration_ms: float


@dataclass(frozen=True, slots=True, kw_only=True)
class PlaybackCleared(_Base):
    """``play_id`` was cut (``reason``: ``clear``, ``barge_in`` or ``call_ended``)."""

    play_id: str
    audio_ms: float
    #: How much of it the caller heard, ms (estimated between mark echoes).
    heard_ms: float
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class PlaybackMark(_Base):
    """An agent mark's echo: the audio before it played, or (``cleared``) a clear came first."""

    name: str
    audio_ms: float
    cleared: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class BargeIn(_Base):
    """The caller spoke over the agent and the edge cut the agent itself."""

    policy: str
    play_id: str
    #: The caller's speech onset, call audio ms.
    speech_audio_ms: float
    audio_ms: float
    #: The onset's audio arriving at the edge -> ``clear`` sent, ms (when known).
    latency_ms: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ControlState:
    """Not a transcript event: this socket was granted control of the call, or lost it."""

    state: Literal["granted", "lost"]
    reason: str | None = None
    type: str = "control"


@dataclass(frozen=True, slots=True, kw_only=True)
class UnknownEvent:
    """An event this version does not know (or whose fields do not fit its type), kept raw."""

    type: str
    raw: Mapping[str, Any]
    #: Why it is not typed: an unknown type, or the field that did not fit.
    problem: str
    n: int | None = None


Event = (
    CallStarted
    | CallEnded
    | EngineSwitched
    | Partial
    | Meaningful
    | Final
    | SpeechStarted
    | SpeechEnded
    | Dtmf
    | PlaybackStarted
    | PlaybackFinished
    | PlaybackCleared
    | PlaybackMark
    | BargeIn
    | UnknownEvent
)


class _FieldError(Exception):
    pass


class _Reader:
    def __init__(self, o: Mapping[str, Any]) -> None:
        self.o = o

    def text(self, key: str) -> str:
        v = self.o.get(key)
        if not isinstance(v, str):
            raise _FieldError(f"{key} is not a string")
        return v

    def opt_text(self, key: str) -> str | None:
        return None if self.o.get(key) is None else self.text(key)

    def number(self, key: str) -> float:
        v = self.o.get(key)
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise _FieldError(f"{key} is not a number")
        return v

    def opt_number(self, key: str) -> float | None:
        return None if self.o.get(key) is None else self.number(key)

    def integer(self, key: str) -> int:
        v = self.o.get(key)
        if isinstance(v, bool) or not isinstance(v, int):
            raise _FieldError(f"{key} is not an integer")
        return v

    def flag(self, key: str) -> bool:
        v = self.o.get(key)
        if not isinstance(v, bool):
            raise _FieldError(f"{key} is not true or false")
        return v


def _n(o: Mapping[str, Any]) -> int | None:
    v = o.get("n")
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def _build(t: str, o: Mapping[str, Any]) -> Event:
    r = _Reader(o)
    base: dict[str, Any] = {
        "type": t,
        "call_sid": r.text("callSid"),
        "wall_ms": r.number("wallMs"),
        "n": _n(o),
        "raw": o,
    }

    def utterance() -> dict[str, Any]:
        return {
            **base,
            "utterance_id": r.text("utteranceId"),
            "latency_ms": r.opt_number("latencyMs"),
        }

    if t == "call.started":
        profile = o.get("profile")
        return CallStarted(
            **base,
            engine=r.text("engine"),
            language=r.opt_text("language"),
            profile=profile if isinstance(profile, Mapping) else None,
        )
    if t == "call.ended":
        return CallEnded(**base, reason=r.text("reason"))
    if t == "engine.switched":
        return EngineSwitched(
            **base,
            from_engine=r.text("from"),
            to_engine=r.text("to"),
            reason=r.text("reason"),
            resume_from_ms=r.opt_number("resumeFromMs"),
        )
    if t == "partial":
        return Partial(
            **utterance(),
            seq=r.integer("seq"),
            text=r.text("text"),
            stable=r.text("stable"),
            volatile=r.text("volatile"),
            revised=r.flag("revised"),
            audio_end_ms=r.number("audioEndMs"),
            audio_start_ms=r.opt_number("audioStartMs"),
        )
    if t == "meaningful":
        return Meaningful(
            **utterance(),
            seq=r.integer("seq"),
            text=r.text("text"),
            audio_end_ms=r.number("audioEndMs"),
            audio_start_ms=r.opt_number("audioStartMs"),
        )
    if t == "final":
        alternatives = o.get("alternatives")
        return Final(
            **utterance(),
            text=r.text("text"),
            raw_text=r.text("rawText"),
            engine=r.text("engine"),
            audio_start_ms=r.number("audioStartMs"),
            audio_end_ms=r.number("audioEndMs"),
            confidence=r.opt_number("confidence"),
            alternatives=tuple(a for a in alternatives if isinstance(a, Mapping))
            if isinstance(alternatives, list)
            else (),
        )
    if t == "speech.started":
        return SpeechStarted(**base, audio_ms=r.number("audioMs"))
    if t == "speech.ended":
        return SpeechEnded(
            **base, audio_ms=r.number("audioMs"), start_audio_ms=r.number("startAudioMs")
        )
    if t == "dtmf":
        return Dtmf(**base, digit=r.text("digit"), audio_ms=r.number("audioMs"))
    if t == "playback.started":
        return PlaybackStarted(
            **base,
            play_id=r.text("playId"),
            audio_ms=r.number("audioMs"),
            queued_ms=r.number("queuedMs"),
        )
    if t == "playback.finished":
        return PlaybackFinished(
            **base,
            play_id=r.text("playId"),
            audio_ms=r.number("audioMs"),
            duration_ms=r.number("durationMs"),
        )
    if t == "playback.cleared":
        return PlaybackCleared(
            **base,
            play_id=r.text("playId"),
            audio_ms=r.number("audioMs"),
            heard_ms=r.number("heardMs"),
            reason=r.text("reason"),
        )
    if t == "playback.mark":
        return PlaybackMark(
            **base, name=r.text("name"), audio_ms=r.number("audioMs"), cleared=r.flag("cleared")
        )
    if t == "barge_in":
        return BargeIn(
            **base,
            policy=r.text("policy"),
            play_id=r.text("playId"),
            speech_audio_ms=r.number("speechAudioMs"),
            audio_ms=r.number("audioMs"),
            latency_ms=r.opt_number("latencyMs"),
        )
    raise _FieldError(f"type {t!r} is not one this client knows")


def parse_event(value: object) -> Event:
    """A decoded JSON value -> its typed event, or :class:`UnknownEvent`. Never raises."""
    if not isinstance(value, Mapping):
        return UnknownEvent(type="", raw={"value": value}, problem="not a JSON object")
    t = value.get("type")
    if not isinstance(t, str):
        return UnknownEvent(type="", raw=value, problem="no type", n=_n(value))
    if value.get("v") != 1:
        return UnknownEvent(
            type=t, raw=value, problem=f"version {value.get('v')!r}, expected 1", n=_n(value)
        )
    try:
        return _build(t, value)
    except _FieldError as e:
        return UnknownEvent(type=t, raw=value, problem=str(e), n=_n(value))
