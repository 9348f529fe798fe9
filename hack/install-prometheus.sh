#!/usr/bin/env bash
# Install Debian's `prometheus` package (prometheus + promtool) into the cache folder.
#
# The .deb is downloaded with apt and unpacked with `dpkg -x` rather than installed system-wide:
# no root needed beyond apt's download, no service started, and the binaries sit beside the
# other test tools in $STYLEGAN_CACHE/bin. A prometheus already on PATH is used as it is.
set -euo pipefail
CACHE="${STYLEGAN_CACHE:-$HOME/.cache/stylegan-operator}"
BIN="$CACHE/bin"
mkdir -p "$BIN"
if [[ -x "$BIN/prometheus" && -x "$BIN/promtool" ]]; then exit 0; fi
if command -v prometheus >/dev/null && command -v promtool >/dev/null; then
  ln -sfn "$(command -v prometheus)" "$BIN/prometheus"
  ln -sfn "$(command -v promtool)" "$BIN/promtool"
  exit 0
fi
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
if ! apt-get download prometheus >/dev/null 2>&1; then
  echo "[install-prometheus] refreshing apt lists" >&2
  (apt-get update >/dev/null 2>&1 || sudo apt-get update >/dev/null)
  apt-get download prometheus >/dev/null
fi
deb="$(ls prometheus_*.deb)"
version="${deb#prometheus_}"; version="${version%%_*}"
dest="$CACHE/tools/prometheus-$version"
rm -rf "$dest" && mkdir -p "$dest"
dpkg -x "$deb" "$dest"
ln -sfn "$dest/usr/bin/prometheus" "$BIN/prometheus"
ln -sfn "$dest/usr/bin/promtool" "$BIN/promtool"
echo "[install-prometheus] prometheus $version in $dest" >&2
