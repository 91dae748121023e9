"""FrameDataset: the RGB-D frames of a ScanNet-layout dataset (``scans/<id>/frames/``, layout of
``pcseg.io.frames``: our synthetic frames and real ScanNet ``.sens`` exports alike), one detection
sample per frame.

Every frame is checked when the dataset is built; a bad one is skipped with a ``FrameSkipped``
warning naming the scene, the frame and the reason:
* missing depth or colour image (or label/instance image when labels are required);
* invalid pose: unreadable, non-finite (ScanNet's lost tracking) or not rigid;
* mismatched resolution. Colour and depth may differ (ScanNet: 1296x968 and 640x480, each with its
  own intrinsics; the colour is resampled onto the depth grid). What must hold: the depth image has
  the scene's depth size and the colour image the scene's colour size (``depthWidth``/
  ``depthHeight``/``colorWidth``/``colorHeight`` of ``<id>.txt``, else the most common size among
  the scene's frames), and the label and instance images have the depth image's size. A scene whose
  intrinsic_depth puts the principal point outside its depth image is skipped as a whole;
* depth with no valid pixel;
* a frame of another scene: fewer than half of its back-projected depth points lie within 10 cm of
  the scene's mesh vertices (``check_scene``).
"""
from __future__ import annotations

import os
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from ..errors import DataError
from ..io.frames import FrameIntrinsics, _read_matrix, frame_indices, read_frame, read_intrinsics
from ..io.plain import load_ply
from ..io.scannet import list_scenes, read_meta, read_split, scene_files
from .align import on_depth_grid
from .checks import depth_agreement, pose_problem, warn_skipped
from .pipeline import MIN_AGREEMENT
from .targets import FrameTargets, frame_targets


@dataclass
class FrameSample:
    """One frame, everything on the depth grid (H, W).

    image:     UInt8Array[H, W, 3] colour resampled onto the depth grid
    depth:     FloatArray[H, W] metres, 0 = invalid
    pose:      FloatArray[4, 4] camera-to-world (scan frame)
    intrinsic: FloatArray[3, 3] the depth camera (also the camera of ``image``)
    targets:   the frame's benchmark-class instances, or None when the dataset has no labels
    """

    scene: str
    index: int
    image: np.ndarray
    depth: np.ndarray
    pose: np.ndarray
    intrinsic: np.ndarray
    targets: FrameTargets | None

    def to_torch(self):
        """(FloatTensor[3, H, W] image in 0..1, target dict or None) as torchvision's detection models take them."""
        import torch

        image = torch.from_numpy(self.image.copy()).permute(2, 0, 1).float().div_(255.0)
        return image, None if self.targets is None else self.targets.to_torch()


@dataclass(frozen=True)
class _Record:
    scene: str
    folder: Path
    index: int


def _size(path: Path) -> tuple[int, int] | None:
    """(H, W) of an image from its header, None when unreadable."""
    try:
        with Image.open(path) as im:
            return im.size[1], im.size[0]
    except OSError:
        return None


def _meta_size(meta: dict, kind: str) -> tuple[int, int] | None:
    try:
        return int(meta[f"{kind}Height"]), int(meta[f"{kind}Width"])
    except (KeyError, ValueError):
        return None


def _wxh(shape) -> str:
    return f"{shape[1]}x{shape[0]}"


