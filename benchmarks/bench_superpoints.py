#!/usr/bin/env python
"""Superpoints for scans without ScanNet's segs.json (#15): how much of the AP that the scans' own
segments give do superpoints computed by pcseg recover, and at what speed.

    python benchmarks/bench_superpoints.py [--rooms validation|tuning] [--checkpoint PATH]
        [--variant threshold=0.02,color_weight=0.5 ...] [--json benchmarks/results/superpoints.json]

The rooms are given to ``pcseg predict`` four ways: as scene folders with their segs.json (the
scans' own segments), as scene folders with segs.json hidden and superpoints off (no snapping), the
same with superpoints computed over the mesh edges, and as plain .ply clouds with colours (no faces:
superpoints over the k-nearest-neighbour graph). Recovery = (computed - none) / (own - none) in AP.
Each ``--variant`` (settings of ``cluster.superpoints.superpoints``) adds the two computed forms
again. Also printed per form: superpoints per room, their purity (share of points whose superpoint's
majority GT instance is their own; the own segments score 1.0 on these rooms) and seconds per 100k
points. Rooms: the 20 validation rooms (seed 1) or 10 tuning rooms of seed 2 (neither training nor
validation), generated under out/data on first use.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
ROOMS = {"validation": ("out/data/synth_val", 20, 1), "tuning": ("out/data/synth_tune_seed2_10", 10, 2)}


def hidden_segments(data: Path, work: Path) -> tuple[Path, Path]:
    """The rooms as scene folders holding only their mesh, and as plain coloured .ply clouds."""
    from pcseg.io.plain import write_point_cloud
    from pcseg.io.scannet import PLY_SUFFIX, list_scenes, read_scannet_scene

    folders, clouds = work / "no_segs", work / "ply_rgb"
    clouds.mkdir()
    for folder in list_scenes(data):
        (folders / folder.name).mkdir(parents=True)
        shutil.copy(folder / f"{folder.name}{PLY_SUFFIX}", folders / folder.name)
        scene = read_scannet_scene(folder, labels=False)
        write_point_cloud(scene[np.arange(len(scene))], clouds / f"{scene.name}.ply")  # no faces
    return folders, clouds


def purity(segments: np.ndarray, instance: np.ndarray) -> float:
    """Share of points whose segment's majority GT instance (-1: none counts as one) is their own."""
    width = int(instance.max()) + 2
    keys, counts = np.unique(segments * width + instance + 1, return_counts=True)
    best = np.zeros(int(segments.max()) + 1)
    np.maximum.at(best, keys // width, counts)
    return float(best.sum() / len(segments))


def segment_stats(data: Path, settings: dict, faces: bool) -> dict:
    from pcseg.cluster.superpoints import scene_superpoints
    from pcseg.io.scannet import list_scenes, read_scannet_scene

    rows = []
    for folder in list_scenes(data):
        scene = read_scannet_scene(folder)
        if not faces:
            scene = scene[np.arange(len(scene))]
        start = time.perf_counter()
        sp = scene_superpoints(scene, **settings)
        rows.append((time.perf_counter() - start, len(scene), sp.max() + 1, purity(sp, scene.instance)))
    a = np.array(rows)
    return {"s_per_100k": round(float(a[:, 0].sum() / a[:, 1].sum() * 1e5), 3),
            "superpoints_per_room": round(float(a[:, 2].mean())), "purity": round(float(a[:, 3].mean()), 4)}


def evaluate(checkpoint: Path, data: Path, gt: Path, work: Path, overrides=()) -> dict:
    """AP / AP50 / AP25 of ``pcseg predict`` (``bench_grid.evaluate``), its notes silenced."""
    from bench_grid import evaluate as predict_and_score

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "no colours" / "no segments" notes, once per room
        r = predict_and_score(checkpoint, data, gt, work, overrides)
    return {k: round(r[k], 4) for k in ("AP", "AP50", "AP25")}


def parse_variant(text: str) -> dict:
    from pcseg.engine.config import parse_overrides

    return parse_overrides(text.split(","))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rooms", choices=ROOMS, default="validation")
    ap.add_argument("--checkpoint", type=Path, default=ROOT / "pcseg/resources/bottomup_synthetic.pt")
    ap.add_argument("--variant", action="append", default=[], type=parse_variant)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    from bench_busy import matmul_rate

    from pcseg.cluster import superpoints as sp
    from pcseg.io.export import export_gt
    from pcseg.synth.dataset import ensure_synthetic_dataset

    folder, scenes, seed = ROOMS[args.rooms]
    data = ROOT / folder
    ensure_synthetic_dataset(data, scenes, seed=seed)
    report: dict = {"rooms": f"{scenes} {args.rooms} rooms (seed {seed})", "checkpoint": args.checkpoint.name,
                    "fp32_gflops_1thread": round(matmul_rate(), 1), "results": {}}
    work = Path(tempfile.mkdtemp(prefix="bench_superpoints_"))
    default = dict(sp.DEFAULTS)
    try:
        gt = work / "gt"
        export_gt(data, gt, progress=False)
        no_segs, clouds = hidden_segments(data, work)
        print(f"{report['rooms']}, {args.checkpoint.name}: AP / AP50 / AP25")
        own = evaluate(args.checkpoint, data, gt, work)
        none = evaluate(args.checkpoint, no_segs, gt, work, ["superpoints=false"])
        report["results"] = {"own segments (segs.json)": own, "none (segs.json hidden)": none}
        for name, r in report["results"].items():
            print(f"{name:48} {r['AP']:.3f} / {r['AP50']:.3f} / {r['AP25']:.3f}")
        gain = own["AP"] - none["AP"]
        for variant in [{}] + args.variant:
            settings = {**default, **variant}
            sp.DEFAULTS.update(settings)
            label = ", ".join(f"{k}={v}" for k, v in variant.items()) or "defaults"
            for form, inputs, faces in (("mesh edges", no_segs, True), ("kNN graph, .ply", clouds, False)):
                r = evaluate(args.checkpoint, inputs, gt, work)
                r.update(segment_stats(data, settings, faces))
                r["recovery"] = round((r["AP"] - none["AP"]) / gain, 3) if gain > 0 else None
                report["results"][f"computed, {form} ({label})"] = r
                print(f"computed, {form} ({label}):".ljust(48) + f" {r['AP']:.3f} / {r['AP50']:.3f} / {r['AP25']:.3f}"
                      f"  recovery {r['recovery']}  {r['superpoints_per_room']} per room, purity {r['purity']:.4f},"
                      f" {r['s_per_100k']:.3f} s/100k pts")
    finally:
        sp.DEFAULTS.update(default)
        shutil.rmtree(work, ignore_errors=True)
    from report import finish

    finish(report, args.json)


if __name__ == "__main__":
    main()
