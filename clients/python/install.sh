#!/usr/bin/env bash
# Creates clients/python/.venv with the client (editable), its example agent's server and its
# test tools. Idempotent: a stamp keyed on the requirements and the project file skips pip.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="$here/.venv"
stamp="$venv/.ozen-install-stamp"
want="$(cat "$here/requirements-dev.txt" "$here/pyproject.toml" "$here/install.sh" | sha256sum | cut -d' ' -f1)"

if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
  echo "python client: venv up to date ($venv)"
  exit 0
fi
[[ -x "$venv/bin/python" ]] || python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$here/requirements-dev.txt"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps -e "$here"
echo "$want" > "$stamp"
echo "python client: installed into $venv"
