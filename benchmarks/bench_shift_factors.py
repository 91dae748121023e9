#!/usr/bin/env python
"""Which of the shifted domain's changes costs the shipped model what: one change at a time, same rooms.

    python benchmarks/bench_shift_factors.py [--scenes 30] [--seed 5] [--checkpoint PATH]
                                             [KEY=VALUE ...] [--json benchmarks/results/shift_factors.json]

The shifted domain (``pcseg data synth --domain shifted``, ``pcseg.synth.domain``) changes four things
at once: a per-scene colour cast and darkening, 2.7x the vertex noise, holes cut into the scan, and
small clutter left unannotated four times as often. The generator draws the rooms from their own random
stream, so one seed gives the same rooms in every domain; here the rooms of ``--seed`` are generated
in the standard domain, in the shifted one, and with each of the four changes alone, and the model
(``pcseg predict`` with its own recipe; KEY=VALUE prediction settings as ``pcseg predict`` takes them)
is scored on each: instance AP / AP50 / AP25, semantic mIoU over the classes in the GT, and the classes
that lose the most AP against the standard rooms. The sets are written under out/data/shift_factors_seed<S>
(reused when complete).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_generalise import score  # noqa: E402  (pcseg predict + the official-equivalent scores)

# each change alone: the field of the shifted domain that carries it
CHANGES = {"colour cast": "color_cast", "vertex noise": "noise_sigma", "holes": ("holes", "hole_radius"),
           "unannotated clutter": "skip_clutter"}


def domains() -> dict[str, str]:
    """Register one domain per change (standard, with that change from the shifted domain); returns
    {set name: domain name} for standard, each change alone and shifted."""
    from pcseg.synth import domain as synth_domain

    standard, shifted = synth_domain.DOMAINS["standard"], synth_domain.DOMAINS["shifted"]
    names = {"standard": "standard"}
    for change, fields in CHANGES.items():
        fields = (fields,) if isinstance(fields, str) else fields
        name = "only-" + change.replace(" ", "-")
        synth_domain.DOMAINS[name] = dataclasses.replace(standard, name=name,
                                                         **{f: getattr(shifted, f) for f in fields})
        names[change] = name
    names["shifted (all four)"] = "shifted"
    return names


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scenes", type=int, default=30)
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--checkpoint", default=None, help="default: the shipped bottom-up model")
    ap.add_argument("--json", type=Path)
    ap.add_argument("overrides", nargs="*", help="prediction settings, e.g. extra_scales=[0.7]")
    args = ap.parse_args()
    if args.scenes < 1:
        ap.error("--scenes must be >= 1")

    from pcseg.io.export import export_gt
    from pcseg.synth.dataset import is_complete_dataset, write_synthetic_dataset

    results: dict[str, dict] = {}
    root = Path("out/data") / f"shift_factors_seed{args.seed}"
    with tempfile.TemporaryDirectory() as tmp:
        for set_name, domain in domains().items():
            folder = root / f"{domain}_{args.scenes}"
            if not is_complete_dataset(folder):
                if folder.exists():
                    shutil.rmtree(folder)
                # in this process: the domains registered above do not exist in spawned workers
                write_synthetic_dataset(folder, args.scenes, seed=args.seed, workers=1, progress=False, domain=domain)
            gt = Path(tmp) / f"gt_{domain}"
            export_gt(folder, gt, progress=False)
            start = time.perf_counter()
            r = results[set_name] = score(args.checkpoint, folder, gt, Path(tmp), args.overrides)
            print(f"{set_name:<20} AP {r['AP']:.3f}  AP50 {r['AP50']:.3f}  AP25 {r['AP25']:.3f}  mIoU {r['mIoU']:.3f}"
                  f"  ({time.perf_counter() - start:.0f} s)", flush=True)
    base = results["standard"]
    print(f"\nchange from the standard rooms (same {args.scenes} rooms of seed {args.seed}):")
    for set_name, r in results.items():
        if set_name == "standard":
            continue
        drops = sorted(((r["class AP"][c] - base["class AP"][c], c) for c in base["class AP"]
                        if base["class AP"][c] == base["class AP"][c] and r["class AP"][c] == r["class AP"][c]))
        worst = ", ".join(f"{c} {d:+.2f}" for d, c in drops[:4])
        print(f"  {set_name:<20} AP {r['AP'] - base['AP']:+.3f}  AP50 {r['AP50'] - base['AP50']:+.3f}  "
              f"mIoU {r['mIoU'] - base['mIoU']:+.3f}   most lost: {worst}")
    if args.json:
        args.json.write_text(json.dumps({"time": time.ctime(), "seed": args.seed, "scenes": args.scenes,
                                         "checkpoint": args.checkpoint or "shipped", "overrides": args.overrides,
                                         "results": results}, indent=1) + "\n")


if __name__ == "__main__":
    main()
