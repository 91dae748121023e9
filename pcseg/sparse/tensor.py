"""The sparse tensor: features on integer voxel sites, plus the kernel-map cache they share.

Coordinate convention (spconv style, *divided*): ``coords[:, 1:]`` are integer voxel indices on
the grid of the tensor's own resolution. A tensor at ``stride`` s lives on a grid whose voxels are
s finest voxels wide, and site ``(b, x, y, z)`` covers finest voxels ``[x*s, x*s + s)`` etc.
A strided conv with stride 2 therefore maps finest site ``c`` to ``floor(c / 2)``. Multiply
``coords[:, 1:]`` by ``stride`` to get back to finest-grid units.
"""
from __future__ import annotations

from typing import Callable, Hashable

import torch

# Coordinates are packed into int64 keys with 16 bits per axis (see torch_backend.hash_coords);
# the margin keeps neighbour offsets of any kernel up to 2*64 wide inside their 16-bit field.
COORD_LIMIT = (1 << 15) - 64
BATCH_LIMIT = 1 << 15


class KernelMapCache:
    """Hash tables and kernel maps shared by every tensor derived from one input.

    Entries are keyed by ``(stride, name)``; the coordinates each stride was built for are
    remembered, so a tensor whose coordinates differ from them cannot silently reuse a wrong map.
    """

    def __init__(self) -> None:
        self._coords: dict[int, torch.Tensor] = {}
        self._entries: dict[tuple[int, Hashable], object] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def register(self, stride: int, coords: torch.Tensor) -> bool:
        """Record ``coords`` as the sites at ``stride``. Returns False if other sites are already
        registered there (the caller then needs a fresh cache)."""
        known = self._coords.get(stride)
        if known is None:
            self._coords[stride] = coords
            return True
        return known is coords or (known.shape == coords.shape and torch.equal(known, coords))

    def get(self, stride: int, coords: torch.Tensor, name: Hashable, build: Callable[[], object]):
        """The entry ``name`` for the sites ``coords`` at ``stride``, built once with ``build()``."""
        if not self.register(stride, coords):
            raise ValueError(
                f"kernel-map cache: the tensor's coords at stride {stride} differ from the ones "
                "this cache was built for; create the SparseTensor without passing cache=")
        return self._entry((stride, name), build)

    def shared(self, name: Hashable, build: Callable[[], object]):
        """An entry for every stride at once (e.g. a backend's coordinate manager), built once."""
        return self._entry((None, name), build)

    def _entry(self, key: tuple, build: Callable[[], object]):
        entry = self._entries.get(key)
        if entry is None:
            entry = build()
            self._entries[key] = entry
        return entry

    def peek(self, stride: int, name: Hashable):
        """The entry ``name`` at ``stride`` if it was built, else None."""
        return self._entries.get((stride, name))


class SparseTensor:
    """Features on the active sites of a batch of voxel grids.

    features: FloatTensor[M, C]
    coords:   IntTensor[M, 4] — (batch index, x, y, z), unique rows, at this tensor's ``stride``
              (divided convention, see the module docstring); stored as int32.
    stride:   int — voxel size of this grid in finest voxels.
    cache:    KernelMapCache — travels with the tensor through the network, so every layer at the
              same (stride, kernel) reuses one neighbour map. Pass ``cache=`` only for a tensor with
              the same coordinates as the one the cache came from.
    """

    __slots__ = ("features", "coords", "stride", "cache")

    def __init__(self, features: torch.Tensor, coords: torch.Tensor, stride: int = 1,
                 cache: KernelMapCache | None = None) -> None:
        _check_features(features)
        if not isinstance(coords, torch.Tensor):
            raise ValueError(f"SparseTensor: coords must be a torch.Tensor, got {type(coords).__name__}")
        if coords.dtype.is_floating_point or coords.dtype.is_complex or coords.dtype == torch.bool:
            raise ValueError(f"SparseTensor: coords must be an integer tensor, got {coords.dtype}")
        if coords.dim() != 2 or coords.shape[1] != 4:
            raise ValueError(f"SparseTensor: coords must have shape [M, 4] (batch, x, y, z), "
                             f"got {list(coords.shape)}")
        if coords.shape[0] != features.shape[0]:
            raise ValueError(f"SparseTensor: features has {features.shape[0]} rows but coords has "
                             f"{coords.shape[0]}")
        if coords.device != features.device:
            raise ValueError(f"SparseTensor: features on {features.device} but coords on {coords.device}")
        if isinstance(stride, bool) or not isinstance(stride, int) or stride < 1:
            raise ValueError(f"SparseTensor: stride must be a positive int, got {stride!r}")
        if coords.shape[0]:
            batch = coords[:, 0]
            if int(batch.min()) < 0:
                raise ValueError("SparseTensor: coords[:, 0] (batch index) must be >= 0, "
                                 f"got {int(batch.min())}")
            if int(batch.max()) >= BATCH_LIMIT:
                raise ValueError(f"SparseTensor: batch index must be < {BATCH_LIMIT}, got {int(batch.max())}")
            xyz = coords[:, 1:]
            lo, hi = int(xyz.min()), int(xyz.max())
            if lo < -COORD_LIMIT or hi >= COORD_LIMIT:
                raise ValueError(f"SparseTensor: x, y, z must lie in [{-COORD_LIMIT}, {COORD_LIMIT}), "
                                 f"got range [{lo}, {hi}]")
        if cache is not None and not isinstance(cache, KernelMapCache):
            raise ValueError(f"SparseTensor: cache must be a KernelMapCache, got {type(cache).__name__}")
        self.features = features
        self.coords = coords if coords.dtype == torch.int32 else coords.to(torch.int32)
        self.stride = stride
        self.cache = KernelMapCache() if cache is None else cache

    @classmethod
    def _trusted(cls, features: torch.Tensor, coords: torch.Tensor, stride: int,
                 cache: KernelMapCache) -> "SparseTensor":
        # Layers build their outputs from coordinates they derived themselves: skip re-validation.
        out = cls.__new__(cls)
        out.features, out.coords, out.stride, out.cache = features, coords, stride, cache
        return out

    def replace_feature(self, features: torch.Tensor) -> "SparseTensor":
        """A new tensor with the same sites, stride and cache and ``features: FloatTensor[M, C']``."""
        _check_features(features)
        if features.shape[0] != self.coords.shape[0]:
            raise ValueError(f"replace_feature: expected {self.coords.shape[0]} rows, "
                             f"got {features.shape[0]}")
        if features.device != self.coords.device:
            raise ValueError(f"replace_feature: features on {features.device} but coords on "
                             f"{self.coords.device}")
        return SparseTensor._trusted(features, self.coords, self.stride, self.cache)

    @property
    def num_sites(self) -> int:
        return self.coords.shape[0]

    @property
    def device(self) -> torch.device:
        return self.features.device

    def __repr__(self) -> str:
        return (f"SparseTensor(sites={self.num_sites}, channels={self.features.shape[1]}, "
                f"stride={self.stride}, dtype={self.features.dtype}, device={self.device})")


def _check_features(features) -> None:
    if not isinstance(features, torch.Tensor):
        raise ValueError(f"SparseTensor: features must be a torch.Tensor, got {type(features).__name__}")
    if not features.dtype.is_floating_point:
        raise ValueError(f"SparseTensor: features must be a floating-point tensor, got {features.dtype}")
    if features.dim() != 2:
        raise ValueError(f"SparseTensor: features must have shape [M, C], got {list(features.shape)}")
