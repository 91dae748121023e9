#!/usr/bin/env python
"""Headless rendering speed: a ~200k-vertex room mesh and a 200k-point cloud to a 1280x960 PNG.

    python benchmarks/bench_render.py [--points 200000] [--size 1280x960] [--repeat 2]

Prints seconds per stage (colour mode, render, PNG encode) and the total; the target is < 5 s on
the 2-core CPU. The mesh is synthetic rooms placed side by side until it has --points vertices.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from pcseg.structures import Scene
from pcseg.synth import generate_scene
from pcseg.viz import colorize, render_image, save_png


def big_room(points: int) -> Scene:
    """Rooms side by side (x) until ``points`` vertices, cut to exactly that many points' faces."""
    parts, offset, shift, seed = [], 0, 0.0, 0
    while offset < points:
        s = generate_scene(seed, f"scene{seed:04d}_00").scene
        pts = s.points + np.array([shift - s.points[:, 0].min(), 0, 0], np.float32)
        parts.append((pts, s.colors, s.semantic, s.instance + 1000 * seed, s.faces + offset))
        offset += len(s)
        shift = pts[:, 0].max() + 0.5
        seed += 1
    pts, col, sem, inst, faces = (np.concatenate(x) for x in zip(*parts))
    keep = np.all(faces < points, axis=1)
    return Scene(pts[:points], col[:points], sem[:points], inst[:points], name="bench", faces=faces[keep])


def timed(stages: dict, name: str, fn, *a, **k):
    start = time.perf_counter()
    out = fn(*a, **k)
    stages[name] = stages.get(name, 0.0) + time.perf_counter() - start
    return out


def run(scene: Scene, size: tuple[int, int], repeat: int, out: Path) -> dict:
    best = None
    for _ in range(repeat):
        stages: dict[str, float] = {}
        colors = timed(stages, "colorize (instance)", colorize, scene, "instance")
        image = timed(stages, "render", render_image, scene, colors, size)
        timed(stages, "PNG encode + write", save_png, image, out)
        stages["total"] = sum(stages.values())
        best = stages if best is None or stages["total"] < best["total"] else best
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--points", type=int, default=200_000)
    parser.add_argument("--size", default="1280x960")
    parser.add_argument("--repeat", type=int, default=2, help="runs per case; the fastest is reported")
    args = parser.parse_args()
    size = tuple(int(v) for v in args.size.split("x"))
    start = time.perf_counter()
    mesh = big_room(args.points)
    print(f"scene: {len(mesh)} vertices, {len(mesh.faces)} triangles (built in {time.perf_counter() - start:.1f} s)")
    cloud = Scene(mesh.points, mesh.colors, mesh.semantic, mesh.instance, name="bench_cloud")
    with tempfile.TemporaryDirectory() as tmp:
        for label, scene in (("mesh", mesh), ("point cloud", cloud)):
            stages = run(scene, size, args.repeat, Path(tmp) / "bench.png")
            print(f"{label} ({len(scene)} points) -> {size[0]}x{size[1]} PNG, fastest of {args.repeat}:")
            for name, seconds in stages.items():
                print(f"  {name:22s}{seconds:8.3f} s")
            print(f"  {'target':22s}{'< 5 s':>8s}  {'met' if stages['total'] < 5 else 'NOT met'}")


if __name__ == "__main__":
    main()
