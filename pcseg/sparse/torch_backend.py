"""Pure-PyTorch sparse convolution: coordinate hashing, kernel maps, the conv itself.

Runs wherever torch runs (CPU, CUDA) and is the reference the other backends are tested against.

Kernel-offset order: a kernel of size k has K = k**3 offsets; offset index
``n = (ix * k + iy) * k + iz`` (z fastest) with ``ix, iy, iz`` in ``[0, k)``, which is the order of
``torch.nn.Conv3d.weight[:, :, ix, iy, iz]`` flattened. A submanifold conv reads input site
``p + (ix, iy, iz) - k // 2`` for output site ``p`` (cross-correlation, as Conv3d with padding
k//2); a strided conv reads ``q * stride + (ix, iy, iz)`` for output ``q`` (Conv3d, padding 0); an
inverse conv writes ``q * stride + (ix, iy, iz)`` from input ``q`` (ConvTranspose3d).
Weights are ``(K, C_in, C_out)``; see ``to_dense_conv_weight`` / ``from_dense_conv_weight``.

Conv = for each kernel offset: ``index_select`` input rows -> ``mm`` with ``W[n]`` ->
``index_add_`` into output rows. Within one offset every input and every output row occurs at
most once, so each ``index_add_`` has unique indices: results are deterministic on CPU and CUDA.
"""
from __future__ import annotations

import torch

from pcseg.sparse.tensor import KernelMapCache, SparseTensor

_R = 1 << 16          # field width per axis in a key
_H = 1 << 15          # offset that makes negative coordinates non-negative in their field


def hash_coords(coords: torch.Tensor) -> torch.Tensor:
    """coords: IntTensor[M, 4] (batch, x, y, z) -> LongTensor[M] keys, 15 + 3 * 16 bits.

    Keys are linear in each axis, so the key of ``c + d`` is ``key(c) + offset_key(d)``, and
    sorted keys order sites by (batch, x, y, z).
    """
    c = coords.long()
    key = c[:, 0]
    for axis in (1, 2, 3):
        key = key * _R + (c[:, axis] + _H)
    return key


def unhash_keys(keys: torch.Tensor) -> torch.Tensor:
    """keys: LongTensor[M] -> IntTensor[M, 4], the inverse of ``hash_coords``."""
    out = torch.empty(keys.shape[0], 4, dtype=torch.int64, device=keys.device)
    rest = keys
    for axis in (3, 2, 1):
        out[:, axis] = rest % _R - _H
        rest = rest // _R
    out[:, 0] = rest
    return out.to(torch.int32)


def kernel_offsets(kernel_size: int, device=None) -> torch.Tensor:
    """LongTensor[k**3, 3] of (ix, iy, iz) in kernel-offset order (z fastest)."""
    r = torch.arange(kernel_size, device=device)
    return torch.cartesian_prod(r, r, r).reshape(-1, 3)


def offset_keys(offsets: torch.Tensor) -> torch.Tensor:
    """offsets: LongTensor[K, 3] -> LongTensor[K], what to add to a key to move by each offset."""
    return (offsets[:, 0] * _R + offsets[:, 1]) * _R + offsets[:, 2]


class HashTable:
    """Sorted keys of one set of sites, for neighbour lookups with ``torch.searchsorted``."""

    def __init__(self, coords: torch.Tensor) -> None:
        self.keys = hash_coords(coords)
        self.sorted_keys, self.perm = torch.sort(self.keys)
        if self.sorted_keys.numel() > 1 and bool((self.sorted_keys[1:] == self.sorted_keys[:-1]).any()):
            raise ValueError("SparseTensor: coords contain duplicate sites (same batch, x, y, z)")

    def lookup(self, query: torch.Tensor) -> torch.Tensor:
        """query: LongTensor[...] keys -> LongTensor[...] row of each key, -1 where absent."""
        n = self.sorted_keys.numel()
        if n == 0:
            return torch.full_like(query, -1)
        pos = torch.searchsorted(self.sorted_keys, query).clamp_(max=n - 1)
        found = self.sorted_keys[pos] == query
        return torch.where(found, self.perm[pos], torch.full_like(pos, -1))


