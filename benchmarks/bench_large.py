#!/usr/bin/env python
"""Scans far larger than a room (#15): a building floor of synthetic rooms laid side by side
(``pcseg.synth.floor.floor_of_rooms``) as one ScanNet scene folder, predicted by ``pcseg predict`` in
its own process (tiled into overlapping blocks, ``engine.tiling``): wall seconds, peak memory (RSS),
and AP against the AP of the same rooms predicted one by one. The floor's prediction is scored room
by room (its masks cut to each room's points) against the same GT files as the rooms': the official
GT encoding (nyu40 * 1000 + instance) holds fewer than 1000 instances per scene, a floor of 35 rooms
more.

    python benchmarks/bench_large.py [--rooms 12 35] [--checkpoint PATH] [--json benchmarks/results/large.json]

Rooms: the first N of the 40 rooms of seed 4 (generated under out/data on first use; ~87k points
each, so 12 rooms ~1M points and 35 ~3M). The machine's 1-thread fp32 matmul rate is printed beside.
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))


def run_predict(args: list[str]) -> tuple[float, float, dict]:
    """(wall seconds, peak RSS MiB, seconds per stage summed over the scenes) of ``pcseg predict <args>``
    in its own process."""
    from bench_grid import PEAK_RSS_CODE as code

    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code, "-q", "predict", *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=3600)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"pcseg predict {' '.join(args)} failed: {proc.stderr[-1500:]}")
    per_scene = proc.stdout.split("seconds per scene: ", 1)[1].split(";")[0]
    stages = {k: float(v) for k, v in (item.split() for item in per_scene.split(", "))}
    return wall, int(proc.stdout.rsplit("PEAK_RSS_KIB", 1)[1].split()[0]) / 1024, stages


def split_by_room(pred: Path, floor_name: str, rooms: list[Path], out: Path) -> None:
    """The floor's prediction cut into one prediction per room (rooms in the floor's vertex order)."""
    from pcseg.io.official import read_instance_predictions, write_instance_predictions
    from pcseg.io.scannet import read_scannet_scene
    from pcseg.structures import MemberInstances

    sizes = [len(read_scannet_scene(r, labels=False)) for r in rooms]
    instances = read_instance_predictions(pred, floor_name, num_points=sum(sizes))
    owners, points = instances.pairs()  # by instance, each one's points rising
    start = 0
    for room, size in zip(rooms, sizes):
        inside = (points >= start) & (points < start + size)
        kept, first = np.unique(owners[inside], return_index=True)  # pairs come grouped by instance
        members = np.split(points[inside] - start, first[1:])
        write_instance_predictions(out, room.name, MemberInstances(members, instances.labels[kept],
                                                                   instances.scores[kept], size))
        start += size


def folder_mib(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**20


def score(gt: Path, pred: Path) -> dict:
    from pcseg.evaluation.folders import evaluate_folders

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = evaluate_folders(gt, pred, progress=False)
    return {k: round(r[k], 4) for k in ("AP", "AP50", "AP25")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rooms", type=int, nargs="+", default=[12, 35])
    ap.add_argument("--checkpoint", type=Path, default=ROOT / "pcseg/resources/bottomup_synthetic.pt")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    from bench_busy import matmul_rate

    from pcseg.io.export import export_gt
    from pcseg.io.scannet import list_scenes, read_scannet_scene, write_scannet_scene
    from pcseg.synth.dataset import ensure_synthetic_dataset
    from pcseg.synth.floor import floor_of_rooms

    data = ROOT / "out/data/synth_seed4_40"
    ensure_synthetic_dataset(data, 40, seed=4)
    folders = list_scenes(data)
    report: dict = {"checkpoint": args.checkpoint.name, "fp32_gflops_1thread": round(matmul_rate(), 1), "floors": []}
    work = Path(tempfile.mkdtemp(prefix="bench_large_"))
    try:
        for n in args.rooms:
            rooms = [read_scannet_scene(f) for f in folders[:n]]
            points = sum(len(r) for r in rooms)
            root = work / f"floor{n}"
            floor = floor_of_rooms(rooms)
            write_scannet_scene(floor, root / "scans" / floor.name)
            shutil.copy(data / "scannetv2-labels.combined.tsv", root)
            del rooms, floor
            wall, rss, stages = run_predict(["--checkpoint", str(args.checkpoint), "--input", str(root / "scans"),
                                     "--out", str(work / f"pred_floor{n}")])
            split_by_room(work / f"pred_floor{n}", "scene0900_00", folders[:n], work / f"pred_floor{n}_rooms")
            output_mib = folder_mib(work / f"pred_floor{n}")
            shutil.rmtree(work / f"pred_floor{n}")
            separate = work / f"rooms{n}"  # the same rooms as their own scenes
            (separate / "scans").mkdir(parents=True)
            for f in folders[:n]:
                (separate / "scans" / f.name).symlink_to(f)
            shutil.copy(data / "scannetv2-labels.combined.tsv", separate)
            export_gt(separate, work / f"gt_rooms{n}", progress=False)
            rooms_wall, rooms_rss, _ = run_predict(["--checkpoint", str(args.checkpoint), "--input", str(separate / "scans"),
                                                 "--out", str(work / f"pred_rooms{n}")])
            row = {"rooms": n, "points": points, "seconds": round(wall, 1), "stages": stages,
                   "seconds_per_million_points": round(wall / points * 1e6, 2), "peak_rss_mib": round(rss),
                   "output_mib": round(output_mib, 1),
                   "floor": score(work / f"gt_rooms{n}", work / f"pred_floor{n}_rooms"),
                   "rooms_one_by_one": score(work / f"gt_rooms{n}", work / f"pred_rooms{n}"),
                   "rooms_one_by_one_seconds": round(rooms_wall, 1), "rooms_one_by_one_peak_rss_mib": round(rooms_rss)}
            report["floors"].append(row)
            f, r = row["floor"], row["rooms_one_by_one"]
            print(f"{n} rooms, {points / 1e6:.2f} M points: {wall:.1f} s ({row['seconds_per_million_points']} s per M "
                  f"points, process start included), peak RSS {rss:.0f} MiB, {output_mib:.0f} MiB written; AP / AP50 / AP25 as one floor "
                  f"{f['AP']:.3f} / {f['AP50']:.3f} / {f['AP25']:.3f}, room by room {r['AP']:.3f} / {r['AP50']:.3f} / "
                  f"{r['AP25']:.3f} ({rooms_wall:.1f} s, peak RSS {rooms_rss:.0f} MiB); stages (s): "
                  + ", ".join(f"{k} {v:.1f}" for k, v in stages.items()))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    from report import finish

    finish(report, args.json)


if __name__ == "__main__":
    main()
