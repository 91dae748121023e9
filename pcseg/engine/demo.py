"""``pcseg demo``: generate synthetic rooms, predict instances, evaluate with the official protocol."""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from tqdm import tqdm

from ..errors import ConfigError
from .config import load_config

METHODS = ("gt-components",)
DEFAULT_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "demo.yaml"


@dataclass
class DemoConfig:
    data_dir: str = "out/demo/data"
    out_dir: str = "out/demo"
    scenes: int = 10
    seed: int = 0
    frames: int = 0
    split: str = "val"
    method: str = "gt-components"
    eps: float = 0.05
    min_size: int = 100
    render: bool = True

    def __post_init__(self) -> None:
        if self.scenes < 1:
            raise ValueError(f"scenes: must be >= 1, got {self.scenes}")
        if self.method not in METHODS:
            raise ValueError(f"method: {self.method!r} is not one of {METHODS}")
        if self.eps <= 0:
            raise ValueError(f"eps: must be > 0, got {self.eps}")


def run_demo(config_path: str | None = None, overrides: Sequence[str] = ()) -> dict:
    """Run the demo and print the evaluation table; returns the evaluation result."""
    from ..cluster import dbscan_xyz
    from ..evaluation import InstanceEvaluator, format_table, write_json
    from ..io.official import encode_gt_ids, write_gt_txt, write_instance_predictions
    from ..io.scannet import list_scenes, read_scannet_scene, read_split
    from ..synth import write_synthetic_dataset

    path = config_path or (DEFAULT_CONFIG if DEFAULT_CONFIG.is_file() else None)
    cfg = load_config(DemoConfig, path, overrides)
    data, out = Path(cfg.data_dir), Path(cfg.out_dir)
    if not (data / "scans").is_dir():
        print(f"generating {cfg.scenes} synthetic ScanNet-format rooms in {data} ...")
        write_synthetic_dataset(data, cfg.scenes, seed=cfg.seed, frames=cfg.frames)
    wanted = set(read_split(data, cfg.split))
    folders = [f for f in list_scenes(data) if f.name in wanted]
    if not folders:
        raise ConfigError(f"split {cfg.split!r}: no scenes of it in {data}")

    evaluator = InstanceEvaluator()
    pred_dir, gt_dir = out / "predictions", out / "gt"
    start = time.perf_counter()
    first = None
    for folder in tqdm(folders, desc=f"{cfg.method} on {cfg.split}", unit="scene"):
        scene = read_scannet_scene(folder)
        instances = dbscan_xyz(scene.points, scene.semantic, eps=cfg.eps, min_size=cfg.min_size)
        write_gt_txt(gt_dir / f"{scene.name}.txt", encode_gt_ids(scene.semantic, scene.instance))
        write_instance_predictions(pred_dir, scene.name, instances)
        evaluator.process(scene, instances, name=scene.name)
        first = first or (scene, instances)
    elapsed = time.perf_counter() - start
    result = evaluator.evaluate()
    write_json(result, out / "results.json")

    print(f"\n{cfg.method}: ground-truth semantics split into connected components (eps={cfg.eps} m), "
          f"{len(folders)} {cfg.split} scenes, {elapsed / len(folders):.2f} s/scene")
    print(format_table(result))
    print(f"predictions (official format): {pred_dir}\nGT files: {gt_dir}\nresults: {out / 'results.json'}")
    print(f"re-score from files: pcseg eval --gt {gt_dir} --pred {pred_dir}")
    if cfg.render and first is not None:
        from ..viz import colorize, render_image, save_png, side_by_side

        scene, instances = first
        size = (640, 480)
        picture = side_by_side([render_image(scene, colorize(scene, "rgb"), size),
                                render_image(scene, colorize(scene, "instance"), size),
                                render_image(scene, colorize(scene, "instance", instances), size)])
        png = save_png(picture, out / f"{scene.name}_rgb_gt_pred.png")
        print(f"picture (RGB | GT instances | predicted instances): {png}")
    return result
