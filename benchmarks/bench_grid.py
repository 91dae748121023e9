#!/usr/bin/env python
"""The grid pipeline against the bottom-up pipeline (#12): accuracy per class, speed, peak memory.

    python benchmarks/bench_grid.py [--grid pcseg/resources/grid_synthetic.pt]
        [--bottomup pcseg/resources/bottomup_synthetic.pt] [--json benchmarks/results/grid.json]

* Accuracy: both checkpoints through ``pcseg predict`` on the 20 validation rooms (seed 1) and the 40
  rooms of seed 4 (generated under out/data on first use), scored with the official-equivalent
  evaluator: AP / AP50 / AP25 and AP50 per class side by side. Ablation at prediction time on the
  validation rooms: Matrix-NMS (the recipe) vs plain greedy mask NMS (``nms=mask``, IoU 0.5); and any
  ``--variant`` of the grid model's prediction settings (e.g. ``--variant peak_window=1``) on both sets.
* Speed: one 100k-point room, both pipelines in this process, interleaved, best of ``--repeats``:
  network (voxelize + U-Net + head), grouping (clustering, or the grid's masks + NMS), snapping; the
  ratio grid / bottom-up end to end, of the best times and per round (both run back to back: the
  machine's speed, which drifts by more than the difference, is shared within a round). The machine's 1-thread fp32 matmul rate is printed beside them.
* Peak memory (RSS) of inference (``pcseg predict`` on that room) and of training (``pcseg train`` for
  ~40 s on the validation rooms), each in its own process.
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
SETS = {"validation": ("out/data/synth_val", 20, 1), "seed 4": ("out/data/synth_seed4_40", 40, 4)}


def evaluate(checkpoint: Path, data: Path, gt: Path, work: Path, overrides=(), up: str = "z") -> dict:
    from pcseg.evaluation.folders import evaluate_folders
    from pcseg.pipelines import predict_to_folder

    pred = work / "pred"
    shutil.rmtree(pred, ignore_errors=True)
    predict_to_folder(data, pred, checkpoint=checkpoint, overrides=list(overrides), progress=False, up=up)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = evaluate_folders(gt, pred, progress=False)
    return {"AP": r["AP"], "AP50": r["AP50"], "AP25": r["AP25"],
            "classes": {c: v["AP50"] for c, v in r["classes"].items()}}


def speed(checkpoints: dict[str, tuple[Path, list[str]]], room, repeats: int) -> dict:
    """Best-of-``repeats`` stage timings of each (checkpoint, prediction overrides), interleaved; and
    ``rounds``: every round's end-to-end seconds per model (a round runs each model once, back to back,
    so their ratio within a round shares the machine's speed of that moment)."""
    from pcseg.engine.snapping import snap_to_scene
    from pcseg.pipelines import load_predictor

    predictors = {name: load_predictor(path, overrides=o) for name, (path, o) in checkpoints.items()}
    best: dict[str, dict] = {}
    rounds: list[dict[str, float]] = []
    for round_index in range(repeats + 1):  # the first round warms up
        if round_index:
            rounds.append({})
        for name, p in predictors.items():
            start = time.perf_counter()
            out = p.network(room, None)
            pred = p.finish(room, out)
            begin = time.perf_counter()
            snapped = snap_to_scene(pred, room, p.segment_snap, p.min_size)
            snap = time.perf_counter() - begin
            stages = {"network": pred.timings["network"], "grouping": pred.timings["cluster"], "snap": snap,
                      "end to end": time.perf_counter() - start, "instances": len(snapped.instances)}
            if round_index:
                rounds[-1][name] = stages["end to end"]
            if name not in best or stages["end to end"] < best[name]["end to end"]:
                best[name] = stages
    return {**best, "rounds": rounds}


# Runs ``pcseg`` and prints its own peak RSS. VmHWM, not getrusage's ru_maxrss: Linux carries ru_maxrss
# over exec, so a child would report its parent's peak (the benchmark's own) when that is higher.
PEAK_RSS_CODE = ("import sys; from pcseg.cli import main; rc = main(sys.argv[1:]); "
                 "print('PEAK_RSS_KIB', next(line.split()[1] for line in open('/proc/self/status') "
                 "if line.startswith('VmHWM'))); sys.exit(rc)")


