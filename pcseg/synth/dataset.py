"""Write a synthetic dataset in the layout of ScanNet v2's download:

    DIR/scannetv2-labels.combined.tsv           raw category -> NYU40 (labels.write_label_tsv)
    DIR/scannetv2_train.txt, scannetv2_val.txt  scene ids, 80 / 20 split
    DIR/synth_stats.json                        per-scene statistics and their summary
    DIR/scans/scene%04d_00/                     one ScanNet scene folder (io.scannet.write_scannet_scene)
        scene%04d_00_vh_clean_2.ply, ..._vh_clean_2.0.010000.segs.json, .aggregation.json, .txt
        frames/                                 RGB-D frames when frames > 0 (layout: pcseg.io.frames):
            color/<i>.jpg  depth/<i>.png (uint16 mm, 0 invalid)  pose/<i>.txt (4x4 camera-to-world, scan frame)
            intrinsic/{intrinsic,extrinsic}_{color,depth}.txt  label/<i>.png (NYU40)
            instance/<i>.png (the scene's instance ids = objectId + 1, 0 = none)

The whole dataset is written under a temporary name beside DIR and renamed when complete, so an
interrupted or failed run leaves nothing (Ctrl-C stops the workers at once). DIR must not exist or
be empty: the generator never adds to or overwrites a dataset (``ensure_synthetic_dataset`` is the
"generate once, then reuse" of the recipes and the demo). Scene i's seed is child i of ``np.random.SeedSequence(seed)``: the
same seed gives byte-identical files, whatever the number of workers.

Workers are spawned processes: a script calling ``write_synthetic_dataset`` with workers > 1 must
do so under ``if __name__ == "__main__":`` (Python's rule for spawned multiprocessing).
"""
from __future__ import annotations

import json
import multiprocessing as mp
import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..errors import ConfigError
from ..io.atomic import atomic_path, write_text
from ..io.frames import write_frames
from ..io.scannet import write_scannet_scene
from ..labels import INSTANCE_IDS, LABELS_TSV_NAME, write_label_tsv
from .domain import get_domain
from .generate import generate_scene

VAL_FRACTION = 0.2


def scene_seeds(seed: int, num_scenes: int) -> list[int]:
    """Per-scene seeds: child i of SeedSequence(seed) (does not depend on num_scenes)."""
    return [int(c.generate_state(1, np.uint64)[0]) for c in np.random.SeedSequence(seed).spawn(num_scenes)]


def write_scene(out_dir: str | os.PathLike, name: str, seed: int, frames: int = 0, domain: str = "standard") -> dict:
    """Generate scene ``name`` from ``seed`` and write it to ``out_dir/scans/name`` atomically.
    Returns its statistics."""
    synth = generate_scene(seed, name, frames, domain=domain)
    with atomic_path(Path(out_dir) / "scans" / name) as tmp:
        write_scannet_scene(synth.scene, tmp)
        if frames:
            write_frames(tmp / "frames", synth.frames, synth.intrinsics)
    return synth.stats


def _worker_init() -> None:
    import signal

    from . import scan

    scan.RAY_THREADS = 1  # one process per core: no nested thread pools
    # Ctrl-C reaches the whole process group: the parent stops the workers, they print nothing
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _run(task) -> dict:
    return write_scene(*task)


