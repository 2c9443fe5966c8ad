"""Errors of the client: the edge's refusals carry its code (``docs/agent-control.md``, Errors)."""

from __future__ import annotations

__all__ = ["OzenError", "WebhookVerificationError"]


class OzenError(Exception):
    """The edge refused something, or the call's socket could not be had.

    ``code`` is the edge's error code (``unsupported_format``, ``queue_full``, ``not_controller``,
    ...), ``http_<status>`` when the WebSocket upgrade was refused (401: wrong token, 403: the
    token may not control), or ``connection_lost`` when the socket went away mid-play.
    """

    def __init__(self, code: str, message: str, play_id: str | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.play_id = play_id


class WebhookVerificationError(Exception):
    """A webhook request whose signature, timestamp or body does not verify; answer it 400/401."""
