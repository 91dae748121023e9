"""``pcseg predict`` for every pipeline: inputs checked first, the pipeline's predictor run scene by
scene (grouping and writing overlapping the next scene's network), each prediction snapped to the
scan's segments once, and the official files written into a folder that appears only when complete."""
from __future__ import annotations

import os
import time
import warnings
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..errors import DataError
from ..io.plain import CLOUD_SUFFIXES
from ..structures import Prediction, Scene
from .pipeline import Predictor
from .snapping import snap_to_scene
from .tiling import needs_tiles, predict_tiled

MARKER = ".pcseg-predictions"
MASK_CHOICES = ("auto", "files", "compact")
# --masks auto: the official per-instance mask files up to this many lines per scene (instances x
# points: 200 MB of files); beyond it (a building floor) pcseg's compact file, whose size grows with
# the points only (``io.compact``)
MASK_FILE_LINES_LIMIT = 100_000_000


def _inputs(path: Path) -> list[Path]:
    """Scene folders / point-cloud files named by ``path``."""
    from ..io.scannet import list_scenes

    if path.is_file():
        return [path]
    if not path.exists():
        raise DataError(path, None, "no such file or folder")
    files = sorted(p for p in path.iterdir() if p.suffix.lower() in CLOUD_SUFFIXES)
    try:
        folders = list_scenes(path)
    except DataError:
        folders = []
    if any(f.resolve() == path.resolve() for f in folders):
        return folders  # a scene folder: its own .ply is the scene, not a second input
    if not folders and not files:
        raise DataError(path, None, f"no ScanNet scene folders or {', '.join(CLOUD_SUFFIXES)} files found")
    return folders + files


KEEP_POINTS = 30_000_000   # inputs read by check_inputs stay in memory up to this many points in all


def check_inputs(sources: list[Path], skip_bad: bool = False,
                 progress: bool = True, up: str = "z", up_judge=None) -> tuple[list[Path], dict[Path, Scene]]:
    """Read every input once before any network runs: a bad file is reported at once, not after the
    good ones before it were predicted and discarded. The annotation of a scene folder is not read:
    prediction needs none of it. All bad inputs are named in one DataError, or,
    with ``skip_bad``, in one warning. Returns the good inputs and the scenes read, kept up to
    ``KEEP_POINTS`` points in all so that they are not read twice."""
    from ..io import read_scene

    bad: list[tuple[Path, str]] = []
    kept: dict[Path, Scene] = {}
    points = 0
    for source in tqdm(sources, desc="check inputs", unit="scene", disable=not progress or len(sources) < 2):
        try:
            scene = read_scene(source, labels=False, up=up, up_judge=up_judge)
        except DataError as e:
            bad.append((source, str(e)))
            continue
        if points + len(scene) <= KEEP_POINTS:
            kept[source] = scene
            points += len(scene)
    if not bad:
        return sources, kept
    listing = "; ".join(problem for _, problem in bad[:5]) + ("; ..." if len(bad) > 5 else "")
    if not skip_bad:
        raise DataError(None, None, f"{len(bad)} of {len(sources)} input(s) cannot be read, nothing was predicted: "
                        f"{listing} (--skip-bad predicts the others)")
    warnings.warn(f"skipping {len(bad)} of {len(sources)} input(s) that cannot be read: {listing}", stacklevel=2)
    unreadable = {source for source, _ in bad}
    good = [s for s in sources if s not in unreadable]
    if not good:
        raise DataError(None, None, f"none of the {len(sources)} input(s) can be read: {listing}")
    return good, kept


def check_out_dir(out_dir: str | os.PathLike) -> Path:
    """``out_dir`` may be new, empty, or an earlier prediction folder (replaced); nothing else."""
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()) and not (out_dir / MARKER).exists():
        raise DataError(out_dir, None, "exists and is not a pcseg prediction folder; choose another --out")
    return out_dir


