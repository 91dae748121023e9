#!/usr/bin/env bash
# Pack what benchmarks/gpu_check.py needs on a GPU machine that cannot reach the package registries
# into .gpu/ (ignored by git): spconv's CUDA build and its helpers as a GPU user installs them, the
# small packages pcseg needs beside torch, and the synthetic rooms (generating them needs Open3D).
#   .gpu/wheels/   spconv-cu126 and cumm-cu126, unpacked and xz-packed (the wheels are ~100 MB, this ~40 MB)
#   .gpu/small/    plyfile, pycocotools, pccm, ccimport, fire, termcolor (wheels)
#   .gpu/rooms3.tar.xz   3 rooms (seed 1): the backend comparison
#   .gpu/data.tar.xz     10 rooms (seed 1) + 3 rooms with 6 RGB-D frames each (seed 2)
# Then, on the GPU machine: bash benchmarks/gpu_device_run.sh STEPS (see there).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
DEST=${DEST:-.gpu}
GPU_PYTHON=${GPU_PYTHON:-3.12}        # the GPU machine's Python
rm -rf "$DEST" && mkdir -p "$DEST/wheels" "$DEST/small" "$DEST/tmp"
download() {
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version "$GPU_PYTHON" --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d "$DEST/tmp" "$@"
}
download spconv-cu126==2.3.8 cumm-cu126==0.7.11
download pccm==0.4.16 ccimport==0.4.4 fire termcolor plyfile pycocotools
for name in spconv_cu126 cumm_cu126; do
  dir="$DEST/tmp/$name" && mkdir -p "$dir" && (cd "$dir" && unzip -q ../$name-*.whl)
  tar -C "$dir" -cf - . | xz -9e -T0 > "$DEST/wheels/$name.tar.xz"
done
mv "$DEST"/tmp/*.whl "$DEST/small/" && rm "$DEST"/small/spconv_cu126-*.whl "$DEST"/small/cumm_cu126-*.whl
"$PY" -m pcseg -q data synth --out "$DEST/tmp/data/rooms" --scenes 10 --seed 1
"$PY" -m pcseg -q data synth --out "$DEST/tmp/data/frames" --scenes 3 --seed 2 --frames 6
tar -C "$DEST/tmp" -cf - data | xz -6 -T0 > "$DEST/data.tar.xz"
tar -C "$DEST/tmp" -cf - data/rooms/scannetv2-labels.combined.tsv data/rooms/scannetv2_train.txt \
  data/rooms/scannetv2_val.txt data/rooms/scans/scene0000_00 data/rooms/scans/scene0001_00 \
  data/rooms/scans/scene0002_00 | xz -6 -T0 > "$DEST/rooms3.tar.xz"
rm -rf "$DEST/tmp"
du -ch "$DEST"/wheels/* "$DEST"/small/* "$DEST"/*.tar.xz | tail -1
