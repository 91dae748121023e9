"""Datasets of scenes and the collate function that packs them into the model's Batch.

    ds = SceneDataset("data/scannet", split="train", augment=Augmentation())
    loader = DataLoader(ds, batch_size=4, shuffle=True, num_workers=4, collate_fn=collate)
    for epoch in range(n):
        ds.set_epoch(epoch)          # (sampler.set_epoch too, under DistributedSampler)
        for batch in loader: ...

Augmentation randomness is drawn from ``np.random.default_rng([seed, epoch, index])``: the same
scene gets the same augmentation for a given (seed, epoch, index), whichever worker or rank loads
it. Workers receive a copy of the dataset when an epoch's iterator starts, so with
``persistent_workers=True`` a later ``set_epoch`` does not reach them.

Reading a ScanNet scene folder parses the PLY and two JSON files; SceneDataset therefore caches
each scene once as ``<cache_dir>/<sceneId>.npz`` (points, colors, semantic, instance, segments, name,
axis_alignment), written atomically and rebuilt when the mtime or size of any source file (the
scene's files or the labels tsv) changes. The cache keeps no mesh faces or segment groups.
"""
from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import DataError
from ..io import read_scene
from ..io.atomic import atomic_path
from ..io.scannet import find_labels_tsv, list_scenes, read_scannet_scene, read_split, scene_files
from ..labels import IGNORE, INSTANCE_IDS, nyu40_to_semantic20
from ..structures import Batch, Scene
from .augment import Augmentation
from .voxelize import FLOOR_PERCENTILE

CACHE_VERSION = 2  # 2: segments kept
CACHE_DIR_NAME = ".pcseg_cache"


