"""Speed of voxelization and of the training augmentations on room-sized scenes.

A batch of rooms (points on the floor and walls of a 6 x 5 x 2.5 m room plus random boxes, about
``--points`` points each) is voxelized at 2 cm with ``pcseg.data.voxelize`` and with a plain numpy
reference (per-scene ``np.unique(axis=0, return_inverse=True)``), in the same process; the script
prints seconds per batch and the ratio, checks that both give the same voxels, then times
``voxel_mean`` and one default ``Augmentation`` per scene. On a CUDA machine it also times the GPU.

    python benchmarks/bench_voxelize.py [--points 150000] [--scenes 4] [--repeats 5]
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from pcseg.data import Augmentation, voxel_mean, voxelize
from pcseg.structures import Scene


def room(n: int, rng: np.random.Generator) -> np.ndarray:
    """FloatArray[n, 3]: points on a room's floor, four walls and a few boxes, with 5 mm noise."""
    size = np.array([6.0, 5.0, 2.5])
    face = rng.integers(0, 6, n)
    p = rng.uniform(0, 1, (n, 3)) * size
    p[face == 0, 2] = 0.0
    p[face == 1, 0] = 0.0
    p[face == 2, 0] = size[0]
    p[face == 3, 1] = 0.0
    p[face == 4, 1] = size[1]
    box = face == 5
    p[box] = rng.uniform(0, 1, (box.sum(), 3)) * [1.0, 1.0, 0.8] + rng.integers(0, 5, (box.sum(), 1)) * [1.0, 0.8, 0]
    return (p + rng.normal(0, 0.005, p.shape)).astype(np.float32)


def numpy_reference(points: np.ndarray, counts: list[int], s: float) -> tuple[np.ndarray, np.ndarray]:
    """(coords IntArray[V, 4], inverse IntArray[M]) by np.unique per scene."""
    coords, inverse, start, base = [], [], 0, 0
    for b, n in enumerate(counts):
        q = points[start:start + n]
        g = np.floor((q - q.min(0)) / np.float32(s)).astype(np.int64)
        u, inv = np.unique(g, axis=0, return_inverse=True)
        coords.append(np.concatenate([np.full((len(u), 1), b), u], 1))
        inverse.append(inv.reshape(-1) + base)
        base += len(u)
        start += n
    return np.concatenate(coords), np.concatenate(inverse)


def best(fn, repeats: int, sync=lambda: None) -> float:
    fn()
    sync()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=150_000)
    ap.add_argument("--scenes", type=int, default=4)
    ap.add_argument("--voxel", type=float, default=0.02)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()

    rng = np.random.default_rng(0)
    clouds = [room(args.points, rng) for _ in range(args.scenes)]
    counts = [len(c) for c in clouds]
    pts_np = np.concatenate(clouds)
    pts = torch.from_numpy(pts_np)
    off = torch.cumsum(torch.tensor(counts), 0)

    vox = voxelize(pts, off, args.voxel)
    ref_coords, ref_inv = numpy_reference(pts_np, counts, args.voxel)
    same = np.array_equal(vox.coords.numpy(), ref_coords) and np.array_equal(vox.inverse.numpy(), ref_inv)
    print(f"{args.scenes} scenes x {args.points} points -> {vox.num_voxels} voxels at {args.voxel} m; "
          f"matches numpy reference: {same}")

    t_torch = best(lambda: voxelize(pts, off, args.voxel), args.repeats)
    t_np = best(lambda: numpy_reference(pts_np, counts, args.voxel), args.repeats)
    print(f"voxelize (torch, {torch.get_num_threads()} threads): {t_torch * 1e3:8.1f} ms")
    print(f"numpy np.unique reference:        {t_np * 1e3:8.1f} ms   (torch is {t_np / t_torch:.1f}x faster)")
    feats = torch.rand(len(pts), 3)
    t_mean = best(lambda: voxel_mean(feats, vox), args.repeats)
    print(f"voxel_mean of 3 channels:          {t_mean * 1e3:8.1f} ms")

    if torch.cuda.is_available():
        g_pts, g_off, g_feats = pts.cuda(), off.cuda(), feats.cuda()
        g_vox = voxelize(g_pts, g_off, args.voxel)
        assert torch.equal(g_vox.coords.cpu(), vox.coords) and torch.equal(g_vox.inverse.cpu(), vox.inverse)
        t_gpu = best(lambda: voxelize(g_pts, g_off, args.voxel), args.repeats, torch.cuda.synchronize)
        t_gmean = best(lambda: voxel_mean(g_feats, g_vox), args.repeats, torch.cuda.synchronize)
        print(f"voxelize on {torch.cuda.get_device_name()}: {t_gpu * 1e3:8.2f} ms "
              f"({t_torch / t_gpu:.0f}x the CPU); voxel_mean {t_gmean * 1e3:.2f} ms")

    scene = Scene(points=clouds[0], colors=rng.uniform(0, 1, (counts[0], 3)), name="room")
    aug = Augmentation()
    t_aug = best(lambda: aug(scene, np.random.default_rng(1)), args.repeats)
    print(f"Augmentation() on one scene:      {t_aug * 1e3:8.1f} ms")


if __name__ == "__main__":
    main()
