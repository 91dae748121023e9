"""Which scene vertices a depth frame sees, and on which pixel: the projection that lifting
reuses for every mask of the frame."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Projection:
    """The vertices one frame sees.

    vertex: IntArray[M] indices (into the scene's points) of the visible vertices, increasing
    pixel:  IntArray[M] flat pixel index ``row * W + col`` of each on the depth grid
    shape:  (H, W) of the depth grid
    """

    vertex: np.ndarray
    pixel: np.ndarray
    shape: tuple[int, int]

    def __len__(self) -> int:
        return self.vertex.shape[0]


def project_points(points: np.ndarray, intrinsic: np.ndarray, pose: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pinhole projection of world points into a camera.

    points: FloatArray[N, 3] world (scan frame); intrinsic: FloatArray[3 or 4, 3 or 4] [[fx,0,cx],[0,fy,cy],..];
    pose: FloatArray[4, 4] camera-to-world (camera x right, y down, z forward).
    Returns (uv FloatArray[N, 2] column, row in pixels with pixel centres at integers, as
    ``pcseg.io.frames.backproject`` uses them; z FloatArray[N] depth along the optical axis, metres).
    """
    pose = np.asarray(pose, np.float64)
    # world -> camera is the inverse of the rigid pose: R^T (p - t)
    cam = (np.asarray(points, np.float64) - pose[:3, 3]) @ pose[:3, :3]
    z = cam[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        u = intrinsic[0, 0] * cam[:, 0] / z + intrinsic[0, 2]
        v = intrinsic[1, 1] * cam[:, 1] / z + intrinsic[1, 2]
    return np.column_stack([u, v]), z


def visible_vertices(points: np.ndarray, depth: np.ndarray, intrinsic: np.ndarray, pose: np.ndarray,
                     tolerance: float = 0.05, relative: float = 0.01, near: float = 0.1) -> Projection:
    """The vertices a frame sees: inside the image, in front of the camera (z > ``near`` metres)
    and depth-consistent, ``|z - depth[pixel]| <= max(tolerance, relative * depth[pixel])``, so a
    vertex hidden behind a nearer surface (or off the measured surface) is not lifted onto that
    surface's mask. Pixels with depth 0 (no measurement) see nothing.

    points: FloatArray[N, 3]; depth: UInt16Array[H, W] millimetres (or FloatArray metres);
    intrinsic: the depth camera's; pose: FloatArray[4, 4] camera-to-world.
    """
    depth = np.asarray(depth)
    h, w = depth.shape
    uv, z = project_points(points, intrinsic, pose)
    col = np.floor(uv[:, 0] + 0.5)  # nearest pixel centre
    row = np.floor(uv[:, 1] + 0.5)
    inside = (z > near) & (col >= 0) & (col < w) & (row >= 0) & (row < h)
    idx = np.flatnonzero(inside)
    pixel = row[idx].astype(np.int64) * w + col[idx].astype(np.int64)
    d = depth.ravel()[pixel].astype(np.float64)
    if depth.dtype.kind in "ui":
        d /= 1000.0
    ok = (d > 0) & (np.abs(z[idx] - d) <= np.maximum(tolerance, relative * d))
    return Projection(idx[ok], pixel[ok], (h, w))
