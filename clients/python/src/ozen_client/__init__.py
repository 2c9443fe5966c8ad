"""ozen's client: a call's transcript events and the agent's voice, and webhook verification::

from ozen_client import OzenClient, Final, BargeIn

client = OzenClient("https://edge.example.com", token)
async with client.call(call_sid) as call:
    async for event in call:
        if isinstance(event, Final):
            await call.play("answer.wav")
"""

from .audio import MAX_CHUNK_BYTES, SUPPORTED_RATES_HZ, AudioFormat, read_wav
from .call import CallStream, Mark, OzenClient, Playback, connect_call
from .errors import OzenError, WebhookVerificationError
from .events import (
    BargeIn,
    CallEnded,
    CallStarted,
    ControlState,
    Dtmf,
    EngineSwitched,
    Event,
    Final,
    Meaningful,
    Partial,
    PlaybackCleared,
    PlaybackFinished,
    PlaybackMark,
    PlaybackStarted,
    SpeechEnded,
    SpeechStarted,
    UnknownEvent,
    parse_event,
)
from .webhooks import WebhookDelivery, sign_webhook, verify_webhook

__version__ = "0.1.0"

__all__ = [
    "MAX_CHUNK_BYTES",
    "SUPPORTED_RATES_HZ",
    "AudioFormat",
    "BargeIn",
    "CallEnded",
    "CallStarted",
    "CallStream",
    "ControlState",
    "Dtmf",
    "EngineSwitched",
    "Event",
    "Final",
    "Mark",
    "Meaningful",
    "OzenClient",
    "OzenError",
    "Partial",
    "Playback",
    "PlaybackCleared",
    "PlaybackFinished",
    "PlaybackMark",
    "PlaybackStarted",
    "SpeechEnded",
    "SpeechStarted",
    "UnknownEvent",
    "WebhookDelivery",
    "WebhookVerificationError",
    "connect_call",
    "parse_event",
    "read_wav",
    "sign_webhook",
    "verify_webhook",
]
