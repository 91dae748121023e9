"""Which frames are unusable, and the warning that says so. Bad frames are skipped, never fused
silently: every skip is a ``FrameSkipped`` warning naming the frame and the reason."""
from __future__ import annotations

import warnings

import numpy as np


class FrameSkipped(UserWarning):
    """A frame was left out because of bad input (the message says which and why)."""


def warn_skipped(frame: str, reason: str) -> None:
    """Warn that ``frame`` (e.g. 'scene0000_00 frame 7') is skipped because of ``reason``."""
    warnings.warn(f"{frame}: skipped: {reason}", FrameSkipped, stacklevel=3)


def pose_problem(pose: np.ndarray) -> str | None:
    """Why a 4x4 camera-to-world pose is unusable, or None. ScanNet marks lost tracking with -inf."""
    pose = np.asarray(pose, np.float64)
    if pose.shape != (4, 4):
        return f"pose has shape {pose.shape}, expected (4, 4)"
    if not np.all(np.isfinite(pose)):
        return "invalid pose: non-finite values (ScanNet's mark of lost tracking)"
    # '%f' files keep 6 decimals: a rotation is orthonormal to ~1e-5, so 1e-3 only catches garbage
    r = pose[:3, :3]
    if not np.allclose(r @ r.T, np.eye(3), atol=1e-3) or not np.allclose(pose[3], (0, 0, 0, 1), atol=1e-6):
        return "invalid pose: not a rigid camera-to-world transform"
    return None


def depth_agreement(depth: np.ndarray, intrinsic: np.ndarray, pose: np.ndarray, tree, samples: int = 1000,
                    radius: float = 0.1) -> float:
    """Fraction of a frame's depth points (an even sample of ``samples`` valid pixels, back-projected
    with its pose) that lie within ``radius`` metres of a scene vertex. A frame of this scene scores
    high (our synthetic frames: > 0.9); a frame of another scene, or one with a wrong pose, scores low.

    depth: UInt16Array[H, W] millimetres; tree: ``scipy.spatial.cKDTree`` of the scene's points.
    Returns NaN when the depth image has no valid pixel.
    """
    from ..io.frames import backproject

    rows, cols = np.nonzero(depth)
    if rows.size == 0:
        return float("nan")
    pick = np.linspace(0, rows.size - 1, min(samples, rows.size)).astype(np.int64)
    sub = np.zeros_like(depth)
    sub[rows[pick], cols[pick]] = depth[rows[pick], cols[pick]]
    pts, _ = backproject(sub, intrinsic, pose)
    dist, _ = tree.query(pts, distance_upper_bound=radius)
    return float(np.mean(np.isfinite(dist)))
