#!/usr/bin/env python
"""Browse the scenes of a ScanNet-format dataset (or a folder of scene folders).

    python viz/show_scenes.py DATASET [--pred PRED_DIR] [--color instance] [--out-dir PNG_DIR]

With a display: one Open3D window; N / P = next / previous scene, C = cycle the colour mode
(rgb, semantic, instance, and with --pred: errors, embedding when embeddings were saved), Q quits.
Without a usable display, or with --out-dir, each scene is rendered to PNG_DIR/<scene>_<color>.png.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from pcseg.errors import DataError
from pcseg.io.scannet import list_scenes, read_scannet_scene
from pcseg.viz import COLOR_MODES, render_image, save_png
from pcseg.viz.legend import draw_legend, legend_for
from pcseg.viz.view import read_prediction_files, saved_extras
from pcseg.viz.window import SceneViewer, ViewerItem


def load_scene(folder: Path, pred: str | None) -> ViewerItem:
    """The scene in ``folder`` and, when ``pred`` is given, its predicted instances (and embeddings
    when they were saved); a scene the prediction folder lacks is shown without them."""
    scene = read_scannet_scene(folder)
    files = None
    if pred:
        try:
            files = read_prediction_files(pred, scene, embeddings=saved_extras(pred, scene.name)["embeddings"])
        except DataError as e:
            print(f"{scene.name}: no prediction shown ({e})")
    return ViewerItem(scene, files)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset")
    parser.add_argument("--pred", default=None, help="prediction folder of `pcseg predict`")
    parser.add_argument("--color", choices=COLOR_MODES, default="instance")
    parser.add_argument("--view", choices=("oblique", "top", "fitted"), default="fitted")
    parser.add_argument("--out-dir", default=None, help="render PNGs here instead of opening a window")
    args = parser.parse_args()
    folders = list_scenes(args.dataset)
    viewer = SceneViewer(lambda i: load_scene(folders[i], args.pred), len(folders), mode=args.color,
                         view=args.view, title="pcseg scenes")
    if args.out_dir is None and viewer.run():
        return
    out_dir = Path(args.out_dir or "scene_pngs")
    if args.out_dir is None:
        print(f"no usable display: rendering every scene to {out_dir}/ instead")
    for folder in folders:
        viewer.item, viewer.mode = load_scene(folder, args.pred), args.color
        scene = viewer.item.scene
        if args.color not in viewer.modes():
            print(f"{scene.name}: no {args.color} colours (has {', '.join(viewer.modes())}); skipped")
            continue
        (_, colors), = viewer.panels()
        image = draw_legend(render_image(scene, colors, view=args.view), legend_for(scene, args.color))
        print(save_png(image, out_dir / f"{scene.name}_{args.color}.png"))

if __name__ == "__main__":
    main()
