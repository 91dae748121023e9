"""Sparse convolution on MinkowskiEngine 0.5, with the semantics of ``pcseg.sparse.torch_backend``.

The layers call ``subm_conv``, ``down_conv`` and ``up_conv`` with our ``SparseTensor`` and our
weight ``(K, C_in, C_out)``; MinkowskiEngine is imported lazily, on the first call.

* One ``CoordinateManager`` per network input, kept in the tensor's ``KernelMapCache`` (shared
  entry), so ME builds each kernel map once per forward pass, as its own networks do.
* Coordinates: ME keeps them in finest-voxel units (a site at tensor stride s is a multiple of s);
  ours are divided by the stride, so ours -> ME is ``c * s``. ME's stride quantisation floors negative
  coordinates like ours (tested). (Shifting coordinates up by ~1e8 to make them positive broke ME's
  strided maps: it is not done.)
* Rows: ME orders the rows of a coordinate map its own way. For every (stride, sites) the cache
  keeps ``me_rows`` (ME row of each of our rows); features are permuted in and out of ME order,
  and strided-conv outputs are sorted by (batch, x, y, z) like the torch backend's.
* Weights: ME's kernel is (K, C_in, C_out) like ours, but its kernel offsets run x fastest where
  ours run z fastest (and for odd kernels both are centred, for even ones both start at 0); the
  conversion is a fixed permutation of the first axis: exact. ME computes
  ``out[u] = sum_i W_i x[u + i]`` (a cross-correlation, like ``Conv3d`` and our backend).
"""
from __future__ import annotations

import itertools

import torch

from pcseg.sparse import torch_backend
from pcseg.sparse.tensor import SparseTensor


def _me():
    try:
        import MinkowskiEngine as ME
    except ImportError as e:
        raise RuntimeError("sparse backend 'minkowski' needs MinkowskiEngine 0.5 (sdist only; see "
                           "DESIGN.md for the CPU build)") from e
    return ME


def _default_mode():
    from MinkowskiEngineBackend._C import ConvolutionMode  # not re-exported by ME's __init__

    return ConvolutionMode.DEFAULT


def me_kernel_order(kernel_size: int) -> torch.Tensor:
    """LongTensor[K]: for ME's kernel offset m (x fastest), our offset index n (z fastest)."""
    k = kernel_size
    return torch.tensor([(ix * k + iy) * k + iz for iz, iy, ix in itertools.product(range(k), repeat=3)])


def to_me_weight(weight: torch.Tensor) -> torch.Tensor:
    """Ours (K, C_in, C_out) -> ME's kernel (K, C_in, C_out) in ME's offset order (differentiable)."""
    k = round(weight.shape[0] ** (1 / 3))
    if weight.dim() != 3 or k ** 3 != weight.shape[0]:
        raise ValueError(f"to_me_weight: expected (k**3, C_in, C_out), got {list(weight.shape)}")
    return weight.index_select(0, me_kernel_order(k).to(weight.device)).contiguous()


class _Map:
    """ME's coordinate map of our sites at one stride: key, and me_rows LongTensor[M] (the ME row of
    each of our rows)."""

    __slots__ = ("key", "me_rows")

    def __init__(self, key, me_rows: torch.Tensor) -> None:
        self.key, self.me_rows = key, me_rows


def _manager(x: SparseTensor):
    ME = _me()

    def build():
        kind = ME.CoordinateMapType.GPU if x.device.type == "cuda" else ME.CoordinateMapType.CPU
        return ME.CoordinateManager(D=3, coordinate_map_type=kind)

    return x.cache.shared(("minkowski", "manager"), build)


def _to_me_coords(coords: torch.Tensor, stride: int) -> torch.Tensor:
    out = coords.to(torch.int32).clone()
    out[:, 1:] = out[:, 1:] * stride
    return out.contiguous()


def _from_me_coords(coords: torch.Tensor, stride: int) -> torch.Tensor:
    out = coords[:, :4].to(torch.int32).clone()
    out[:, 1:] = torch.div(out[:, 1:], stride, rounding_mode="floor")
    return out


