#!/usr/bin/env python
"""Choose the clustering settings of a trained bottom-up model on a held-out tuning set.

    python benchmarks/tune_clustering.py --checkpoint runs/synthetic_bottomup/model.pt \
        --train-root out/data/synth_train400 --tune-root out/data/synth_tune

The tuning rooms (e.g. ``pcseg data synth --out out/data/synth_tune --scenes 24 --seed 2``) must be
neither training nor validation rooms, so that the validation score stays unbiased. The network runs
once per room; then, for every soft_threshold, mean-shift on the predicted centres is scored (AP,
AP50) with one bandwidth for all classes and with per-class bandwidths proportional to each class's
median object size in the training rooms (bounding-box diagonal x scale, clipped to [lo, hi]).
Prints each setting and the best one's ``class_bandwidth`` list for the recipe.

With ``--per-class GRID``, each class's bandwidth is then also chosen on its own from GRID (at the
best soft_threshold) by that class's AP50 + AP on the tuning rooms, ties going to the size rule's value.
A class's clustering changes only that class's predictions and AP is computed per class, so the
choices are independent; classes with fewer than ``--min-instances`` tuning instances keep the size rule.
"""
from __future__ import annotations

import argparse
import itertools
import warnings

import numpy as np
import torch
from tqdm import tqdm

from pcseg.cluster import cluster_instances, snap_to_scene_segments
from pcseg.data import SceneDataset, input_batch, instance_sizes
from pcseg.pipelines.bottomup.predict import load_model
from pcseg.evaluation import InstanceEvaluator
from pcseg.labels import SEMANTIC20_NAMES


def size_bandwidths(median_sizes: np.ndarray, scale: float, lo: float, hi: float, default: float) -> list[float]:
    """scale x median size per class, clipped to [lo, hi]; classes without instances get ``default``."""
    bw = np.where(np.isfinite(median_sizes), np.clip(median_sizes * scale, lo, hi), default)
    return [round(float(b), 2) for b in bw]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--train-root", required=True, help="training rooms: the per-class object sizes")
    parser.add_argument("--tune-root", required=True, help="held-out tuning rooms")
    parser.add_argument("--tune-split", default="all", help="split of --tune-root, or all (default)")
    parser.add_argument("--evaluate", default="", help="only score this class_bandwidth list (comma-separated) "
                                                       "at the first --soft value")
    parser.add_argument("--bandwidths", default="0.3,0.4,0.6,0.8", help="single bandwidths to try")
    parser.add_argument("--scales", default="0.25,0.3,0.35,0.4,0.45", help="size scales to try")
    parser.add_argument("--soft", default="0,0.15,0.3", help="soft_threshold values (0 = argmax only)")
    parser.add_argument("--lo", type=float, default=0.3)
    parser.add_argument("--hi", type=float, default=1.2)
    parser.add_argument("--per-class", default="", help="bandwidth grid for a per-class choice, e.g. 0.3,0.4,0.6,0.8,1.0,1.2")
    parser.add_argument("--min-instances", type=int, default=10)
    parser.add_argument("--min-size", type=int, default=0, help="min_size (0 = the checkpoint's)")
    parser.add_argument("--segment-snap", type=float, default=-1.0,
                        help="snap masks to the rooms' segments at this cover fraction (0 = off; default: the checkpoint's)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    model, recipe = load_model(args.checkpoint)
    sizes = instance_sizes(SceneDataset(args.train_root, None))
    median = np.array([np.median(s) if s else np.nan for s in sizes])
    print("median object size (m): " + ", ".join(f"{SEMANTIC20_NAMES[c]} {median[c]:.2f}"
                                                 for c in range(2, 20) if np.isfinite(median[c])))
    tune = SceneDataset(args.tune_root, None if args.tune_split == "all" else args.tune_split)
    outputs = []
    with torch.no_grad():
        for i in tqdm(range(len(tune)), desc="network", unit="room"):
            scene = tune.load(i)
            batch = input_batch([scene], recipe)
            out = model(batch)
            outputs.append((scene, batch.points, torch.softmax(out["semantic_logits"], 1), out["offsets"]))

    min_size = args.min_size or recipe.min_size
    snap = recipe.segment_snap if args.segment_snap < 0 else args.segment_snap
    print(f"min_size {min_size}, segment_snap {snap}")

    def score(bandwidth: float, per_class, soft: float) -> dict:
        evaluator = InstanceEvaluator()
        for scene, points, probs, offsets in outputs:
            instances = cluster_instances(None, probs, points, offsets=offsets, use_offsets=True, method="meanshift",
                                          bandwidth=bandwidth, class_bandwidth=per_class, min_size=min_size,
                                          soft_threshold=soft or None)
            evaluator.process(scene, snap_to_scene_segments(instances, scene, snap, min_size), name=scene.name)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return evaluator.evaluate()

    if args.evaluate:
        soft = float(args.soft.split(",")[0])
        result = score(recipe.bandwidth, [float(b) for b in args.evaluate.split(",")], soft)
        print(f"given class_bandwidth, soft_threshold {soft}: AP {result['AP']:.3f} AP50 {result['AP50']:.3f} "
              f"AP25 {result['AP25']:.3f}")
        return
    settings = [("bandwidth", float(b)) for b in args.bandwidths.split(",")]
    settings += [("scale", float(s)) for s in args.scales.split(",")]
    best = None
    for (kind, value), soft in itertools.product(settings, [float(s) for s in args.soft.split(",")]):
        per_class = size_bandwidths(median, value, args.lo, args.hi, recipe.bandwidth) if kind == "scale" else None
        result = score(value if kind == "bandwidth" else recipe.bandwidth, per_class, soft)
        print(f"{kind} {value:<5} soft_threshold {soft:<5} AP {result['AP']:.3f} AP50 {result['AP50']:.3f} "
              f"AP25 {result['AP25']:.3f}", flush=True)
        if best is None or result["AP50"] > best[0]["AP50"]:
            best = (result, kind, value, soft, per_class)
    result, kind, value, soft, per_class = best
    print(f"best: {kind} {value}, soft_threshold {soft}: AP {result['AP']:.3f} AP50 {result['AP50']:.3f}")
    if per_class is not None:
        print(f"class_bandwidth: {per_class}")
    if not args.per_class or per_class is None:
        return
    grid = [float(b) for b in args.per_class.split(",")]
    by_bandwidth = {b: score(recipe.bandwidth, [b] * len(per_class), soft)["classes"] for b in grid}
    counts = [len(sizes) for sizes in instance_sizes(tune)]  # tuning instances per class
    chosen = list(per_class)
    for c in range(2, len(per_class)):
        name = SEMANTIC20_NAMES[c]
        if counts[c] < args.min_instances:
            continue
        quality = {b: by_bandwidth[b][name]["AP50"] + by_bandwidth[b][name]["AP"] for b in grid
                   if np.isfinite(by_bandwidth[b][name]["AP50"])}
        if quality:
            top = max(quality.values())
            chosen[c] = min((b for b in quality if quality[b] >= top - 1e-9), key=lambda b: abs(b - per_class[c]))
    result = score(recipe.bandwidth, chosen, soft)
    print(f"per-class choice, soft_threshold {soft}: AP {result['AP']:.3f} AP50 {result['AP50']:.3f} (on the tuning "
          f"rooms it was chosen on)")
    print(f"class_bandwidth: {chosen}")


if __name__ == "__main__":
    main()
