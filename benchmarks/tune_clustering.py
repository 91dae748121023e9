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
"""
from __future__ import annotations

import argparse
import itertools
import warnings

import numpy as np
import torch
from tqdm import tqdm

from pcseg.cluster import cluster_instances
from pcseg.data import SceneDataset, collate, instance_sizes
from pcseg.engine.predict import load_model
from pcseg.evaluation import InstanceEvaluator
from pcseg.labels import SEMANTIC20_NAMES
from pcseg.structures import Scene


def size_bandwidths(median_sizes: np.ndarray, scale: float, lo: float, hi: float, default: float) -> list[float]:
    """scale x median size per class, clipped to [lo, hi]; classes without instances get ``default``."""
    bw = np.where(np.isfinite(median_sizes), np.clip(median_sizes * scale, lo, hi), default)
    return [round(float(b), 2) for b in bw]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--train-root", required=True, help="training rooms: the per-class object sizes")
    parser.add_argument("--tune-root", required=True, help="held-out tuning rooms (all scenes are used)")
    parser.add_argument("--bandwidths", default="0.3,0.4,0.6,0.8", help="single bandwidths to try")
    parser.add_argument("--scales", default="0.25,0.3,0.35,0.4,0.45", help="size scales to try")
    parser.add_argument("--soft", default="0,0.15,0.3", help="soft_threshold values (0 = argmax only)")
    parser.add_argument("--lo", type=float, default=0.3)
    parser.add_argument("--hi", type=float, default=1.2)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    model, recipe = load_model(args.checkpoint)
    sizes = instance_sizes(SceneDataset(args.train_root, None))
    median = np.array([np.median(s) if s else np.nan for s in sizes])
    print("median object size (m): " + ", ".join(f"{SEMANTIC20_NAMES[c]} {median[c]:.2f}"
                                                 for c in range(2, 20) if np.isfinite(median[c])))
    tune = SceneDataset(args.tune_root, None)
    outputs = []
    with torch.no_grad():
        for i in tqdm(range(len(tune)), desc="network", unit="room"):
            scene = tune.load(i)
            batch = collate([Scene(scene.points, scene.colors, name=scene.name)], height=recipe.height_feature)
            out = model(batch)
            outputs.append((scene, batch.points, torch.softmax(out["semantic_logits"], 1), out["offsets"]))

    settings = [("bandwidth", float(b)) for b in args.bandwidths.split(",")]
    settings += [("scale", float(s)) for s in args.scales.split(",")]
    best = None
    for (kind, value), soft in itertools.product(settings, [float(s) for s in args.soft.split(",")]):
        per_class = size_bandwidths(median, value, args.lo, args.hi, recipe.bandwidth) if kind == "scale" else None
        evaluator = InstanceEvaluator()
        for scene, points, probs, offsets in outputs:
            instances = cluster_instances(None, probs, points, offsets=offsets, use_offsets=True, method="meanshift",
                                          bandwidth=value if kind == "bandwidth" else recipe.bandwidth,
                                          class_bandwidth=per_class, min_size=recipe.min_size,
                                          soft_threshold=soft or None)
            evaluator.process(scene, instances, name=scene.name)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = evaluator.evaluate()
        print(f"{kind} {value:<5} soft_threshold {soft:<5} AP {result['AP']:.3f} AP50 {result['AP50']:.3f} "
              f"AP25 {result['AP25']:.3f}", flush=True)
        if best is None or result["AP50"] > best[0]["AP50"]:
            best = (result, kind, value, soft, per_class)
    result, kind, value, soft, per_class = best
    print(f"best: {kind} {value}, soft_threshold {soft}: AP {result['AP']:.3f} AP50 {result['AP50']:.3f}")
    if per_class is not None:
        print(f"class_bandwidth: {per_class}")


if __name__ == "__main__":
    main()