class _AugmentedScenes(Dataset):
    """Shared part: the augmentation seeded per (seed, epoch, index). Subclasses define
    ``__len__`` and ``load(index) -> Scene`` (the scene before augmentation)."""

    def __init__(self, augment: Augmentation | None, seed: int) -> None:
        if augment is not None and not isinstance(augment, Augmentation):
            raise TypeError(f"augment: expected an Augmentation or None, got {type(augment).__name__}")
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed: expected an integer >= 0, got {seed!r}")
        self.augment = augment
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose augmentations ``__getitem__`` draws."""
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
            raise ValueError(f"set_epoch: expected an integer >= 0, got {epoch!r}")
        self.epoch = epoch

    def rng(self, index: int) -> np.random.Generator:
        """The generator that augments scene ``index`` in the current epoch."""
        return np.random.default_rng([self.seed, self.epoch, index])

    def __getitem__(self, index: int) -> Scene:
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"{type(self).__name__}: index {index} out of range for {n} scenes")
        index %= n
        scene = self.load(index)
        return scene if self.augment is None else self.augment(scene, self.rng(index))


class SceneDataset(_AugmentedScenes):
    """The scenes of a ScanNet-format dataset (``root/scans/<sceneId>/``).

    root:       dataset root (holding ``scans/`` and the ``scannetv2_<split>.txt`` files), a folder of
                scene folders, or one scene folder.
    split:      which ``scannetv2_<split>.txt`` lists the scenes (in its order); None = every scene
                folder. A missing split file falls back to every scene, with a warning.
    subset:     folder of scene folders under root; default ``scans_test`` for split "test", else ``scans``.
    labels_tsv: ``scannetv2-labels.combined.tsv``; default: found beside ``scans/``.
    cache_dir:  where the ``.npz`` cache goes; default ``<root>/.pcseg_cache``.
    augment:    applied in ``__getitem__`` when given.
    align:      apply each scene's axis alignment (from its meta txt) before augmenting.
    seed:       augmentation seed (>= 0).

    ``dataset[i]`` is a Scene: NYU40 semantic ids and instance ids, as read (``collate`` maps them).
    """

    def __init__(self, root: str | os.PathLike, split: str | None = "train",
                 labels_tsv: str | os.PathLike | None = None, cache_dir: str | os.PathLike | None = None,
                 augment: Augmentation | None = None, seed: int = 0, subset: str | None = None,
                 align: bool = False) -> None:
        super().__init__(augment, seed)
        self.root = Path(root)
        self.labels_tsv = None if labels_tsv is None else Path(labels_tsv)
        self.cache_dir = self.root / CACHE_DIR_NAME if cache_dir is None else Path(cache_dir)
        self.align = align
        subset = subset if subset is not None else ("scans_test" if split == "test" else "scans")
        folders = list_scenes(self.root, subset)
        by_name = {f.name: f for f in folders}
        if split is None:
            self.folders = folders
        else:
            try:
                ids = read_split(self.root, split)
            except DataError as e:
                if e.problem != "split file not found":
                    raise
                warnings.warn(f"{e.path}: split file not found; using all {len(folders)} scenes under "
                              f"{folders[0].parent}", stacklevel=2)
                ids = list(by_name)
            missing = [sid for sid in ids if sid not in by_name]
            if missing:
                raise DataError(self.root, f"split {split!r}", f"{len(missing)} listed scenes have no folder under "
                                f"{folders[0].parent}: {missing[:5]}{' ...' if len(missing) > 5 else ''}")
            self.folders = [by_name[sid] for sid in ids]
        self._cache_warned = False

    def __len__(self) -> int:
        return len(self.folders)

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.folders]

    def cache_path(self, index: int) -> Path:
        return self.cache_dir / f"{self.folders[index].name}.npz"

    def _sources(self, folder: Path) -> list[list]:
        """[path, mtime_ns, size] of every file the scene is built from (the tsv included)."""
        files = [p for p in scene_files(folder, folder.name).values() if p.is_file()]
        if not files:  # the mesh is named differently from its folder: let the reader find it
            files = sorted(folder.glob("*"))
        tsv = self.labels_tsv if self.labels_tsv is not None else find_labels_tsv(folder)
        if tsv is not None and tsv.is_file():
            files.append(tsv)
        out = []
        for p in files:
            st = p.stat()
            out.append([str(p.resolve()), st.st_mtime_ns, st.st_size])
        return out

    def _read_cache(self, path: Path, signature: str) -> Scene | None:
        try:
            with np.load(path, allow_pickle=False) as z:
                if int(z["version"]) != CACHE_VERSION or str(z["source"]) != signature:
                    return None
                axis = z["axis_alignment"] if "axis_alignment" in z.files else None
                return Scene(points=z["points"], colors=z["colors"],
                             semantic=z["semantic"] if "semantic" in z.files else None,
                             instance=z["instance"] if "instance" in z.files else None,
                             segments=z["segments"] if "segments" in z.files else None,
                             name=str(z["name"]), axis_alignment=axis)
        except FileNotFoundError:
            return None
        except Exception as e:  # a corrupt or foreign cache file is rebuilt, never trusted
            warnings.warn(f"{path}: unreadable cache file ({type(e).__name__}: {e}); rebuilding it", stacklevel=3)
            return None

    def _write_cache(self, path: Path, scene: Scene, signature: str) -> None:
        arrays = {"version": np.int64(CACHE_VERSION), "source": np.str_(signature), "name": np.str_(scene.name),
                  "points": scene.points, "colors": scene.colors}
        for key in ("semantic", "instance", "segments", "axis_alignment"):
            if getattr(scene, key) is not None:
                arrays[key] = getattr(scene, key)
        try:
            with atomic_path(path) as tmp, open(tmp, "wb") as f:
                np.savez(f, **arrays)
        except OSError as e:
            if not self._cache_warned:
                warnings.warn(f"{path}: cannot write the scene cache ({e}); reading source files every time",
                              stacklevel=3)
                self._cache_warned = True

    def load(self, index: int) -> Scene:
        """Scene ``index`` without augmentation, from the cache when it is up to date."""
        folder = self.folders[index]
        signature = json.dumps(self._sources(folder))
        path = self.cache_path(index)
        scene = self._read_cache(path, signature)
        if scene is None:
            full = read_scannet_scene(folder, self.labels_tsv)
            scene = Scene(points=full.points, colors=full.colors, semantic=full.semantic, instance=full.instance,
                          segments=full.segments, name=full.name, axis_alignment=full.axis_alignment)
            self._write_cache(path, scene, signature)
        return scene.aligned() if self.align else scene


class PointCloudFiles(_AugmentedScenes):
    """Scenes from a list of plain ``.ply`` / ``.npz`` files (or ScanNet scene folders), read with
    ``pcseg.io.read_scene`` on every access (no cache)."""

    def __init__(self, paths: Sequence[str | os.PathLike], labels_tsv: str | os.PathLike | None = None,
                 augment: Augmentation | None = None, seed: int = 0) -> None:
        super().__init__(augment, seed)
        if isinstance(paths, (str, os.PathLike)):
            raise TypeError("PointCloudFiles: expected a list of paths, got a single path")
        self.paths = [Path(p) for p in paths]
        self.labels_tsv = labels_tsv
        for p in self.paths:
            if not p.exists():
                raise DataError(p, None, "no such file or folder")

    def __len__(self) -> int:
        return len(self.paths)

    def load(self, index: int) -> Scene:
        return read_scene(self.paths[index], self.labels_tsv)


def feature_channels(height: bool = False) -> int:
    """Number of input feature channels ``collate`` produces: 3 (colours), 4 with height."""
    return 4 if height else 3


def training_labels(scene: Scene) -> tuple[np.ndarray, np.ndarray]:
    """(semantic, instance) IntArray[N] each, in the model's label spaces.

    semantic: ScanNet20 index 0..19, IGNORE (-1) for unannotated and non-benchmark classes.
    instance: the scene's instance id where the point's class is one of the 18 instance classes
              and the id is >= 1, else -1 (wall, floor, other classes, unannotated).
    """
    semantic = nyu40_to_semantic20(scene.semantic)
    is_thing = np.isin(scene.semantic, np.asarray(INSTANCE_IDS)) & (scene.instance >= 1)
    return semantic, np.where(is_thing, scene.instance, IGNORE)


def semantic_point_counts(dataset: "SceneDataset | PointCloudFiles", num_classes: int = 20) -> np.ndarray:
    """IntArray[num_classes]: how many points of each ScanNet20 class the dataset's scenes hold
    (before augmentation; unlabelled scenes count nothing)."""
    counts = np.zeros(num_classes, dtype=np.int64)
    for i in range(len(dataset)):
        scene = dataset.load(i)
        if scene.has_labels:
            semantic, _ = training_labels(scene)
            counts += np.bincount(semantic[semantic >= 0], minlength=num_classes)[:num_classes]
    return counts


def instance_sizes(dataset: "SceneDataset | PointCloudFiles", num_classes: int = 20) -> list[list[float]]:
    """Per ScanNet20 class, the bounding-box diagonals (metres) of the dataset's instances, an
    instance's class being its points' majority label."""
    sizes: list[list[float]] = [[] for _ in range(num_classes)]
    for i in range(len(dataset)):
        scene = dataset.load(i)
        if not scene.has_labels:
            continue
        semantic, instance = training_labels(scene)
        for k in np.unique(instance[instance >= 0]):
            mask = instance == k
            labels = semantic[mask]
            labels = labels[labels >= 0]
            if labels.size:
                extent = np.ptp(scene.points[mask], axis=0)
                sizes[int(np.bincount(labels).argmax())].append(float(np.linalg.norm(extent)))
    return sizes


def floor_level(z: np.ndarray) -> float:
    """The floor's height in a scan: the 1st percentile of the points' z, not the minimum, which a real
    scan's few stray points below the floor (reflections, noise) would set."""
    return float(np.percentile(z, FLOOR_PERCENTILE)) if len(z) else 0.0


