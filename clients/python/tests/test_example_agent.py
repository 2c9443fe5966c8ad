"""The example agent end to end: the edge on workerd with the whisper runner (tiny.en) POSTs signed
webhooks to ``examples/agent.py``; a simulated caller (``ozen call``, Twilio's buffer model) speaks,
hears the agent's answer after its words, and speaks over the next part of it: the answer is cut.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import (
    REPO,
    SimulatedCall,
    Stack,
    heard_segments,
    silence,
    speech,
    start_stack,
    stop_stack,
)

from ozen_client import read_wav

AGENT = REPO / "clients/python/examples/agent.py"
PROMPT_MS = (lambda f: len(f[1]) * 1000 // (2 * f[0].sample_rate_hz))(
    read_wav((REPO / "clients/python/examples/prompt.wav").read_bytes())
)
SECRET = "example-webhook-secret"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Running:
    def __init__(self, stack: Stack, agent: subprocess.Popen[str], agent_url: str) -> None:
        self.stack, self.agent, self.agent_url = stack, agent, agent_url

    def stats(self) -> dict[str, int]:
        with urllib.request.urlopen(f"{self.agent_url}/stats", timeout=10) as res:
            value: dict[str, int] = json.load(res)
            return value


@pytest.fixture(scope="module")
def running() -> Iterator[Running]:
    edge_port = free_port()
    agent = subprocess.Popen(
        [
            sys.executable,
            str(AGENT),
            "--edge",
            f"http://127.0.0.1:{edge_port}",
            "--token",
            "local-api-token",
            "--webhook-secret",
            SECRET,
            "--port",
            "0",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert agent.stdout is not None
    agent_url = json.loads(agent.stdout.readline())["url"]
    stack = start_stack(
        "GREETING=agent",
        f"WEBHOOK_URL={agent_url}/ozen/webhook",
        f"WEBHOOK_SECRET={SECRET}",
        engine="whisper",
        model="tiny.en",
        port=edge_port,
    )
    assert stack.url == f"http://127.0.0.1:{edge_port}"
    try:
        yield Running(stack, agent, agent_url)
    finally:
        stop_stack(stack)
        agent.terminate()
        agent.wait(10)


def test_the_caller_hears_the_answer_after_speaking_and_cuts_it_by_speaking(
    running: Running,
) -> None:
    # speech of the first utterance ends at 3.75 s; the second begins at 7.25 s, while the
    # agent's answer (4.4 s) is playing; then silence while the agent answers the second
    first_end_ms, second_onset_ms = 500 + 3250, 500 + 3500 + 3000 + 250
    call = SimulatedCall(
        running.stack,
        silence(500) + speech("password") + silence(3000) + speech("channel") + silence(3000),
    )
    try:
        call.wait(90)
        runs = heard_segments(call.heard_path)
    finally:
        call.close()
    assert runs, "the caller heard nothing"
    first = runs[0]
    # the answer came after the caller's words, and was cut soon after the caller spoke again
    assert first[0] > first_end_ms
    assert first[0] < second_onset_ms, f"the answer came too late to be cut: {runs}"
    assert first[1] - first[0] < PROMPT_MS - 300
    assert first[1] < second_onset_ms + 2000
    # the second utterance got its own answer
    assert any(start > second_onset_ms + 2000 for start, _ in runs[1:]), runs
    stats = running.stats()
    assert stats["calls"] == 1 and stats["answers"] >= 2 and stats["barge_ins"] >= 1
    assert stats["webhooks"] >= 3 and stats["webhooks_refused"] == 0


def test_a_webhook_without_a_valid_signature_is_refused(running: Running) -> None:
    req = urllib.request.Request(
        f"{running.agent_url}/ozen/webhook",
        data=b'{"id":"x","seq":1,"accountSid":"AC","event":{}}',
        headers={"X-Ozen-Timestamp": "1", "X-Ozen-Signature": "v1=00", "Content-Type": "a/b"},
        method="POST",
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(req, timeout=10)
    assert refused.value.code == 401
    body: Any = json.loads(refused.value.read())
    assert "X-Ozen-Timestamp" in body["error"]