class KernelMap:
    """The (input row, output row) pairs of one conv, grouped by kernel offset.

    pairs:     list of (offset index n, in_idx LongTensor[P_n], out_idx LongTensor[P_n]), non-empty
    identity:  offset index whose pairs are ``i -> i`` for every row (the centre of a submanifold
               conv), kept out of ``pairs`` and computed as one plain mm; or None
    out_coords: IntTensor[n_out, 4] for maps that create new sites, else None
    """

    __slots__ = ("pairs", "n_in", "n_out", "kernel_volume", "identity", "out_coords")

    def __init__(self, pairs, n_in: int, n_out: int, kernel_volume: int, identity=None,
                 out_coords=None) -> None:
        self.pairs, self.n_in, self.n_out = pairs, n_in, n_out
        self.kernel_volume, self.identity, self.out_coords = kernel_volume, identity, out_coords

    def transposed(self) -> "KernelMap":
        """The same pairs read backwards (output -> input): the map of the transposed conv."""
        pairs = [(n, o, i) for n, i, o in self.pairs]
        return KernelMap(pairs, self.n_out, self.n_in, self.kernel_volume, self.identity)

    def num_pairs(self) -> int:
        """Number of (input, output, offset) products, the identity offset included."""
        return sum(i.numel() for _, i, _ in self.pairs) + (self.n_in if self.identity is not None else 0)


def _group_pairs(valid: torch.Tensor, in_rows: torch.Tensor, out_rows: torch.Tensor, skip=None):
    """valid, in_rows, out_rows: [K, M] -> list of (n, in_idx, out_idx) for offsets with pairs."""
    counts = valid.sum(1).tolist()
    pairs = []
    for n, count in enumerate(counts):
        if count and n != skip:
            mask = valid[n]
            pairs.append((n, in_rows[n][mask], out_rows[n][mask]))
    return pairs


def submanifold_map(table: HashTable, kernel_size: int) -> KernelMap:
    """Map of a submanifold conv (odd ``kernel_size``): output sites = input sites."""
    m = table.keys.numel()
    offsets = kernel_offsets(kernel_size, table.keys.device) - kernel_size // 2
    # Query in sorted-key order: each offset's queries are then sorted too, which makes the binary
    # searches cache-friendly (about 2.5x faster than querying in row order on a CPU).
    sk, perm = table.sorted_keys, table.perm
    query = sk[None, :] + offset_keys(offsets)[:, None]                      # [K, M]
    pos = torch.searchsorted(sk, query).clamp_(max=max(m - 1, 0))
    found = sk[pos] == query if m else torch.zeros_like(query, dtype=torch.bool)
    centre = kernel_size ** 3 // 2
    pairs = []
    for n, count in enumerate(found.sum(1).tolist()):
        if count and n != centre:
            mask = found[n]
            pairs.append((n, perm[pos[n][mask]], perm[mask]))
    return KernelMap(pairs, m, m, kernel_size ** 3, identity=centre)


def _coarse_sites(coords: torch.Tensor, kernel_size: int, stride: int):
    """For fine sites and each offset n: the coarse site q with ``q * stride + offset_n == site``.

    coords: IntTensor[M, 4] -> (valid BoolTensor[K, M] where such a q exists, keys LongTensor[K, M])."""
    volume, m = kernel_size ** 3, coords.shape[0]
    c = coords.long()
    shifted = c[None, :, 1:] - kernel_offsets(kernel_size, c.device)[:, None, :]   # [K, M, 3]
    valid = (torch.remainder(shifted, stride) == 0).all(-1)
    q = torch.div(shifted, stride, rounding_mode="floor")
    keys = hash_coords(torch.cat([c[:, :1].expand(volume, m, 1), q], -1).reshape(-1, 4))
    return valid, keys.reshape(volume, m)


def downsample_map(coords: torch.Tensor, kernel_size: int, stride: int) -> KernelMap:
    """Map of a strided conv: output site q collects inputs ``q * stride + offset`` with offset in
    ``[0, kernel_size)^3``; the outputs are every q with at least one input, sorted by
    (batch, x, y, z). ``out_coords`` holds them."""
    m = coords.shape[0]
    valid, qkeys = _coarse_sites(coords, kernel_size, stride)
    out_keys, inverse = torch.unique(qkeys[valid], sorted=True, return_inverse=True)
    out_rows = torch.full_like(qkeys, -1)
    out_rows[valid] = inverse
    in_rows = torch.arange(m, device=coords.device).expand_as(out_rows)
    pairs = _group_pairs(valid, in_rows, out_rows)
    return KernelMap(pairs, m, out_keys.numel(), kernel_size ** 3, out_coords=unhash_keys(out_keys))


