"""nn.Modules over SparseTensor: submanifold, strided and inverse convs, batch norm, ReLU, Sequential.

Every conv keeps its weight as ``(K, C_in, C_out)`` with K = kernel_size**3 in the kernel-offset
order of ``pcseg.sparse.torch_backend`` (z fastest, matching ``Conv3d.weight[:, :, ix, iy, iz]``).
The convs run on the backend chosen with ``pcseg.sparse.backend.use_backend`` (default "auto":
spconv on CUDA when a CUDA build imports, else pure torch), resolved at each forward for the input's
device; the weights are the same whatever the backend.
"""
from __future__ import annotations

import importlib
import math

import torch
from torch import nn

from pcseg.sparse import backend as selection
from pcseg.sparse import torch_backend as backend
from pcseg.sparse.tensor import KernelMapCache, SparseTensor


# Backends other than "torch" live in their own modules, imported on first use; each provides
# subm_conv(x, w, k), down_conv(x, w, k, s) -> (features, out_coords), up_conv(x, target, w, k, s).
_IMPLEMENTATIONS = {"spconv": "pcseg.sparse.spconv_backend", "minkowski": "pcseg.sparse.minkowski_backend"}


def _implementation(x):
    """The backend module for x's device, or None for the pure-torch backend."""
    name = selection.current_backend(x.features.device)
    if name == "torch":
        return None
    module = _IMPLEMENTATIONS[name]
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name != module:
            raise
        raise RuntimeError(f"sparse backend {name!r}: this installation has no layer implementation "
                           f"for it ({module}); use 'torch' or 'spconv'") from e


def _check_sparse(x, who: str) -> None:
    if not isinstance(x, SparseTensor):
        raise ValueError(f"{who}: expected a SparseTensor, got {type(x).__name__}")


class _SparseConvBase(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, bias: bool) -> None:
        super().__init__()
        for name, v in (("in_channels", in_channels), ("out_channels", out_channels),
                        ("kernel_size", kernel_size)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{type(self).__name__}: {name} must be a positive int, got {v!r}")
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, kernel_size
        volume = kernel_size ** 3
        self.weight = nn.Parameter(torch.empty(volume, in_channels, out_channels))
        self.bias = nn.Parameter(torch.empty(out_channels)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # Same distribution as nn.Conv3d's default init (kaiming_uniform with a=sqrt(5)).
        bound = 1.0 / math.sqrt(self.in_channels * self.kernel_size ** 3)
        nn.init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            nn.init.uniform_(self.bias, -bound, bound)

    def _check_channels(self, x: SparseTensor) -> None:
        if x.features.shape[1] != self.in_channels:
            raise ValueError(f"{type(self).__name__}: expected {self.in_channels} input channels, "
                             f"got {x.features.shape[1]}")

    def _add_bias(self, out: torch.Tensor) -> torch.Tensor:
        return out if self.bias is None else out + self.bias

    def _conv(self, x: SparseTensor, kmap) -> torch.Tensor:
        self._check_channels(x)
        return self._add_bias(backend.sparse_conv(x.features, self.weight, kmap))

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}"
                f"{', bias=True' if self.bias is not None else ''}")


