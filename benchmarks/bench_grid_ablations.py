#!/usr/bin/env python
"""The grid head's ablations (#12), each a training run of the same length from the same start.

    python benchmarks/bench_grid_ablations.py [--minutes 10] [--runs runs/grid_ablations]
        [--skip-train] [--json benchmarks/results/grid_ablations.json]

Every variant is ``configs/synthetic_grid.yaml`` (its U-Net started from the shipped bottom-up
backbone, the grid head fresh, the 400 training rooms) trained for ``--minutes`` with one change:

* grids 8 + 16 (the recipe when this was measured): 8 x 8 for objects >= 1.2 m, 16 x 16 for the rest,
  with coordinate features;
* no coordinates: the same with ``coord_features=false`` (no CoordConv channels, no positions in the masks);
* one grid: ``grids=[16]`` for every object size;
* grid sizes 12 + 24 (the same size split; the recipe since these results);
and, on the 8 + 16 run at prediction time, plain greedy mask NMS (IoU 0.5) instead of Matrix-NMS.
Runs are sequential (one training at a time on this machine); each is scored with ``pcseg predict`` +
the official-equivalent evaluator on the 20 validation rooms and the 40 rooms of seed 4. The runs
are short next to the shipped model's 53 minutes: the table compares designs at one budget; it
does not give the shipped model's accuracy.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

BASE = "grids 8 + 16, coordinates (the recipe then)"
VARIANTS = {  # name: recipe overrides
    BASE: ["grids=[8,16]"],
    "no coordinate features": ["grids=[8,16]", "coord_features=false"],
    "one grid (16)": ["grids=[16]", "size_ranges=[[0.0,100.0]]"],
    "grid sizes 12 + 24 (the recipe now)": ["grids=[12,24]"],
}
RUN_DIRS = {BASE: "base", "no coordinate features": "nocoord", "one grid (16)": "onegrid",
            "grid sizes 12 + 24 (the recipe now)": "grids12_24"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--runs", type=Path, default=ROOT / "runs/grid_ablations", help="one sub-folder per variant")
    ap.add_argument("--skip-train", action="store_true", help="score the runs already in --runs")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    from bench_busy import matmul_rate
    from bench_grid import SETS, evaluate

    from pcseg.io.export import export_gt
    from pcseg.synth.dataset import ensure_synthetic_dataset

    report: dict = {"minutes": args.minutes, "fp32_gflops_1thread": round(matmul_rate(), 1), "runs": {}, "sets": {}}
    for name, overrides in VARIANTS.items():
        out = args.runs / RUN_DIRS[name]
        if not args.skip_train:
            start = time.perf_counter()
            subprocess.run([sys.executable, "-m", "pcseg", "-q", "train", "configs/synthetic_grid.yaml",
                            f"max_minutes={args.minutes}", f"out_dir={out}", "val_every=1000", *overrides],
                           cwd=ROOT, check=True)
            print(f"trained {name}: {time.perf_counter() - start:.0f} s", flush=True)
        metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]
        steps = max((m.get("step", 0) for m in metrics), default=0)
        report["runs"][name] = {"overrides": overrides, "steps": steps, "checkpoint": str(out / "model.pt")}

    rows_of = {name: (args.runs / RUN_DIRS[name] / "model.pt", []) for name in VARIANTS}
    rows_of["grids 8 + 16, plain mask NMS instead of Matrix-NMS"] = (rows_of[BASE][0], ["nms=mask", "nms_iou=0.5"])
    with tempfile.TemporaryDirectory(prefix="grid_ablations_") as tmp:
        work = Path(tmp)
        for set_name, (folder, scenes, seed) in SETS.items():
            data = ROOT / folder
            ensure_synthetic_dataset(data, scenes, seed=seed)
            gt = work / f"gt_{seed}"
            export_gt(data, gt, progress=False)
            rows = {name: evaluate(ckpt, data, gt, work, predict_overrides)
                    for name, (ckpt, predict_overrides) in rows_of.items()}
            report["sets"][set_name] = rows
    print(f"\n{args.minutes:g}-minute runs from the shipped bottom-up backbone; AP / AP50 / AP25")
    print(f"{'variant':48}{'steps':>6}  {'validation (20 rooms)':>22}  {'seed 4 (40 rooms)':>22}")
    for name in rows_of:
        steps = report["runs"].get(name, report["runs"][BASE])["steps"]
        cells = ["{AP:.3f} / {AP50:.3f} / {AP25:.3f}".format(**report["sets"][s][name]) for s in SETS]
        print(f"{name:48}{steps:6d}  {cells[0]:>22}  {cells[1]:>22}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1, default=float) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