def _map(x: SparseTensor) -> _Map:
    """ME's map of x's sites (inserted into the shared manager the first time)."""
    manager = _manager(x)

    def build():
        torch_backend.get_table(x)  # rejects duplicate sites, as the torch backend does
        me_coords = _to_me_coords(x.coords, x.stride)
        string_id = f"pcseg{len(x.cache)}"  # distinct from the keys ME derives itself ("")
        key, (_, inverse) = manager.insert_and_map(me_coords, [x.stride] * 3, string_id)
        return _Map(key, inverse.long().to(x.device))

    return x.cache.get(x.stride, x.coords, ("minkowski", "map"), build)


def _to_me_rows(features: torch.Tensor, me_rows: torch.Tensor) -> torch.Tensor:
    """Our rows -> ME's order (differentiable)."""
    order = torch.empty_like(me_rows)
    order[me_rows] = torch.arange(me_rows.numel(), device=me_rows.device)
    return features.index_select(0, order)


def _generator(kernel_size: int, stride: int):
    ME = _me()
    return ME.KernelGenerator(kernel_size=kernel_size, stride=stride, dilation=1, dimension=3)


def subm_conv(x: SparseTensor, weight: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """Submanifold conv: FloatTensor[M, C_out] at x's sites (no bias)."""
    if x.num_sites == 0:
        return x.features @ weight[0]
    ME = _me()
    m = _map(x)
    out = ME.MinkowskiConvolutionFunction.apply(
        _to_me_rows(x.features.contiguous(), m.me_rows), to_me_weight(weight), _generator(kernel_size, 1),
        _default_mode(), m.key, m.key, _manager(x))
    return out.index_select(0, m.me_rows)


def down_conv(x: SparseTensor, weight: torch.Tensor, kernel_size: int, stride: int):
    """Strided conv: (FloatTensor[M', C_out], out_coords IntTensor[M', 4] sorted by (b, x, y, z)).

    ME's outputs are its stride quantisation of the inputs, i.e. ``floor(c / stride)``: the outputs
    of our strided conv when ``kernel_size == stride`` (the U-Net's case); other kernels are refused."""
    if kernel_size != stride:
        raise RuntimeError(f"sparse backend 'minkowski': strided conv needs kernel_size == stride, got "
                           f"kernel_size={kernel_size}, stride={stride}; use the 'torch' backend")
    if x.num_sites == 0:
        return x.features @ weight[0], x.coords.new_zeros(0, 4)
    ME = _me()
    m = _map(x)
    manager = _manager(x)
    out_key = ME.CoordinateMapKey(4)  # empty: ME creates the strided map
    out = ME.MinkowskiConvolutionFunction.apply(
        _to_me_rows(x.features.contiguous(), m.me_rows), to_me_weight(weight), _generator(kernel_size, stride),
        _default_mode(), m.key, out_key, manager)
    out_stride = x.stride * stride
    coords = _from_me_coords(manager.get_coordinates(out_key).to(x.device), out_stride)
    order = torch.argsort(torch_backend.hash_coords(coords))     # our row r = ME row order[r]
    out_coords = coords[order].contiguous()
    # Remember the map under our sites at the coarse stride, so the matching up_conv reuses it.
    if x.cache.register(out_stride, out_coords):
        x.cache.get(out_stride, out_coords, ("minkowski", "map"), lambda: _Map(out_key, order))
    return out.index_select(0, order), out_coords


def up_conv(x: SparseTensor, target: SparseTensor, weight: torch.Tensor, kernel_size: int,
            stride: int) -> torch.Tensor:
    """Transposed conv from coarse ``x`` to ``target``'s sites: FloatTensor[M_target, C_out].
    Fine site ``q * stride + offset`` receives coarse site q (ConvTranspose3d), as in the torch backend."""
    if target.num_sites == 0:
        return x.features[:0] @ weight[0]
    if x.num_sites == 0:
        return x.features.new_zeros(target.num_sites, weight.shape[2]) + 0 * weight.sum()
    ME = _me()
    if x.cache is not target.cache:
        raise RuntimeError("sparse backend 'minkowski': the coarse tensor and the target must share a "
                           "kernel-map cache (come from one network input)")
    coarse, fine = _map(x), _map(target)
    out = ME.MinkowskiConvolutionTransposeFunction.apply(
        _to_me_rows(x.features.contiguous(), coarse.me_rows), to_me_weight(weight),
        _generator(kernel_size, stride), _default_mode(), coarse.key, fine.key, _manager(x))
    return out.index_select(0, fine.me_rows)


__all__ = ["subm_conv", "down_conv", "up_conv", "to_me_weight", "me_kernel_order"]
