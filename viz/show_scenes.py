#!/usr/bin/env python
"""Look at every scene of a ScanNet-format dataset, one after another.

    python viz/show_scenes.py DATASET [--color instance|semantic|rgb] [--out-dir PNG_DIR]

With a display, each scene opens in an Open3D window (close it to see the next). Without one, or
with --out-dir, each scene is rendered to PNG_DIR/<scene>_<color>.png instead.
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

from pcseg.io.scannet import list_scenes, read_scannet_scene
from pcseg.viz import COLOR_MODES, colorize, render_image, save_png, to_open3d


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset")
    parser.add_argument("--color", choices=COLOR_MODES, default="instance")
    parser.add_argument("--out-dir", default=None)
    args = parser.parse_args()
    out_dir = Path(args.out_dir) if args.out_dir or not os.environ.get("DISPLAY") else None
    for folder in list_scenes(args.dataset):
        scene = read_scannet_scene(folder)
        colors = colorize(scene, args.color)
        if out_dir is None:
            import open3d as o3d

            o3d.visualization.draw_geometries([to_open3d(scene, colors)], window_name=scene.name)
        else:
            print(save_png(render_image(scene, colors), out_dir / f"{scene.name}_{args.color}.png"))


if __name__ == "__main__":
    main()
