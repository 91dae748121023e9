"""``pcseg predict`` with a 2D Mask R-CNN checkpoint (kind ``maskrcnn2d``): the network runs on every
valid RGB-D frame of a scene, its masks are thresholded, labelled NYU40, lifted onto the scene's
vertices and fused across views (``lift_and_fuse``) into the same InstanceSet and official
submission files as the 3D pipeline writes."""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from tqdm import tqdm

from ..errors import DataError
from ..runtime import apply_prediction_threads, dense_threads
from ..structures import InstanceSet
from .checkpoint import load_checkpoint, load_model_state
from .config import prediction_recipe
from .recipe2d import PREDICT_KEYS_2D, MaskRCNNRecipe


def load_model2d(path: str | os.PathLike, device: str | torch.device = "cpu", overrides: Sequence[str] = (),
                 ckpt: dict | None = None) -> tuple[torch.nn.Module, MaskRCNNRecipe]:
    """A trained 2D model in eval mode and its recipe (prediction settings may be overridden, e.g.
    ``fuse_score_thresh=0.5``). No pretrained weights are fetched: they are in the checkpoint."""
    from .train2d import build_model2d

    ckpt = ckpt if ckpt is not None else load_checkpoint(path, map_location=device)
    recipe, given = prediction_recipe(MaskRCNNRecipe, dict(ckpt["config"]), overrides, PREDICT_KEYS_2D, f"{path} config")
    apply_prediction_threads(recipe.threads, "threads" in given)
    model = build_model2d(recipe, fetch=False)
    load_model_state(path, model, ckpt["model"])
    return model.to(device).eval(), recipe


def vertex_semantic(instances: InstanceSet) -> np.ndarray:
    """IntArray[N] NYU40 id per vertex: the label of the highest-scoring instance holding it, 0 for none."""
    semantic = np.zeros(instances.num_points, np.int64)
    for k in np.argsort(instances.scores, kind="stable"):  # ascending: the best instance writes last
        semantic[instances.masks[k]] = instances.labels[k]
    return semantic


def predict_scene2d(model: torch.nn.Module, recipe: MaskRCNNRecipe, folder: str | os.PathLike,
                    device: str | torch.device = "cpu", progress: bool = False):
    """(Scene, InstanceSet, timings) of one ScanNet scene folder with ``frames/``.

    timings (seconds): read, network (all frames), frames (count), lift_fuse (projection + lifting + fusion)
    Bad frames are skipped with a ``FrameSkipped`` warning (by FrameDataset, and by lift_and_fuse).
    """
    from ..baseline2d import FrameDataset, FusionConfig, contiguous_to_nyu40, lift_and_fuse
    from ..baseline2d.training import detect
    from ..io import read_scene
    from ..io.frames import RGBDFrame

    folder = Path(folder)
    if not (folder / recipe.frames_dir).is_dir():
        raise DataError(folder, recipe.frames_dir, "missing: the 2D pipeline needs the scene's RGB-D frames "
                        f"({folder / recipe.frames_dir}/, e.g. pcseg data synth --frames N)")
    start = time.perf_counter()
    scene = read_scene(folder, labels=False)
    # FrameDataset checks every frame (pose, depth, sizes, depth on this scene's mesh)
    frames = FrameDataset(folder, frames_dir=recipe.frames_dir, step=recipe.predict_step, require_labels=False)
    read = time.perf_counter() - start
    network = 0.0
    rgbd, predictions, names = [], [], []
    for i in tqdm(range(len(frames)), desc=f"frames {scene.name}", unit="frame", disable=not progress, leave=False):
        sample = frames[i]
        start = time.perf_counter()
        (pred,) = detect(model, [sample], recipe.depth, device, recipe.mask_threshold)
        network += time.perf_counter() - start
        keep = (pred["scores"] >= recipe.fuse_score_thresh) & pred["masks"].any((1, 2))
        predictions.append((pred["masks"][keep], contiguous_to_nyu40(pred["labels"][keep]), pred["scores"][keep]))
        depth_mm = np.round(sample.depth * 1000.0).astype(np.uint16)  # FrameSample holds metres
        rgbd.append(RGBDFrame(sample.image, depth_mm, sample.pose))
        names.append(f"{scene.name} frame {sample.index}")
    stages: dict = {}
    start = time.perf_counter()
    (intrinsics,) = frames.intrinsics.values()  # one scene folder: one camera
    instances = lift_and_fuse(scene, rgbd, intrinsics, predictions,
                              FusionConfig(min_frames=recipe.fuse_min_frames), check_scene=False,
                              frame_names=names, timings=stages)
    lift_fuse = time.perf_counter() - start
    return scene, instances, {"read": read, "network": network, "frames": len(frames), "lift_fuse": lift_fuse,
                              **stages}


def predict2d_to_folder(sources: list[Path], out_dir: Path, checkpoint: str | os.PathLike, ckpt: dict,
                        device: str = "cpu", overrides: Sequence[str] = (),
                        progress: bool = True, marker: str = ".pcseg-predictions") -> dict:
    """Predict every scene folder in ``sources`` into ``out_dir`` (written atomically): the official
    submission format, ``semantic/<scene>.txt`` and ``instance_ids/<scene>.txt``, as the 3D pipeline.
    Returns totals in seconds: read, network, lift_fuse, write, and counts: scenes, frames."""
    from ..io.atomic import atomic_path
    from ..io.official import write_instance_ids_txt, write_instance_predictions, write_semantic_txt

    folders = [s for s in sources if s.is_dir()]
    if len(folders) != len(sources):
        bad = next(s for s in sources if not s.is_dir())
        raise DataError(bad, None, "a 2D checkpoint predicts ScanNet scene folders with RGB-D frames, "
                        "not a bare point cloud")
    model, recipe = load_model2d(checkpoint, device, overrides, ckpt)
    torch.set_num_threads(dense_threads())  # dense convs run on torch's own threads: the number in force
    totals = {"scenes": len(folders), "frames": 0, "read": 0.0, "network": 0.0, "lift_fuse": 0.0, "write": 0.0}
    with atomic_path(out_dir) as tmp:
        tmp.mkdir()
        (tmp / marker).write_text("predictions written by pcseg predict (2D Mask R-CNN, lifted)\n")
        for folder in tqdm(folders, desc="predict", unit="scene", disable=not progress):
            scene, instances, timings = predict_scene2d(model, recipe, folder, device)
            for key in ("read", "network", "frames", "lift_fuse"):
                totals[key] += timings[key]
            start = time.perf_counter()
            write_instance_predictions(tmp, scene.name, instances)
            write_semantic_txt(tmp / "semantic" / f"{scene.name}.txt", vertex_semantic(instances))
            write_instance_ids_txt(tmp / "instance_ids" / f"{scene.name}.txt", instances.to_ids())
            totals["write"] += time.perf_counter() - start
    return totals
