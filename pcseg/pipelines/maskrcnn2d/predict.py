"""Predicting with a 2D Mask R-CNN checkpoint (kind ``maskrcnn2d``): the network runs on every valid
RGB-D frame of a scene, its masks are thresholded, labelled NYU40, lifted onto the scene's vertices
and fused across views (``lift_and_fuse``) into the same Prediction the 3D pipeline returns."""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from tqdm import tqdm

from ...engine.checkpoint import load_checkpoint, load_model_state
from ...engine.config import prediction_recipe
from ...errors import DataError
from ...runtime import apply_prediction_threads, dense_threads
from ...structures import InstanceSet, Prediction, Scene
from .recipe import PREDICT_KEYS_2D, MaskRCNNRecipe


def load_model2d(path: str | os.PathLike, device: str | torch.device = "cpu", overrides: Sequence[str] = (),
                 ckpt: dict | None = None) -> tuple[torch.nn.Module, MaskRCNNRecipe]:
    """A trained 2D model in eval mode and its recipe (prediction settings may be overridden, e.g.
    ``fuse_score_thresh=0.5``). No pretrained weights are fetched: they are in the checkpoint."""
    from .training import build_model2d

    ckpt = ckpt if ckpt is not None else load_checkpoint(path, map_location=device)
    recipe, given = prediction_recipe(MaskRCNNRecipe, dict(ckpt["config"]), overrides, PREDICT_KEYS_2D, f"{path} config")
    apply_prediction_threads(recipe.threads, "threads" in given)
    model = build_model2d(recipe, fetch=False)
    load_model_state(path, model, ckpt["model"])
    return model.to(device).eval(), recipe


def vertex_semantic(instances: InstanceSet) -> np.ndarray:
    """IntArray[N] NYU40 id per vertex: the label of the highest-scoring instance holding it, 0 for none."""
    return instances.labels_per_point()


@dataclass
class FrameDetections:
    """The network's part of a scene: the kept detections of every valid frame, with the frames."""

    rgbd: list
    predictions: list
    names: list[str]
    intrinsics: np.ndarray
    read: float           # seconds reading and checking the frames
    network: float        # seconds in the network


def check_frames(folder: Path, recipe: MaskRCNNRecipe) -> None:
    if not (folder / recipe.frames_dir).is_dir():
        raise DataError(folder, recipe.frames_dir, "missing: the 2D pipeline needs the scene's RGB-D frames "
                        f"({folder / recipe.frames_dir}/, e.g. pcseg data synth --frames N)")


def detect_frames(model: torch.nn.Module, recipe: MaskRCNNRecipe, folder: Path, scene_name: str,
                  device: str | torch.device = "cpu", progress: bool = False) -> FrameDetections:
    """Mask R-CNN on every ``predict_step``-th valid frame of the scene folder; bad frames are skipped
    with a ``FrameSkipped`` warning (FrameDataset checks pose, depth, sizes, depth on the mesh)."""
    from ...baseline2d import FrameDataset, contiguous_to_nyu40
    from ...baseline2d.training import detect
    from ...io.frames import RGBDFrame

    check_frames(folder, recipe)
    start = time.perf_counter()
    frames = FrameDataset(folder, frames_dir=recipe.frames_dir, step=recipe.predict_step, require_labels=False)
    read = time.perf_counter() - start
    network = 0.0
    rgbd, predictions, names = [], [], []
    for i in tqdm(range(len(frames)), desc=f"frames {scene_name}", unit="frame", disable=not progress, leave=False):
        sample = frames[i]
        start = time.perf_counter()
        (pred,) = detect(model, [sample], recipe.depth, device, recipe.mask_threshold)
        network += time.perf_counter() - start
        keep = (pred["scores"] >= recipe.fuse_score_thresh) & pred["masks"].any((1, 2))
        predictions.append((pred["masks"][keep], contiguous_to_nyu40(pred["labels"][keep]), pred["scores"][keep]))
        depth_mm = np.round(sample.depth * 1000.0).astype(np.uint16)  # FrameSample holds metres
        rgbd.append(RGBDFrame(sample.image, depth_mm, sample.pose))
        names.append(f"{scene_name} frame {sample.index}")
    (intrinsics,) = frames.intrinsics.values()  # one scene folder: one camera
    return FrameDetections(rgbd, predictions, names, intrinsics, read, network)


def fuse(scene: Scene, detections: FrameDetections, recipe: MaskRCNNRecipe) -> Prediction:
    """The frames' masks lifted onto the scene's vertices and fused across views; timings (s): read
    (the frames), network, frames (count), lift_fuse (projection + lifting + fusion) and its stages."""
    from ...baseline2d import FusionConfig, lift_and_fuse

    stages: dict = {}
    start = time.perf_counter()
    instances = lift_and_fuse(scene, detections.rgbd, detections.intrinsics, detections.predictions,
                              FusionConfig(min_frames=recipe.fuse_min_frames), check_scene=False,
                              frame_names=detections.names, timings=stages)
    lift_fuse = time.perf_counter() - start
    return Prediction(instances, vertex_semantic(instances),
                      {"read": detections.read, "network": detections.network, "frames": len(detections.names),
                       "lift_fuse": lift_fuse, **stages})


def predict_scene2d(model: torch.nn.Module, recipe: MaskRCNNRecipe, folder: str | os.PathLike,
                    device: str | torch.device = "cpu", progress: bool = False) -> tuple[Scene, Prediction]:
    """(Scene, Prediction) of one ScanNet scene folder with ``frames/`` (see ``fuse`` for the timings;
    read includes reading the scene)."""
    from ...io import read_scene

    folder = Path(folder)
    check_frames(folder, recipe)
    start = time.perf_counter()
    scene = read_scene(folder, labels=False)
    read = time.perf_counter() - start
    pred = fuse(scene, detect_frames(model, recipe, folder, scene.name, device, progress), recipe)
    pred.timings["read"] += read
    return scene, pred


class MaskRCNNPredictor:
    """The engine's ``Predictor`` for a 2D checkpoint: scene folders with RGB-D frames."""

    segment_snap = 0.0  # fusion keeps the segments its masks mostly cover (FusionConfig.segment_vote)
    superpoints = False
    tile_size = tile_overlap = 0.0  # frames, not a floor plan

    def __init__(self, ckpt: dict, path: Path, device: str, overrides: Sequence[str] = ()):
        self.device, self.train_seconds = device, ckpt.get("train_seconds")
        self.model, self.recipe = load_model2d(path, device, overrides, ckpt)
        self.min_size = 1
        torch.set_num_threads(dense_threads())  # dense convs run on torch's own threads: the number in force

    def check(self, sources: Sequence[Path]) -> None:
        bad = next((s for s in sources if not s.is_dir()), None)
        if bad is not None:
            raise DataError(bad, None, "a 2D checkpoint predicts ScanNet scene folders with RGB-D frames, "
                            "not a bare point cloud")

    def network(self, scene: Scene, source: Path) -> FrameDetections:
        return detect_frames(self.model, self.recipe, Path(source), scene.name, self.device)

    def finish(self, scene: Scene, output: FrameDetections) -> Prediction:
        return fuse(scene, output, self.recipe)
