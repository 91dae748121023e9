"""RGB-D frame folders in the layout of ScanNet's ``.sens`` export (docs/scannet-format.md §9),
plus per-pixel label and instance images:

    <folder>/color/<i>.jpg         8-bit RGB jpeg, colour resolution (i = 0, 1, ... not zero-padded)
    <folder>/depth/<i>.png         16-bit png, depth in millimetres, 0 = invalid
    <folder>/pose/<i>.txt          4x4 camera-to-world (camera x right, y down, z forward), 4 rows of '%f'
    <folder>/intrinsic/intrinsic_color.txt, intrinsic_depth.txt    4x4 [[fx,0,cx,0],[0,fy,cy,0],[0,0,1,0],[0,0,0,1]]
    <folder>/intrinsic/extrinsic_color.txt, extrinsic_depth.txt    4x4 (identity for our frames)
    <folder>/label/<i>.png         NYU40 id per depth pixel (0 = none); 8-bit, 16-bit when ids exceed 255
    <folder>/instance/<i>.png      instance id per depth pixel (the scene's objectId + 1; 0 = none)

Frames whose pose has a non-finite value (lost tracking in real scans) are kept as files; readers
that lift frames into 3D should skip them (``RGBDFrame.valid``).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import DataError
from .atomic import atomic_path

MATRICES = ("intrinsic_color", "intrinsic_depth", "extrinsic_color", "extrinsic_depth")


@dataclass
class FrameIntrinsics:
    """The four 4x4 matrices of ``intrinsic/`` (FloatArray[4, 4] each)."""

    intrinsic_color: np.ndarray
    intrinsic_depth: np.ndarray
    extrinsic_color: np.ndarray
    extrinsic_depth: np.ndarray

    @classmethod
    def pinhole(cls, fx: float, fy: float, cx: float, cy: float) -> "FrameIntrinsics":
        """Same pinhole camera for colour and depth, identity extrinsics."""
        k = np.array([[fx, 0, cx, 0], [0, fy, cy, 0], [0, 0, 1, 0], [0, 0, 0, 1]], float)
        return cls(k.copy(), k.copy(), np.eye(4), np.eye(4))


@dataclass
class RGBDFrame:
    """One frame.

    color:    UInt8Array[Hc, Wc, 3]
    depth:    UInt16Array[H, W] millimetres, 0 = invalid
    pose:     FloatArray[4, 4] camera-to-world
    label:    IntArray[H, W] NYU40 id per pixel, or None
    instance: IntArray[H, W] instance id per pixel (0 = none), or None
    """

    color: np.ndarray
    depth: np.ndarray
    pose: np.ndarray
    label: np.ndarray | None = None
    instance: np.ndarray | None = None

    @property
    def valid(self) -> bool:
        return bool(np.all(np.isfinite(self.pose)))


def _write_matrix(path: Path, m: np.ndarray) -> None:
    with open(path, "w") as f:
        np.savetxt(f, np.asarray(m, float).reshape(4, 4), fmt="%f")


def _read_matrix(path: Path) -> np.ndarray:
    try:
        m = np.loadtxt(path, dtype=np.float64, ndmin=2)
    except (OSError, ValueError) as e:
        raise DataError(path, None, f"cannot read a 4x4 matrix ({e})") from None
    if m.shape != (4, 4):
        raise DataError(path, None, f"expected 4 rows of 4 numbers, got shape {m.shape}")
    return m


def _id_png(ids: np.ndarray) -> Image.Image:
    ids = np.asarray(ids)
    if ids.size and (ids.min() < 0 or ids.max() > 65535):
        raise ValueError(f"id image values must lie in 0..65535, got {ids.min()}..{ids.max()}")
    return Image.fromarray(ids.astype(np.uint8 if not ids.size or ids.max() < 256 else np.uint16))


def write_frames(folder: str | os.PathLike, frames: list[RGBDFrame], intrinsics: FrameIntrinsics,
                 jpeg_quality: int = 90) -> Path:
    """Write ``frames`` (frame i -> files named i) and the intrinsics into ``folder``, atomically
    (a failure leaves no folder). An existing ``folder`` is replaced."""
    folder = Path(folder)
    with atomic_path(folder) as tmp:
        for sub in ("color", "depth", "pose", "intrinsic", "label", "instance"):
            (tmp / sub).mkdir(parents=True)
        for name in MATRICES:
            _write_matrix(tmp / "intrinsic" / f"{name}.txt", getattr(intrinsics, name))
        for i, fr in enumerate(frames):
            if fr.depth.dtype != np.uint16 or fr.depth.ndim != 2:
                raise ValueError(f"frame {i}: depth must be a uint16 (H, W) image, got {fr.depth.dtype} {fr.depth.shape}")
            if fr.color.dtype != np.uint8 or fr.color.ndim != 3 or fr.color.shape[2] != 3:
                raise ValueError(f"frame {i}: color must be a uint8 (H, W, 3) image, got {fr.color.dtype} {fr.color.shape}")
            Image.fromarray(fr.color).save(tmp / "color" / f"{i}.jpg", quality=jpeg_quality)
            Image.fromarray(fr.depth).save(tmp / "depth" / f"{i}.png", compress_level=1)
            _write_matrix(tmp / "pose" / f"{i}.txt", fr.pose)
            if fr.label is not None:
                _id_png(fr.label).save(tmp / "label" / f"{i}.png", compress_level=1)
            if fr.instance is not None:
                _id_png(fr.instance).save(tmp / "instance" / f"{i}.png", compress_level=1)
    return folder


def read_intrinsics(folder: str | os.PathLike) -> FrameIntrinsics:
    """The four matrices of ``folder/intrinsic/``."""
    folder = Path(folder)
    return FrameIntrinsics(*(_read_matrix(folder / "intrinsic" / f"{n}.txt") for n in MATRICES))


def frame_indices(folder: str | os.PathLike) -> list[int]:
    """Sorted frame indices found in ``folder/pose/``."""
    pose_dir = Path(folder) / "pose"
    if not pose_dir.is_dir():
        raise DataError(pose_dir, None, "missing: an RGB-D frame folder needs pose/<i>.txt files")
    out = []
    for p in pose_dir.glob("*.txt"):
        if not p.stem.isdigit():
            raise DataError(p, None, "pose file name is not a frame number")
        out.append(int(p.stem))
    return sorted(out)


def _read_image(path: Path, required: bool) -> np.ndarray | None:
    if not path.is_file():
        if required:
            raise DataError(path, None, "missing frame image")
        return None
    try:
        with Image.open(path) as im:
            return np.asarray(im)
    except OSError as e:
        raise DataError(path, None, f"cannot read image ({e})") from None


def read_frame(folder: str | os.PathLike, index: int) -> RGBDFrame:
    """Frame ``index`` of ``folder`` (label and instance are None when their png is absent)."""
    folder = Path(folder)
    color = _read_image(folder / "color" / f"{index}.jpg", True)
    depth = _read_image(folder / "depth" / f"{index}.png", True).astype(np.uint16)
    label = _read_image(folder / "label" / f"{index}.png", False)
    inst = _read_image(folder / "instance" / f"{index}.png", False)
    for name, img in (("label", label), ("instance", inst)):
        if img is not None and img.shape != depth.shape:
            raise DataError(folder / name / f"{index}.png", None,
                            f"size {img.shape} differs from the depth image {depth.shape}")
    return RGBDFrame(color, depth, _read_matrix(folder / "pose" / f"{index}.txt"),
                     None if label is None else label.astype(np.int64),
                     None if inst is None else inst.astype(np.int64))


def read_frames(folder: str | os.PathLike) -> tuple[list[RGBDFrame], FrameIntrinsics]:
    """Every frame of ``folder`` in index order, and the intrinsics."""
    return [read_frame(folder, i) for i in frame_indices(folder)], read_intrinsics(folder)


def backproject(depth: np.ndarray, intrinsic: np.ndarray, pose: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """World points of the valid depth pixels.

    depth: UInt16Array[H, W] mm; intrinsic, pose: FloatArray[4, 4].
    Returns (points FloatArray[M, 3], pixel (row, col) IntArray[M, 2]).
    """
    rows, cols = np.nonzero(depth)
    z = depth[rows, cols].astype(np.float64) / 1000.0
    fx, fy, cx, cy = intrinsic[0, 0], intrinsic[1, 1], intrinsic[0, 2], intrinsic[1, 2]
    cam = np.column_stack([(cols - cx) / fx * z, (rows - cy) / fy * z, z])
    return cam @ pose[:3, :3].T + pose[:3, 3], np.column_stack([rows, cols])
