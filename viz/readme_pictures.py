#!/usr/bin/env python
"""Make the README's pictures (headless) into docs/images/:

    synthetic_room.png     a synthetic room in RGB, semantic classes and instances
    gt_vs_prediction.png   ground-truth instances next to the shipped model's prediction
    errors.png             the errors view (missed / false positive / merged / split) with its legend
    embeddings.png         GT instances next to the network's embeddings (PCA to RGB)
    frame_masks.png        an RGB-D frame with its instance masks and classes overlaid

    python viz/readme_pictures.py [--out docs/images] [--seed 7]
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
    args = parser.parse_args()
    out = Path(args.out)
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


if __name__ == "__main__":
    main()
