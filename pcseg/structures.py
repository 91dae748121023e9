"""The vocabulary of the library: Scene, InstanceSet, Prediction and Batch.

Data flows files -> Scene -> Batch -> model -> per-point outputs -> Prediction (an InstanceSet and
per-point classes) -> files / evaluator / viewer. Scene and InstanceSet hold numpy arrays (reading, generating and scoring data
needs no torch); Batch holds torch tensors for the model, and imports torch lazily.

Label conventions (see ``pcseg.labels``):
* ``Scene.semantic`` holds NYU40 ids (0 = unannotated), as ScanNet's files do.
* ``Scene.instance`` holds instance ids >= 1 (objectId + 1, as the official helper builds them);
  -1 means "no instance" (unannotated vertices).
* ``InstanceSet.labels`` holds NYU40 ids (the official submission format's class field).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Sequence

import numpy as np

from .ids import nonzero_pairs

if TYPE_CHECKING:  # torch is imported lazily: reading and scoring data does not need it
    import torch


def _check_array(name: str, value, dtype, shape_tail: tuple, n: int | None, owner: str) -> np.ndarray:
    """Cast ``value`` to ``dtype`` and check it is (n, *shape_tail); raise ValueError naming the field."""
    arr = np.asarray(value)
    if arr.ndim != 1 + len(shape_tail) or tuple(arr.shape[1:]) != shape_tail:
        want = "(N" + "".join(f", {s}" for s in shape_tail) + ")"
        raise ValueError(f"{owner}.{name}: expected shape {want}, got {arr.shape}")
    if n is not None and arr.shape[0] != n:
        raise ValueError(f"{owner}.{name}: has {arr.shape[0]} rows but the scene has {n} points")
    if np.issubdtype(np.dtype(dtype), np.integer) and arr.size and not np.issubdtype(arr.dtype, np.integer):
        if arr.dtype == bool or not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)):
            raise ValueError(f"{owner}.{name}: expected integers, got dtype {arr.dtype}")
    return np.ascontiguousarray(arr, dtype=dtype)


@dataclass(frozen=True)
class SegGroup:
    """One annotated object of ``aggregation.json``: a group of over-segments with a raw category."""

    id: int
    object_id: int
    label: str
    segments: tuple[int, ...]


@dataclass
class Scene:
    """One scan.

    points:   FloatArray[N, 3] metres (float32)
    colors:   FloatArray[N, 3] in 0..1 (float32)
    semantic: IntArray[N] NYU40 id per point, 0 = unannotated (int64), or None when unlabelled
    instance: IntArray[N] instance id >= 1 per point, -1 = none (int64), or None when unlabelled
    normals:  FloatArray[N, 3] or None
    faces:    IntArray[F, 3] mesh triangles (int32) or None
    segments: IntArray[N] over-segment id per vertex (ScanNet segs.json) or None
    seg_groups: the aggregation's objects, kept so a ScanNet scene writes back losslessly
    axis_alignment: FloatArray[4, 4] or None (from the scan's meta txt)
    meta: the meta txt's other ``key = value`` lines, in file order
    """

    points: np.ndarray
    colors: np.ndarray | None = None
    semantic: np.ndarray | None = None
    instance: np.ndarray | None = None
    name: str = "scene"
    normals: np.ndarray | None = None
    faces: np.ndarray | None = None
    segments: np.ndarray | None = None
    seg_groups: tuple[SegGroup, ...] | None = None
    axis_alignment: np.ndarray | None = None
    meta: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        owner = f"Scene({self.name!r})"
        self.points = _check_array("points", self.points, np.float32, (3,), None, owner)
        n = self.points.shape[0]
        if not np.all(np.isfinite(self.points)):
            bad = int(np.flatnonzero(~np.isfinite(self.points).all(1))[0])
            raise ValueError(f"{owner}.points: non-finite coordinate at point {bad}")
        if self.colors is None:
            self.colors = np.full((n, 3), 0.5, np.float32)
        self.colors = _check_array("colors", self.colors, np.float32, (3,), n, owner)
        for name in ("semantic", "instance", "segments"):
            value = getattr(self, name)
            if value is not None:
                setattr(self, name, _check_array(name, value, np.int64, (), n, owner))
        if self.normals is not None:
            self.normals = _check_array("normals", self.normals, np.float32, (3,), n, owner)
        if self.faces is not None:
            self.faces = _check_array("faces", self.faces, np.int32, (3,), None, owner)
            if self.faces.size and (self.faces.min() < 0 or self.faces.max() >= n):
                raise ValueError(f"{owner}.faces: vertex index out of range 0..{n - 1}")
        if self.axis_alignment is not None:
            self.axis_alignment = np.asarray(self.axis_alignment, np.float64)
            if self.axis_alignment.shape != (4, 4):
                raise ValueError(f"{owner}.axis_alignment: expected shape (4, 4), got {self.axis_alignment.shape}")

    def __len__(self) -> int:
        return self.points.shape[0]

    @property
    def num_points(self) -> int:
        return self.points.shape[0]

    @property
    def has_labels(self) -> bool:
        return self.semantic is not None and self.instance is not None

    def __getitem__(self, index) -> "Scene":
        """Select points with a boolean mask or an index array. Faces, segments' groups and the
        alignment do not survive a selection (the mesh would no longer match the vertices)."""
        if not isinstance(index, slice):
            index = np.asarray(index)
        if not isinstance(index, slice) and index.dtype == bool and index.shape != (len(self),):
            raise IndexError(f"Scene({self.name!r}): boolean index of shape {index.shape} for {len(self)} points")

        def pick(a):
            return None if a is None else a[index]

        return Scene(points=self.points[index], colors=self.colors[index], semantic=pick(self.semantic),
                     instance=pick(self.instance), name=self.name, normals=pick(self.normals),
                     segments=pick(self.segments), meta=dict(self.meta))

    def aligned(self) -> "Scene":
        """The scene with ``axis_alignment`` applied to its points (and normals)."""
        if self.axis_alignment is None:
            return self
        m = self.axis_alignment
        pts = self.points.astype(np.float64) @ m[:3, :3].T + m[:3, 3]
        nrm = None if self.normals is None else self.normals @ m[:3, :3].T.astype(np.float32)
        return replace(self, points=pts.astype(np.float32), normals=nrm, axis_alignment=None)

    def instance_set(self) -> "InstanceSet":
        """The ground-truth instances of this scene as an InstanceSet (labels = NYU40 ids, scores 1)."""
        if not self.has_labels:
            raise ValueError(f"Scene({self.name!r}) has no semantic/instance labels")
        return InstanceSet.from_ids(self.instance, self.semantic)


@dataclass
class InstanceSet:
    """K instances over the N points of one scene.

    masks:  BoolArray[K, N]
    labels: IntArray[K]  NYU40 id of each instance
    scores: FloatArray[K] confidence used for AP ranking
    """

    masks: np.ndarray
    labels: np.ndarray
    scores: np.ndarray

    def __post_init__(self) -> None:
        masks = np.asarray(self.masks)
        if masks.ndim != 2:
            raise ValueError(f"InstanceSet.masks: expected shape (K, N), got {masks.shape}")
        self.masks = np.ascontiguousarray(masks != 0) if masks.dtype != bool else np.ascontiguousarray(masks)
        self._check_labels_and_scores(self.masks.shape[0])

    def _check_labels_and_scores(self, k: int) -> None:
        owner = type(self).__name__
        self.labels = _check_array("labels", self.labels, np.int64, (), k, owner)
        self.scores = _check_array("scores", self.scores, np.float32, (), k, owner)
        if not np.all(np.isfinite(self.scores)):
            raise ValueError(f"{owner}.scores: NaN or infinite score")

    @classmethod
    def empty(cls, num_points: int) -> "InstanceSet":
        return cls(np.zeros((0, num_points), bool), np.zeros(0, np.int64), np.zeros(0, np.float32))

    @classmethod
    def from_ids(cls, instance_ids: np.ndarray, semantic: np.ndarray, scores: np.ndarray | None = None,
                 ignore_ids: Sequence[int] = (-1, 0)) -> "InstanceSet":
        """Build from per-point instance ids; each instance's label is the majority ``semantic`` of its points.

        instance_ids: IntArray[N]; ids in ``ignore_ids`` mean "no instance".
        semantic:     IntArray[N] NYU40 ids.
        """
        instance_ids = np.asarray(instance_ids, np.int64)
        semantic = np.asarray(semantic, np.int64)
        if instance_ids.shape != semantic.shape:
            raise ValueError(f"InstanceSet.from_ids: {instance_ids.shape} instance ids but {semantic.shape} labels")
        valid = ~np.isin(instance_ids, np.asarray(ignore_ids, np.int64))
        ids, inverse = np.unique(instance_ids[valid], return_inverse=True)
        n, k = instance_ids.shape[0], ids.shape[0]
        masks = np.zeros((k, n), bool)
        masks[inverse, np.flatnonzero(valid)] = True
        labels = np.zeros(k, np.int64)
        sem_valid = semantic[valid]
        for i in range(k):
            values, counts = np.unique(sem_valid[inverse == i], return_counts=True)
            labels[i] = values[np.argmax(counts)]
        return cls(masks, labels, np.ones(k, np.float32) if scores is None else scores)

    def __len__(self) -> int:
        return self.masks.shape[0]

    @property
    def num_points(self) -> int:
        return self.masks.shape[1]

    def _instance_index(self, index) -> np.ndarray:
        """A boolean mask (length K), an index array, an int or a slice -> IntArray of instances."""
        index = np.arange(len(self))[index] if isinstance(index, slice) else np.asarray(index)
        if index.dtype == bool:
            if index.shape != (len(self),):
                raise IndexError(f"InstanceSet: boolean index of shape {index.shape} for {len(self)} instances")
            return np.flatnonzero(index)
        return index.reshape(-1)

    def __getitem__(self, index) -> "InstanceSet":
        """Select instances with a boolean mask (length K) or an index array."""
        index = self._instance_index(index)
        return InstanceSet(self.masks[index], self.labels[index], self.scores[index])

    def sizes(self) -> np.ndarray:
        """IntArray[K]: number of points in each mask."""
        return self.masks.sum(1)

    def point_indices(self, k: int) -> np.ndarray:
        """IntArray: the points of instance k, ascending."""
        return np.flatnonzero(self.masks[k])

    def pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """(instance, point) IntArrays: every point of every instance, by instance, then point."""
        return nonzero_pairs(self.masks)

    def labels_per_point(self) -> np.ndarray:
        """IntArray[N]: the label of the highest-scoring instance holding each point, 0 for none."""
        labels = np.zeros(self.num_points, np.int64)
        for k in np.argsort(self.scores, kind="stable"):  # ascending: the best instance writes last
            labels[self.point_indices(k)] = self.labels[k]
        return labels

    def to_ids(self) -> np.ndarray:
        """IntArray[N]: one instance id per point (1..K in score order, highest score wins overlaps; 0 = none)."""
        ids = np.zeros(self.num_points, np.int64)
        for k in np.argsort(self.scores, kind="stable"):
            ids[self.point_indices(k)] = k + 1
        return ids


class MemberInstances(InstanceSet):
    """An InstanceSet given by each instance's point indices, for scans of millions of points and a
    thousand instances (a building floor, ``engine.tiling``): its size, point ids, per-point labels and
    written files come from the members, and the dense ``masks`` [K, N] (gigabytes there) are built
    only if something asks for them.

    members:    K IntArrays, each the sorted, distinct indices of one instance's points (< num_points)
    labels, scores, num_points: as in InstanceSet
    """

    def __init__(self, members: Sequence[np.ndarray], labels: np.ndarray, scores: np.ndarray, num_points: int) -> None:
        self.members = [np.asarray(m, np.int64).reshape(-1) for m in members]
        self._num_points = int(num_points)
        for m in self.members:
            if m.size and (m[0] < 0 or m[-1] >= num_points or (m.size > 1 and not (np.diff(m) > 0).all())):
                raise ValueError(f"MemberInstances.members: each must be sorted distinct point indices in "
                                 f"0..{num_points - 1}")
        self.labels, self.scores = labels, scores
        self._check_labels_and_scores(len(self.members))
        self._masks = None

    @property
    def masks(self) -> np.ndarray:
        """BoolArray[K, N], built on first use."""
        if self._masks is None:
            self._masks = np.zeros((len(self.members), self._num_points), bool)
            for row, m in enumerate(self.members):
                self._masks[row, m] = True
        return self._masks

    def __len__(self) -> int:
        return len(self.members)

    @property
    def num_points(self) -> int:
        return self._num_points

    def __getitem__(self, index) -> "MemberInstances":
        index = self._instance_index(index)
        return MemberInstances([self.members[i] for i in index], self.labels[index], self.scores[index],
                               self._num_points)

    def point_indices(self, k: int) -> np.ndarray:
        return self.members[k]

    def pairs(self) -> tuple[np.ndarray, np.ndarray]:
        if not self.members:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        return np.repeat(np.arange(len(self)), self.sizes()), np.concatenate(self.members)

    def sizes(self) -> np.ndarray:
        return np.array([m.size for m in self.members], np.int64)


@dataclass
class Prediction:
    """What a pipeline says about one scene of N points: every pipeline's predictor returns it.

    instances:  InstanceSet over the N points (labels NYU40 ids)
    semantic:   IntArray[N] NYU40 id per point
    timings:    seconds per stage (e.g. network, cluster, lift_fuse)
    embeddings: FloatArray[N, D] per-point embeddings where the pipeline has them (for viewing)
    """

    instances: InstanceSet
    semantic: np.ndarray
    timings: dict[str, float] = field(default_factory=dict)
    embeddings: np.ndarray | None = None


@dataclass
class Batch:
    """Several scenes packed (concatenated), not padded, for the model.

    points:   FloatTensor[M, 3]
    features: FloatTensor[M, C]
    semantic: LongTensor[M] or None (training targets, whatever label space the model uses)
    instance: LongTensor[M] or None
    offset:   LongTensor[B] cumulative point counts: scene b owns rows offset[b-1]:offset[b]
    names:    the B scene names
    """

    points: "torch.Tensor"
    features: "torch.Tensor"
    offset: "torch.Tensor"
    semantic: "torch.Tensor | None" = None
    instance: "torch.Tensor | None" = None
    names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        import torch

        m = self.points.shape[0]
        if self.points.ndim != 2 or self.points.shape[1] != 3:
            raise ValueError(f"Batch.points: expected shape (M, 3), got {tuple(self.points.shape)}")
        if self.features.ndim != 2 or self.features.shape[0] != m:
            raise ValueError(f"Batch.features: expected shape ({m}, C), got {tuple(self.features.shape)}")
        for name in ("semantic", "instance"):
            t = getattr(self, name)
            if t is not None and tuple(t.shape) != (m,):
                raise ValueError(f"Batch.{name}: expected shape ({m},), got {tuple(t.shape)}")
        off = self.offset
        if off.ndim != 1 or off.dtype != torch.long:
            raise ValueError("Batch.offset: expected a 1-D LongTensor of cumulative counts")
        if off.numel() and (int(off[-1]) != m or bool((off[1:] < off[:-1]).any()) or int(off[0]) < 0):
            raise ValueError(f"Batch.offset: must be non-decreasing and end at {m}, got {off.tolist()}")
        if self.names and len(self.names) != off.numel():
            raise ValueError(f"Batch.names: {len(self.names)} names for {off.numel()} scenes")

    @classmethod
    def from_scenes(cls, scenes: Sequence[Scene], features: Sequence[np.ndarray] | None = None,
                    device: "str | torch.device" = "cpu") -> "Batch":
        """Pack scenes. Default features are the colours (N, 3)."""
        import torch

        if not scenes:
            raise ValueError("Batch.from_scenes: no scenes")
        feats = [s.colors for s in scenes] if features is None else list(features)
        counts = torch.tensor([len(s) for s in scenes], dtype=torch.long)
        labelled = all(s.has_labels for s in scenes)

        def cat(arrays, dtype):
            return torch.from_numpy(np.concatenate(arrays)).to(device=device, dtype=dtype)

        return cls(points=cat([s.points for s in scenes], torch.float32),
                   features=cat(feats, torch.float32), offset=torch.cumsum(counts, 0).to(device),
                   semantic=cat([s.semantic for s in scenes], torch.long) if labelled else None,
                   instance=cat([s.instance for s in scenes], torch.long) if labelled else None,
                   names=tuple(s.name for s in scenes))

    def __len__(self) -> int:
        return self.offset.numel()

    @property
    def counts(self) -> "torch.Tensor":
        import torch

        return torch.diff(self.offset, prepend=self.offset.new_zeros(1))

    @property
    def batch_index(self) -> "torch.Tensor":
        """LongTensor[M]: which scene each point belongs to."""
        import torch

        return torch.repeat_interleave(torch.arange(len(self), device=self.offset.device), self.counts)

    def split(self, values: "torch.Tensor") -> list["torch.Tensor"]:
        """Split a per-point tensor (M, ...) back into one tensor per scene."""
        return list(values.split(self.counts.tolist()))

    def __getitem__(self, mask: "torch.Tensor") -> "Batch":
        """Boolean point selection (M,); offsets are recomputed so scenes stay separated."""
        import torch

        if mask.dtype != torch.bool or tuple(mask.shape) != (self.points.shape[0],):
            raise IndexError(f"Batch: expected a boolean mask of shape ({self.points.shape[0]},)")
        kept = torch.zeros(len(self), dtype=torch.long, device=mask.device).index_add_(
            0, self.batch_index, mask.long())

        def pick(t):
            return None if t is None else t[mask]

        return Batch(self.points[mask], self.features[mask], torch.cumsum(kept, 0), pick(self.semantic),
                     pick(self.instance), self.names)

    def to(self, device) -> "Batch":
        def mv(t):
            return None if t is None else t.to(device)

        return Batch(mv(self.points), mv(self.features), mv(self.offset), mv(self.semantic),
                     mv(self.instance), self.names)
