#!/usr/bin/env python
"""Accuracy and speed of the bottom-up pipeline on a synthetic validation set the training never saw.

    python benchmarks/bench_bottomup.py --checkpoint runs/synthetic_bottomup/model.pt \
        --val-root out/data/synth_val [--run runs/synthetic_bottomup] [--scenes 20]

Prints (and writes as JSON with --json):
* AP / AP50 / AP25, overall and per class, of the learned model (embeddings + clustering, masks
  snapped to the rooms' segments when the recipe's segment_snap is on), and without the snapping;
* semantic mIoU, per point and with each segment taking its majority class (as predict does);
* the non-learned baseline "predicted semantics + DBSCAN on xyz" and the oracle
  "ground-truth semantics + our clustering of the learned embeddings", both snapped the same way
  (the baseline, on the segment-majority semantics, also without: per-point semantics, no snapping);
* mean-shift vs HDBSCAN vs DBSCAN on the same embeddings (AP50 and clustering time);
* the inference time breakdown for a 100k-point room (voxelize, network, clustering, write), peak
  memory, and the training throughput read from the run's metrics.jsonl.
"""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from pcseg.cluster import cluster_instances, dbscan_xyz, snap_labels_to_segments, snap_to_scene_segments
from pcseg.data import SceneDataset, input_batch, voxelize
from pcseg.pipelines.bottomup.build import cluster_settings
from pcseg.pipelines.bottomup.predict import load_model, predict_scene
from pcseg.evaluation import InstanceEvaluator, SemanticEvaluator, format_table, to_json_dict
from pcseg.io.official import write_instance_predictions
from pcseg.labels import nyu40_to_semantic20, semantic20_to_nyu40
from pcseg.structures import Scene