def upsample_map(coarse: HashTable, fine_coords: torch.Tensor, kernel_size: int, stride: int) -> KernelMap:
    """Map of a transposed conv from the coarse sites in ``coarse`` to ``fine_coords``: fine site
    ``q * stride + offset`` receives coarse site q, where q exists."""
    m = fine_coords.shape[0]
    valid, qkeys = _coarse_sites(fine_coords, kernel_size, stride)
    src = coarse.lookup(qkeys)
    valid &= src >= 0
    out_rows = torch.arange(m, device=fine_coords.device).expand_as(src)
    pairs = _group_pairs(valid, src, out_rows)
    return KernelMap(pairs, coarse.keys.numel(), m, kernel_size ** 3)


# --- maps through a tensor's cache ---------------------------------------------------------------

def get_table(x: SparseTensor) -> HashTable:
    return x.cache.get(x.stride, x.coords, "table", lambda: HashTable(x.coords))


def get_submanifold_map(x: SparseTensor, kernel_size: int) -> KernelMap:
    return x.cache.get(x.stride, x.coords, ("subm", kernel_size),
                       lambda: submanifold_map(get_table(x), kernel_size))


def get_downsample_map(x: SparseTensor, kernel_size: int, stride: int) -> KernelMap:
    get_table(x)  # rejects duplicate sites before they become pairs
    return x.cache.get(x.stride, x.coords, ("down", kernel_size, stride),
                       lambda: downsample_map(x.coords, kernel_size, stride))


def get_upsample_map(x: SparseTensor, target: SparseTensor, kernel_size: int, stride: int) -> KernelMap:
    """Map from the coarse ``x`` to the sites of ``target`` (``x.stride == target.stride * stride``).

    Reuses the downsampling map that produced ``x`` from ``target`` when there is one (the usual
    U-Net skip), else looks the coarse sites up by hash."""
    down = target.cache.peek(target.stride, ("down", kernel_size, stride))
    if down is not None and target.cache.register(target.stride, target.coords):
        oc = down.out_coords
        if oc is x.coords or (oc.shape == x.coords.shape and torch.equal(oc, x.coords)):
            return down.transposed()
    # Not cached: nothing ties a later coarse tensor to this one's sites.
    return upsample_map(get_table(x), target.coords, kernel_size, stride)


# --- the convolution -----------------------------------------------------------------------------

def _gather_mm_scatter(x: torch.Tensor, weight: torch.Tensor, kmap: KernelMap) -> torch.Tensor:
    """out[n_out, C_out] = sum over pairs (n, i, o) of x[i] @ weight[n], added at row o."""
    c_out = weight.shape[2]
    if kmap.identity is not None:
        out = torch.mm(x, weight[kmap.identity])
    else:
        out = x.new_zeros(kmap.n_out, c_out)
    if not kmap.pairs:
        return out
    # One pair of scratch buffers reused by every offset: no allocation per offset.
    most = max(i.numel() for _, i, _ in kmap.pairs)
    gathered = x.new_empty(most, x.shape[1])
    product = x.new_empty(most, c_out)
    for n, in_idx, out_idx in kmap.pairs:
        p = in_idx.numel()
        g = torch.index_select(x, 0, in_idx, out=gathered[:p])
        out.index_add_(0, out_idx, torch.mm(g, weight[n], out=product[:p]))
    return out


