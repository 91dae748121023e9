"""Benchmark the synthetic-room generator: time to write a dataset, and what the rooms look like.

    python benchmarks/bench_synth.py [--scenes 100] [--frames 20] [--seed 0] [--workers 2] [--out DIR]

Prints total and per-scene time, the machine load (the machine may be shared), and the summary of
the per-scene statistics (means and ranges of vertices, benchmark instances, touching same-class
pairs, visible fraction, nearest-neighbour spacing; classes covered). Without --out the dataset
goes to a temporary folder that is deleted afterwards.
"""
from __future__ import annotations

import argparse
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path

from pcseg.labels import INSTANCE_NAME_OF
from pcseg.synth import write_synthetic_dataset


def _load() -> str:
    try:
        return " / ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scenes", type=int, default=100)
    ap.add_argument("--frames", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()

    out = args.out or Path(tempfile.mkdtemp(prefix="bench_synth_")) / "data"
    print(f"cpus {os.cpu_count()}  load before (1/5/15 min) {_load()}")
    try:
        start = time.perf_counter()
        s = write_synthetic_dataset(out, args.scenes, seed=args.seed, frames=args.frames, workers=args.workers)
        total = time.perf_counter() - start
        usage = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
        cpu = sum(u.ru_utime + u.ru_stime for u in usage)
        size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    finally:
        if args.out is None:
            shutil.rmtree(out.parent, ignore_errors=True)
    print(f"load after {_load()}")
    print(f"{args.scenes} scenes x {args.frames} frames: {total:.1f} s total, {total / args.scenes:.2f} s/scene, "
          f"{size / 2**20:.0f} MiB written")
    # on a shared machine wall time depends on the others; CPU time does not
    workers = args.workers or min(2, os.cpu_count() or 1)
    print(f"CPU time {cpu:.1f} s ({cpu / args.scenes:.2f} CPU-s/scene); on {workers} idle cores this is "
          f"~{cpu / workers:.0f} s wall")
    for key, unit in (("vertices", ""), ("faces", ""), ("benchmark_instances", ""), ("objects", ""),
                      ("touching_pairs", ""), ("visible_fraction", ""), ("nn_spacing", " m"), ("segments", "")):
        v = s[key]
        fmt = ".3f" if key in ("visible_fraction", "nn_spacing") else ".0f"
        print(f"  {key:20s} mean {v['mean']:{fmt}}  range {v['min']:{fmt}} .. {v['max']:{fmt}}{unit}")
    print(f"  room types           {s['room_types']}")
    print(f"  classes covered      {s['num_classes_covered']}/18: "
          + ", ".join(INSTANCE_NAME_OF[c] for c in s["classes_covered"]))
    if s["classes_missing"]:
        print("  classes missing      " + ", ".join(INSTANCE_NAME_OF[c] for c in s["classes_missing"]))


if __name__ == "__main__":
    main()
