#!/usr/bin/env python
"""What the form of a user's input costs (#15): the same rooms given to `pcseg predict` as ScanNet
scene folders (mesh + segs.json), as plain .ply point clouds with colours (no segments), and as
xyz-only .ply clouds (no colours, no segments; both snapped to superpoints pcseg computes, `cluster.superpoints`), scored with
the official-equivalent evaluator.

    python benchmarks/bench_inputs.py [--checkpoint PATH ...] [--json benchmarks/results/inputs.json]

Rooms: the 20 validation rooms (seed 1; generated under out/data on first use). Checkpoints: the
shipped bottom-up and grid models unless given. An xyz-only cloud is read with every point grey
(0.5), the colour the shipped models' training gave a fifth of its scenes (``color_drop_prob``).
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))


def write_inputs(data: Path, work: Path) -> dict[str, Path]:
    """The rooms of ``data`` as the three kinds of input: name -> folder to predict."""
    from pcseg.io.plain import save_ply, write_point_cloud
    from pcseg.io.scannet import list_scenes, read_scannet_scene

    coloured, xyz = work / "ply_rgb", work / "ply_xyz"
    coloured.mkdir()
    xyz.mkdir()
    for folder in list_scenes(data):
        scene = read_scannet_scene(folder)
        write_point_cloud(scene[np.arange(len(scene))], coloured / f"{scene.name}.ply")  # no faces, no segments
        vertex = np.empty(len(scene), [("x", "f4"), ("y", "f4"), ("z", "f4")])
        for i, c in enumerate("xyz"):
            vertex[c] = scene.points[:, i]
        save_ply(xyz / f"{scene.name}.ply", vertex, None)
    return {"scene folders (mesh, segs.json)": data, ".ply with colours": coloured, ".ply, xyz only": xyz}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", action="append", type=Path)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    from bench_busy import matmul_rate
    from bench_grid import SETS, evaluate

    from pcseg.io.export import export_gt
    from pcseg.synth.dataset import ensure_synthetic_dataset

    checkpoints = args.checkpoint or [ROOT / "pcseg/resources/bottomup_synthetic.pt",
                                      ROOT / "pcseg/resources/grid_synthetic.pt"]
    folder, scenes, seed = SETS["validation"]
    data = ROOT / folder
    ensure_synthetic_dataset(data, scenes, seed=seed)
    report: dict = {"rooms": f"{scenes} validation rooms (seed {seed})", "fp32_gflops_1thread": round(matmul_rate(), 1),
                    "results": {}}
    work = Path(tempfile.mkdtemp(prefix="bench_inputs_"))
    try:
        gt = work / "gt"
        export_gt(data, gt, progress=False)
        inputs = write_inputs(data, work)
        print(f"{report['rooms']}, AP / AP50 / AP25 by input form")
        for ckpt in checkpoints:
            rows = report["results"][ckpt.name] = {}
            for form, folder_in in inputs.items():
                start = time.perf_counter()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # the xyz-only warning, once per room
                    r = evaluate(ckpt, folder_in, gt, work)
                rows[form] = {k: r[k] for k in ("AP", "AP50", "AP25")}
                print(f"{ckpt.name:24} {form:34} {r['AP']:.3f} / {r['AP50']:.3f} / {r['AP25']:.3f}"
                      f"  ({time.perf_counter() - start:.0f} s)")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps(report, indent=1) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
