"""Speed of the pure-PyTorch sparse conv on a room-sized input.

A synthetic room (floor and two walls of a 2.6 x 2.2 x 2.0 m room plus six furniture boxes, 2 cm
voxels, ~67k sites) goes through a 15-conv U-Net (widths 32-64-96-128, submanifold + strided +
inverse convs, BatchNorm + ReLU), forward + backward, with 1 and 2 threads as pcseg runs them
(``pcseg.runtime.set_threads``: N conv worker threads, torch's own ops on one thread). Prints seconds,
the conv arithmetic (2 * pairs * C_in * C_out, x3 for forward + both backward products) as GFLOP/s,
and that rate as a fraction of the dense matmul rate measured in the same process on as many
threads (torch's intra-op threads, for the matmul only). Beside it, the floor of this way of
computing a sparse conv: the same products alone (each offset's rows of each piece as one plain
``mm`` from a contiguous buffer, forward, input and weight gradient; no gathers, sums or ops between
convs), cut into the same blocks and run on the same conv workers.

``--scene`` runs the same U-Net on the voxels of a scan instead (a ScanNet scene folder or a point
cloud, as ``pcseg predict`` reads it; ``--voxel`` metres, 0.02 = ScanNet's standard, 0.05 = the
shipped recipes'): real and generated scans are sparser than the box room at the finest level (about
3 neighbours per voxel at 2 cm instead of 10), which changes how much of the pass the products are.

``--spconv`` also times the same pass on spconv's CPU wheel (compiled gather-GEMM-scatter kernels,
one thread only), as a reference for what compiled kernels from a wheel give on this CPU.

    python benchmarks/bench_sparse.py [--repeats 3] [--threads 1 2] [--scene DIR --voxel 0.02]
                                      [--spconv] [--json benchmarks/results/sparse.json]
"""
from __future__ import annotations

import argparse
import json
import os
import time
import warnings
from pathlib import Path
from typing import List

import torch
from torch import nn

from pcseg.sparse import (BatchNorm, ReLU, SparseConv3d, SparseInverseConv3d, SparseTensor,
                          SubMConv3d)
from pcseg.runtime import set_threads
from pcseg.sparse import torch_backend as backend
from pcseg.sparse.workers import run_tasks

VOXEL = 0.02


def box_surface(lo, hi, faces=("x0", "x1", "y0", "y1", "z0", "z1"), step=VOXEL / 2):
    """Points on the chosen faces of an axis-aligned box, FloatTensor[N, 3]."""
    lo, hi = torch.tensor(lo), torch.tensor(hi)
    pts = []
    for face in faces:
        axis, side = "xyz".index(face[0]), int(face[1])
        others = [a for a in range(3) if a != axis]
        u = torch.arange(lo[others[0]], hi[others[0]], step)
        v = torch.arange(lo[others[1]], hi[others[1]], step)
        grid = torch.cartesian_prod(u, v)
        p = torch.empty(grid.shape[0], 3)
        p[:, others[0]], p[:, others[1]] = grid[:, 0], grid[:, 1]
        p[:, axis] = hi[axis] if side else lo[axis]
        pts.append(p)
    return torch.cat(pts)


def room_coords(seed: int = 0) -> torch.Tensor:
    """IntTensor[M, 4] voxel sites of one synthetic room (batch index 0)."""
    g = torch.Generator().manual_seed(seed)
    room = (2.6, 2.2, 2.0)
    parts = [box_surface((0, 0, 0), room, faces=("z0", "x0", "y0"))]  # the walls a scan would see
    for _ in range(6):  # furniture: tables, cabinets, boxes standing on the floor
        size = torch.rand(3, generator=g) * torch.tensor([0.8, 0.6, 0.6]) + 0.3
        at = torch.rand(2, generator=g) * (torch.tensor(room[:2]) - size[:2])
        lo = (at[0].item(), at[1].item(), 0.0)
        parts.append(box_surface(lo, (lo[0] + size[0].item(), lo[1] + size[1].item(), size[2].item()),
                                 faces=("x0", "x1", "y0", "y1", "z1")))
    vox = torch.unique(torch.floor(torch.cat(parts) / VOXEL).int(), dim=0)
    return torch.cat([torch.zeros(vox.shape[0], 1, dtype=torch.int32), vox], 1)


def scan_coords(path: Path, voxel: float) -> torch.Tensor:
    """IntTensor[M, 4] voxel sites of a scan read as ``pcseg predict`` reads it (batch index 0)."""
    from pcseg.data.voxelize import voxelize
    from pcseg.io import read_scene

    points = torch.as_tensor(read_scene(path, labels=False).points)
    return voxelize(points, torch.tensor([points.shape[0]]), voxel).coords.int()


def block(c_in, c_out):
    return nn.ModuleList([SubMConv3d(c_in, c_out), BatchNorm(c_out), ReLU()])