def _check_int(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ConfigError(f"write_synthetic_dataset: {name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def summarize(stats: list[dict]) -> dict:
    """Means and ranges of the per-scene statistics, and the benchmark classes covered."""
    out: dict = {"scenes": len(stats)}
    for key in ("vertices", "faces", "benchmark_instances", "objects", "touching_pairs", "visible_fraction",
                "nn_spacing", "segments"):
        v = np.array([s[key] for s in stats], float)
        out[key] = {"mean": float(v.mean()), "min": float(v.min()), "max": float(v.max())}
    covered = sorted({c for s in stats for c in s["classes"]})
    out["classes_covered"] = covered
    out["num_classes_covered"] = len(covered)
    out["classes_missing"] = [c for c in INSTANCE_IDS if c not in covered]
    out["room_types"] = {t: sum(s["room_type"] == t for s in stats) for t in sorted({s["room_type"] for s in stats})}
    return out


def is_complete_dataset(root: str | os.PathLike) -> bool:
    """True when ``root`` holds a finished dataset: scans/ and the labels tsv beside it."""
    root = Path(root)
    return (root / "scans").is_dir() and (root / LABELS_TSV_NAME).is_file()


def _check_new_folder(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out}: exists and is not a folder")
    if out.is_dir():
        leftovers = [p for p in out.iterdir() if not (p.name.startswith(".") and p.name.endswith(".tmp"))]
        if leftovers:
            what = "a dataset" if (out / "scans").is_dir() else "files"
            raise ConfigError(f"{out}: already holds {what} ({leftovers[0].name}, ...); synthetic rooms are "
                              "written to a new or empty folder and never over existing scenes: choose another "
                              "--out or delete this one")


def ensure_synthetic_dataset(root: str | os.PathLike, num_scenes: int, seed: int = 0, frames: int = 0,
                             progress: bool = True, domain: str = "standard") -> bool:
    """Generate ``num_scenes`` rooms at ``root`` unless a complete dataset is there already; returns
    whether it generated. A ``root`` with scans/ but no labels tsv (what an interrupted generation of
    an older pcseg left) is an error that says what to do."""
    root = Path(root)
    if is_complete_dataset(root):
        return False
    if (root / "scans").is_dir():
        raise ConfigError(f"{root}: has scans/ but no {LABELS_TSV_NAME}: an unfinished dataset (an interrupted "
                          f"generation leaves this: delete {root} to generate it again), or a real dataset "
                          "without its labels tsv (put it there)")
    print(f"generating {num_scenes} synthetic ScanNet-format rooms"
          + (f" with {frames} RGB-D frames each" if frames else "")
          + (f", {domain} domain" if domain != "standard" else "") + f" (seed {seed}) in {root}")
    write_synthetic_dataset(root, num_scenes, seed=seed, frames=frames, progress=progress, domain=domain)
    return True


def _generate_in_workers(tasks: list, workers: int, bar) -> list[dict]:
    stats = []
    saved = {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
    os.environ.update({k: "1" for k in saved})  # inherited by the spawned workers
    # spawn, not fork: a forked child would inherit Open3D's thread pools mid-state. A dead
    # worker raises BrokenProcessPool here instead of hanging (as multiprocessing.Pool would).
    pool = ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"), initializer=_worker_init)
    try:
        for fut in as_completed([pool.submit(_run, t) for t in tasks]):
            stats.append(fut.result())
            bar.update()
    except BaseException:
        # Ctrl-C or a failed scene: stop now instead of waiting for every queued scene
        processes = list((getattr(pool, "_processes", None) or {}).values())
        pool.shutdown(wait=False, cancel_futures=True)
        for proc in processes:
            proc.terminate()
        for proc in processes:
            proc.join(timeout=10)
        raise
    else:
        pool.shutdown()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return stats


def write_synthetic_dataset(out_dir: str | os.PathLike, num_scenes: int, seed: int = 0, frames: int = 0,
                            workers: int | None = None, progress: bool = True, domain: str = "standard") -> dict:
    """Generate ``num_scenes`` scenes (with ``frames`` RGB-D frames each) into the new or empty
    folder ``out_dir``, all or nothing. ``domain``: "standard" or "shifted" (``synth.domain``).

    workers: processes (default: 2, at most the CPU count and the number of scenes; 1 = in this process).
    Returns the summary of ``summarize`` plus ``seconds`` (also written, without timing, to
    synth_stats.json).
    """
    num_scenes = _check_int("num_scenes", num_scenes, 1)
    seed = _check_int("seed", seed, 0)
    frames = _check_int("frames", frames, 0)
    if workers is None:
        workers = max(1, min(2, os.cpu_count() or 1))
    workers = min(_check_int("workers", workers, 1), num_scenes)
    try:
        get_domain(domain)
    except ValueError as e:
        raise ConfigError(f"write_synthetic_dataset: {e}") from None
    out = Path(out_dir)
    _check_new_folder(out)

    names = [f"scene{i:04d}_00" for i in range(num_scenes)]
    start = time.perf_counter()
    with atomic_path(out) as tmp:
        (tmp / "scans").mkdir(parents=True)
        tasks = [(str(tmp), n, s, frames, domain) for n, s in zip(names, scene_seeds(seed, num_scenes))]
        with tqdm(total=num_scenes, desc="synth scenes", unit="scene", disable=not progress) as bar:
            if workers == 1:
                stats = []
                for t in tasks:
                    stats.append(_run(t))
                    bar.update()
            else:
                stats = _generate_in_workers(tasks, workers, bar)
        seconds = time.perf_counter() - start
        stats.sort(key=lambda s: s["name"])

        write_label_tsv(tmp / LABELS_TSV_NAME)
        order = np.random.default_rng(seed).permutation(num_scenes)
        n_val = int(round(VAL_FRACTION * num_scenes)) if num_scenes > 1 else 0
        val = sorted(names[i] for i in order[:n_val])
        train = sorted(names[i] for i in order[n_val:])
        write_text(tmp / "scannetv2_train.txt", "".join(n + "\n" for n in train))
        write_text(tmp / "scannetv2_val.txt", "".join(n + "\n" for n in val))
        summary = summarize(stats)
        write_text(tmp / "synth_stats.json", json.dumps({"seed": seed, "frames": frames, "domain": domain,
                                                         "summary": summary,
                                                         "scenes": stats}, indent=1))
    return {**summary, "seconds": seconds, "seconds_per_scene": seconds / num_scenes}
