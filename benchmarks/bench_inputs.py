#!/usr/bin/env python
"""What the form of a user's input costs (#15): the same rooms given to `pcseg predict` as ScanNet
scene folders (mesh + segs.json), as plain .ply point clouds with colours (no segments: snapped to
superpoints pcseg computes, `cluster.superpoints`), as xyz-only .ply clouds (no colours, not
snapped), and as coloured .ply clouds as they are, stored y-up in millimetres or turned to a random
orientation, predicted with `--up auto` (the up axis estimated and the walls turned onto the axes,
`io.upright`: any orientation should give what the cloud as it is gives), beside the z-up clouds turned only by
the heading the estimate leaves (the same input up to the estimate's error), and as coloured .ply clouds with
a few stray points under the floor (as real scans have; the GT counts them unannotated), scored with
the official-equivalent evaluator.

    python benchmarks/bench_inputs.py [--checkpoint PATH ...] [--json benchmarks/results/inputs.json]

Rooms: the 20 validation rooms (seed 1; generated under out/data on first use). Checkpoints: the
shipped bottom-up and grid models unless given. An xyz-only cloud is read with every point grey
(0.5), the colour the shipped models' training gave a fifth of its scenes (``color_drop_prob``).
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


STRAYS = 20  # points added under the floor of each room in the "stray points" form, after the room's own


def gt_with_strays(gt: Path, out: Path) -> Path:
    """The GT files with STRAYS unannotated points (id 0) appended, for the clouds that have them."""
    out.mkdir()
    for txt in gt.glob("*.txt"):
        (out / txt.name).write_text(txt.read_text() + "0\n" * STRAYS)
    return out


def heading_left(turn: np.ndarray, points: np.ndarray) -> np.ndarray:
    """The rotation about z that the network sees after ``--up auto`` turns the cloud ``points @ turn.T``
    upright: the z-part (yaw) of (the estimate's rotation) @ turn. The z-up room turned by it differs
    from what the network saw only by the estimate's error, so the two forms' AP isolate that error
    from the heading, which alone moves AP by about 0.02 (the network was trained at every heading,
    and each heading voxelizes the room a little differently)."""
    from pcseg.io.upright import estimate_up

    seen = estimate_up((points.astype(np.float64) @ turn.T).astype(np.float32)).rotation @ turn
    yaw = np.arctan2(seen[1, 0], seen[0, 0])
    c, s = np.cos(yaw), np.sin(yaw)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def write_inputs(data: Path, work: Path) -> dict[str, tuple[Path, str]]:
    """The rooms of ``data`` as each kind of input: name -> (folder to predict, its --up)."""
    from scipy.spatial.transform import Rotation

    from pcseg.io.plain import UP_ROTATIONS, save_ply, write_point_cloud
    from pcseg.io.scannet import list_scenes, read_scannet_scene
    from pcseg.structures import Scene

    forms = {"scene folders (mesh, segs.json)": (data, "z"), ".ply with colours": (work / "ply_rgb", "z"),
             ".ply with colours, --up auto": (work / "ply_rgb", "auto"),
             ".ply, xyz only": (work / "ply_xyz", "z"), ".ply, y-up in millimetres, --up auto": (work / "ply_y_mm", "auto"),
             ".ply, random orientation, --up auto": (work / "ply_turned", "auto"),
             ".ply, z-up, the heading --up auto leaves": (work / "ply_heading", "z"),
             f".ply with {STRAYS} stray points 0.1-1 m below the floor": (work / "ply_strays", "z")}
    for folder, _ in list(forms.values())[1:]:
        folder.mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    for folder in list_scenes(data):
        scene = read_scannet_scene(folder)
        cloud = scene[np.arange(len(scene))]  # no faces, no segments
        write_point_cloud(cloud, work / "ply_rgb" / f"{scene.name}.ply")
        vertex = np.empty(len(scene), [("x", "f4"), ("y", "f4"), ("z", "f4")])
        for i, c in enumerate("xyz"):
            vertex[c] = scene.points[:, i]
        save_ply(work / "ply_xyz" / f"{scene.name}.ply", vertex, None)
        turn = Rotation.random(random_state=rng).as_matrix()
        for name, rotation, scale in (("ply_y_mm", UP_ROTATIONS["y"].T, 1000.0), ("ply_turned", turn, 1.0),
                                      ("ply_heading", heading_left(turn, scene.points), 1.0)):
            cloud.points = (scene.points.astype(np.float64) @ rotation.T * scale).astype(np.float32)
            cloud.normals = None
            write_point_cloud(cloud, work / name / f"{scene.name}.ply")
        # what real scans have under the floor (reflections, noise): a few points, scored as unannotated
        stray = rng.choice(len(scene), STRAYS, replace=False)
        below = scene.points[stray].copy()
        below[:, 2] = scene.points[:, 2].min() - rng.uniform(0.1, 1.0, STRAYS)
        with_strays = Scene(np.concatenate([scene.points, below]), np.concatenate([scene.colors, scene.colors[stray]]),
                            name=scene.name)
        write_point_cloud(with_strays, work / "ply_strays" / f"{scene.name}.ply")
    return forms


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
        strays_gt = gt_with_strays(gt, work / "gt_strays")
        print(f"{report['rooms']}, AP / AP50 / AP25 by input form")
        for ckpt in checkpoints:
            rows = report["results"][ckpt.name] = {}
            for form, (folder_in, up) in inputs.items():
                start = time.perf_counter()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # the xyz-only, units and up notes, once per room
                    r = evaluate(ckpt, folder_in, strays_gt if folder_in.name == "ply_strays" else gt, work, up=up)
                rows[form] = {k: r[k] for k in ("AP", "AP50", "AP25")}
                print(f"{ckpt.name:24} {form:34} {r['AP']:.3f} / {r['AP50']:.3f} / {r['AP25']:.3f}"
                      f"  ({time.perf_counter() - start:.0f} s)")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        from report import write_json

        write_json(args.json, report)


if __name__ == "__main__":
    main()
