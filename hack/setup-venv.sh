#!/usr/bin/env bash
# Make ./.venv: a thin per-checkout virtualenv layered over a shared dependency venv.
#
# Two layers, because torch from PyPI is a CUDA build of several GB:
#  1. the dependency venv, in the cache folder, keyed by a hash of the dependency lists in
#     pyproject.toml (nothing else in that file). Created once; a fresh clone reuses it, a
#     change of dependencies makes a new one. The project itself is NOT installed there, so
#     two checkouts (a CI clone beside a working tree) never fight over it.
#  2. ./.venv, made on every call in a second or two: `venv --without-pip`, a .pth file that
#     adds the dependency venv's site-packages, this checkout installed editable (so
#     .venv/bin/stylegan runs this checkout), and the dependency venv's commands (pytest,
#     torchrun, kubectl, ...) copied in with their first line pointing at .venv/bin/python.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${STYLEGAN_CACHE:-$HOME/.cache/stylegan-operator}"
PY="${PYTHON:-python3.11}"
command -v "$PY" >/dev/null || PY=python3
deps="$("$PY" - "$ROOT/pyproject.toml" <<'PYEOF'
import sys, tomllib
p = tomllib.load(open(sys.argv[1], "rb"))["project"]
extras = p["optional-dependencies"]
print("\n".join(sorted(p["dependencies"] + extras["trainer"] + extras["dev"] + extras["plot"]
                      + extras["tensorboard"])))
PYEOF
)"
key="$(printf '%s' "$deps" | sha256sum | cut -c1-12)"
DEPS="$CACHE/venv-$key"

# -- layer 1: the shared dependency venv -------------------------------------------------
if [[ ! -f "$DEPS/.complete" ]]; then
  echo "[setup-venv] creating $DEPS (first run downloads torch, several GB; later runs reuse it)" >&2
  rm -rf "$DEPS"
  mkdir -p "$CACHE"
  "$PY" -m venv "$DEPS"
  "$DEPS/bin/pip" install --quiet --upgrade pip setuptools wheel
  mapfile -t reqs <<<"$deps"
  "$DEPS/bin/pip" install --progress-bar off "${reqs[@]}"
  touch "$DEPS/.complete"
fi
# Earlier versions of this script installed the project into the shared venv; undo that.
if "$DEPS/bin/pip" show --quiet stylegan-operator >/dev/null 2>&1; then
  "$DEPS/bin/pip" uninstall --quiet --yes stylegan-operator >/dev/null 2>&1 || true
fi

# -- layer 2: this checkout's .venv ------------------------------------------------------
VENV="$ROOT/.venv"
[[ -L "$VENV" ]] && rm -f "$VENV"  # older checkouts had a symlink to the shared venv
if [[ ! -x "$VENV/bin/python" || "$(cat "$VENV/.deps" 2>/dev/null)" != "$DEPS" ]]; then
  rm -rf "$VENV"
  "$PY" -m venv --without-pip "$VENV"
fi
site="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
deps_site="$("$DEPS/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
# addsitedir (not a bare path) so the dependency venv's own .pth files are honoured too.
printf 'import site; site.addsitedir(%s)\n' "'$deps_site'" > "$site/stylegan-deps.pth"
echo "$DEPS" > "$VENV/.deps"

for tool in "$DEPS"/bin/*; do
  name="$(basename "$tool")"
  case "$name" in python*|activate*|Activate*|pip*) continue ;; esac
  [[ -f "$tool" ]] || continue
  if head -c 2 "$tool" | grep -q '#!' && head -1 "$tool" | grep -q "$DEPS/bin/python"; then
    { echo "#!$VENV/bin/python"; tail -n +2 "$tool"; } > "$VENV/bin/$name"
    chmod +x "$VENV/bin/$name"
  else
    ln -sfn "$tool" "$VENV/bin/$name"  # native binaries, e.g. kubectl, ruff
  fi
done
"$VENV/bin/python" -m pip install --quiet --no-deps --no-build-isolation -e "$ROOT" \
  >/dev/null 2>&1 || "$VENV/bin/python" -m pip install --no-deps --no-build-isolation -e "$ROOT"
echo "$VENV"