# The mean colour of a standard synthetic room (the mean of the per-room mean colours of 100 of the
# 400 training rooms of seed 0): what the shipped models saw, and what ``balance_colors`` moves a scan to.
REFERENCE_COLOR = (0.576, 0.555, 0.520)
MAX_COLOR_GAIN = 4.0


def balance_colors(colors: np.ndarray, reference: Sequence[float] = REFERENCE_COLOR) -> np.ndarray:
    """FloatArray[N, 3] colours with each channel scaled so that the scene's mean colour is ``reference``
    (a per-scene white balance and exposure correction: a scan darker or warmer than the training rooms,
    as real scans are, is moved back to their colours; a per-channel gain of the input gives the same
    result), clipped to 0..1. Gains are capped at ``MAX_COLOR_GAIN`` (a nearly black channel stays dark).
    A scan of one colour (a cloud without colours, read as grey) is left as it is: that grey is what
    the models' colourless training scenes had."""
    colors = np.asarray(colors, np.float32)
    if len(colors) == 0 or not np.ptp(colors, axis=0).any():
        return colors
    mean = colors.mean(0, dtype=np.float64)
    gain = np.minimum(np.asarray(reference, np.float64) / np.maximum(mean, 1e-6), MAX_COLOR_GAIN)
    return np.clip(colors * gain.astype(np.float32), 0.0, 1.0)


