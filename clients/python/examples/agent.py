"""An example voice agent on ozen (Starlette + uvicorn): it answers each thing the caller says.

ozen POSTs the call's events to ``/ozen/webhook`` (the edge's ``WEBHOOK_URL``, signed with
``WEBHOOK_SECRET``). On ``call.started`` the agent opens the call's event stream with control
(``ozen_client``); on each final it answers, streaming a recorded prompt as a TTS would stream
its audio; when the caller speaks over it (``barge_in``: the edge has already cut the audio) it
stops producing speech. Your LLM and TTS go in :meth:`Agent.answer`.

    pip install './clients/python[examples]'
    python clients/python/examples/agent.py --edge http://127.0.0.1:8787 \\
        --token "$OZEN_API_TOKEN" --webhook-secret "$OZEN_WEBHOOK_SECRET" --port 8000

``--call CA...`` attaches to one call without webhooks. ``GET /stats`` shows what it did. It
prints one JSON line with its URL once it listens.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
from collections import OrderedDict
from collections.abc import AsyncIterator
from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ozen_client import (
    BargeIn,
    CallEnded,
    CallStarted,
    CallStream,
    Final,
    OzenClient,
    OzenError,
    PlaybackCleared,
    WebhookVerificationError,
    read_wav,
    verify_webhook,
)

log = logging.getLogger("agent")
PROMPT = Path(__file__).with_name("prompt.wav")
#: The simulated TTS makes this much audio per step, ms, and this many times faster than real time.
TTS_CHUNK_MS, TTS_SPEEDUP = 100, 4


class Agent:
    def __init__(self, client: OzenClient, secret: str, prompt: Path) -> None:
        self.client = client
        self.secret = secret
        self.format, self.prompt = read_wav(prompt.read_bytes())
        self.calls: dict[str, asyncio.Task[None]] = {}
        # webhooks come at least once: the last deliveries' ids, to answer a repeat without acting
        self.seen: OrderedDict[str, None] = OrderedDict()
        self.stats = {
            "webhooks": 0,
            "webhooks_refused": 0,
            "calls": 0,
            "answers": 0,
            "answers_heard": 0,
            "barge_ins": 0,
        }

    # ---- HTTP

    async def webhook(self, request: Request) -> Response:
        body = await request.body()
        try:
            delivery = verify_webhook(request.headers, body, self.secret)
        except WebhookVerificationError as e:
            self.stats["webhooks_refused"] += 1
            return JSONResponse({"error": str(e)}, status_code=401)
        self.stats["webhooks"] += 1
        if delivery.id in self.seen:
            return Response(status_code=204)
        self.seen[delivery.id] = None
        if len(self.seen) > 10_000:
            self.seen.popitem(last=False)
        event = delivery.event
        if isinstance(event, CallStarted) and event.call_sid not in self.calls:
            self.attach(event.call_sid)
        return Response(status_code=204)

    async def stats_page(self, _: Request) -> Response:
        return JSONResponse(self.stats)

    # ---- the call

    def attach(self, call_sid: str) -> None:
        """Serves one call, from its start (its stream replays what came before we connected)."""
        self.stats["calls"] += 1
        task = asyncio.create_task(self.serve(call_sid))
        self.calls[call_sid] = task
        task.add_done_callback(lambda _: self.calls.pop(call_sid, None))

    async def serve(self, call_sid: str) -> None:
        speaking: asyncio.Task[None] | None = None
        current = ""
        turn = 0

        def stop_speaking() -> None:
            # stop producing speech (here: the TTS stream) so nothing more is sent
            if speaking is not None:
                speaking.cancel()

        try:
            async with self.client.call(call_sid) as call:
                async for event in call:
                    if isinstance(event, Final) and event.text.strip():
                        # the caller said something: answer it; an answer still playing (with
                        # BARGE_IN=off nothing cut it) is cleared first
                        if speaking is not None and not speaking.done():
                            stop_speaking()
                            await call.clear()
                        turn += 1
                        current = f"answer-{turn}"
                        speaking = asyncio.create_task(self.answer(call, event, current))
                    elif isinstance(event, BargeIn):
                        # the caller spoke over the agent; the edge has cut the audio already
                        self.stats["barge_ins"] += 1
                        stop_speaking()
                    elif isinstance(event, PlaybackCleared) and event.play_id == current:
                        stop_speaking()
                    elif isinstance(event, CallEnded):
                        break
        except OzenError as e:
            log.warning("call %s: %s", call_sid, e)
        finally:
            stop_speaking()

    async def answer(self, call: CallStream, final: Final, play_id: str) -> None:
        """Speaks one answer. A real agent asks its LLM about ``final.text`` and streams its TTS."""
        self.stats["answers"] += 1
        playback = await call.play(self.tts(), play_id=play_id, audio_format=self.format)
        outcome = await playback.wait()
        if not isinstance(outcome, PlaybackCleared):
            self.stats["answers_heard"] += 1

    async def tts(self) -> AsyncIterator[bytes]:
        """The recorded prompt as a TTS streams audio: a chunk at a time, faster than real time."""
        per_chunk = self.format.sample_rate_hz * 2 * TTS_CHUNK_MS // 1000
        for at in range(0, len(self.prompt), per_chunk):
            yield self.prompt[at : at + per_chunk]
            await asyncio.sleep(TTS_CHUNK_MS / 1000 / TTS_SPEEDUP)


def app_for(agent: Agent) -> Starlette:
    return Starlette(
        routes=[
            Route("/ozen/webhook", agent.webhook, methods=["POST"]),
            Route("/stats", agent.stats_page, methods=["GET"]),
        ]
    )


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--edge", default=os.environ.get("OZEN_URL", "http://127.0.0.1:8787"))
    p.add_argument("--token", default=os.environ.get("OZEN_API_TOKEN", ""))
    p.add_argument("--webhook-secret", default=os.environ.get("OZEN_WEBHOOK_SECRET", ""))
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000, help="0: a free one")
    p.add_argument("--prompt", type=Path, default=PROMPT, help="the answer, a WAV file")
    p.add_argument("--call", help="attach to this CallSid now (no webhooks needed)")
    args = p.parse_args()
    if not args.token:
        p.error("--token (or OZEN_API_TOKEN) is required: the edge's API_TOKEN")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    agent = Agent(OzenClient(args.edge, args.token), args.webhook_secret, args.prompt)
    server = uvicorn.Server(
        uvicorn.Config(app_for(agent), host=args.host, port=args.port, log_level="warning")
    )
    serving = asyncio.create_task(server.serve())
    while not server.started and not serving.done():
        await asyncio.sleep(0.01)
    if server.started:
        host, port = server.servers[0].sockets[0].getsockname()[:2]
        print(json.dumps({"url": f"http://{host}:{port}"}), flush=True)
        if args.call:
            agent.attach(args.call)
    await serving


if __name__ == "__main__":
    asyncio.run(main())
