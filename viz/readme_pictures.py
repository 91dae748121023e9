#!/usr/bin/env python
"""Make the README's pictures (headless) into docs/images/:

    synthetic_room.png     a synthetic room in RGB, semantic classes and instances
    gt_vs_prediction.png   ground-truth instances next to the shipped model's prediction
    errors.png             the errors view (missed / false positive / merged / split) with its legend
    embeddings.png         GT instances next to the network's embeddings (PCA to RGB)
    frame_masks.png        an RGB-D frame with its instance masks and classes overlaid
    grid_head.png          the grid head from above: its grids, the cells holding a centre, the instances
                           (a validation room; needs the shipped grid model)

    python viz/readme_pictures.py [--out docs/images] [--seed 7] [--only grid]
"""
from __future__ import annotations

import argparse
from pathlib import Path

from pcseg.synth import generate_scene
from pcseg.viz import colorize, draw_legend, error_colors, render_image, save_png, side_by_side
from pcseg.viz.legend import legend_for, semantic_legend
from pcseg.viz.view import frame_panels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="docs/images")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--only", choices=["grid"], default=None, help="make this picture only")
    args = parser.parse_args()
    out = Path(args.out)
    grid_picture(out / "grid_head.png")
    if args.only:
        return
    synth = generate_scene(args.seed, "scene0000_00", frames=3)
    scene = synth.scene
    size = (640, 480)

    def render(colors):
        return render_image(scene, colors, size, view="fitted")

    panels = [render(colorize(scene, mode)) for mode in ("rgb", "semantic", "instance")]
    panels[1] = draw_legend(panels[1], semantic_legend(scene)[:12], font_size=11)
    print(save_png(side_by_side(panels, titles=["RGB", "semantic classes", "instances"]), out / "synthetic_room.png"))

    from pcseg.pipelines.bottomup.predict import load_model, predict_scene

    model, recipe = load_model()  # the shipped synthetic model
    pred = predict_scene(model, scene, recipe)
    gt_image = render(colorize(scene, "instance"))
    pred_image = render(colorize(scene, "instance", pred.instances))
    print(save_png(side_by_side([gt_image, pred_image], titles=["ground truth", "prediction (shipped model)"]),
                   out / "gt_vs_prediction.png"))
    colors, summary = error_colors(scene, pred.instances)
    errors = draw_legend(render(colors), legend_for(scene, "errors"), font_size=12)
    print(save_png(side_by_side([pred_image, errors], titles=["prediction", "errors"]), out / "errors.png"))
    print("errors:", {k: v for k, v in summary.items() if k != "points"})
    emb = render(colorize(scene, "embedding", embeddings=pred.embeddings))
    print(save_png(side_by_side([gt_image, emb], titles=["ground truth", "embeddings (PCA to RGB)"]),
                   out / "embeddings.png"))

    from pcseg.io.frames import write_frames

    frames_dir = out.parent / ".frames_tmp"
    try:
        write_frames(frames_dir, synth.frames, synth.intrinsics)
        print(save_png(frame_panels(frames_dir, 1), out / "frame_masks.png"))
    finally:
        import shutil

        shutil.rmtree(frames_dir, ignore_errors=True)


def grid_picture(path: Path, room: int = 3, shown_threshold: float = 0.3) -> None:
    """The shipped grid model on validation room ``room`` (seed 1): cells above ``shown_threshold``."""
    from pcseg.engine.snapping import snap_to_scene
    from pcseg.io.scannet import list_scenes, read_scannet_scene
    from pcseg.pipelines import SHIPPED_GRID_MODEL, load_predictor
    from pcseg.synth.dataset import ensure_synthetic_dataset
    from pcseg.viz.grid_cells import draw_grid_cells, grid_cells

    if not SHIPPED_GRID_MODEL.is_file():
        print(f"no shipped grid model at {SHIPPED_GRID_MODEL}: no {path.name}")
        return
    ensure_synthetic_dataset("out/data/synth_val", 20, seed=1)
    scene = read_scannet_scene(list_scenes("out/data/synth_val")[room])
    p = load_predictor(SHIPPED_GRID_MODEL)
    pred = snap_to_scene(p.finish(scene, p.network(scene, None)), scene, p.segment_snap, p.min_size)
    from pcseg.structures import InstanceSet

    sure = pred.instances.scores >= shown_threshold  # the confident instances, as the cells shown
    shown = InstanceSet(pred.instances.masks[sure], pred.instances.labels[sure], pred.instances.scores[sure])
    print(draw_grid_cells(scene, grid_cells(p.model, scene, p.recipe), shown, path, shown_threshold))


if __name__ == "__main__":
    main()