class UNet(nn.Module):
    """15 convs: stem, 4 encoder levels (32-64-96-128), 3 strided, 3 inverse, 3 decoder."""

    def __init__(self, c_in=3, widths=(32, 64, 96, 128)):
        super().__init__()
        w = widths
        self.stem, self.enc = block(c_in, w[0]), nn.ModuleList([block(w[0], w[0])])
        self.down, self.up, self.dec = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        for a, b in zip(w[:-1], w[1:]):
            self.down.append(SparseConv3d(a, b))
            self.enc.append(block(b, b))
            self.up.append(SparseInverseConv3d(b, a))
            self.dec.append(block(2 * a, a))
        self.enc.append(block(w[-1], w[-1]))  # second conv at the bottom
        self.log = None  # list of (conv, input, target) when counting arithmetic

    def run(self, mods, x, target=None):
        for m in mods:
            if self.log is not None and isinstance(m, (SubMConv3d, SparseConv3d, SparseInverseConv3d)):
                self.log.append((m, x, target))
            x = m(x, target) if isinstance(m, SparseInverseConv3d) else m(x)
        return x

    def forward(self, x):
        x = self.run(self.enc[0], self.run(self.stem, x))
        skips = []
        for i, down in enumerate(self.down):
            skips.append(x)
            x = self.run(self.enc[i + 1], self.run([down], x))
        x = self.run(self.enc[-1], x)
        for i in reversed(range(len(self.up))):
            x = self.run([self.up[i]], x, skips[i])
            x = x.replace_feature(torch.cat([x.features, skips[i].features], 1))
            x = self.run(self.dec[i], x)
        return x


def kernel_map(m, x, target):
    if isinstance(m, SubMConv3d):
        return backend.get_submanifold_map(x, m.kernel_size)
    if isinstance(m, SparseConv3d):
        return backend.get_downsample_map(x, m.kernel_size, m.stride)
    return backend.get_upsample_map(x, target, m.kernel_size, m.stride)


def conv_flops(log) -> float:
    """Forward conv arithmetic of one pass: 2 * pairs * C_in * C_out summed over convs."""
    return sum(2 * kernel_map(m, x, target).num_pairs() * m.in_channels * m.out_channels
               for m, x, target in log)


def _products(a: torch.Tensor, b: torch.Tensor, weight: torch.Tensor, grad_w: torch.Tensor, rows: List[int],
              offsets: List[int], out_a: torch.Tensor, out_b: torch.Tensor) -> None:
    """Per entry the three products of ``rows[k]`` pairs through ``weight[offsets[k]]``: forward,
    input gradient and weight gradient, on contiguous rows (nothing gathered or summed)."""
    for k in range(len(rows)):
        r, n = rows[k], offsets[k]
        torch.mm(a[:r], weight[n], out=out_b[:r])
        torch.mm(b[:r], weight[n].t(), out=out_a[:r])
        grad_w[n].addmm_(a[:r].t(), b[:r])


def products_alone(log, threads: int):
    """A function that runs the U-Net's conv products alone (see the module's doc) on ``threads``
    workers, a task per block of each conv's map, compiled as the conv's own loops are."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit.script is deprecated; the conv's own loops use it too
        loop = torch.jit.script(_products)
    convs = []
    for m, x, target in log:
        kmap, c_in, c_out = kernel_map(m, x, target), m.in_channels, m.out_channels
        blocks = []
        for block in kmap.blocks(threads):
            rows, offsets = [], []
            for piece in block.pieces:
                if kmap.identity is not None:
                    rows.append(piece.hi - piece.lo)
                    offsets.append(kmap.identity)
                rows += [i.numel() for _, i, _ in piece.pairs]
                offsets += [n for n, _, _ in piece.pairs]
            most = max(rows, default=0)
            blocks.append((rows, offsets, torch.rand(most, c_in), torch.rand(most, c_out),
                           torch.empty(most, c_in), torch.empty(most, c_out)))
        convs.append((torch.rand(kmap.kernel_volume, c_in, c_out), blocks))

    def task(job):
        weight, (rows, offsets, a, b, out_a, out_b) = job
        with torch.jit.optimized_execution(False):
            loop(a, b, weight, torch.zeros_like(weight), rows, offsets, out_a, out_b)

    def run():
        for weight, blocks in convs:
            run_tasks(task, [(weight, block) for block in blocks])
    return run


def matmul_rate(n=2048, repeats=5) -> float:
    """The dense fp32 matmul rate, FLOP/s: the best of ``repeats`` n x n products, as the pass is
    timed (best of its repeats)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    return 2 * n ** 3 / timed(lambda: a @ b, repeats)


