#!/usr/bin/env bash
# Creates stt-runner/whisper/.venv and installs the worker's requirements into it, then joins the
# models that ship in parts. Idempotent: a stamp keyed on the requirement files skips the pip step.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="$here/.venv"
stamp="$venv/.ozen-install-stamp"
want="$(cat "$here/requirements.txt" "$here/requirements-dev.txt" "$here/requirements-nodeps.txt" "$here/install.sh" | sha256sum | cut -d' ' -f1)"

if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
  echo "whisper worker: venv up to date ($venv)"
else
  [[ -x "$venv/bin/python" ]] || python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$here/requirements-dev.txt"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps -r "$here/requirements-nodeps.txt"
  # Make `python -m ozen_whisper` importable from any directory (the runner spawns it from the repo root).
  site="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
  echo "$here" > "$site/ozen_whisper.pth"
  echo "$want" > "$stamp"
  echo "whisper worker: installed into $venv"
fi
# Join part-split models into stt-runner/whisper/.models (skips what is already joined).
cd "$here" && HF_HUB_OFFLINE=1 "$venv/bin/python" -m ozen_whisper models --prepare
