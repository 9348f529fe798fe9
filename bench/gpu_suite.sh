#!/usr/bin/env bash
# One script for a lent GPU: the `gpu` tests, then the trainer's benchmark rows, every figure
# written as JSON under $OUT (default out/gpu-suite) and a table printed last.
#
#   bench/gpu_suite.sh            on the GPU machine (about 6 minutes on one H100)
#   bench/gpu_suite.sh --cpu      the same plumbing on this machine's CPU, tiny rows: a dry
#                                 run that `make test` passes (tests/unit/foundation/test_gpu_suite.py)
#
# The device machine has its own Python 3.12 with torch and most of the trainer's needs but
# no pydantic and no registry: run bench/fetch-device-wheels.sh here and carry `.whl`; this
# script installs whatever .whl/ holds into /tmp/site. The project is not pip-installed
# there: PYTHONPATH points at its three source folders.
#
# Rows: 256x256 (`auto` preset for 1 GPU) and 1024x1024 (`stylegan2`, config F, at the
# paper's batch 32 in rounds of 4), each in fp32 (TF32 off), bf16 and fp16: sec/kimg, s per
# phase, peak GPU memory, generation img/s. The README of bench/ (RESULTS.md) takes the
# table with the card's name.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
MODE=gpu
[[ "${1:-}" == "--cpu" ]] && MODE=cpu
OUT="${OUT:-$ROOT/out/gpu-suite}"
mkdir -p "$OUT"
PY="${PYTHON:-}"
if [[ -z "$PY" ]]; then
  if [[ -x "$ROOT/.venv/bin/python" && "$MODE" == cpu ]]; then PY="$ROOT/.venv/bin/python"
  else PY="$(command -v python3)"; fi
fi
export PYTHONUNBUFFERED=1
log() { printf '[gpu_suite %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

"$PY" - > "$OUT/device.json" <<'EOF'
import json, platform, torch
cuda = torch.cuda.is_available()
print(json.dumps({
    "torch": torch.__version__, "python": platform.python_version(), "cuda": cuda,
    "device": torch.cuda.get_device_name(0) if cuda else platform.processor() or "cpu",
    "capability": list(torch.cuda.get_device_capability(0)) if cuda else None,
    "memory_gib": round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1) if cuda else None,
}))
EOF
log "device: $(cat "$OUT/device.json")"
if [[ "$MODE" == gpu ]] && ! grep -q '"cuda": true' "$OUT/device.json"; then
  echo "gpu_suite: no CUDA device here; use --cpu for the dry run" >&2
  exit 2
fi

if [[ "$MODE" == gpu ]] && compgen -G "$ROOT/.whl/*.whl" >/dev/null; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site "$ROOT"/.whl/*.whl || { echo "gpu_suite: installing .whl failed" >&2; exit 2; }
  export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$ROOT/common:$ROOT/trainer:$ROOT/operator:$ROOT${PYTHONPATH:+:$PYTHONPATH}"

# 1. The gpu tests (and the mixed-precision gradient checks), as JUnit XML.
log "gpu tests"
"$PY" -m pytest -q -p no:cacheprovider -p no:randomly -o addopts="" -m gpu -rs \
  --junitxml="$OUT/gpu-tests.xml" tests/unit/trainer/test_gpu.py \
  > "$OUT/gpu-tests.log" 2>&1
TESTS_RC=$?
tail -n 5 "$OUT/gpu-tests.log" >&2

# 2. Benchmark rows: resolution preset batch batch_per_gpu precision steps.
if [[ "$MODE" == gpu ]]; then
  ROWS=(
    "256 auto - - none 5" "256 auto - - bf16 5" "256 auto - - fp16 5"
    "1024 stylegan2 32 4 none 2" "1024 stylegan2 32 4 bf16 2" "1024 stylegan2 32 4 fp16 2"
  )
  DEVICE=cuda
else
  ROWS=("32 cpu - - none 1" "32 cpu 16 8 none 1")
  DEVICE=cpu
fi
: > "$OUT/benchmark.jsonl"
BENCH_RC=0
for row in "${ROWS[@]}"; do
  read -r res preset batch per_gpu precision steps <<<"$row"
  args=(-o json --resolution "$res" --preset "$preset" --device "$DEVICE" --steps "$steps"
        --mixed-precision "$precision")
  [[ "$batch" != - ]] && args+=(--batch "$batch")
  [[ "$per_gpu" != - ]] && args+=(--batch-per-gpu "$per_gpu")
  log "benchmark ${args[*]}"
  if line="$("$PY" -c 'from stylegan_trainer.cli.train_commands import benchmark_cmd; benchmark_cmd()' \
             "${args[@]}" 2>>"$OUT/benchmark.log" | tail -n 1)" && [[ "$line" == \{* ]]; then
    echo "$line" >> "$OUT/benchmark.jsonl"
  else
    BENCH_RC=1
    echo "{\"resolution\": $res, \"preset\": \"$preset\", \"precision\": \"$precision\", \"error\": \"see benchmark.log\"}" >> "$OUT/benchmark.jsonl"
  fi
done

# 3. The table (the reply of a device call carries the end of the output).
"$PY" - "$OUT" <<'EOF'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
device = json.loads((out / "device.json").read_text())
rows = [json.loads(line) for line in (out / "benchmark.jsonl").read_text().splitlines() if line]
print(f"\n{device['device']} (torch {device['torch']})")
print(f"{'res':>5} {'preset':10} {'batch':>5} {'a pass':>6} {'precision':9} {'sec/kimg':>9} "
      f"{'peak GiB':>8} {'gen img/s':>9}")
base = {}
for r in rows:
    if "error" in r:
        print(f"{r['resolution']:>5} {r['preset']:10} {'':>5} {'':>6} {r['precision']:9} failed")
        continue
    key = (r["resolution"], r["preset"])
    base.setdefault(key, r["sec_per_kimg"])
    ratio = r["sec_per_kimg"] / base[key]
    print(f"{r['resolution']:>5} {r['preset']:10} {r['batch']:>5} {r['batch_per_gpu']:>6} "
          f"{r['precision']:9} {r['sec_per_kimg']:>9.2f} {r['peak_mem_bytes'] / 2**30:>8.2f} "
          f"{r['images_per_sec']:>9.1f}   {ratio:.2f}x of the first row")
summary = {"device": device, "rows": rows}
(out / "suite.json").write_text(json.dumps(summary, indent=1, sort_keys=True))
EOF
log "gpu tests exit $TESTS_RC, benchmarks exit $BENCH_RC; files in $OUT"
# pytest exits 5 when every gpu test was skipped (the CPU dry run): not a failure there.
if [[ "$MODE" == cpu && $TESTS_RC -eq 5 ]]; then TESTS_RC=0; fi
[[ $TESTS_RC -eq 0 && $BENCH_RC -eq 0 ]]