def collate(scenes: Sequence[Scene], height: bool = False, color_reference: Sequence[float] | None = None) -> Batch:
    """Pack scenes into the model's Batch.

    features: FloatTensor[M, 3] colours in 0..1 (with ``color_reference``, each scene's colours through
              ``balance_colors`` to that mean colour), plus with ``height=True`` a 4th channel, the
              height above the scene's floor level (``floor_level``, metres).
    semantic, instance: from ``training_labels`` (None unless every scene is labelled).
    Instance ids stay per scene (not made unique across the batch): keep scenes apart by batch index.
    Use ``functools.partial(collate, height=True)`` as a DataLoader ``collate_fn`` for the height channel.
    """
    scenes = list(scenes)
    if not scenes:
        raise ValueError("collate: no scenes")
    for s in scenes:
        if not isinstance(s, Scene):
            raise TypeError(f"collate: expected Scenes, got {type(s).__name__}")
    feats = []
    for s in scenes:
        f = s.colors if color_reference is None else balance_colors(s.colors, color_reference)
        if height:
            z = s.points[:, 2:3]
            f = np.concatenate([f, z - floor_level(z)], 1)
        feats.append(f)
    counts = torch.tensor([len(s) for s in scenes], dtype=torch.long)

    def cat(arrays, dtype):
        return torch.from_numpy(np.concatenate(arrays)).to(dtype)

    semantic = instance = None
    if all(s.has_labels for s in scenes):
        labels = [training_labels(s) for s in scenes]
        semantic = cat([sem for sem, _ in labels], torch.long)
        instance = cat([inst for _, inst in labels], torch.long)
    return Batch(points=cat([s.points for s in scenes], torch.float32), features=cat(feats, torch.float32),
                 offset=torch.cumsum(counts, 0), semantic=semantic, instance=instance,
                 names=tuple(s.name for s in scenes))


def input_batch(scenes: Sequence[Scene], recipe, training: bool = False) -> Batch:
    """The network's input Batch for ``scenes`` as a recipe's model reads them: its ``height_feature``
    channel; in training with the scenes' labels and colours as they are (its random colour casts teach
    what a balance cannot fix: one 15-minute fine-tune each way, predicted balanced, AP 0.761 / 0.760 /
    0.717 on the validation, seed 4 and shifted rooms trained as read, 0.757 / 0.756 / 0.709 trained
    balanced); at prediction (validation, pictures) without labels, colours through its
    ``color_reference`` balance."""
    if training:
        return collate(scenes, height=recipe.height_feature)
    unlabelled = [Scene(s.points, s.colors, name=s.name) for s in scenes]
    return collate(unlabelled, height=recipe.height_feature, color_reference=recipe.color_reference or None)
