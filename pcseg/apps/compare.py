"""``pcseg compare CONFIG``: every pipeline on the same validation scenes, one table and one plot.

Each method runs in its own child process (``python -m pcseg.apps.compare --worker ...``), so its
peak memory is its own (``ru_maxrss``) and one method's caches cannot speed up or slow down another.
The child writes official-format predictions and a ``run.json`` with stage timings; the parent
scores every method with the same ``InstanceEvaluator`` and writes ``compare.json``, ``compare.md``
and ``compare.png`` into ``out_dir``.
"""
from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import ConfigError
from ..runtime import apply_recipe_threads
from ..engine.config import build_config, load_config

METHODS = {
    "bottomup": "sparse U-Net + clustering (the 3D pipeline)",
    "grid": "the same U-Net + a SOLO-style grid head: masks by location, no clustering (the one-stage 3D pipeline)",
    "maskrcnn2d": "Mask R-CNN on the RGB-D frames, lifted and fused into 3D (the 2D pipeline)",
    "lift-gt-masks": "ground-truth frame masks lifted and fused (ceiling of any 2D pipeline on these frames)",
    "pred-dbscan": "the 3D model's semantics + DBSCAN on xyz (no learned instance step)",
    "gt-components": "ground-truth semantics split into connected components (non-learned reference)",
}


@dataclass
class CompareConfig:
    data_root: str = "out/data/compare_val"   # ScanNet-layout rooms with RGB-D frames
    scenes: int = 10                          # > 0: generate this many rooms at data_root if missing
    seed: int = 1
    frames: int = 20
    split: str = "all"
    methods: list[str] = field(default_factory=lambda: list(METHODS))
    checkpoint_3d: str | None = None          # default: the shipped bottom-up model
    checkpoint_2d: str | None = None          # Mask R-CNN checkpoint; maskrcnn2d is skipped without one
    checkpoint_grid: str | None = None        # default: the shipped grid model; grid is skipped without one
    eps: float = 0.05                         # DBSCAN radius (m) of the non-learned methods
    min_size: int = 100
    segment_snap: float = 0.5                 # every method's masks follow the scans' segments; 0 = off for all
    out_dir: str = "out/compare"
    device: str = "cpu"
    threads: int = 0                          # CPU threads of each worker (pcseg.runtime); 0 = all usable cores

    def __post_init__(self) -> None:
        bad = [m for m in self.methods if m not in METHODS]
        if bad or not self.methods:
            raise ValueError(f"methods: {bad or self.methods!r}: choose from {list(METHODS)}")
        if self.scenes < 0 or self.frames < 0:
            raise ValueError("scenes: scenes and frames must be >= 0")
        if not 0 <= self.segment_snap <= 1:
            raise ValueError(f"segment_snap: must be in [0, 1] (0 = off), got {self.segment_snap}")


# --- the worker: one method, its own process ---------------------------------------------------

def _scene_folders(cfg: CompareConfig) -> list[Path]:
    from ..io.scannet import list_scenes, read_split

    root = Path(cfg.data_root)
    wanted = None if cfg.split == "all" else set(read_split(root, cfg.split))
    return [f for f in list_scenes(root) if wanted is None or f.name in wanted]


def _frames_of(folder: Path) -> Path:
    return folder / "frames"


def _predictor(method: str, cfg: CompareConfig):
    """-> (scene folder, scene) -> (Prediction not yet snapped to segments, min_size of its masks
    after snapping), and the training seconds or None. The two pipelines come from the table of
    pipelines (``pcseg.pipelines``), by their checkpoints."""
    from ..cluster import dbscan_xyz
    from ..structures import Prediction

    def unlabelled(scene):
        return np.zeros(len(scene), np.int64)

    if method == "gt-components":
        def run(folder, scene):
            start = time.perf_counter()
            out = dbscan_xyz(scene.points, scene.semantic, eps=cfg.eps, min_size=cfg.min_size)
            return Prediction(out, unlabelled(scene), {"cluster": time.perf_counter() - start}), cfg.min_size
        return run, None
    if method == "lift-gt-masks":
        from ..baseline2d.oracle import oracle_predictions
        from ..baseline2d.pipeline import lift_and_fuse
        from ..io.frames import read_frames

        def run(folder, scene):
            start = time.perf_counter()
            frames, intrinsics = read_frames(_frames_of(folder))
            timings = {"read frames": time.perf_counter() - start}
            out = lift_and_fuse(scene, frames, intrinsics, oracle_predictions(frames), timings=timings)
            return Prediction(out, unlabelled(scene), timings), cfg.min_size
        return run, None
    from ..engine.snapping import snap_to_scene
    from ..pipelines import load_predictor

    predictor = load_predictor(_checkpoint(method, cfg), cfg.device)
    train_seconds = predictor.train_seconds
    if method == "maskrcnn2d":
        def run(folder, scene):
            pred = predictor.finish(scene, predictor.network(scene, folder))
            # "read" re-reads the scene the worker already has; "lift_fuse" is the sum of its stages
            timings = {k: v for k, v in pred.timings.items() if k not in ("read", "frames", "lift_fuse")}
            return Prediction(pred.instances, pred.semantic, timings), cfg.min_size
        return run, train_seconds

    def run(folder, scene):
        pred = predictor.finish(scene, predictor.network(scene, folder))
        if method in ("bottomup", "grid"):
            return pred, predictor.min_size
        # DBSCAN on the model's semantics as predict writes them: each segment's majority class
        semantic = snap_to_scene(pred, scene, cfg.segment_snap, predictor.min_size).semantic
        start = time.perf_counter()
        out = dbscan_xyz(scene.points, semantic, eps=cfg.eps, min_size=cfg.min_size)
        return Prediction(out, semantic, {"network": pred.timings["network"], "cluster": time.perf_counter() - start}), \
            cfg.min_size
    return run, train_seconds


