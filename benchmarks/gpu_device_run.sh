#!/usr/bin/env bash
# On the GPU machine (no network): unpack what benchmarks/gpu_prepare.sh packed into .gpu/, run
# benchmarks/gpu_check.py for STEPS; its JSON, log and console output go to $OUT as each step ends.
#   bash benchmarks/gpu_device_run.sh env,tests,backends [--budget-s 200]
# A second call on the same machine finds the first call's packages and rooms in place.
set -uo pipefail
cd "$(dirname "$0")/.."
SITE=${SITE:-/tmp/pcseg_site}
WORK=${WORK:-/tmp/pcseg_gpu}
OUT=${OUT:-out/gpu_check_results}
mkdir -p "$SITE" "$WORK" "$OUT"
for f in .gpu/wheels/*.tar.xz; do [ -e "$f" ] && tar -xJf "$f" -C "$SITE"; done
for w in .gpu/small/*.whl; do [ -e "$w" ] && python3 -m zipfile -e "$w" "$SITE"; done
for f in .gpu/rooms3.tar.xz .gpu/data.tar.xz; do [ -e "$f" ] && tar -xJf "$f" -C "$WORK"; done
export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | head -2
python3 benchmarks/gpu_check.py --data "$WORK/data" --out "$WORK/run" --results "$OUT" --steps "$@" 2>&1 \
  | tee "$OUT/console_$(echo "$1" | tr ',' '_').txt"
exit "${PIPESTATUS[0]}"
