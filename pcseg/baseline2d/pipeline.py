"""``lift_and_fuse``: per-frame 2D instance predictions -> one 3D InstanceSet over a scene's vertices."""
from __future__ import annotations

import time
from typing import Sequence

import numpy as np

from ..io.frames import FrameIntrinsics, RGBDFrame
from ..structures import InstanceSet, Scene
from .checks import depth_agreement, pose_problem, warn_skipped
from .fusion import FusionConfig, LiftedMask, fuse
from .lift import lift_masks
from .project import visible_vertices

MIN_AGREEMENT = 0.5  # fraction of a frame's depth points near the mesh below which it is not this scene's


def check_frame(frame: RGBDFrame, tree=None, intrinsic: np.ndarray | None = None,
                grid: tuple[int, int] | None = None) -> str | None:
    """Why ``frame`` cannot be lifted, or None: invalid pose, no valid depth, predictions on another
    grid than the depth image (``grid``), or (with the scene's KD-tree) depth that does not lie on
    the scene's mesh (a frame of another scene)."""
    problem = pose_problem(frame.pose)
    if problem:
        return problem
    depth = frame.depth
    if depth is None or depth.ndim != 2:
        return "missing depth image"
    if not np.any(depth):
        return "depth image has no valid pixel"
    if grid is not None and tuple(grid) != depth.shape:
        return f"masks are {grid[1]}x{grid[0]} but the depth image is {depth.shape[1]}x{depth.shape[0]}"
    if tree is not None:
        agree = depth_agreement(depth, intrinsic, frame.pose, tree)
        if agree < MIN_AGREEMENT:
            return (f"only {agree:.0%} of its depth points lie within 10 cm of the scene's mesh "
                    "(a frame of another scene, or a wrong pose)")
    return None


def _intrinsic(intrinsics) -> np.ndarray:
    k = intrinsics.intrinsic_depth if isinstance(intrinsics, FrameIntrinsics) else np.asarray(intrinsics, np.float64)
    if k.shape not in ((3, 3), (4, 4)) or not np.all(np.isfinite(k)) or k[0, 0] <= 0 or k[1, 1] <= 0:
        raise ValueError(f"lift_and_fuse: expected a depth intrinsic matrix [[fx,0,cx],[0,fy,cy],...], got {k!r}")
    return k


def lift_and_fuse(scene: Scene, frames: Sequence[RGBDFrame], intrinsics: FrameIntrinsics | np.ndarray,
                  predictions: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]],
                  config: FusionConfig | None = None, check_scene: bool = True,
                  frame_names: Sequence[str] | None = None, timings: dict | None = None) -> InstanceSet:
    """Lift every frame's predicted masks onto ``scene``'s vertices and fuse them across views.

    frames:      the scene's RGB-D frames (depth UInt16Array[H, W] mm, pose camera-to-world)
    intrinsics:  FrameIntrinsics (its ``intrinsic_depth`` is used) or the depth camera's matrix
    predictions: one (masks BoolArray[K, H, W] on the depth grid, labels IntArray[K] NYU40,
                 scores FloatArray[K]) per frame
    check_scene: skip frames whose depth does not lie on the scene's mesh (costs a KD-tree)
    frame_names: names used in warnings (default '<scene> frame <i>')
    timings:     if given, filled with seconds per stage: projection, lifting, fusion
    Bad frames are skipped with a ``FrameSkipped`` warning naming the frame and the reason.
    """
    cfg = config or FusionConfig()
    if len(predictions) != len(frames):
        raise ValueError(f"lift_and_fuse: {len(predictions)} predictions for {len(frames)} frames")
    k = _intrinsic(intrinsics)
    names = list(frame_names) if frame_names is not None else [f"{scene.name} frame {i}" for i in range(len(frames))]
    t0 = time.perf_counter()
    tree = None
    if check_scene:
        from scipy.spatial import cKDTree

        tree = cKDTree(scene.points)
    projections, kept = [], []
    for i, (frame, pred) in enumerate(zip(frames, predictions)):
        masks = np.asarray(pred[0])
        if masks.ndim != 3:
            raise ValueError(f"lift_and_fuse: {names[i]}: masks must be (K, H, W), got shape {masks.shape}")
        problem = check_frame(frame, tree, k, masks.shape[1:])
        if problem:
            warn_skipped(names[i], problem)
            continue
        projections.append(visible_vertices(scene.points, frame.depth, k, frame.pose, cfg.tolerance, cfg.relative))
        kept.append(i)
    t1 = time.perf_counter()
    visible = np.zeros((len(kept), len(scene)), bool)
    lifted: list[LiftedMask] = []
    for row, (i, proj) in enumerate(zip(kept, projections)):
        visible[row, proj.vertex] = True
        masks, labels, scores = (np.asarray(a) for a in predictions[i])
        if not (len(masks) == len(labels) == len(scores)):
            raise ValueError(f"lift_and_fuse: {names[i]}: {len(masks)} masks, {len(labels)} labels, "
                             f"{len(scores)} scores")
        for verts, label, score in zip(lift_masks(proj, masks), labels, scores):
            lifted.append(LiftedMask(verts, int(label), float(score), row))
    t2 = time.perf_counter()
    result = fuse(lifted, visible, cfg, scene.segments, scene.points)
    if timings is not None:
        timings.update(projection=t1 - t0, lifting=t2 - t1, fusion=time.perf_counter() - t2)
    return result
