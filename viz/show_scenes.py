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
from pcseg.viz import COLOR_MODES, colorize, display_available, render_image, save_png, to_open3d
from pcseg.viz.legend import draw_legend, legend_for
from pcseg.viz.view import read_prediction_files


def _modes(has_pred: bool, has_emb: bool) -> list[str]:
    return [m for m in COLOR_MODES if (m != "errors" or has_pred) and (m != "embedding" or has_emb)]


class Browser:
    """Scenes loaded on demand; the current one shown in an Open3D key-callback window."""

    def __init__(self, folders: list[Path], pred: str | None, color: str):
        self.folders, self.pred, self.index, self.color = folders, pred, 0, color
        self.scene = self.files = None

    def load(self) -> None:
        self.scene = read_scannet_scene(self.folders[self.index])
        self.files = None
        if self.pred:
            try:
                emb = (Path(self.pred) / "embeddings" / f"{self.scene.name}.npy").is_file()
                self.files = read_prediction_files(self.pred, self.scene, embeddings=emb)
            except DataError as e:
                print(f"{self.scene.name}: no prediction shown ({e})")
        modes = self.modes()
        if self.color not in modes:
            self.color = "instance"

    def modes(self) -> list[str]:
        return _modes(self.files is not None, self.files is not None and self.files.embeddings is not None)

    def colors(self):
        inst = None if self.files is None else self.files.instances
        emb = None if self.files is None else self.files.embeddings
        return colorize(self.scene, self.color, inst, emb)

    def geometry(self):
        return to_open3d(self.scene, self.colors())

    def run(self) -> None:
        import open3d as o3d

        vis = o3d.visualization.VisualizerWithKeyCallback()
        vis.create_window(window_name="pcseg scenes", width=1280, height=960)
        self.load()
        vis.add_geometry(self.geometry())
        print(f"{self.scene.name} [{self.color}]  N/P next/previous, C colour mode, Q quit")

        def redraw(reset_view: bool):
            vis.clear_geometries()
            vis.add_geometry(self.geometry(), reset_bounding_box=reset_view)
            print(f"{self.scene.name} [{self.color}]")
            return False

        def step(delta):
            def callback(_vis):
                self.index = (self.index + delta) % len(self.folders)
                self.load()
                return redraw(True)
            return callback

        def cycle(_vis):
            modes = self.modes()
            self.color = modes[(modes.index(self.color) + 1) % len(modes)]
            return redraw(False)

        vis.register_key_callback(ord("N"), step(1))
        vis.register_key_callback(ord("P"), step(-1))
        vis.register_key_callback(ord("C"), cycle)
        vis.register_key_callback(ord("Q"), lambda v: v.close() or False)
        vis.run()
        vis.destroy_window()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset")
    parser.add_argument("--pred", default=None, help="prediction folder of `pcseg predict`")
    parser.add_argument("--color", choices=COLOR_MODES, default="instance")
    parser.add_argument("--view", choices=("oblique", "top", "fitted"), default="fitted")
    parser.add_argument("--out-dir", default=None, help="render PNGs here instead of opening a window")
    args = parser.parse_args()
    browser = Browser(list_scenes(args.dataset), args.pred, args.color)
    if args.out_dir is None and display_available():
        browser.run()
        return
    out_dir = Path(args.out_dir or "scene_pngs")
    if args.out_dir is None:
        print(f"no usable display: rendering every scene to {out_dir}/ instead")
    for i in range(len(browser.folders)):
        browser.index = i
        browser.color = args.color
        browser.load()
        image = render_image(browser.scene, browser.colors(), view=args.view)
        image = draw_legend(image, legend_for(browser.scene, browser.color))
        print(save_png(image, out_dir / f"{browser.scene.name}_{browser.color}.png"))


if __name__ == "__main__":
    main()
