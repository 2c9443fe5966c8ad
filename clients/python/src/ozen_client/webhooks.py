"""Verifying ozen's webhook requests, from Flask, Starlette/FastAPI or any ASGI or WSGI app.

ozen signs each webhook (``docs/api.md``, Records and webhooks): ``X-Ozen-Timestamp`` is the
attempt's Unix seconds and ``X-Ozen-Signature`` is ``v1=`` + hex HMAC-SHA256 with the account's
secret over ``timestamp + "." + body`` (the raw body bytes). :func:`verify_webhook` checks the
signature in constant time and the timestamp against a tolerance (an old one is a replay), then
returns the delivery with its typed event.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .errors import WebhookVerificationError
from .events import Event, parse_event

__all__ = ["WebhookDelivery", "sign_webhook", "verify_webhook"]

#: How far the timestamp may be from now, seconds, by default.
DEFAULT_TOLERANCE_S = 300


@dataclass(frozen=True, slots=True)
class WebhookDelivery:
    """One webhook: the event and where it stands in the call's sequence."""

    #: ``{callSid}:{seq}``, equal to the ``Idempotency-Key`` header: deduplicate on it.
    id: str
    #: 1, 2, ... per call, in order (gaps only where the edge's bound dropped events).
    seq: int
    account_sid: str
    event: Event


Headers = Mapping[str, str] | Iterable[tuple[str, str]] | Iterable[tuple[bytes, bytes]]


def _header(headers: Headers, name: str) -> str | None:
    wanted = name.lower()
    get = getattr(headers, "get", None)
    if callable(get):
        # Flask's and Starlette's headers are case-insensitive; a plain dict may not be
        v = get(name)
        if isinstance(v, str):
            return v
    items = headers.items() if isinstance(headers, Mapping) else headers
    for k, v in items:
        key = k.decode("latin-1") if isinstance(k, bytes) else k
        if key.lower() == wanted:
            return v.decode("latin-1") if isinstance(v, bytes) else v
    return None


def sign_webhook(secret: str, timestamp_s: int, body: bytes) -> str:
    """The ``X-Ozen-Signature`` value ozen sends: ``v1=`` + hex HMAC-SHA256 (for tests)."""
    mac = hmac.new(secret.encode(), str(timestamp_s).encode() + b"." + body, hashlib.sha256)
    return "v1=" + mac.hexdigest()


def verify_webhook(
    headers: Headers,
    body: bytes | str,
    secret: str,
    *,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
    now_s: float | None = None,
) -> WebhookDelivery:
    """Checks one webhook request and returns its delivery; raises WebhookVerificationError.

    ``headers``: the request's headers (any mapping, or (name, value) pairs as ASGI gives them);
    ``body``: the raw body, exactly as received (bytes; a str is encoded as UTF-8);
    ``tolerance_s``: how far the timestamp may be from ``now_s`` (default: the clock), seconds.
    """
    if not secret:
        raise WebhookVerificationError("no webhook secret configured")
    raw = body.encode() if isinstance(body, str) else bytes(body)
    timestamp = _header(headers, "X-Ozen-Timestamp")
    signature = _header(headers, "X-Ozen-Signature")
    if timestamp is None or signature is None:
        raise WebhookVerificationError("X-Ozen-Timestamp or X-Ozen-Signature is missing")
    if not timestamp.isdigit() or len(timestamp) > 12:
        raise WebhookVerificationError("X-Ozen-Timestamp is not Unix seconds")
    ts = int(timestamp)
    now = time.time() if now_s is None else now_s
    if abs(now - ts) > tolerance_s:
        raise WebhookVerificationError(
            f"X-Ozen-Timestamp is {round(now - ts)} s from now, outside {tolerance_s} s"
        )
    expected = sign_webhook(secret, ts, raw)
    # several comma-separated values may come (a secret being rotated): any one that matches
    candidates = [s.strip() for s in signature.split(",") if s.strip().startswith("v1=")]
    if not any(hmac.compare_digest(expected.encode(), c.encode()) for c in candidates):
        raise WebhookVerificationError("X-Ozen-Signature does not match the body")
    try:
        value: Any = json.loads(raw)
    except ValueError as e:
        raise WebhookVerificationError("the body is not JSON") from e
    if not isinstance(value, dict):
        raise WebhookVerificationError("the body is not a JSON object")
    seq, delivery_id, account = value.get("seq"), value.get("id"), value.get("accountSid")
    if not isinstance(seq, int) or not isinstance(delivery_id, str) or not isinstance(account, str):
        raise WebhookVerificationError("the body has no id, seq and accountSid")
    return WebhookDelivery(
        id=delivery_id, seq=seq, account_sid=account, event=parse_event(value.get("event"))
    )
