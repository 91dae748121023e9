"""Sparse convolution on spconv 2.x, with the semantics of ``pcseg.sparse.torch_backend``.

The layers call ``subm_conv``, ``down_conv`` and ``up_conv`` with our ``SparseTensor`` and our
weight ``(K, C_in, C_out)``; spconv is imported lazily, on the first call.

* Index pairs come from ``spconv.pytorch.ops.get_indice_pairs`` and are kept in the tensor's
  ``KernelMapCache`` under ``("spconv", "subm", k)`` and ``("spconv", "down", k, s)`` — the role of
  spconv's ``indice_key``: every submanifold conv at one (stride, kernel) shares one pair table,
  and an inverse conv reuses the pairs of the strided conv that produced its input.
* Coordinates: our ``(b, x, y, z)`` are passed in that axis order, shifted to be non-negative (by
  a multiple of the stride, so ``floor`` division is unchanged) with a spatial shape just large
  enough; spconv's kernel offsets are then ordered z fastest and read ``out * stride + offset``
  (or ``p + offset - k // 2``), exactly like ours. Strided-conv outputs are re-sorted by
  (batch, x, y, z) so both backends give the same rows in the same order.
* Weights stay in our layout in the module parameters, so checkpoints do not depend on the
  backend; at call time ``(K, C_in, C_out) -> (C_out, k, k, k, C_in)`` (spconv's KRSC layout,
  ``w.permute(2, 0, 1).reshape(C_out, k, k, k, C_in)``), and the filter gradient goes back the same
  way. The conversion is a permutation: exact.
* Convolutions use ``ConvAlgo.Native`` (gather-GEMM-scatter) on every device: it takes index
  pairs that can be shared between layers and inverted, and it is the only algorithm on a CPU.
* On a CPU, every spconv call (forward and backward) runs inside ``_spconv_call``: it refuses
  more than one torch thread, pins spconv's own OpenMP runtime (the wheel bundles a separate
  libgomp that ``torch.set_num_threads`` does not reach) to one thread, and makes
  ``spconv.pytorch.ops.get_current_stream`` return 0, because spconv's CPU backward asks CUDA for
  a stream. All three are undone when the call returns.

spconv ignores tensor strides: every index tensor passed to it is made contiguous first
(``nonzero()`` results, for one, are not).
"""
from __future__ import annotations

import contextlib
import ctypes
import glob
import os
import threading

import torch

from pcseg.sparse import torch_backend
from pcseg.sparse.tensor import SparseTensor

_lock = threading.RLock()
_gomp = None  # ctypes handle of spconv's bundled libgomp, False when there is none


def _spconv():
    """(spconv.pytorch.ops, ConvAlgo), imported on first use."""
    try:
        from spconv.core import ConvAlgo
        from spconv.pytorch import ops
    except ImportError as e:
        raise RuntimeError("sparse backend 'spconv' needs spconv 2.x: pip install spconv (CPU) "
                           "or spconv-cu12x (CUDA 12)") from e
    return ops, ConvAlgo


def _spconv_openmp():
    """spconv's own libgomp (the CPU wheel ships ``spconv.libs/libgomp-*.so*``), or None."""
    global _gomp
    if _gomp is None:
        import spconv
        libs = os.path.join(os.path.dirname(os.path.dirname(spconv.__file__)), "spconv.libs")
        paths = sorted(glob.glob(os.path.join(libs, "libgomp*.so*")))
        _gomp = ctypes.CDLL(paths[0]) if paths else False
    return _gomp or None


@contextlib.contextmanager
def _spconv_call(device: torch.device):
    """Scope of one spconv call; on a CPU: one thread, no CUDA stream lookup (see module doc)."""
    ops, _ = _spconv()
    if device.type != "cpu":
        yield
        return
    if torch.get_num_threads() > 1:
        raise RuntimeError(
            f"spconv backend on a CPU needs torch.get_num_threads() == 1 (now {torch.get_num_threads()}): "
            "spconv's CPU scatter-add gives wrong results with several threads")
    gomp = _spconv_openmp()
    with _lock:
        threads = gomp.omp_get_max_threads() if gomp else None
        original = ops.get_current_stream
        ops.get_current_stream = _no_stream
        if gomp:
            gomp.omp_set_num_threads(1)
        try:
            yield
        finally:
            ops.get_current_stream = original
            if gomp:
                gomp.omp_set_num_threads(threads)


def _no_stream() -> int:
    return 0


