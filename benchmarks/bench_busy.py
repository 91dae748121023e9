#!/usr/bin/env python
"""Speed on a busy machine: pcseg's inference and training beside other PyTorch processes.

    python benchmarks/bench_busy.py [--repeats 3] [--json benchmarks/results/busy.json]

Measures, in this process, with the shipped model:
* predict (voxelize, network, clustering, snapping) of a 100k-point room and of a 240k-point scene
  (three synthetic rooms side by side, subsampled: about the size of a large ScanNet scan);
* one training step (forward, backward, AdamW) on two 100k-point rooms;
each alone, beside one 2-thread torch process, and beside two torch processes (2 + 1 threads). The
other processes are what "other PyTorch work" looks like to the CPU: small matmuls in a loop with
torch's default threading (a notebook, another pcseg command, a training run).

Each workload runs with pcseg's threading (``pcseg.runtime``: torch ops on one thread, the sparse
convs on their own worker threads) and, as the reference in the same run, with torch's own intra-op
threads (what pcseg did before: the convs' small ops parallelised by OpenMP). Printed: the median
seconds and each busy time as a ratio of the same mode's time alone (a fair share of 2 cores beside
one 2-thread process is 2x, beside 2 + 1 threads 2.5x), with the machine's load and its 1-thread
fp32 matmul rate measured at the start.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

import numpy as np
import torch

BUSY_LOOP = """
import sys, torch
torch.set_num_threads(int(sys.argv[1]))
a, b = torch.randn(192, 192), torch.randn(192, 192)
while True:
    c = torch.relu(a @ b) + 0.5
    a = c / (c.norm() + 1.0) * 14
"""
LOADS = {"alone": [], "beside 1 torch process (2 threads)": [2], "beside 2 torch processes (2 + 1 threads)": [2, 1]}
SHORT = {"alone": "alone", "beside 1 torch process (2 threads)": "beside 2 threads",
         "beside 2 torch processes (2 + 1 threads)": "beside 2 + 1 threads"}


def matmul_rate(n: int = 1024, repeats: int = 3) -> float:
    """Best fp32 GFLOP/s of an n x n matmul on one thread."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = min(_timed(lambda: a @ b) for _ in range(repeats))
    torch.set_num_threads(before)
    return 2 * n ** 3 / best / 1e9


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def rooms():
    """A ~100k-point room and a 240k-point scene of three rooms side by side (with their segments)."""
    from pcseg.structures import Scene
    from pcseg.synth import generate_scene

    generated = [generate_scene(seed, f"busy{seed}").scene for seed in (11, 12, 13)]
    rng = np.random.default_rng(0)

    def subsample(scene, n):
        return scene[np.sort(rng.choice(len(scene), n, replace=len(scene) < n))]

    small = [subsample(s, 100_000) for s in generated[:2]]
    shift = 0.0
    parts = []
    offset = 0
    for s in generated:
        points = s.points - s.points.min(0) + np.array([shift, 0, 0], np.float32)
        shift = float(points[:, 0].max()) + 0.5
        parts.append((points, s.colors, s.semantic, s.instance + offset * (s.instance > 0), s.segments + offset))
        offset += int(max(s.instance.max(), s.segments.max())) + 1
    big = Scene(*(np.concatenate([p[i] for p in parts]) for i in range(2)),
                semantic=np.concatenate([p[2] for p in parts]), instance=np.concatenate([p[3] for p in parts]),
                segments=np.concatenate([p[4] for p in parts]), name="busy_big")
    return small, subsample(big, 240_000)


def use_mode(mode: str) -> None:
    from pcseg.runtime import set_threads
    from pcseg.sparse.workers import set_conv_threads

    if mode == "pcseg":
        set_threads(2)
    else:  # the reference: torch's OpenMP intra-op threads, the conv inline
        torch.set_num_threads(2)
        set_conv_threads(1)


def start_load(threads: list[int]) -> list[subprocess.Popen]:
    procs = [subprocess.Popen([sys.executable, "-c", BUSY_LOOP, str(t)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL) for t in threads]
    time.sleep(2.0 if procs else 0)  # let them import torch and settle
    return procs


def stop_load(procs) -> None:
    for p in procs:
        p.kill()
    for p in procs:
        p.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per cell (median; default 3)")
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args()

    from pcseg.data import input_batch
    from pcseg.pipelines.bottomup.predict import load_model, predict_scene

    load = os.getloadavg()
    rate = matmul_rate()
    print(f"machine: {os.cpu_count()} CPUs, load average {load[0]:.2f} before the run, "
          f"fp32 matmul {rate:.1f} GFLOP/s on one thread")
    model, recipe = load_model()
    small, big = rooms()
    print(f"rooms: {len(small[0])} points; the large scene {len(big)} points")
    train_batch = input_batch(small, recipe, training=True)  # the input the model reads in training
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)

    def predict(scene):
        model.eval()
        predict_scene(model, scene, recipe)

    def train_step():
        model.train()
        losses = model(train_batch)
        optimizer.zero_grad(set_to_none=True)
        losses["total"].backward()
        optimizer.step()

    workloads = {"predict 100k points": lambda: predict(small[0]), "predict 240k points": lambda: predict(big),
                 "train step (2 x 100k)": train_step}
    modes = {"pcseg": "pcseg threading (1-thread ops + conv workers)",
             "torch": "torch intra-op threads (before)"}
    results: dict = {"load_average": load[0], "matmul_gflops_1thread": rate, "cells": {}}
    for load_name, threads in LOADS.items():
        procs = start_load(threads)
        try:
            for work_name, work in workloads.items():
                for mode in modes:
                    use_mode(mode)
                    work()  # warm-up: kernel maps, allocator, worker threads
                    times = [_timed(work) for _ in range(args.repeats)]
                    results["cells"][f"{work_name} | {mode} | {load_name}"] = statistics.median(times)
                    print(f"  {load_name:42} {work_name:24} {mode:6} {statistics.median(times):7.2f} s "
                          f"(runs {', '.join(f'{t:.2f}' for t in times)})", flush=True)
        finally:
            stop_load(procs)

    print(f"\n{'workload':24} {'threading':46} " + " ".join(f"{SHORT[name]:>20}" for name in LOADS))
    for work_name in workloads:
        for mode, title in modes.items():
            alone = results["cells"][f"{work_name} | {mode} | alone"]
            cells = []
            for load_name in LOADS:
                t = results["cells"][f"{work_name} | {mode} | {load_name}"]
                cells.append(f"{t:7.2f} s" + ("" if load_name == "alone" else f" ({t / alone:4.1f}x)"))
            print(f"{work_name:24} {title:46} " + " ".join(f"{c:>20}" for c in cells))
    print("ratios: the busy time over the same threading's time alone; fair share 2x beside one 2-thread "
          "process, 2.5x beside 2 + 1 threads")
    if args.json:
        from report import write_json

        write_json(args.json, results)


if __name__ == "__main__":
    main()
