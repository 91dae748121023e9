#!/usr/bin/env python
"""How much the room's heading alone moves AP (#15): the validation rooms as scene folders, as
generated (each at its own random heading in the scan frame), turned so that their walls lie on the
axes (their axisAlignment), and turned 20 and 45 degrees on from there; nothing else changes.

    python benchmarks/bench_heading.py [--checkpoint CKPT] [--json benchmarks/results/heading.json]

The model saw every heading in training; what moves is how each heading voxelizes the room. This is
the spread to expect between any two copies of one room that differ by a turn about the vertical.
"""
from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

TURNS = {"walls on the axes": 0.0, "walls on the axes + 20 deg": 20.0, "walls on the axes + 45 deg": 45.0}


def turned_copy(data: Path, out: Path, degrees: float) -> Path:
    """The scene folders of ``data`` aligned by their axisAlignment, then turned ``degrees`` about z."""
    from pcseg.io.scannet import list_scenes, read_scannet_scene, write_scannet_scene

    c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    turn = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    for folder in list_scenes(data):
        scene = read_scannet_scene(folder)
        align = scene.axis_alignment
        scene.points = (scene.points.astype(np.float64) @ (turn @ align[:3, :3]).T + align[:3, 3]).astype(np.float32)
        scene.axis_alignment = None
        write_scannet_scene(scene, out / "scans" / scene.name)
    shutil.copy(data / "scannetv2-labels.combined.tsv", out)
    return out / "scans"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", type=Path, default=ROOT / "pcseg/resources/bottomup_synthetic.pt")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    from bench_grid import SETS, evaluate

    from pcseg.io.export import export_gt
    from pcseg.synth.dataset import ensure_synthetic_dataset

    folder, scenes, seed = SETS["validation"]
    data = ROOT / folder
    ensure_synthetic_dataset(data, scenes, seed=seed)
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench_heading_") as tmp:
        work = Path(tmp)
        gt = work / "gt"
        export_gt(data, gt, progress=False)
        results["as generated (random heading)"] = evaluate(args.checkpoint, data, gt, work)
        for name, degrees in TURNS.items():
            results[name] = evaluate(args.checkpoint, turned_copy(data, work / f"turn{degrees:g}", degrees), gt, work)
    print(f"{scenes} validation rooms (seed {seed}), {args.checkpoint.name}, AP / AP50 / AP25 by heading")
    for name, r in results.items():
        print(f"  {name:32} {r['AP']:.3f} / {r['AP50']:.3f} / {r['AP25']:.3f}")
    aps = [r["AP"] for r in results.values()]
    print(f"  spread of AP over headings: {max(aps) - min(aps):.3f}")
    if args.json:
        args.json.write_text(json.dumps({"checkpoint": args.checkpoint.name, "results": {
            k: {m: v[m] for m in ("AP", "AP50", "AP25")} for k, v in results.items()}}, indent=1) + "\n")


if __name__ == "__main__":
    main()