class FrameDataset:
    """Frames of every scene of ``root`` (a dataset root with ``scans/``, a folder of scene folders
    or one scene folder) that have a ``frames_dir`` folder.

    split:          only scenes of ``scannetv2_<split>.txt``
    step:           every ``step``-th frame (ScanNet scans have thousands of near-duplicate frames)
    require_labels: frames need label/ and instance/ images (training); False for prediction
    check_scene:    skip frames whose depth does not lie on the scene's mesh
    min_area:       instances of fewer pixels are not targets
    """

    def __init__(self, root: str | os.PathLike, split: str | None = None, frames_dir: str = "frames", step: int = 1,
                 require_labels: bool = True, check_scene: bool = True, min_area: int = 1, progress: bool = False):
        if isinstance(step, bool) or not isinstance(step, int) or step < 1:
            raise ValueError(f"FrameDataset: step must be an integer >= 1, got {step!r}")
        self.root = Path(root)
        self.require_labels = require_labels
        self.min_area = min_area
        folders = list_scenes(self.root)
        if split is not None:
            wanted = set(read_split(self.root, split))
            folders = [f for f in folders if f.name in wanted]
        self.intrinsics: dict[str, FrameIntrinsics] = {}
        self.records: list[_Record] = []
        for folder in tqdm(folders, desc="index frames", unit="scene", disable=not progress):
            frames = folder / frames_dir
            if not frames.is_dir():
                warnings.warn(f"{folder}: no {frames_dir}/ folder: the scene has no frames", stacklevel=2)
                continue
            self._index_scene(folder, frames, step, check_scene)
        if not self.records:
            raise DataError(self.root, None, f"no usable RGB-D frames found (looked for scans/<id>/{frames_dir}/)")

    def _index_scene(self, folder: Path, frames: Path, step: int, check_scene: bool) -> None:
        scene_id = folder.name
        intr = read_intrinsics(frames)
        indices = frame_indices(frames)[::step]
        files = scene_files(folder, scene_id)
        meta = read_meta(files["meta"])[0] if files["meta"].is_file() else {}
        sizes = {kind: {i: _size(frames / kind / f"{i}.{ext}") for i in indices
                        if (frames / kind / f"{i}.{ext}").is_file()}
                 for kind, ext in (("depth", "png"), ("color", "jpg"), ("label", "png"), ("instance", "png"))}
        expect = {}
        for kind, meta_kind in (("depth", "depth"), ("color", "color")):
            expect[kind] = _meta_size(meta, meta_kind)
            if expect[kind] is None:
                common = Counter(s for s in sizes[kind].values() if s is not None).most_common(1)
                expect[kind] = common[0][0] if common else None
        for kind, k in (("depth", intr.intrinsic_depth), ("color", intr.intrinsic_color)):
            h, w = expect[kind] or (0, 0)
            if expect[kind] is not None and not (0 <= k[0, 2] < w and 0 <= k[1, 2] < h):
                warn_skipped(f"{scene_id} (all frames)",
                             f"intrinsic_{kind}'s principal point ({k[0, 2]:g}, {k[1, 2]:g}) lies outside the "
                             f"{_wxh(expect[kind])} {kind} image: intrinsics of another resolution")
                return
        if not np.allclose(intr.extrinsic_color, intr.extrinsic_depth, atol=1e-4):
            warnings.warn(f"{frames / 'intrinsic'}: extrinsic_color differs from extrinsic_depth; colour is "
                          "mapped onto the depth grid as if the two cameras shared a centre", stacklevel=3)
        tree = None
        if check_scene:
            from scipy.spatial import cKDTree

            vertex, _ = load_ply(files["ply"])
            tree = cKDTree(np.stack([vertex[c] for c in "xyz"], 1).astype(np.float64))
        for i in indices:
            problem = self._frame_problem(frames, i, sizes, expect, intr, tree)
            if problem:
                warn_skipped(f"{scene_id} frame {i}", problem)
            else:
                self.records.append(_Record(scene_id, frames, i))
        self.intrinsics[scene_id] = intr

    def _frame_problem(self, frames: Path, i: int, sizes: dict, expect: dict, intr: FrameIntrinsics,
                       tree) -> str | None:
        try:
            pose = _read_matrix(frames / "pose" / f"{i}.txt")
        except DataError as e:
            return f"invalid pose: {e}"
        problem = pose_problem(pose)
        if problem:
            return f"{problem} in pose/{i}.txt"
        needed = (("depth", "png"), ("color", "jpg")) + ((("label", "png"), ("instance", "png"))
                                                         if self.require_labels else ())
        for kind, ext in needed:
            if i not in sizes[kind]:
                return f"missing {kind} image {kind}/{i}.{ext}"
            if sizes[kind][i] is None:
                return f"unreadable {kind} image {kind}/{i}.{ext}"
        depth_size = sizes["depth"][i]
        if depth_size != expect["depth"]:
            return f"depth image is {_wxh(depth_size)} but the scene's depth size is {_wxh(expect['depth'])}"
        if sizes["color"][i] != expect["color"]:
            return f"colour image is {_wxh(sizes['color'][i])} but the scene's colour size is {_wxh(expect['color'])}"
        for kind in ("label", "instance"):
            if sizes[kind].get(i) not in (None, depth_size):
                return f"{kind} image is {_wxh(sizes[kind][i])} but the depth image is {_wxh(depth_size)}"
        with Image.open(frames / "depth" / f"{i}.png") as im:
            depth = np.asarray(im).astype(np.uint16)
        if not np.any(depth):
            return "depth image has no valid pixel"
        if tree is not None:
            agree = depth_agreement(depth, intr.intrinsic_depth, pose, tree)
            if agree < MIN_AGREEMENT:
                return (f"only {agree:.0%} of its depth points lie within 10 cm of the scene's mesh "
                        "(a frame of another scene, or a wrong pose)")
        return None

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, item: int) -> FrameSample:
        rec = self.records[item]
        frame = read_frame(rec.folder, rec.index)
        intr = self.intrinsics[rec.scene]
        image = on_depth_grid(frame.color, intr.intrinsic_color, intr.intrinsic_depth, frame.depth.shape)
        targets = None
        if frame.label is not None and frame.instance is not None:
            targets = frame_targets(frame.label, frame.instance, self.min_area)
        return FrameSample(rec.scene, rec.index, image, frame.depth.astype(np.float32) / 1000.0, frame.pose,
                           intr.intrinsic_depth[:3, :3].copy(), targets)

    def color_path(self, item: int) -> Path:
        rec = self.records[item]
        return rec.folder / "color" / f"{rec.index}.jpg"

    def on_depth_grid(self, item: int) -> bool:
        """Whether frame ``item``'s colour image already lies on its depth grid (no resampling)."""
        rec = self.records[item]
        intr = self.intrinsics[rec.scene]
        size = _size(rec.folder / "color" / f"{rec.index}.jpg")
        return (size == _size(rec.folder / "depth" / f"{rec.index}.png")
                and np.allclose(intr.intrinsic_color[:3, :3], intr.intrinsic_depth[:3, :3], atol=1e-6))
