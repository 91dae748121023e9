"""``pcseg demo``: generate synthetic rooms, predict instances, evaluate with the official protocol."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from tqdm import tqdm

from ..errors import ConfigError
from ..runtime import apply_recipe_threads
from ..engine.config import load_config

METHODS = ("model", "grid", "gt-components", "pred-dbscan")
METHOD_TITLES = {"model": "the shipped bottom-up model (sparse U-Net + mean-shift clustering)",
                 "grid": "the shipped grid model (a narrower U-Net, a SOLO-style head: no clustering)",
                 "gt-components": "ground-truth semantics split into connected components (non-learned reference)",
                 "pred-dbscan": "the model's semantics (its network run shared with model) + DBSCAN on xyz"}
DEFAULT_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "demo.yaml"


@dataclass
class DemoConfig:
    data_dir: str = "out/demo/data"
    out_dir: str = "out/demo"
    scenes: int = 10
    seed: int = 2
    frames: int = 0
    split: str = "all"
    methods: list[str] = field(default_factory=lambda: ["model", "grid", "pred-dbscan", "gt-components"])
    checkpoint: str | None = None        # the bottom-up model (default: the shipped one)
    grid_checkpoint: str | None = None   # the grid model (default: the shipped one)
    eps: float = 0.05
    min_size: int = 100
    segment_snap: float = 0.5     # every method's masks follow the scans' segments; 0 = off for all
    render: bool = True
    report: bool = True
    threads: int = 0              # CPU threads (pcseg.runtime.set_threads); 0 = all usable cores

    def __post_init__(self) -> None:
        if self.scenes < 1:
            raise ValueError(f"scenes: must be >= 1, got {self.scenes}")
        bad = [m for m in self.methods if m not in METHODS]
        if bad or not self.methods:
            raise ValueError(f"methods: {bad or self.methods!r}: choose from {METHODS}")
        if self.eps <= 0:
            raise ValueError(f"eps: must be > 0, got {self.eps}")
        if not 0 <= self.segment_snap <= 1:
            raise ValueError(f"segment_snap: must be in [0, 1] (0 = off), got {self.segment_snap}")


def run_demo(config_path: str | None = None, overrides: Sequence[str] = ()) -> dict:
    """Generate rooms (once), run each method on the validation rooms, print the table of the first
    method and one summary line per method; returns {method: evaluation result}."""
    from .. import pipelines
    from ..evaluation import InstanceEvaluator, SemanticEvaluator, format_table, write_json
    from ..io.official import encode_gt_ids, write_gt_txt, write_instance_predictions
    from ..io.scannet import list_scenes, read_scannet_scene, read_split
    from ..synth import ensure_synthetic_dataset

    path = config_path or (DEFAULT_CONFIG if DEFAULT_CONFIG.is_file() else None)
    cfg = load_config(DemoConfig, path, overrides)
    apply_recipe_threads(cfg.threads)
    data, out = Path(cfg.data_dir), Path(cfg.out_dir)
    ensure_synthetic_dataset(data, cfg.scenes, seed=cfg.seed, frames=cfg.frames)
    wanted = None if cfg.split == "all" else set(read_split(data, cfg.split))
    folders = [f for f in list_scenes(data) if wanted is None or f.name in wanted]
    if not folders:
        raise ConfigError(f"split {cfg.split!r}: no scenes of it in {data}")
    scenes = [read_scannet_scene(f) for f in folders]
    for scene in scenes:
        write_gt_txt(out / "gt" / f"{scene.name}.txt", encode_gt_ids(scene.semantic, scene.instance))

    methods = _available(cfg)
    results, seconds, first = {}, {}, {}
    main = methods[0]
    kept: dict[str, object] = {}  # the main method's predictions, for the report's renders
    model_runs = _ModelRuns(cfg, cfg.checkpoint)  # the model and its per-room predictions, shared by the methods built on it
    grid_runs = _ModelRuns(cfg, cfg.grid_checkpoint or pipelines.SHIPPED_GRID_MODEL)
    for method in methods:
        predict = _predictor(method, cfg, grid_runs if method == "grid" else model_runs)
        evaluator, semantic = InstanceEvaluator(), SemanticEvaluator()
        start = time.perf_counter()
        for scene in tqdm(scenes, desc=method, unit="scene"):
            instances, labels = predict(scene)
            write_instance_predictions(out / "predictions" / method, scene.name, instances)
            evaluator.process(scene, instances, name=scene.name)
            if labels is not None:
                semantic.process(scene.semantic, labels, name=scene.name)
            first.setdefault(method, (scene, instances))
            if method == main:
                kept[scene.name] = instances
        seconds[method] = (time.perf_counter() - start) / len(scenes)
        results[method] = evaluator.evaluate()
        write_json(results[method], out / f"results_{method}.json")
        if method == main:
            main_evaluator, main_semantic = evaluator, (semantic.evaluate() if semantic.confusion.any() else None)

    which = "" if cfg.split == "all" else f" {cfg.split}"
    print(f"\n{main}: {METHOD_TITLES[main]}, {len(scenes)}{which} rooms of seed {cfg.seed}")
    print(format_table(results[main]))
    print(f"{'method':16}{'AP':>8}{'AP50':>8}{'AP25':>8}{'s/room':>9}  what")
    for m in methods:
        r = results[m]
        print(f"{m:16}{r['AP']:8.3f}{r['AP50']:8.3f}{r['AP25']:8.3f}{seconds[m]:9.2f}  {METHOD_TITLES[m]}")
    print(f"\npredictions (official format): {out / 'predictions'}/<method>\nGT files: {out / 'gt'}")
    print(f"re-score from files: pcseg eval --gt {out / 'gt'} --pred {out / 'predictions' / main}")
    if cfg.render:
        png = _picture(*first[main], out, main)
        print(f"picture (RGB | GT instances | {main} instances): {png}")
    if cfg.report:
        from .report import make_report

        by_name = {scene.name: scene for scene in scenes}
        load = (lambda name: (by_name[name], kept[name])) if cfg.render else None
        page = make_report(out / "report", main_evaluator, load=load, semantic=main_semantic,
                           title=f"pcseg demo: {main}", result=results[main], render_size=(400, 300),
                           no_renders="No scene renders: the demo's render key is false.",
                           notes=[f"{METHOD_TITLES[main]}; {len(scenes)}{which} synthetic rooms of seed {cfg.seed} "
                                  f"({data}); predictions: {out / 'predictions' / main}"])
        print(f"report: {page}")
    return results


def _available(cfg: DemoConfig) -> list[str]:
    """The configured methods, without the learned ones when there is no model to run."""
    from ..pipelines import SHIPPED_GRID_MODEL, SHIPPED_MODEL

    methods = list(cfg.methods)
    if cfg.checkpoint is None and not SHIPPED_MODEL.is_file():
        methods = [m for m in methods if m not in ("model", "pred-dbscan")]
        print(f"no trained model at {SHIPPED_MODEL}: running {methods} only "
              "(train one with `pcseg train configs/synthetic_bottomup.yaml`)")
    if "grid" in methods and cfg.grid_checkpoint is None and not SHIPPED_GRID_MODEL.is_file():
        methods.remove("grid")
        print(f"no trained grid model at {SHIPPED_GRID_MODEL}: no grid row "
              "(train one with `pcseg train configs/synthetic_grid.yaml`)")
    if not methods:
        raise ConfigError("methods: none of the configured methods can run without a trained model")
    return methods


class _ModelRuns:
    """The model, loaded on first use (through the table of pipelines, by its checkpoint), and its
    prediction of each room, made once: the methods built on it share them, so pred-dbscan's time is
    its instance step alone."""

    def __init__(self, cfg: DemoConfig, checkpoint) -> None:
        self.cfg, self.checkpoint, self.predictor = cfg, checkpoint, None
        self.predictions: dict = {}

    def load(self) -> None:
        from ..pipelines import load_predictor

        if self.predictor is None:
            self.predictor = load_predictor(self.checkpoint)

    def __call__(self, scene):
        from ..engine.snapping import snap_to_scene

        self.load()
        if scene.name not in self.predictions:
            p = self.predictor
            self.predictions[scene.name] = snap_to_scene(p.finish(scene, p.network(scene, None)), scene,
                                                            self.cfg.segment_snap, p.min_size)
        return self.predictions[scene.name]


def _predictor(method: str, cfg: DemoConfig, model_runs: _ModelRuns):
    """scene -> (InstanceSet, predicted NYU40 labels IntArray[N] or None) for ``method``; every
    method's masks are snapped to the scene's segments at ``cfg.segment_snap``."""
    from ..cluster import dbscan_xyz
    from ..engine.snapping import snap_to_scene
    from ..structures import Prediction

    def components(scene, semantic):
        found = dbscan_xyz(scene.points, semantic, eps=cfg.eps, min_size=cfg.min_size)
        return snap_to_scene(Prediction(found, semantic), scene, cfg.segment_snap, cfg.min_size).instances

    if method == "gt-components":
        return lambda scene: (components(scene, scene.semantic), None)
    model_runs.load()  # before the timed rooms

    def predict(scene):
        prediction = model_runs(scene)
        if method in ("model", "grid"):
            return prediction.instances, prediction.semantic
        return components(scene, prediction.semantic), prediction.semantic

    return predict


def _picture(scene, instances, out: Path, method: str) -> Path:
    from ..viz import colorize, render_image, save_png, side_by_side

    size = (640, 480)
    picture = side_by_side([render_image(scene, colorize(scene, "rgb"), size),
                            render_image(scene, colorize(scene, "instance"), size),
                            render_image(scene, colorize(scene, "instance", instances), size)],
                           titles=[f"{scene.name}: RGB", "ground truth instances", f"prediction ({method})"])
    return save_png(picture, out / f"{scene.name}_rgb_gt_{method}.png")
