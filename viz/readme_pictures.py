#!/usr/bin/env python
"""Make the README's pictures (headless): a synthetic room in RGB, semantic classes and instances.

    python viz/readme_pictures.py [--out docs/images] [--seed 7]
"""
from __future__ import annotations

import argparse
from pathlib import Path

from pcseg.synth import generate_scene
from pcseg.viz import colorize, render_image, save_png, side_by_side


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="docs/images")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    scene = generate_scene(args.seed, "scene0000_00").scene
    size = (640, 480)
    panels = [render_image(scene, colorize(scene, mode), size) for mode in ("rgb", "semantic", "instance")]
    print(save_png(side_by_side(panels), Path(args.out) / "synthetic_room.png"))


if __name__ == "__main__":
    main()