# --- weight layout -------------------------------------------------------------------------------

def to_spconv_weight(weight: torch.Tensor) -> torch.Tensor:
    """Ours (K, C_in, C_out) -> spconv's (C_out, k, k, k, C_in), contiguous."""
    k = round(weight.shape[0] ** (1 / 3))
    if weight.dim() != 3 or k ** 3 != weight.shape[0]:
        raise ValueError(f"to_spconv_weight: expected (k**3, C_in, C_out), got {list(weight.shape)}")
    return weight.permute(2, 0, 1).reshape(weight.shape[2], k, k, k, weight.shape[1]).contiguous()


def from_spconv_weight(weight: torch.Tensor) -> torch.Tensor:
    """spconv's (C_out, k, k, k, C_in) -> ours (K, C_in, C_out), contiguous."""
    if weight.dim() != 5 or not (weight.shape[1] == weight.shape[2] == weight.shape[3]):
        raise ValueError(f"from_spconv_weight: expected (C_out, k, k, k, C_in), got {list(weight.shape)}")
    return weight.reshape(weight.shape[0], -1, weight.shape[4]).permute(1, 2, 0).contiguous()


# --- index pairs ---------------------------------------------------------------------------------

class _Pairs:
    """spconv's pair table: pairs IntTensor[2, K, M] (input row, output row), counts IntTensor[K];
    out_coords IntTensor[n_out, 4] for strided convs (our frame, sorted), else None."""

    __slots__ = ("pairs", "counts", "n_out", "out_coords")

    def __init__(self, pairs, counts, n_out: int, out_coords=None) -> None:
        self.pairs, self.counts, self.n_out, self.out_coords = pairs, counts, n_out, out_coords


def _batch_size(coords: torch.Tensor) -> int:
    return int(coords[:, 0].max()) + 1


def _subm_pairs(x: SparseTensor, kernel_size: int) -> _Pairs:
    ops, algo = _spconv()
    xyz = x.coords[:, 1:]
    origin = xyz.min(0).values
    shifted = torch.cat([x.coords[:, :1], xyz - origin], 1).contiguous()
    shape = (xyz.max(0).values - origin + 1).tolist()
    k = kernel_size
    with _spconv_call(x.device):
        _, pairs, counts = ops.get_indice_pairs(shifted, _batch_size(x.coords), shape, algo.Native,
                                                [k] * 3, [1] * 3, [k // 2] * 3, [1] * 3, [0] * 3,
                                                subm=True)
    return _Pairs(pairs, counts, x.num_sites)


def _down_pairs(x: SparseTensor, kernel_size: int, stride: int) -> _Pairs:
    """Pairs of the strided conv: output q gathers inputs ``q * stride + offset`` (padding 0), and
    every q with at least one input is an output, as in ``torch_backend.downsample_map``."""
    ops, algo = _spconv()
    k, s = kernel_size, stride
    xyz = x.coords[:, 1:]
    # Lowest output q can be floor((min - (k - 1)) / s); shift by m * s so it becomes 0 and every
    # window lies inside the grid (spconv keeps only windows fully inside, padding 0).
    m = torch.div(xyz.min(0).values - (k - 1), s, rounding_mode="floor")
    shifted_xyz = xyz - m * s
    top = shifted_xyz.max(0).values
    shape = torch.maximum(top + 1, torch.div(top, s, rounding_mode="floor") * s + k).tolist()
    shifted = torch.cat([x.coords[:, :1], shifted_xyz], 1).contiguous()
    with _spconv_call(x.device):
        out, pairs, counts = ops.get_indice_pairs(shifted, _batch_size(x.coords), shape, algo.Native,
                                                  [k] * 3, [s] * 3, [0] * 3, [1] * 3, [0] * 3,
                                                  subm=False)
    out = out[:, :4].clone()
    out[:, 1:] += m.to(out.dtype)
    # Sort outputs by (batch, x, y, z) like the torch backend, renumbering the pairs' output rows.
    order = torch.argsort(torch_backend.hash_coords(out))
    rank = torch.empty_like(order)
    rank[order] = torch.arange(order.numel(), device=order.device)
    pairs = pairs.clone()
    live = torch.arange(pairs.shape[2], device=pairs.device)[None, :] < counts.to(pairs.device)[:, None].long()
    pairs[1][live] = rank[pairs[1][live].long()].to(pairs.dtype)
    return _Pairs(pairs, counts, out.shape[0], out_coords=out[order].contiguous())


def _get_down_pairs(x: SparseTensor, kernel_size: int, stride: int) -> _Pairs:
    torch_backend.get_table(x)  # rejects duplicate sites, as the torch backend does
    return x.cache.get(x.stride, x.coords, ("spconv", "down", kernel_size, stride),
                       lambda: _down_pairs(x, kernel_size, stride))


# --- the convolution -----------------------------------------------------------------------------

class _SpconvConv(torch.autograd.Function):
    """features FloatTensor[n_in, C_in], weight (K, C_in, C_out) -> FloatTensor[n_out, C_out]."""

    @staticmethod
    def forward(ctx, features, weight, pairs: _Pairs, n_out: int, inverse: bool, subm: bool):
        ops, algo = _spconv()
        filters = to_spconv_weight(weight)
        with _spconv_call(features.device):
            out = ops.indice_conv(features, filters, pairs.pairs, pairs.counts, n_out,
                                  inverse, subm, algo=algo.Native)
        ctx.save_for_backward(features, filters)
        ctx.pairs, ctx.inverse, ctx.subm = pairs, inverse, subm
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):
        ops, algo = _spconv()
        features, filters = ctx.saved_tensors
        p = ctx.pairs
        with _spconv_call(features.device):
            grad_x, grad_f = ops.indice_conv_backward(features, filters, grad_out.contiguous(), p.pairs,
                                                      p.counts, ctx.inverse, ctx.subm, algo=algo.Native)
        grad_w = from_spconv_weight(grad_f) if ctx.needs_input_grad[1] else None
        return (grad_x if ctx.needs_input_grad[0] else None), grad_w, None, None, None, None