def _conv_backward(x, weight, grad_out, kmap: KernelMap, need_x: bool, need_w: bool):
    """Gradients of ``_gather_mm_scatter`` in one pass over the offsets, so that each offset's
    rows of ``grad_out`` are gathered once for both products:
    grad_x[i] += grad_out[o] @ W[n]^T (the transposed conv) and grad_W[n] = x[i]^T @ grad_out[o]."""
    c_in, c_out = weight.shape[1], weight.shape[2]
    grad_x = grad_w = None
    centre = kmap.identity
    if need_x:
        grad_x = torch.mm(grad_out, weight[centre].t()) if centre is not None else x.new_zeros(kmap.n_in, c_in)
    if need_w:
        grad_w = x.new_zeros(weight.shape)
        if centre is not None:
            torch.mm(x.t(), grad_out, out=grad_w[centre])
    if not kmap.pairs:
        return grad_x, grad_w
    most = max(i.numel() for _, i, _ in kmap.pairs)
    g_buf = x.new_empty(most, c_out)
    x_buf = x.new_empty(most, c_in)
    p_buf = x.new_empty(most, c_in) if need_x else None
    for n, in_idx, out_idx in kmap.pairs:
        p = in_idx.numel()
        g = torch.index_select(grad_out, 0, out_idx, out=g_buf[:p])
        if need_x:
            grad_x.index_add_(0, in_idx, torch.mm(g, weight[n].t(), out=p_buf[:p]))
        if need_w:
            a = torch.index_select(x, 0, in_idx, out=x_buf[:p])
            torch.mm(a.t(), g, out=grad_w[n])
    return grad_x, grad_w


class _SparseConvFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, features, weight, kmap):
        ctx.save_for_backward(features, weight)
        ctx.kmap = kmap
        return _gather_mm_scatter(features, weight, kmap)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):
        features, weight = ctx.saved_tensors
        grad_x, grad_w = _conv_backward(features, weight, grad_out.contiguous(), ctx.kmap,
                                        ctx.needs_input_grad[0], ctx.needs_input_grad[1])
        return grad_x, grad_w, None


def sparse_conv(features: torch.Tensor, weight: torch.Tensor, kmap: KernelMap) -> torch.Tensor:
    """features: FloatTensor[n_in, C_in], weight: FloatTensor[K, C_in, C_out] -> FloatTensor[n_out, C_out].

    Differentiable in ``features`` and ``weight`` (first order)."""
    if features.dim() != 2 or features.shape[0] != kmap.n_in:
        raise ValueError(f"sparse_conv: features must be [{kmap.n_in}, C_in], got {list(features.shape)}")
    if weight.dim() != 3 or weight.shape[0] != kmap.kernel_volume or weight.shape[1] != features.shape[1]:
        raise ValueError(f"sparse_conv: weight must be [{kmap.kernel_volume}, {features.shape[1]}, C_out], "
                         f"got {list(weight.shape)}")
    if weight.dtype != features.dtype:
        raise ValueError(f"sparse_conv: weight is {weight.dtype} but features are {features.dtype}")
    return _SparseConvFunction.apply(features.contiguous(), weight.contiguous(), kmap)


# --- weight layout conversions -------------------------------------------------------------------

def to_dense_conv_weight(weight: torch.Tensor, transposed: bool = False) -> torch.Tensor:
    """(K, C_in, C_out) -> ``Conv3d`` weight (C_out, C_in, k, k, k), or with ``transposed=True``
    the ``ConvTranspose3d`` weight (C_in, C_out, k, k, k)."""
    k = round(weight.shape[0] ** (1 / 3))
    if weight.dim() != 3 or k ** 3 != weight.shape[0]:
        raise ValueError(f"to_dense_conv_weight: expected (k**3, C_in, C_out), got {list(weight.shape)}")
    w = weight.reshape(k, k, k, weight.shape[1], weight.shape[2])
    return (w.permute(3, 4, 0, 1, 2) if transposed else w.permute(4, 3, 0, 1, 2)).contiguous()


def from_dense_conv_weight(weight: torch.Tensor, transposed: bool = False) -> torch.Tensor:
    """``Conv3d`` weight (C_out, C_in, k, k, k) (or ``ConvTranspose3d`` (C_in, C_out, k, k, k) with
    ``transposed=True``) -> (K, C_in, C_out)."""
    if weight.dim() != 5 or not (weight.shape[2] == weight.shape[3] == weight.shape[4]):
        raise ValueError(f"from_dense_conv_weight: expected a cubic 5-d conv weight, got {list(weight.shape)}")
    w = weight.permute(2, 3, 4, 0, 1) if transposed else weight.permute(2, 3, 4, 1, 0)
    return w.reshape(-1, w.shape[3], w.shape[4]).contiguous()


__all__ = [
    "HashTable", "KernelMap", "KernelMapCache", "hash_coords", "unhash_keys", "kernel_offsets",
    "submanifold_map", "downsample_map", "upsample_map", "get_submanifold_map", "get_downsample_map",
    "get_upsample_map", "sparse_conv", "to_dense_conv_weight", "from_dense_conv_weight",
]
