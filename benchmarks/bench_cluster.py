"""Speed and quality of pcseg.cluster.cluster_instances (mean-shift, HDBSCAN, DBSCAN) on synthetic
per-point predictions with known instances, and sklearn's MeanShift on the same data as reference.

A scene of N points holds K instances of a handful of ScanNet20 classes plus wall/floor points.
Each instance is a Gaussian blob in a D-dim embedding space (centres of one class at least
``sep`` apart, per-dim spread ``sigma``, as a discriminative loss leaves them); a fraction
``flip`` of the points gets a wrong predicted class (they form small foreign groups that
min_size must drop); semantic probabilities are a softmax of noisy logits.

Quality = AP / AP50 from pcseg.evaluation.InstanceEvaluator and the fraction of GT instances
recovered with IoU > 0.5 by a prediction of the right class.

    python benchmarks/bench_cluster.py [--points 100000 --instances 25 --classes 5 --dim 8
                                        --scenarios easy,hard --threads 1 --repeat 3 --device cpu
                                        --methods meanshift,hdbscan,dbscan --reference]
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from pcseg.cluster import cluster_instances
from pcseg.evaluation import InstanceEvaluator
from pcseg.io.official import encode_gt_ids
from pcseg.labels import semantic20_to_nyu40
from pcseg.structures import InstanceSet


def make_scene(n: int, k: int, num_classes: int, dim: int, sigma: float, sep: float, flip: float, seed: int):
    """-> (embeddings [n, dim], probs [n, 20], gt official ids [n], gt instance [n] 0 = none, gt class [n])."""
    rng = np.random.default_rng(seed)
    inst_class = rng.choice(np.arange(2, 20), num_classes, replace=False)[rng.integers(0, num_classes, k)]
    sizes = rng.integers(400, 6000, k)
    background = n - sizes.sum()  # wall / floor points (classes 0, 1), not instances
    if background < 0:
        raise ValueError("too many instance points for --points")
    centres = np.zeros((k, dim))
    for i in range(k):  # rejection sampling: same-class centres at least `sep` apart
        while True:
            c = rng.uniform(-3, 3, dim)
            same = inst_class[:i] == inst_class[i]
            if not same.any() or np.linalg.norm(centres[:i][same] - c, axis=1).min() >= sep:
                centres[i] = c
                break
    inst = np.r_[np.repeat(np.arange(1, k + 1), sizes), np.zeros(background, np.int64)]
    cls = np.r_[np.repeat(inst_class, sizes), rng.integers(0, 2, background)]
    emb = np.r_[centres[inst[inst > 0] - 1], rng.uniform(-3, 3, (background, dim))]
    emb = emb + rng.normal(0, sigma, emb.shape)
    pred = cls.copy()
    flipped = rng.random(n) < flip
    pred[flipped] = rng.integers(0, 20, flipped.sum())
    logits = rng.normal(0, 1, (n, 20))
    logits[np.arange(n), pred] += 4.0
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    order = rng.permutation(n)  # points in no particular order, as in a scan
    gt_ids = encode_gt_ids(semantic20_to_nyu40(cls), inst)
    return (emb[order].astype(np.float32), probs[order].astype(np.float32), gt_ids[order], inst[order])


def recovered(gt_inst: np.ndarray, gt_ids: np.ndarray, pred: InstanceSet) -> float:
    """Fraction of GT instances matched by a same-class prediction with IoU > 0.5."""
    hits = []
    for i in np.unique(gt_inst[gt_inst > 0]):
        m = gt_inst == i
        label = gt_ids[m][0] // 1000
        cand = pred.masks[pred.labels == label]
        inter = cand[:, m].sum(1)
        iou = inter / (cand.sum(1) + m.sum() - inter) if cand.shape[0] else np.zeros(0)
        hits.append(bool((iou > 0.5).any()))
    return float(np.mean(hits))


SCENARIOS = {  # per-dimension spread, min same-class centre distance, fraction of mislabelled points
    "easy": dict(sigma=0.1, sep=1.5, flip=0.03),   # what a well-trained discriminative loss leaves
    "hard": dict(sigma=0.17, sep=1.0, flip=0.08),  # blobs reach the bandwidth, neighbours nearly touch
}


def run_scenario(name: str, args, sigma: float, sep: float, flip: float) -> None:
    emb, probs, gt_ids, gt_inst = make_scene(args.points, args.instances, args.classes, args.dim, sigma, sep,
                                             flip, seed=0)
    emb_t, probs_t = torch.from_numpy(emb).to(args.device), torch.from_numpy(probs).to(args.device)
    print(f"\n[{name}] {args.points} points, {args.instances} instances of {args.classes} classes, D={args.dim}, "
          f"sigma={sigma}, sep={sep}, flip={flip}; torch threads {torch.get_num_threads()}, device {args.device}")
    print(f"{'method':<20}{'best s':>8}{'median s':>10}{'cpu s':>8}{'inst':>6}{'recovered':>11}{'AP':>7}{'AP50':>7}")
    base = None
    for method in args.methods.split(","):
        times, cpu = [], []
        for _ in range(args.repeat):
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            t, c = time.perf_counter(), time.process_time()
            pred = cluster_instances(emb_t, probs_t, method=method)
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t)
            cpu.append(time.process_time() - c)
        ev = InstanceEvaluator()
        ev.process(gt_ids, pred)
        res = ev.evaluate()
        base = base or min(times)
        print(f"{method:<20}{min(times):8.3f}{np.median(times):10.3f}{min(cpu):8.3f}{len(pred):6d}"
              f"{recovered(gt_inst, gt_ids, pred):11.2f}{res['AP']:7.3f}{res['AP50']:7.3f}")
    if args.reference:
        from sklearn.cluster import MeanShift

        pred_cls = probs.argmax(1)
        t, c = time.perf_counter(), time.process_time()
        for k in range(2, 20):
            idx = np.flatnonzero(pred_cls == k)
            if idx.size >= 50:
                MeanShift(bandwidth=0.6, bin_seeding=True, min_bin_freq=2).fit(emb[idx])
        ref, ref_cpu = time.perf_counter() - t, time.process_time() - c
        print(f"{'sklearn MeanShift':<20}{ref:8.3f}{'':>10}{ref_cpu:8.3f}  (clustering only, bin seeding; "
              f"{ref / base:.0f}x the first method's best)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--points", type=int, default=100000)
    ap.add_argument("--instances", type=int, default=25)
    ap.add_argument("--classes", type=int, default=5)
    ap.add_argument("--dim", type=int, default=8)
    ap.add_argument("--scenarios", default="easy,hard", help=f"comma-separated, of {list(SCENARIOS)}")
    ap.add_argument("--sigma", type=float, help="override: per-dimension spread of an instance's embeddings")
    ap.add_argument("--sep", type=float, help="override: minimum distance of same-class centres")
    ap.add_argument("--flip", type=float, help="override: fraction of points with a wrong predicted class")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--methods", default="meanshift,hdbscan,dbscan")
    ap.add_argument("--reference", action="store_true", help="also time sklearn.cluster.MeanShift (slow)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print("times: wall-clock best and median of --repeat runs, and process CPU time (less sensitive to "
          "other load on the machine); recovered = GT instances matched with IoU > 0.5")
    for name in args.scenarios.split(","):
        preset = {k: v if getattr(args, k) is None else getattr(args, k) for k, v in SCENARIOS[name].items()}
        run_scenario(name, args, **preset)


if __name__ == "__main__":
    main()