def predict_to_folder(inputs: str | os.PathLike, out_dir: str | os.PathLike, predictor: Predictor,
                      progress: bool = True, save_embeddings: bool = False, skip_bad: bool = False,
                      up: str = "z", up_judge=None, masks: str = "auto") -> dict:
    """Predict every scene under ``inputs`` (a scene folder, a folder of them, a point cloud or a folder
    of those) with ``predictor`` into ``out_dir``: the official submission format (``<scene>.txt`` +
    ``predicted_masks/``; ``masks``: "files" always, "compact": pcseg's ``instances/<scene>.npz`` instead
    (``io.compact``), "auto": compact where the mask files would pass ``MASK_FILE_LINES_LIMIT`` lines,
    with a warning), ``semantic/<scene>.txt`` (NYU40 per vertex) and ``instance_ids/<scene>.txt``
    (instance per vertex, 0 = none), and with ``save_embeddings`` ``embeddings/<scene>.npy`` (float16
    [N, D], for ``pcseg viz --color embedding``) where the pipeline has embeddings. Every input is
    read once first (``check_inputs``): bad ones stop the run before the network runs, or are skipped
    with ``skip_bad``. ``up``: the plain clouds' up axis (``io.plain.make_upright``; the files written
    are per point, so nothing turns back; ``up_judge``: ``io.upright.estimate_up``'s judge for ``up='auto'``).
    A scene's grouping, snapping and writing run in a second thread while the
    network runs on the next scene. The folder is written under a temporary name and renamed at the
    end, so a failure never leaves a half-written prediction folder. Returns the seconds per stage
    summed over the scenes (stages overlap) and ``wall``, the seconds from the first network run to
    the last file written."""
    from concurrent.futures import ThreadPoolExecutor

    from ..io import read_scene
    from ..io.atomic import atomic_path

    if masks not in MASK_CHOICES:
        raise ValueError(f"predict_to_folder: masks must be one of {', '.join(MASK_CHOICES)}, got {masks!r}")
    out_dir = check_out_dir(out_dir)
    sources = _inputs(Path(inputs))
    predictor.check(sources)
    start = time.perf_counter()
    sources, kept = check_inputs(sources, skip_bad, progress, up, up_judge)
    totals: dict[str, float] = {"read": time.perf_counter() - start, "network": 0.0, "write": 0.0}
    # the predictor reports its own stages in each Prediction's timings (the network's included)

    def finish(tmp: Path, scene: Scene, output, ready: Prediction | None = None) -> None:
        pred = ready if ready is not None else snap_to_scene(predictor.finish(scene, output), scene,
                                                             predictor.segment_snap, predictor.min_size,
                                                             predictor.superpoints)
        for key, seconds in pred.timings.items():  # network, cluster / lift_fuse, snap, ...
            totals[key] = totals.get(key, 0.0) + seconds
        begin = time.perf_counter()
        _write_prediction(tmp, scene, pred, save_embeddings, masks)
        totals["write"] += time.perf_counter() - begin

    with atomic_path(out_dir) as tmp, ThreadPoolExecutor(1, thread_name_prefix="pcseg-finish") as finisher:
        tmp.mkdir()
        (tmp / MARKER).write_text("predictions written by pcseg predict\n")
        begin = time.perf_counter()
        pending = None
        for source in tqdm(sources, desc="predict", unit="scene", disable=not progress):
            scene = kept.pop(source, None)
            if scene is None:  # not kept in memory: read again
                t = time.perf_counter()
                scene = read_scene(source, labels=False, up=up, up_judge=up_judge)
                totals["read"] += time.perf_counter() - t
            output = ready = None
            if needs_tiles(scene, predictor.tile_size):  # wider than a block: block by block, in this thread
                ready = predict_tiled(predictor, scene, predictor.tile_size, predictor.tile_overlap, progress)
            else:
                output = predictor.network(scene, source)
            if pending is not None:
                pending.result()  # one scene in the second thread at a time (raises its error here)
            pending = finisher.submit(finish, tmp, scene, output, ready)
        if pending is not None:
            pending.result()
        totals["wall"] = time.perf_counter() - begin
    return {"scenes": len(sources), "tile_size": predictor.tile_size, **totals}


def _write_prediction(tmp: Path, scene: Scene, pred: Prediction, save_embeddings: bool, masks: str = "auto") -> None:
    from ..io.compact import COMPACT_SUBDIR, compact_path, write_compact_instances
    from ..io.official import write_instance_ids_txt, write_instance_predictions, write_semantic_txt

    # the folder is new and renamed into place whole (``atomic_path``): no file needs its own rename
    lines = len(pred.instances) * len(scene)
    if masks == "compact" or (masks == "auto" and lines > MASK_FILE_LINES_LIMIT):
        if masks == "auto":
            warnings.warn(f"{scene.name}: {len(pred.instances)} instances x {len(scene):,} points would be "
                          f"{2 * lines / 1e9:.1f} GB of official mask files; wrote pcseg's compact "
                          f"{COMPACT_SUBDIR}/{scene.name}.npz instead (pcseg eval and "
                          f"viz read it; --masks files writes the official files)", stacklevel=2)
        write_compact_instances(compact_path(tmp, scene.name), pred.instances)
    else:
        write_instance_predictions(tmp, scene.name, pred.instances, atomic=False)
    write_semantic_txt(tmp / "semantic" / f"{scene.name}.txt", pred.semantic, atomic=False)
    write_instance_ids_txt(tmp / "instance_ids" / f"{scene.name}.txt", pred.instances.to_ids(), atomic=False)
    if save_embeddings and pred.embeddings is not None:
        (tmp / "embeddings").mkdir(exist_ok=True)
        # clipped: an embedding beyond float16 range would become inf
        half = np.clip(pred.embeddings, -65000, 65000).astype(np.float16)
        np.save(tmp / "embeddings" / f"{scene.name}.npy", half)