def run_worker(method: str, cfg: CompareConfig, out: Path) -> dict:
    """Predict every scene with ``method`` into ``out/predictions/<method>``, the masks snapped to the
    scene's segments at ``cfg.segment_snap`` (``engine.snapping.snap_to_scene``, as pcseg predict
    snaps); returns and writes run.json."""
    from ..engine.snapping import snap_to_scene
    from ..io.atomic import atomic_path, write_text
    from ..io.official import write_instance_predictions
    from ..io.scannet import read_scannet_scene

    apply_recipe_threads(cfg.threads)
    run, train_seconds = _predictor(method, cfg)
    stages: dict[str, float] = {}
    folders = _scene_folders(cfg)
    target = out / "predictions" / method
    with atomic_path(target) as tmp:
        tmp.mkdir(parents=True)
        for folder in folders:
            scene = read_scannet_scene(folder)
            pred, min_size = run(folder, scene)
            pred = snap_to_scene(pred, scene, cfg.segment_snap, min_size)
            for stage, seconds in pred.timings.items():
                stages[stage] = stages.get(stage, 0.0) + seconds
            write_instance_predictions(tmp, scene.name, pred.instances)
    n = max(len(folders), 1)
    record = {"method": method, "scenes": len(folders),
              "seconds_per_scene": {k: v / n for k, v in stages.items()},
              "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
              "train_minutes": None if train_seconds is None else train_seconds / 60}
    write_text(out / "runs" / f"{method}.json", json.dumps(record, indent=1))
    return record


# --- the parent: data, workers, scoring, table and plot ----------------------------------------

def _ensure_data(cfg: CompareConfig) -> None:
    from ..synth import ensure_synthetic_dataset

    root = Path(cfg.data_root)
    if cfg.scenes > 0:
        ensure_synthetic_dataset(root, cfg.scenes, seed=cfg.seed, frames=cfg.frames)
    elif not (root / "scans").is_dir():  # scenes 0: a dataset of the user's
        raise ConfigError(f"data_root: {root} has no scans/ and scenes is 0 (nothing to generate)")


def _checkpoint(method: str, cfg: CompareConfig) -> Path:
    """The checkpoint a learned method runs: the configured one, else the shipped model of its pipeline."""
    from ..pipelines import SHIPPED_GRID_MODEL, SHIPPED_MODEL

    given = {"maskrcnn2d": cfg.checkpoint_2d, "grid": cfg.checkpoint_grid}.get(method, cfg.checkpoint_3d)
    return Path(given) if given else (SHIPPED_GRID_MODEL if method == "grid" else SHIPPED_MODEL)


def _methods(cfg: CompareConfig) -> list[str]:
    methods = list(cfg.methods)
    if "maskrcnn2d" in methods and not (cfg.checkpoint_2d and Path(cfg.checkpoint_2d).is_file()):
        what = f"no checkpoint at {cfg.checkpoint_2d}" if cfg.checkpoint_2d else "no checkpoint_2d given"
        print(f"maskrcnn2d: {what} (train one with `pcseg train configs/maskrcnn2d_synthetic.yaml`) - skipped")
        methods.remove("maskrcnn2d")
    if "grid" in methods:
        path = _checkpoint("grid", cfg)
        if not path.is_file():
            print(f"grid: no checkpoint at {path} (train one with `pcseg train configs/synthetic_grid.yaml`) - skipped")
            methods.remove("grid")
    if not methods:
        raise ConfigError("methods: nothing left to run")
    return methods


