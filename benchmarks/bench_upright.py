#!/usr/bin/env python
"""How often ``--up auto`` finds up (#15): whole rooms and corner scans, as they are and turned at
random, with the geometry alone and with the shipped model as judge (``io.upright.estimate_up``).

    python benchmarks/bench_upright.py [--sets validation shifted "seed 4"] [--json benchmarks/results/upright.json]

A corner scan is a room cut to the quarter below its median x and y: two walls with nothing opposite,
which look like floors to the geometry. Each room gives four cases (whole / corner x as generated /
turned by a random rotation, seeded). Right: the estimate within 5 degrees of the true up.
JUDGE_SHARE and JUDGE_MARGIN were chosen on the validation and shifted rooms; seed 4 is the check.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

RIGHT_DEG = 5.0


def cases(points: np.ndarray, rng: np.random.Generator):
    """(name, points, true up) for the whole room and its corner, each as is and randomly turned."""
    from scipy.spatial.transform import Rotation

    corner = (points[:, 0] < np.median(points[:, 0])) & (points[:, 1] < np.median(points[:, 1]))
    for cut, keep in (("whole", np.ones(len(points), bool)), ("corner", corner)):
        for turn in ("as is", "turned"):
            r = np.eye(3) if turn == "as is" else Rotation.random(random_state=int(rng.integers(1 << 31))).as_matrix()
            yield f"{cut}, {turn}", keep, points[keep] @ r.T, r @ np.array([0.0, 0.0, 1.0])


def main() -> None:
    from bench_generalise import SETS
    from bench_busy import matmul_rate
    from report import finish

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sets", nargs="+", default=["validation", "shifted", "seed 4"], choices=list(SETS))
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    from pcseg.data import SceneDataset
    from pcseg.io.upright import estimate_up
    from pcseg.pipelines.bottomup.orient import room_confidence
    from pcseg.synth.dataset import ensure_synthetic_dataset

    report: dict = {"fp32_gflops_1thread": round(matmul_rate(), 1), "sets": {}}
    right_cos = np.cos(np.radians(RIGHT_DEG))
    for name in args.sets:
        folder, scenes, seed, domain = SETS[name]
        ensure_synthetic_dataset(folder, scenes, seed=seed, progress=False, domain=domain)
        rooms = SceneDataset(folder, None)
        rng = np.random.default_rng(0)
        tally: dict = {}
        seconds = {"geometry": 0.0, "with the judge": 0.0}
        for i in range(len(rooms)):
            scene = rooms.load(i)
            for case, keep, points, up in cases(scene.points.astype(np.float64), rng):
                row = tally.setdefault(case, {"cases": 0, "geometry": 0, "with the judge": 0, "judge asked": 0})
                row["cases"] += 1
                start = time.perf_counter()
                geometric = estimate_up(points)
                seconds["geometry"] += time.perf_counter() - start
                start = time.perf_counter()
                judged = estimate_up(points, colors=scene.colors[keep], judge=room_confidence)
                seconds["with the judge"] += time.perf_counter() - start
                row["geometry"] += int(geometric.up @ up > right_cos)
                row["with the judge"] += int(judged.up @ up > right_cos)
                row["judge asked"] += int(judged.judged > 0)
        count = sum(r["cases"] for r in tally.values())
        report["sets"][name] = {"cases": tally, "seconds per estimate": {k: v / count for k, v in seconds.items()}}
        print(f"{name} ({len(rooms)} rooms): right of cases, geometry | with the judge (judge asked)")
        for case, r in tally.items():
            print(f"  {case:<16} {r['geometry']:>3} | {r['with the judge']:>3} of {r['cases']}  ({r['judge asked']})")
        print("  seconds per estimate: " + ", ".join(f"{k} {v / count:.2f}" for k, v in seconds.items()), flush=True)
    finish(report, args.json)


if __name__ == "__main__":
    main()
