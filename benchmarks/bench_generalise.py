#!/usr/bin/env python
"""How well bottom-up checkpoints hold up away from their training rooms (#14): in-domain rooms and
shifted rooms that training never sees, scored with the official-equivalent evaluator.

    python benchmarks/bench_generalise.py shipped=pcseg/resources/bottomup_synthetic.pt \\
        tuned=runs/ft_generalise/model.pt [--json benchmarks/results/generalise.json]

Room sets (generated under out/data on first use, then reused):
* "validation": the 20 validation rooms of seed 1 (what training validates on; never trained on);
* "seed 4": 40 rooms of seed 4, neither training nor validation;
* "shifted": 30 rooms of seed 5 in the shifted domain (``pcseg data synth --domain shifted``: colour
  casts, 2.7x vertex noise, holes, unannotated clutter beyond anything training uses).
For every checkpoint and set: ``pcseg predict`` (the checkpoint's own recipe), then instance AP / AP50 /
AP25 and the semantic mIoU over the classes present in the GT. Printed as a table; the gap between
in-domain and shifted AP50 is the measure of memorisation.
"""
from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
import warnings
from pathlib import Path

SETS = {  # name: (folder, scenes, seed, domain)
    "validation": ("out/data/synth_val", 20, 1, "standard"),
    "seed 4": ("out/data/synth_seed4_40", 40, 4, "standard"),
    "shifted": ("out/data/synth_shifted_seed5_30", 30, 5, "shifted"),
}


def score(checkpoint: Path | None, data: Path, gt: Path, work: Path, overrides=()) -> dict:
    """``pcseg predict`` (``overrides``: its KEY=VALUE settings) and the scores: AP, AP50, AP25, mIoU
    and each class's AP ("class AP")."""
    from pcseg.pipelines import predict_to_folder
    from pcseg.evaluation import SemanticEvaluator
    from pcseg.evaluation.folders import folder_evaluator

    pred = work / "pred"
    predict_to_folder(data, pred, checkpoint=checkpoint, overrides=list(overrides), progress=False)
    semantic = SemanticEvaluator()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = folder_evaluator(gt, pred, progress=False, semantic=semantic).evaluate()
        miou = semantic.evaluate()["mIoU"]
    shutil.rmtree(pred)
    return {"AP": result["AP"], "AP50": result["AP50"], "AP25": result["AP25"], "mIoU": miou,
            "class AP": {name: c["AP"] for name, c in result["classes"].items()}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoints", nargs="+", help="name=path pairs")
    ap.add_argument("--sets", nargs="+", default=list(SETS), choices=list(SETS))
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    checkpoints = dict(c.split("=", 1) for c in args.checkpoints)

    from pcseg.io.export import export_gt
    from pcseg.synth.dataset import ensure_synthetic_dataset

    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.sets:
            folder, scenes, seed, domain = SETS[name]
            ensure_synthetic_dataset(folder, scenes, seed=seed, progress=False, domain=domain)
            gt = Path(tmp) / f"gt_{seed}_{domain}"
            export_gt(folder, gt, progress=False)
            for model, path in checkpoints.items():
                start = time.perf_counter()
                r = score(Path(path), Path(folder), gt, Path(tmp))
                results[f"{model} | {name}"] = r
                print(f"{model:>12} | {name:<10} AP {r['AP']:.3f}  AP50 {r['AP50']:.3f}  AP25 {r['AP25']:.3f}  "
                      f"mIoU {r['mIoU']:.3f}  ({time.perf_counter() - start:.0f} s)", flush=True)
    for model in checkpoints:
        inside = results.get(f"{model} | validation")
        shifted = results.get(f"{model} | shifted")
        if inside and shifted:
            print(f"{model}: AP50 gap validation - shifted {inside['AP50'] - shifted['AP50']:.3f}")
    if args.json:
        args.json.write_text(json.dumps({"checkpoints": checkpoints, "sets": {k: SETS[k] for k in args.sets},
                                         "time": time.ctime(), "results": results}, indent=1) + "\n")


if __name__ == "__main__":
    main()
