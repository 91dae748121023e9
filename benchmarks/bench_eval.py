"""Speed of pcseg's InstanceEvaluator against a faithful Python 3 port of the official ScanNet v2
script's algorithm (tests/evaluation/reference_eval.py: per-prediction full-length mask operations,
loop-based matching), in the same process on the same deterministic data. Asserts equal results.

    python benchmarks/bench_eval.py [--scenes 100 --points 100000 --preds 50]
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "evaluation"))
from reference_eval import ReferenceEvaluator  # noqa: E402

from pcseg.evaluation import InstanceEvaluator, evaluate_folders, format_table  # noqa: E402
from pcseg.io.official import write_gt_txt, write_instance_predictions  # noqa: E402
from pcseg.labels import INSTANCE_IDS  # noqa: E402
from pcseg.structures import InstanceSet  # noqa: E402


def make_scene(seed: int, n: int, k: int, run: int = 64) -> tuple[np.ndarray, InstanceSet]:
    """Official GT ids (about 30 objects, 30% void) and k predictions: noisy copies of objects,
    duplicates, merges, mislabelled and off-object masks.

    Objects are made of runs of ``run`` consecutive vertex ids (a mesh's vertex order has locality:
    ScanNet meshes are extracted chunk by chunk); run=1 scatters every vertex (the worst case for
    pcseg's bit-packed intersection counting, no difference for the reference).
    """
    rng = np.random.default_rng(seed)
    gt = np.zeros(n, np.int64)
    cuts = np.sort(rng.choice(np.arange(1, int(0.7 * n)), 29, replace=False))
    blocks = rng.permutation(-(-n // run))
    order = (blocks[:, None] * run + np.arange(run)).ravel()
    order = order[order < n]
    objects = []
    for i, part in enumerate(np.split(order[: int(0.7 * n)], cuts)):
        label = int(rng.choice(INSTANCE_IDS[:8])) if rng.random() < 0.9 else int(rng.choice([1, 2, 40]))
        gt[part] = label * 1000 + i + 1
        objects.append((part, label))
    masks = np.zeros((k, n), bool)
    labels = np.zeros(k, np.int64)
    for j in range(k):
        part, label = objects[int(rng.integers(len(objects)))]
        kind = rng.random()
        if kind < 0.7:  # noisy copy
            keep = part[rng.random(part.shape[0]) < rng.uniform(0.4, 1.0)]
            masks[j, keep] = True
            masks[j, rng.choice(n, int(rng.uniform(0, 0.3) * part.shape[0]) + 1)] = True
        elif kind < 0.85:  # merge with another object
            other = objects[int(rng.integers(len(objects)))][0]
            masks[j, part] = True
            masks[j, other[: other.shape[0] // 2]] = True
        else:  # off-object blob
            masks[j, rng.choice(n, int(rng.integers(50, 3000)), replace=False)] = True
        labels[j] = label if rng.random() < 0.85 else int(rng.choice(INSTANCE_IDS))
    return gt, InstanceSet(masks, labels, np.round(rng.random(k), 3))


def flatten(result: dict) -> np.ndarray:
    return np.array([result["AP"], result["AP50"], result["AP25"]]
                    + [v for c in result["classes"].values() for v in c.values()])


def official_load_ids(path) -> np.ndarray:
    """How the official util_3d.load_ids reads a GT or mask file."""
    with open(path) as f:
        return np.array(f.read().splitlines(), dtype=np.int64)


def official_flow(gt_dir: Path, pred_dir: Path) -> dict:
    """The official script's file-based flow: read each scene's prediction file and every mask with
    load_ids, the GT with load_ids, then assign/evaluate (the reference implementation)."""
    ref = ReferenceEvaluator()
    for scene_txt in sorted(pred_dir.glob("*.txt")):
        gt = official_load_ids(gt_dir / scene_txt.name)
        masks, labels, scores = [], [], []
        for line in scene_txt.read_text().splitlines():
            rel, label, score = line.split(" ")
            masks.append(official_load_ids(pred_dir / rel) != 0)
            labels.append(int(float(label)))
            scores.append(float(score))
        ref.process(gt, np.array(masks), np.array(labels), np.array(scores), name=scene_txt.stem)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ref.evaluate()


def main_files(args) -> None:
    """End to end on the official file formats: `pcseg eval` (evaluate_folders) vs the official flow."""
    root = Path(tempfile.mkdtemp(prefix="pcseg-bench-eval-"))
    try:
        gt_dir, pred_dir = root / "gt", root / "pred"
        for s in range(args.scenes):  # writing the files is not timed
            gt, pred = make_scene(s, args.points, args.preds, args.run)
            write_gt_txt(gt_dir / f"scene{s:04d}_00.txt", gt)
            # scores as written (6 decimals) are what both sides read back
            write_instance_predictions(pred_dir, f"scene{s:04d}_00", pred)
        t = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = evaluate_folders(gt_dir, pred_dir, progress=False)
        t_ours = time.perf_counter() - t
        t = time.perf_counter()
        expected = official_flow(gt_dir, pred_dir)
        t_ref = time.perf_counter() - t
    finally:
        shutil.rmtree(root, ignore_errors=True)
    assert np.array_equal(flatten(result), flatten(expected), equal_nan=True), "results differ"
    print(format_table(result))
    print(f"files: {args.scenes} scenes x {args.points} vertices x {args.preds} predictions (official formats)")
    print(f"pcseg eval (evaluate_folders): {t_ours:8.2f} s")
    print(f"official flow (load_ids + reference algorithm): {t_ref:8.2f} s")
    print(f"speed-up: {t_ref / t_ours:.1f}x  (results identical)")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=100)
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--preds", type=int, default=50)
    parser.add_argument("--run", type=int, default=64, help="vertex-id run length of objects (1 = scattered)")
    parser.add_argument("--files", action="store_true",
                        help="end to end on official-format files (pcseg eval vs the official script's flow)")
    args = parser.parse_args(argv)
    if args.files:
        return main_files(args)

    ours, ref = InstanceEvaluator(), ReferenceEvaluator()
    t_ours = t_ref = 0.0
    for s in range(args.scenes):
        gt, pred = make_scene(s, args.points, args.preds, args.run)  # generation is not timed
        t = time.perf_counter()
        ours.process(gt, pred, name=f"scene{s:04d}")
        t_ours += time.perf_counter() - t
        t = time.perf_counter()
        ref.process(gt, pred.masks, pred.labels, pred.scores, name=f"scene{s:04d}")
        t_ref += time.perf_counter() - t
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t = time.perf_counter()
        result = ours.evaluate()
        t_ours_eval = time.perf_counter() - t
        t = time.perf_counter()
        expected = ref.evaluate()
        t_ref_eval = time.perf_counter() - t
    assert np.array_equal(flatten(result), flatten(expected), equal_nan=True), "results differ"

    print(format_table(result))
    print(f"{args.scenes} scenes x {args.points} vertices x {args.preds} predictions, object runs of {args.run} ids")
    print(f"{'':12}{'process':>10}{'evaluate':>10}{'total':>10}")
    print(f"{'pcseg':12}{t_ours:10.2f}{t_ours_eval:10.2f}{t_ours + t_ours_eval:10.2f} s")
    print(f"{'reference':12}{t_ref:10.2f}{t_ref_eval:10.2f}{t_ref + t_ref_eval:10.2f} s")
    print(f"speed-up: {(t_ref + t_ref_eval) / (t_ours + t_ours_eval):.1f}x  (results identical)")


if __name__ == "__main__":
    main()