def _conv(features, weight, pairs: _Pairs, n_out: int, inverse: bool, subm: bool) -> torch.Tensor:
    """n_out: rows of the result (spconv writes rows by index without bounds checks)."""
    if weight.dtype != features.dtype:
        raise ValueError(f"spconv backend: weight is {weight.dtype} but features are {features.dtype}")
    return _SpconvConv.apply(features.contiguous(), weight, pairs, n_out, inverse, subm)


def subm_conv(x: SparseTensor, weight: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """Submanifold conv: FloatTensor[M, C_out] at x's sites (no bias)."""
    if x.num_sites == 0:
        return x.features @ weight[0]  # empty, but connected to the graph
    torch_backend.get_table(x)
    pairs = x.cache.get(x.stride, x.coords, ("spconv", "subm", kernel_size),
                        lambda: _subm_pairs(x, kernel_size))
    return _conv(x.features, weight, pairs, x.num_sites, inverse=False, subm=True)


def down_conv(x: SparseTensor, weight: torch.Tensor, kernel_size: int, stride: int):
    """Strided conv: (FloatTensor[M', C_out], out_coords IntTensor[M', 4] sorted by (b, x, y, z))."""
    if x.num_sites == 0:
        return x.features @ weight[0], x.coords.new_zeros(0, 4)
    pairs = _get_down_pairs(x, kernel_size, stride)
    return _conv(x.features, weight, pairs, pairs.n_out, inverse=False, subm=False), pairs.out_coords


def up_conv(x: SparseTensor, target: SparseTensor, weight: torch.Tensor, kernel_size: int,
            stride: int) -> torch.Tensor:
    """Inverse conv from coarse ``x`` to ``target``'s sites: FloatTensor[M_target, C_out].

    Runs the transposed pairs of the strided conv ``target -> coarse`` (built here if no layer
    built them). When ``x`` does not hold exactly that conv's output sites, its rows are gathered
    onto them by hash (absent sites read zeros; sites of x that reach no target site are unused),
    which is what ``torch_backend.upsample_map`` computes."""
    if target.num_sites == 0:
        return x.features[:0] @ weight[0]
    pairs = _get_down_pairs(target, kernel_size, stride)
    features = x.features
    oc = pairs.out_coords
    if not (oc is x.coords or (oc.shape == x.coords.shape and torch.equal(oc, x.coords))):
        rows = torch_backend.get_table(x).lookup(torch_backend.hash_coords(oc))
        found = rows >= 0
        features = features.new_zeros(oc.shape[0], features.shape[1]).index_copy(
            0, found.nonzero().squeeze(1), features.index_select(0, rows[found]))
    return _conv(features, weight, pairs, target.num_sites, inverse=True, subm=False)


__all__ = ["subm_conv", "down_conv", "up_conv", "to_spconv_weight", "from_spconv_weight"]