def timed(fn, repeats):
    fn()  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--scene", type=Path, help="a scan (ScanNet scene folder or point cloud) instead of the box room")
    parser.add_argument("--voxel", type=float, default=VOXEL, help="voxel size in metres for --scene (default 0.02)")
    parser.add_argument("--spconv", action="store_true",
                        help="also time the pass on spconv's compiled kernels (1 thread; pip install spconv)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    if args.voxel <= 0:
        parser.error(f"--voxel must be > 0, got {args.voxel}")
    if args.spconv:
        from pcseg.sparse.backend import is_importable
        if not is_importable("spconv"):
            parser.error("--spconv needs spconv: pip install spconv (the CPU wheel; make test installs it)")
        if 1 not in args.threads:
            parser.error("--spconv runs on one thread only: include 1 in --threads")
    load = os.getloadavg()[0]

    voxel = args.voxel if args.scene else VOXEL
    coords = scan_coords(args.scene, voxel) if args.scene else room_coords()
    feats = torch.rand(coords.shape[0], 3)
    torch.manual_seed(0)
    net = UNet()
    source = args.scene.name if args.scene else "box room"
    print(f"{source}: {coords.shape[0]} voxels at {voxel * 100:g} cm, "
          f"{sum(p.numel() for p in net.parameters()) / 1e6:.2f} M parameters")

    def fresh():
        return SparseTensor(feats, coords)  # new cache: kernel maps are rebuilt

    x = fresh()
    net.log = []
    net(x)
    log, net.log = net.log, None
    flops = 3 * conv_flops(log)  # forward + input grad + weight grad
    print(f"conv arithmetic, forward + backward: {flops / 1e9:.1f} GFLOP (load {load:.1f})")
    results = {}

    for threads in args.threads:
        torch.set_num_threads(threads)
        dense = matmul_rate()
        set_threads(threads)  # what pcseg runs with: the convs on N workers, torch ops on one thread
        cached = SparseTensor(feats, coords)
        net(cached)

        def step(inp):
            net.zero_grad(set_to_none=True)
            net(inp).features.square().mean().backward()

        t_maps = timed(lambda: _build_maps(net, fresh()), args.repeats)
        t_cached = timed(lambda: step(cached), args.repeats)
        t_fresh = timed(lambda: step(fresh()), args.repeats)
        t_products = timed(products_alone(log, threads), args.repeats)
        rate = flops / t_cached
        print(f"threads={threads}: fwd+bwd {t_cached:.3f} s with cached maps, {t_fresh:.3f} s "
              f"building maps too (maps alone {t_maps:.3f} s); "
              f"{rate / 1e9:.1f} GFLOP/s = {rate / dense:.0%} of dense matmul ({dense / 1e9:.0f} GFLOP/s); "
              f"its products alone {t_products:.3f} s = {flops / t_products / dense:.0%} of dense: the pass "
              f"takes {t_cached / t_products:.2f}x its products' time")
        results[f"{threads} thread(s)"] = {
            "dense matmul GFLOP/s": dense / 1e9, "fwd+bwd cached maps s": t_cached, "fwd+bwd building maps s": t_fresh,
            "maps alone s": t_maps, "products alone s": t_products, "fraction of dense": rate / dense,
            "products fraction of dense": flops / t_products / dense, "pass / products": t_cached / t_products}
        if args.spconv and threads == 1:
            t_spconv = spconv_pass(step, feats, coords, args.repeats)
            print(f"threads=1: the same pass on spconv {_spconv_version()} (a compiled gather-GEMM-scatter, the CPU "
                  f"wheel): {t_spconv:.3f} s = {flops / t_spconv / dense:.0%} of dense")
            results["1 thread(s)"].update({"spconv fwd+bwd cached maps s": t_spconv,
                                           "spconv fraction of dense": flops / t_spconv / dense})
    if args.json:
        args.json.write_text(json.dumps({"time": time.ctime(), "load": load, "input": source, "voxel m": voxel,
                                         "voxels": int(coords.shape[0]),
                                         "conv GFLOP fwd+bwd": flops / 1e9, "results": results}, indent=1) + "\n")


def spconv_pass(step, feats, coords, repeats: int) -> float:
    """The pass on the spconv backend (one thread only: its CPU scatter-add is not thread-safe)."""
    from pcseg.sparse.backend import use_backend

    with use_backend("spconv"):
        cached = SparseTensor(feats, coords)
        return timed(lambda: step(cached), repeats)


def _spconv_version() -> str:
    import spconv
    return spconv.__version__


def _build_maps(net, x):
    """Build every hash table and kernel map the U-Net uses, with no convolution."""
    for _ in range(len(net.down) + 1):
        backend.get_submanifold_map(x, 3)
        if x.stride < 2 ** len(net.down):
            kmap = backend.get_downsample_map(x, 2, 2)
            x = SparseTensor(x.features[:0].new_empty(kmap.n_out, 0), kmap.out_coords, x.stride * 2, x.cache)


if __name__ == "__main__":
    main()
