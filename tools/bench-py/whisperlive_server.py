"""Starts WhisperLive's server (the anchor of `ozen bench stt`) with its faster_whisper backend on
one local model directory, unmodified: `python whisperlive_server.py PORT MODEL_DIR [MAX_CLIENTS]`.
One shared model for every client (`single_model`), as the ozen worker shares one across calls.
Runs in stt-runner/whisper/.venv-bench (`make bench-install`)."""

from __future__ import annotations

import logging
import sys

from whisper_live.server import TranscriptionServer


def main() -> None:
    port = int(sys.argv[1])
    model_dir = sys.argv[2]
    max_clients = int(sys.argv[3]) if len(sys.argv) > 3 else 16
    logging.basicConfig(level=logging.WARNING)
    print(
        f"whisperlive: serving {model_dir} on 127.0.0.1:{port}",
        file=sys.stderr,
        flush=True,
    )
    TranscriptionServer().run(
        "127.0.0.1",
        port=port,
        backend="faster_whisper",
        faster_whisper_custom_model_path=model_dir,
        single_model=True,
        max_clients=max_clients,
        max_connection_time=3600,
    )


if __name__ == "__main__":
    main()
