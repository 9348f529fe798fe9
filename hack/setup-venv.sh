#!/usr/bin/env bash
# Create (once) the Python virtual environment and link it as ./.venv.
#
# The environment lives in the cache folder, keyed by a hash of the dependency lists in
# pyproject.toml (nothing else in that file), because
# torch from PyPI is a CUDA build of several GB: a fresh clone reuses it in seconds, and a
# change of dependencies makes a new one. The project itself is installed editable into it
# on every call (no dependencies, a few seconds), so the venv always runs this checkout.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${STYLEGAN_CACHE:-$HOME/.cache/stylegan-operator}"
PY="${PYTHON:-python3.11}"
command -v "$PY" >/dev/null || PY=python3
deps="$("$PY" - "$ROOT/pyproject.toml" <<'PYEOF'
import sys, tomllib
p = tomllib.load(open(sys.argv[1], "rb"))["project"]
print("\n".join(sorted(p["dependencies"] + p["optional-dependencies"]["dev"])))
PYEOF
)"
key="$(printf '%s' "$deps" | sha256sum | cut -c1-12)"
VENV="$CACHE/venv-$key"

if [[ ! -f "$VENV/.complete" ]]; then
  echo "[setup-venv] creating $VENV (first run downloads torch, several GB; later runs reuse it)" >&2
  rm -rf "$VENV"
  mkdir -p "$CACHE"
  "$PY" -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --upgrade pip setuptools wheel
  # Dependencies only; the project goes in editable below.
  mapfile -t reqs <<<"$deps"
  "$VENV/bin/pip" install --progress-bar off "${reqs[@]}"
  touch "$VENV/.complete"
fi
ln -sfn "$VENV" "$ROOT/.venv"
"$VENV/bin/pip" install --quiet --no-deps --no-build-isolation -e "$ROOT" >/dev/null
echo "$VENV"