class SubMConv3d(_SparseConvBase):
    """Submanifold conv: outputs at exactly the input sites; equals ``Conv3d(padding=k//2)`` on the
    dense grid (zeros at empty sites) read at the active sites. ``kernel_size`` must be odd.

    forward(x: SparseTensor[M, C_in]) -> SparseTensor[M, C_out] (same coords, stride, cache)
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, bias: bool = False) -> None:
        if isinstance(kernel_size, int) and kernel_size % 2 == 0:
            raise ValueError(f"SubMConv3d: kernel_size must be odd, got {kernel_size}")
        super().__init__(in_channels, out_channels, kernel_size, bias)

    def forward(self, x: SparseTensor) -> SparseTensor:
        _check_sparse(x, "SubMConv3d")
        impl = _implementation(x)
        if impl is not None:
            self._check_channels(x)
            return x.replace_feature(self._add_bias(impl.subm_conv(x, self.weight, self.kernel_size)))
        kmap = backend.get_submanifold_map(x, self.kernel_size)
        return x.replace_feature(self._conv(x, kmap))


class SparseConv3d(_SparseConvBase):
    """Strided conv (padding 0): output site q collects inputs ``q * stride + offset``; outputs are
    every q with at least one input (for ``kernel_size == stride``: ``floor(coord / stride)`` of the
    inputs), sorted by (batch, x, y, z).

    forward(x: SparseTensor[M, C_in], stride s) -> SparseTensor[M', C_out] at stride ``s * stride``
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 2, stride: int = 2,
                 bias: bool = False) -> None:
        if isinstance(stride, bool) or not isinstance(stride, int) or stride < 1:
            raise ValueError(f"SparseConv3d: stride must be a positive int, got {stride!r}")
        super().__init__(in_channels, out_channels, kernel_size, bias)
        self.stride = stride

    def forward(self, x: SparseTensor) -> SparseTensor:
        _check_sparse(x, "SparseConv3d")
        impl = _implementation(x)
        if impl is not None:
            self._check_channels(x)
            features, out_coords = impl.down_conv(x, self.weight, self.kernel_size, self.stride)
            features = self._add_bias(features)
        else:
            kmap = backend.get_downsample_map(x, self.kernel_size, self.stride)
            features, out_coords = self._conv(x, kmap), kmap.out_coords
        out_stride = x.stride * self.stride
        cache = x.cache
        if not cache.register(out_stride, out_coords):
            cache = KernelMapCache()  # another downsampling already owns that stride
        return SparseTensor._trusted(features, out_coords, out_stride, cache)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", stride={self.stride}"


class SparseInverseConv3d(_SparseConvBase):
    """Transposed conv back to the finer sites of ``target`` (the encoder tensor the matching
    SparseConv3d consumed): equals ``ConvTranspose3d(stride=stride)`` read at the target sites.
    Reuses that SparseConv3d's kernel map when ``x`` carries its output sites.

    forward(x: SparseTensor[M', C_in] at stride t*s, target: SparseTensor[M, *] at stride t)
        -> SparseTensor[M, C_out] with target's coords, stride and cache
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 2, stride: int = 2,
                 bias: bool = False) -> None:
        if isinstance(stride, bool) or not isinstance(stride, int) or stride < 1:
            raise ValueError(f"SparseInverseConv3d: stride must be a positive int, got {stride!r}")
        super().__init__(in_channels, out_channels, kernel_size, bias)
        self.stride = stride

    def forward(self, x: SparseTensor, target: SparseTensor) -> SparseTensor:
        _check_sparse(x, "SparseInverseConv3d")
        _check_sparse(target, "SparseInverseConv3d target")
        if x.stride != target.stride * self.stride:
            raise ValueError(f"SparseInverseConv3d: x has stride {x.stride}, expected target stride "
                             f"{target.stride} * {self.stride}")
        impl = _implementation(x)
        if impl is not None:
            self._check_channels(x)
            features = self._add_bias(impl.up_conv(x, target, self.weight, self.kernel_size, self.stride))
        else:
            features = self._conv(x, backend.get_upsample_map(x, target, self.kernel_size, self.stride))
        return SparseTensor._trusted(features, target.coords, target.stride, target.cache)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", stride={self.stride}"


class BatchNorm(nn.BatchNorm1d):
    """``nn.BatchNorm1d`` over the features of a SparseTensor (statistics over all sites)."""

    def forward(self, x: SparseTensor) -> SparseTensor:
        _check_sparse(x, "BatchNorm")
        return x.replace_feature(super().forward(x.features))


class ReLU(nn.ReLU):
    """``nn.ReLU`` on the features of a SparseTensor."""

    def forward(self, x: SparseTensor) -> SparseTensor:
        _check_sparse(x, "ReLU")
        return x.replace_feature(super().forward(x.features))


class Sequential(nn.Sequential):
    """``nn.Sequential`` whose modules take and return one SparseTensor each."""

    def forward(self, x: SparseTensor) -> SparseTensor:
        _check_sparse(x, "Sequential")
        for module in self:
            x = module(x)
        return x