def run_compare(config_path: str | None, overrides: Sequence[str] = (), progress: bool = True) -> dict:
    from ..evaluation import InstanceEvaluator, to_json_dict
    from ..io.atomic import write_text
    from ..io.official import read_instance_predictions
    from ..io.scannet import read_scannet_scene

    cfg = load_config(CompareConfig, config_path, overrides)
    _ensure_data(cfg)
    folders = _scene_folders(cfg)
    if not folders:
        raise ConfigError(f"split {cfg.split!r}: no scenes in {cfg.data_root}")
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    runs, results = {}, {}
    for method in _methods(cfg):
        if progress:
            print(f"{method}: {METHODS[method]} ({len(folders)} scenes)")
        start = time.perf_counter()
        child = subprocess.run([sys.executable, "-m", "pcseg.apps.compare", "--worker", method,
                                "--config-json", json.dumps(asdict(cfg))],
                               env={**os.environ, "PYTHONWARNINGS": "ignore"}, capture_output=True, text=True)
        if child.returncode != 0:
            raise RuntimeError(f"compare: method {method} failed:\n{child.stderr[-3000:]}")
        runs[method] = json.loads((out / "runs" / f"{method}.json").read_text())
        runs[method]["wall_seconds"] = time.perf_counter() - start
    scenes = [read_scannet_scene(f) for f in folders]
    for method in runs:
        evaluator = InstanceEvaluator()
        for scene in scenes:
            instances = read_instance_predictions(out / "predictions" / method, scene.name, num_points=len(scene))
            evaluator.process(scene, instances, name=scene.name)
        results[method] = evaluator.evaluate()
    summary = {"config": asdict(cfg), "runs": runs, "results": to_json_dict(results)}
    write_text(out / "compare.json", json.dumps(summary, indent=1))
    table = format_compare(runs, results, len(scenes))
    write_text(out / "compare.md", table)
    png = plot_compare(results, out / "compare.png")
    print(table)
    print(f"wrote {out / 'compare.md'}, {out / 'compare.json'}, {png}")
    return summary


def format_compare(runs: dict, results: dict, num_scenes: int) -> str:
    """Markdown: the overall table (AP, time per scene by stage, peak memory, training time) and the
    per-class AP50 table."""
    def num(v, fmt="{:.3f}"):
        return "-" if v is None or (isinstance(v, float) and not np.isfinite(v)) else fmt.format(v)

    lines = [f"Scored on {num_scenes} scenes with the ScanNet v2 protocol.", "",
             "| method | AP | AP50 | AP25 | s/scene (stages) | peak MiB | training min |", "|---|---|---|---|---|---|---|"]
    for method, r in results.items():
        run = runs[method]
        stages = run["seconds_per_scene"]
        total = sum(stages.values())
        parts = ", ".join(f"{k} {v:.2f}" for k, v in stages.items())
        lines.append(f"| {method} | {num(r['AP'])} | {num(r['AP50'])} | {num(r['AP25'])} | {total:.2f} ({parts}) | "
                     f"{run['peak_rss_mib']:.0f} | {num(run['train_minutes'], '{:.0f}')} |")
    classes = list(next(iter(results.values()))["classes"])
    lines += ["", "AP50 per class:", "", "| class | " + " | ".join(results) + " |",
              "|---|" + "---|" * len(results)]
    for c in classes:
        lines.append(f"| {c} | " + " | ".join(num(results[m]["classes"][c]["AP50"]) for m in results) + " |")
    return "\n".join(lines) + "\n"


def plot_compare(results: dict, path: Path) -> Path:
    """Grouped bars of AP50 per class, one colour per method (matplotlib, written atomically)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..io.atomic import atomic_path

    classes = list(next(iter(results.values()))["classes"])
    methods = list(results)
    width = 0.8 / len(methods)
    fig, ax = plt.subplots(figsize=(12, 4.5))
    x = np.arange(len(classes) + 1)
    for i, m in enumerate(methods):
        values = [results[m]["classes"][c]["AP50"] for c in classes] + [results[m]["AP50"]]
        values = [0.0 if v is None or not np.isfinite(v) else v for v in values]
        ax.bar(x + (i - (len(methods) - 1) / 2) * width, values, width, label=m)
    ax.set_xticks(x, classes + ["overall"], rotation=45, ha="right")
    ax.set_ylabel("AP50")
    ax.set_ylim(0, 1)
    ax.legend(ncol=len(methods), fontsize=8, loc="upper center", bbox_to_anchor=(0.5, 1.15))
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return path


def _worker_main(argv: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="pcseg.apps.compare")
    parser.add_argument("--worker", required=True, choices=list(METHODS))
    parser.add_argument("--config-json", required=True)
    args = parser.parse_args(argv)
    cfg = build_config(CompareConfig, json.loads(args.config_json), source="compare worker")
    run_worker(args.worker, cfg, Path(cfg.out_dir))
    return 0


if __name__ == "__main__":
    sys.exit(_worker_main(sys.argv[1:]))
