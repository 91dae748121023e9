"""Inference: a trained bottom-up model + clustering -> instances, and ``pcseg predict``."""
from __future__ import annotations

import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch
from tqdm import tqdm

from ..cluster import cluster_instances, snap_prediction
from ..data import collate
from ..errors import DataError
from ..labels import semantic20_to_nyu40
from ..runtime import apply_prediction_threads
from ..structures import InstanceSet, Prediction, Scene
from .checkpoint import load_checkpoint, load_model_state
from .config import prediction_recipe
from .recipe import PREDICT_KEYS, BottomUpRecipe

SHIPPED_MODEL = Path(__file__).resolve().parents[1] / "resources" / "bottomup_synthetic.pt"
MARKER = ".pcseg-predictions"


def load_model(checkpoint: str | os.PathLike | None = None, device: str | torch.device = "cpu",
               overrides: Sequence[str] = ()) -> tuple[torch.nn.Module, BottomUpRecipe]:
    """A trained model in eval mode and its recipe (the PREDICT_KEYS settings may be overridden)."""
    from .build import build_model, resolve_device, select_backend

    path = Path(checkpoint) if checkpoint else SHIPPED_MODEL
    ckpt = load_checkpoint(path, map_location=resolve_device(device))
    saved = dict(ckpt["config"])
    recipe, given = prediction_recipe(BottomUpRecipe, saved, overrides, PREDICT_KEYS, f"{path} config")
    apply_prediction_threads(recipe.threads, "threads" in given)
    select_backend(recipe, torch.device(device))
    model = build_model(recipe)
    load_model_state(path, model, ckpt["model"])
    return model.to(device).eval(), recipe


@dataclass
class NetworkOutput:
    """The network's per-point outputs for one scene, before grouping."""

    probs: torch.Tensor             # FloatTensor[N, 20] class probabilities
    embeddings: torch.Tensor        # FloatTensor[N, D]
    offsets: torch.Tensor | None    # FloatTensor[N, 3] predicted centre offsets, if the model has them
    points: torch.Tensor            # FloatTensor[N, 3]
    seconds: float


@torch.no_grad()
def run_network(model: torch.nn.Module, scene: Scene, recipe: BottomUpRecipe,
                device: str | torch.device = "cpu") -> NetworkOutput:
    """Voxelize and run the network on a non-empty scene."""
    start = time.perf_counter()
    batch = collate([Scene(scene.points, scene.colors, name=scene.name)], height=recipe.height_feature).to(device)
    out = model(batch)
    probs = torch.softmax(out["semantic_logits"], 1)
    return NetworkOutput(probs, out["embeddings"], out.get("offsets"), batch.points, time.perf_counter() - start)


@torch.no_grad()
def group_instances(out: NetworkOutput, scene: Scene, recipe: BottomUpRecipe) -> Prediction:
    """Cluster the network's outputs per class into instances; with ``recipe.segment_snap`` and a scene
    that has segments, snap the masks to them and give every point its segment's majority class."""
    from .build import cluster_settings

    start = time.perf_counter()
    embeddings = out.embeddings if recipe.use_embeddings else None
    instances = cluster_instances(embeddings, out.probs, out.points, offsets=out.offsets, **cluster_settings(recipe))
    classes = out.probs.argmax(1).cpu().numpy()
    if recipe.segment_snap > 0 and scene.segments is not None:
        instances, classes = snap_prediction(instances, classes, scene.segments, recipe.segment_snap, recipe.min_size)
    cluster = time.perf_counter() - start
    return Prediction(instances, semantic20_to_nyu40(classes), {"network": out.seconds, "cluster": cluster},
                      out.embeddings.float().cpu().numpy())


def predict_scene(model: torch.nn.Module, scene: Scene, recipe: BottomUpRecipe,
                  device: str | torch.device = "cpu") -> Prediction:
    """Voxelize, run the network, cluster per class (``run_network`` then ``group_instances``).
    Timings (s): network (incl. voxelization), clustering (incl. snapping)."""
    if len(scene) == 0:
        return Prediction(InstanceSet.empty(0), np.zeros(0, np.int64), {"network": 0.0, "cluster": 0.0},
                          np.zeros((0, recipe.embed_dim), np.float32))
    return group_instances(run_network(model, scene, recipe, device), scene, recipe)


