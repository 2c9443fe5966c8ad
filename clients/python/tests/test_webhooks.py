"""verify_webhook: ozen's v1 signature over timestamp + "." + body, any header shape, replays
refused. (The example agent's test verifies real deliveries from the edge.)"""

from __future__ import annotations

import json

import pytest

from ozen_client import Final, WebhookVerificationError, sign_webhook, verify_webhook

SECRET = "whsec-test"
NOW = 1_796_000_000
SID = "CA" + "1" * 32
EVENT = {
    "v": 1,
    "type": "final",
    "callSid": SID,
    "wallMs": NOW * 1000,
    "utteranceId": f"{SID}:u1",
    "text": "hello.",
    "rawText": "hello",
    "stable": True,
    "engine": "whisper",
    "audioStartMs": 0,
    "audioEndMs": 800,
}
BODY = json.dumps(
    {"id": f"{SID}:3", "seq": 3, "accountSid": "AC" + "0" * 32, "event": EVENT}
).encode()


def headers(ts: int = NOW, body: bytes = BODY, secret: str = SECRET) -> dict[str, str]:
    return {"X-Ozen-Timestamp": str(ts), "X-Ozen-Signature": sign_webhook(secret, ts, body)}


def test_returns_the_delivery_with_its_typed_event() -> None:
    d = verify_webhook(headers(), BODY, SECRET, now_s=NOW)
    assert (d.id, d.seq) == (f"{SID}:3", 3)
    assert isinstance(d.event, Final) and d.event.text == "hello."


def test_takes_lowercase_dicts_asgi_pairs_and_str_bodies() -> None:
    lower = {k.lower(): v for k, v in headers().items()}
    assert verify_webhook(lower, BODY, SECRET, now_s=NOW).seq == 3
    asgi = [(k.lower().encode(), v.encode()) for k, v in headers().items()]
    assert verify_webhook(asgi, BODY.decode(), SECRET, now_s=NOW).seq == 3


def test_one_of_several_signatures_may_match_a_rotated_secret() -> None:
    h = headers()
    h["X-Ozen-Signature"] = sign_webhook("old", NOW, BODY) + "," + h["X-Ozen-Signature"]
    assert verify_webhook(h, BODY, SECRET, now_s=NOW).seq == 3


@pytest.mark.parametrize(
    ("h", "body", "message"),
    [
        (headers(secret="wrong"), BODY, "does not match"),
        (headers(), BODY.replace(b"hello", b"hellO"), "does not match"),
        (headers(ts=NOW - 301), BODY, "outside 300 s"),
        (headers(ts=NOW + 301), BODY, "outside 300 s"),
        ({"X-Ozen-Timestamp": str(NOW)}, BODY, "missing"),
        ({**headers(), "X-Ozen-Timestamp": "yesterday"}, BODY, "Unix seconds"),
    ],
)
def test_refuses_a_wrong_signature_a_changed_body_an_old_timestamp_and_missing_headers(
    h: dict[str, str], body: bytes, message: str
) -> None:
    with pytest.raises(WebhookVerificationError, match=message):
        verify_webhook(h, body, SECRET, now_s=NOW)


def test_refuses_a_signed_body_that_is_not_a_delivery() -> None:
    body = b'{"hello": 1}'
    with pytest.raises(WebhookVerificationError, match="no id"):
        verify_webhook(headers(body=body), body, SECRET, now_s=NOW)