def evaluate(pairs) -> dict:
    ev = InstanceEvaluator()
    for scene, instances in pairs:
        ev.process(scene, instances, name=scene.name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ev.evaluate()


def one_hot_probs(semantic_nyu40: np.ndarray) -> torch.Tensor:
    idx = nyu40_to_semantic20(semantic_nyu40)
    probs = torch.zeros(len(idx), 20)
    ok = idx >= 0
    probs[torch.from_numpy(np.flatnonzero(ok)), torch.from_numpy(idx[ok])] = 1.0
    probs[torch.from_numpy(np.flatnonzero(~ok)), 0] = 1.0  # void -> wall: never clustered
    return probs


def subsample_to(scene: Scene, n: int, seed: int = 0) -> Scene:
    rng = np.random.default_rng(seed)
    return scene[np.sort(rng.choice(len(scene), n, replace=len(scene) < n))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--val-root", required=True)
    parser.add_argument("--split", default="all", help="split of --val-root, or all (default)")
    parser.add_argument("--scenes", type=int, default=0, help="first N scenes (0 = all)")
    parser.add_argument("--run", default=None, help="training run folder (for throughput from metrics.jsonl)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    model, recipe = load_model(args.checkpoint)
    dataset = SceneDataset(args.val_root, None if args.split == "all" else args.split)
    count = len(dataset) if args.scenes <= 0 else min(args.scenes, len(dataset))
    scenes = [dataset.load(i) for i in range(count)]
    report: dict = {"scenes": count, "checkpoint": args.checkpoint}

    def snapped(scene: Scene, instances):
        return snap_to_scene_segments(instances, scene, recipe.segment_snap, recipe.min_size)

    learned, unsnapped, baseline, baseline_unsnapped, oracle = [], [], [], [], []
    miou_points, miou_segments = SemanticEvaluator(), SemanticEvaluator()
    methods = {m: [] for m in ("meanshift", "hdbscan", "dbscan")}
    method_seconds = {m: [] for m in methods}
    for scene in scenes:
        with torch.no_grad():
            out = model(input_batch([scene], recipe))
        probs = torch.softmax(out["semantic_logits"], 1)
        settings = cluster_settings(recipe)
        emb = out["embeddings"] if recipe.use_embeddings else None
        classes = probs.argmax(1).numpy()
        pred_nyu = semantic20_to_nyu40(classes)
        miou_points.process(scene.semantic, pred_nyu, name=scene.name)
        if recipe.segment_snap > 0 and scene.segments is not None:  # the semantics predict writes
            pred_nyu = semantic20_to_nyu40(snap_labels_to_segments(classes, scene.segments))
        miou_segments.process(scene.semantic, pred_nyu, name=scene.name)
        baseline_unsnapped.append((scene, dbscan_xyz(scene.points, semantic20_to_nyu40(classes), eps=0.05,
                                                     min_size=recipe.min_size)))
        baseline.append((scene, snapped(scene, dbscan_xyz(scene.points, pred_nyu, eps=0.05, min_size=recipe.min_size))))
        oracle.append((scene, snapped(scene, cluster_instances(emb, one_hot_probs(scene.semantic), scene.points,
                                                               offsets=out.get("offsets"), **settings))))
        for method in methods:
            start = time.perf_counter()
            inst = cluster_instances(emb, probs, scene.points, offsets=out.get("offsets"),
                                     **{**settings, "method": method})
            if method == recipe.cluster_method:
                unsnapped.append((scene, inst))
            inst = snapped(scene, inst)
            method_seconds[method].append(time.perf_counter() - start)
            methods[method].append((scene, inst))
        learned.append(methods[recipe.cluster_method][-1])

    results = {"learned": evaluate(learned), "learned_without_segment_snap": evaluate(unsnapped),
               "baseline_pred_semantics_dbscan_xyz": evaluate(baseline),
               "baseline_without_segment_snap": evaluate(baseline_unsnapped),
               "oracle_gt_semantics_our_clustering": evaluate(oracle)}
    print(f"learned model ({recipe.cluster_method}, segment_snap {recipe.segment_snap}) on {count} validation rooms:")
    print(format_table(results["learned"]))
    print(f"{'pipeline':48}{'AP':>8}{'AP50':>8}{'AP25':>8}")
    for name, r in results.items():
        print(f"{name:48}{r['AP']:8.3f}{r['AP50']:8.3f}{r['AP25']:8.3f}")
    print(f"\n{'clustering':12}{'AP':>8}{'AP50':>8}{'s/scene':>10}")
    report["clustering"] = {}
    for method, pairs in methods.items():
        r = evaluate(pairs)
        sec = statistics.mean(method_seconds[method])
        report["clustering"][method] = {"AP": r["AP"], "AP50": r["AP50"], "seconds": sec}
        print(f"{method:12}{r['AP']:8.3f}{r['AP50']:8.3f}{sec:10.3f}")
    report.update({k: to_json_dict(v) for k, v in results.items()})
    report["semantic_miou"] = {"per_point": miou_points.evaluate()["mIoU"],
                               "segment_majority": miou_segments.evaluate()["mIoU"]}
    print(f"\nsemantic mIoU: per point {report['semantic_miou']['per_point']:.3f}, "
          f"each segment's majority {report['semantic_miou']['segment_majority']:.3f}")

    # inference speed on a 100k-point room (best of 5, after a warm-up)
    room = subsample_to(max(scenes, key=len), 100_000)
    stages = {"voxelize": [], "network": [], "cluster": [], "write": [], "total": []}
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(6):
            t0 = time.perf_counter()
            batch = input_batch([room], recipe)
            voxelize(batch.points, batch.offset, recipe.voxel_size)
            t1 = time.perf_counter()
            pred = predict_scene(model, room, recipe)
            t2 = time.perf_counter()
            write_instance_predictions(Path(tmp) / f"r{rep}", room.name, pred.instances)
            t3 = time.perf_counter()
            if rep:
                stages["voxelize"].append(t1 - t0)
                stages["network"].append(pred.timings["network"])
                stages["cluster"].append(pred.timings["cluster"])
                stages["write"].append(t3 - t2)
                stages["total"].append(pred.timings["network"] + pred.timings["cluster"] + (t3 - t2))
    best = {k: min(v) for k, v in stages.items()}
    report["inference_100k"] = best
    report["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\ninference, 100k-point room, {args.threads} threads (best of 5): voxelize {best['voxelize']:.3f} s "
          f"(inside network), network {best['network']:.3f} s, clustering {best['cluster']:.3f} s, "
          f"write {best['write']:.3f} s, end to end {best['total']:.3f} s")
    print(f"peak memory (RSS) of this process: {report['peak_rss_mib']:.0f} MiB")

    if args.run:
        records = [json.loads(l) for l in (Path(args.run) / "metrics.jsonl").read_text().splitlines()]
        pts = [r["points_per_s"] for r in records if "points_per_s" in r]
        report["training"] = {"steps": len(pts), "median_points_per_s": statistics.median(pts)}
        print(f"training: {len(pts)} steps, median {statistics.median(pts):,.0f} points/s")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