def _inputs(path: Path) -> list[Path]:
    """Scene folders / point-cloud files named by ``path``."""
    from ..io.scannet import list_scenes

    if path.is_file():
        return [path]
    if not path.exists():
        raise DataError(path, None, "no such file or folder")
    files = sorted(p for p in path.iterdir() if p.suffix.lower() in (".ply", ".npz"))
    try:
        folders = list_scenes(path)
    except DataError:
        folders = []
    if any(f.resolve() == path.resolve() for f in folders):
        return folders  # a scene folder: its own .ply is the scene, not a second input
    if not folders and not files:
        raise DataError(path, None, "no ScanNet scene folders, .ply or .npz files found")
    return folders + files


KEEP_POINTS = 30_000_000   # inputs read by check_inputs stay in memory up to this many points in all


def check_inputs(sources: list[Path], skip_bad: bool = False,
                 progress: bool = True) -> tuple[list[Path], dict[Path, Scene]]:
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
            scene = read_scene(source, labels=False)
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


def predict_to_folder(inputs: str | os.PathLike, out_dir: str | os.PathLike, checkpoint=None, device: str = "cpu",
                      overrides: Sequence[str] = (), progress: bool = True,
                      save_embeddings: bool = False, skip_bad: bool = False) -> dict:
    """Predict every scene under ``inputs`` into ``out_dir``: the official submission format
    (``<scene>.txt`` + ``predicted_masks/``), ``semantic/<scene>.txt`` (NYU40 per vertex) and
    ``instance_ids/<scene>.txt`` (instance per vertex, 0 = none), and with ``save_embeddings``
    ``embeddings/<scene>.npy`` (float16 [N, D], the network's per-point embeddings, for
    ``pcseg viz --color embedding``). Every input is read once first (``check_inputs``): bad ones stop
    the run before the network runs, or are skipped with ``skip_bad``. A scene's grouping and writing
    run in a second thread while the network runs on the next scene. The folder is written under a
    temporary name and renamed at the end, so a failure never leaves a half-written prediction folder.
    Returns the seconds per stage summed over the scenes (stages overlap) and ``wall``, the seconds
    from the first network run to the last file written."""
    from concurrent.futures import ThreadPoolExecutor

    from ..io import read_scene
    from ..io.atomic import atomic_path
    from .build import resolve_device

    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()) and not (out_dir / MARKER).exists():
        raise DataError(out_dir, None, "exists and is not a pcseg prediction folder; choose another --out")
    device = str(resolve_device(device))  # before any checkpoint is read with it
    sources = _inputs(Path(inputs))
    if checkpoint is not None:
        ckpt = load_checkpoint(checkpoint, map_location=device)
        if ckpt.get("kind") == "maskrcnn2d":  # the 2D baseline: Mask R-CNN per frame, lifted and fused
            from .predict2d import predict2d_to_folder

            return predict2d_to_folder(sources, out_dir, checkpoint, ckpt, device, overrides, progress, MARKER)
    model, recipe = load_model(checkpoint, device, overrides)
    start = time.perf_counter()
    sources, kept = check_inputs(sources, skip_bad, progress)
    totals: dict[str, float] = {"read": time.perf_counter() - start, "network": 0.0, "cluster": 0.0, "write": 0.0}

    def finish(tmp: Path, scene: Scene, out: NetworkOutput | None) -> None:
        pred = predict_scene(model, scene, recipe, device) if out is None else group_instances(out, scene, recipe)
        totals["cluster"] += pred.timings["cluster"]
        begin = time.perf_counter()
        _write_prediction(tmp, scene, pred, save_embeddings)
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
                scene = read_scene(source, labels=False)
                totals["read"] += time.perf_counter() - t
            out = run_network(model, scene, recipe, device) if len(scene) else None
            totals["network"] += out.seconds if out is not None else 0.0
            if pending is not None:
                pending.result()  # one scene in the second thread at a time (raises its error here)
            pending = finisher.submit(finish, tmp, scene, out)
        if pending is not None:
            pending.result()
        totals["wall"] = time.perf_counter() - begin
    return {"scenes": len(sources), **totals}


def _write_prediction(tmp: Path, scene: Scene, pred: Prediction, save_embeddings: bool) -> None:
    from ..io.official import write_instance_ids_txt, write_instance_predictions, write_semantic_txt

    write_instance_predictions(tmp, scene.name, pred.instances)
    write_semantic_txt(tmp / "semantic" / f"{scene.name}.txt", pred.semantic)
    write_instance_ids_txt(tmp / "instance_ids" / f"{scene.name}.txt", pred.instances.to_ids())
    if save_embeddings:
        (tmp / "embeddings").mkdir(exist_ok=True)
        # clipped: an embedding beyond float16 range would become inf
        half = np.clip(pred.embeddings, -65000, 65000).astype(np.float16)
        np.save(tmp / "embeddings" / f"{scene.name}.npy", half)
