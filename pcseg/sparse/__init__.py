"""Sparse 3D convolution for voxelized point clouds.

The only package that may import spconv or MinkowskiEngine; everything here imports only torch.
The pure-PyTorch backend (``torch_backend``) is the CPU default and the reference other backends
are tested against.

    x = SparseTensor(features, coords)          # FloatTensor[M, C], IntTensor[M, 4] (b, x, y, z)
    y = SubMConv3d(C, 32)(x)                    # same sites
    z = SparseConv3d(32, 64)(y)                 # sites floor(coord / 2), stride 2
    u = SparseInverseConv3d(64, 32)(z, y)       # back to y's sites

    with use_backend("spconv"):                 # or "torch" / "minkowski" / "auto" (the default)
        y = SubMConv3d(C, 32)(x)                # same weights, same result (see backend.py)
"""
from pcseg.sparse.backend import available_backends, get_backend, resolve_backend, use_backend
from pcseg.sparse.layers import (BatchNorm, ReLU, Sequential, SparseConv3d, SparseInverseConv3d,
                                 SubMConv3d)
from pcseg.sparse.tensor import KernelMapCache, SparseTensor
from pcseg.sparse.torch_backend import from_dense_conv_weight, sparse_conv, to_dense_conv_weight

__all__ = [
    "SparseTensor", "KernelMapCache", "SubMConv3d", "SparseConv3d", "SparseInverseConv3d",
    "BatchNorm", "ReLU", "Sequential", "sparse_conv", "to_dense_conv_weight", "from_dense_conv_weight",
    "available_backends", "resolve_backend", "use_backend", "get_backend",
]