def peak_rss_mib(args: list[str]) -> float:
    """Peak RSS of ``pcseg <args>`` run in its own process (MiB)."""
    code = PEAK_RSS_CODE
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=ROOT, timeout=900)
    if proc.returncode != 0:
        raise RuntimeError(f"pcseg {' '.join(args)} failed: {proc.stderr[-1500:]}")
    return int(proc.stdout.rsplit("PEAK_RSS_KIB", 1)[1].split()[0]) / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--grid", type=Path, default=ROOT / "pcseg/resources/grid_synthetic.pt")
    ap.add_argument("--bottomup", type=Path, default=ROOT / "pcseg/resources/bottomup_synthetic.pt")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--skip-memory", action="store_true")
    ap.add_argument("--variant", action="append", default=[], metavar="KEY=VALUE[,KEY=VALUE]",
                    help="also the grid model with these prediction overrides (rows and speed), e.g. peak_window=1")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    from bench_busy import matmul_rate

    from pcseg.io.export import export_gt
    from pcseg.io.scannet import list_scenes, read_scannet_scene
    from pcseg.structures import Scene
    from pcseg.synth.dataset import ensure_synthetic_dataset

    models = {"bottom-up": args.bottomup, "grid": args.grid}
    variants = {f"grid, {v}": v.split(",") for v in args.variant}
    report: dict = {"checkpoints": {k: str(v) for k, v in models.items()},
                    "fp32_gflops_1thread_before": round(matmul_rate(), 1), "sets": {}}
    work = Path(tempfile.mkdtemp(prefix="bench_grid_"))
    try:
        for name, (folder, scenes, seed) in SETS.items():
            data = ROOT / folder
            ensure_synthetic_dataset(data, scenes, seed=seed)
            gt = work / f"gt_{seed}"
            export_gt(data, gt, progress=False)
            rows = {m: evaluate(path, data, gt, work) for m, path in models.items()}
            if name == "validation":
                rows["grid, plain mask NMS"] = evaluate(args.grid, data, gt, work, ["nms=mask", "nms_iou=0.5"])
            for v, overrides in variants.items():
                rows[v] = evaluate(args.grid, data, gt, work, overrides)
            report["sets"][name] = rows
            print(f"\n{name} ({scenes} rooms of seed {seed})")
            print(f"{'model':30}{'AP':>8}{'AP50':>8}{'AP25':>8}")
            for m, r in rows.items():
                print(f"{m:30}{r['AP']:8.3f}{r['AP50']:8.3f}{r['AP25']:8.3f}")
            print(f"{'AP50 per class':24}{'bottom-up':>10}{'grid':>8}")
            for c in rows["grid"]["classes"]:
                a, b = rows["bottom-up"]["classes"][c], rows["grid"]["classes"][c]
                if a is not None or b is not None:
                    fmt = lambda v: f"{v:8.3f}" if v is not None else f"{'-':>8}"  # noqa: E731
                    print(f"{c:24}  {fmt(a)}{fmt(b)}")

        folder = list_scenes(ROOT / SETS["validation"][0])[0]
        full = read_scannet_scene(folder)
        keep = np.sort(np.random.default_rng(0).choice(len(full), min(100_000, len(full)), replace=False))
        room = Scene(full.points[keep], full.colors[keep], segments=full.segments[keep], name=full.name)
        timed = {m: (path, []) for m, path in models.items()}
        timed.update({v: (args.grid, o) for v, o in variants.items()})
        timings = speed(timed, room, args.repeats)
        paired = sorted(r["grid"] / r["bottom-up"] for r in timings.pop("rounds"))
        report["speed"] = {"points": len(room), **timings,
                           "grid / bottom-up end to end": timings["grid"]["end to end"]
                           / timings["bottom-up"]["end to end"],
                           "grid / bottom-up per round": paired}
        print(f"\none room of {len(room)} points, best of {args.repeats} (seconds)")
        print(f"{'model':30}{'network':>10}{'grouping':>10}{'snap':>8}{'end to end':>12}{'instances':>11}")
        for m, t in timings.items():
            print(f"{m:30}{t['network']:10.3f}{t['grouping']:10.3f}{t['snap']:8.3f}{t['end to end']:12.3f}"
                  f"{t['instances']:11d}")
        print(f"grid / bottom-up end to end: {report['speed']['grid / bottom-up end to end']:.3f} (best of each); "
              f"per round, back to back: median {float(np.median(paired)):.3f}, range {paired[0]:.3f}-{paired[-1]:.3f}, "
              f"grid faster in {sum(r < 1 for r in paired)} of {len(paired)} rounds")

        if not args.skip_memory:
            single = work / "one_room" / "scans"
            single.mkdir(parents=True)
            (single / folder.name).symlink_to(folder)
            memory = {}
            for m, path in models.items():
                memory[f"{m} predict"] = peak_rss_mib(["-q", "predict", "--checkpoint", str(path), "--input",
                                                       str(single / folder.name), "--out", str(work / f"p_{m}")])
            val = ROOT / SETS["validation"][0]
            common = [f"data_root={val}", "train_split=all", "synth_scenes=0", f"val_root={val}", "val_split=all",
                      "val_scenes=1", "val_every=0", "max_minutes=0.7", "init_weights=null"]
            memory["bottom-up train"] = peak_rss_mib(["-q", "train", "configs/synthetic_bottomup.yaml", *common,
                                                      f"out_dir={work / 't_bu'}"])
            memory["grid train"] = peak_rss_mib(["-q", "train", "configs/synthetic_grid.yaml", *common,
                                                 f"out_dir={work / 't_grid'}"])
            report["peak_rss_mib"] = {k: round(v) for k, v in memory.items()}
            print("\npeak RSS (MiB): " + ", ".join(f"{k} {v:.0f}" for k, v in memory.items()))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report["fp32_gflops_1thread_after"] = round(matmul_rate(), 1)
    print(f"1-thread fp32 matmul: {report['fp32_gflops_1thread_before']} GFLOP/s before, "
          f"{report['fp32_gflops_1thread_after']} after")
    if args.json:
        from report import write_json

        write_json(args.json, report, default=float)


if __name__ == "__main__":
    main()
