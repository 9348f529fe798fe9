#!/usr/bin/env bash
# Download, into .whl/ at the repository root, the wheels the trainer needs on the lent GPU
# machine beyond what its image holds (Python 3.12 with torch, numpy, pillow, click, pyyaml,
# scikit-image, tqdm, prometheus-client, pytest; no pydantic): bench/gpu_suite.sh installs
# whatever is in .whl/ into /tmp/site before it runs. Run here, where PyPI is reachable, then
# name `.whl` in the device call's carry list.
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
# The versions this checkout's venv resolved, so the device runs what the tests ran here.
versions="$(.venv/bin/python -m pip list --format=freeze 2>/dev/null)"
pin() { grep -i "^$1==" <<<"$versions" || echo "$1"; }
rm -rf .whl && mkdir -p .whl
for name in pydantic pydantic_core annotated_types typing_inspection; do
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d .whl "$(pin "$name")"
done
ls .whl
