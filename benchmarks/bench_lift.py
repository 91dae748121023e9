#!/usr/bin/env python
"""Lifting + fusion of the 2D baseline: speed for a scene with 20 frames, and the oracle accuracy.

    python benchmarks/bench_lift.py [--data /tmp/lift] [--scenes 4] [--frames 20] [--seed 3] [--json FILE]

Generates the synthetic rooms into --data when it holds no scenes yet (the same as
`pcseg data synth --out /tmp/lift --scenes 4 --frames 20 --seed 3`). Prints
* the time of lift_and_fuse for one scene's frames, split into projection (KD-tree for the
  scene check + projecting every vertex into every frame with the depth test), lifting (masks ->
  vertex sets) and fusion, median of --repeats runs, beside the 2 s target;
* the oracle: ground-truth per-frame masks (score 1) lifted and fused, scored with the 3D
  evaluator (AP / AP50 / AP25, per class): the upper bound of the 2D pipeline on these frames;
  with the fraction of GT vertices that any frame sees (what limits it), and ablations of the
  fusion steps (segment voting, adjacency joining, exclusive vertices).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np

from pcseg.baseline2d import FusionConfig, lift_and_fuse, oracle_predictions, visible_vertices
from pcseg.evaluation import InstanceEvaluator, format_table, to_json_dict
from pcseg.io.frames import read_frames
from pcseg.io.scannet import list_scenes, read_scannet_scene
from pcseg.labels import INSTANCE_IDS


def load(data: Path):
    scenes = []
    for folder in list_scenes(data):
        t = time.perf_counter()
        frames, intr = read_frames(folder / "frames")
        scene = read_scannet_scene(folder)
        scenes.append((scene, frames, intr, oracle_predictions(frames), time.perf_counter() - t))
    return scenes


def coverage(scene, frames, intr) -> float:
    """Fraction of the vertices of benchmark-class GT instances that some frame sees."""
    seen = np.zeros(len(scene), bool)
    for f in frames:
        seen[visible_vertices(scene.points, f.depth, intr.intrinsic_depth, f.pose).vertex] = True
    gt = np.isin(scene.semantic, INSTANCE_IDS) & (scene.instance > 0)
    return float(seen[gt].mean())


def oracle(scenes, cfg: FusionConfig) -> dict:
    ev = InstanceEvaluator()
    for scene, frames, intr, preds, _ in scenes:
        ev.process(scene, lift_and_fuse(scene, frames, intr, preds, cfg))
    return ev.evaluate()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="/tmp/lift")
    parser.add_argument("--scenes", type=int, default=4)
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    data = Path(args.data)
    if not (data / "scans").is_dir() or not any((data / "scans").iterdir()):
        from pcseg.synth import write_synthetic_dataset

        print(f"generating {args.scenes} rooms with {args.frames} frames into {data}")
        write_synthetic_dataset(data, args.scenes, seed=args.seed, frames=args.frames)
    scenes = load(data)
    print(f"{len(scenes)} scenes from {data}; load average {' / '.join(f'{x:.2f}' for x in os.getloadavg())} "
          f"on {os.cpu_count()} CPUs (the machine may be shared)")

    # --- speed: one scene, median of repeats
    scene, frames, intr, preds, read_s = scenes[0]
    runs = []
    for _ in range(args.repeats):
        t = {}
        start = time.perf_counter()
        lift_and_fuse(scene, frames, intr, preds, timings=t)
        t["total"] = time.perf_counter() - start
        runs.append(t)
    speed = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    print(f"\nlift + fuse, {scene.name}: {len(scene)} vertices, {len(frames)} frames "
          f"{frames[0].depth.shape[1]}x{frames[0].depth.shape[0]}, {sum(len(p[1]) for p in preds)} masks "
          f"(median of {args.repeats})")
    for k in ("projection", "lifting", "fusion", "total"):
        print(f"  {k:11} {speed[k]:7.3f} s")
    print(f"  target < 2 s: {'met' if speed['total'] < 2 else 'MISSED'} "
          f"({speed['total'] / len(frames) * 1000:.1f} ms per frame); reading the frames and the scene: {read_s:.2f} s")

    # --- oracle accuracy
    cov = [coverage(s, f, i) for s, f, i, _, _ in scenes]
    base = FusionConfig()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        result = oracle(scenes, base)
        ablations = {name: oracle(scenes, cfg) for name, cfg in (
            ("no segment voting", replace(base, segment_vote=0)),
            ("no adjacency joining", replace(base, adjacency=0)),
            ("exclusive vertices", replace(base, exclusive=True)),
            ("min_frames=2", replace(base, min_frames=2)))}
    print(f"\noracle (GT frame masks, score 1) over {len(scenes)} scenes x {len(frames)} frames; "
          f"frames see {np.mean(cov):.1%} of the GT instance vertices (per scene {', '.join(f'{c:.0%}' for c in cov)})")
    print(format_table(result))
    print(f"\n{'fusion variant':24}{'AP':>8}{'AP50':>8}{'AP25':>8}")
    for name, r in [("default", result)] + list(ablations.items()):
        print(f"{name:24}" + "".join(f"{r[k]:8.3f}" for k in ("AP", "AP50", "AP25")))
    if args.json:
        out = {"scenes": len(scenes), "frames_per_scene": len(frames), "speed_s": speed,
               "vertices": len(scene), "coverage": cov, "oracle": to_json_dict(result),
               "ablations": {k: {m: v[m] for m in ("AP", "AP50", "AP25")} for k, v in ablations.items()}}
        Path(args.json).write_text(json.dumps(out, indent=1))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
