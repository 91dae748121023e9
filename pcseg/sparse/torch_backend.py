"""Pure-PyTorch sparse convolution: coordinate hashing, kernel maps, the conv itself.

Runs wherever torch runs (CPU, CUDA) and is the reference the other backends are tested against.

Kernel-offset order: a kernel of size k has K = k**3 offsets; offset index
``n = (ix * k + iy) * k + iz`` (z fastest) with ``ix, iy, iz`` in ``[0, k)``, which is the order of
``torch.nn.Conv3d.weight[:, :, ix, iy, iz]`` flattened. A submanifold conv reads input site
``p + (ix, iy, iz) - k // 2`` for output site ``p`` (cross-correlation, as Conv3d with padding
k//2); a strided conv reads ``q * stride + (ix, iy, iz)`` for output ``q`` (Conv3d, padding 0); an
inverse conv writes ``q * stride + (ix, iy, iz)`` from input ``q`` (ConvTranspose3d).
Weights are ``(K, C_in, C_out)``; see ``to_dense_conv_weight`` / ``from_dense_conv_weight``.

Conv = output rows cut into pieces; per piece, for each kernel offset ``index_select`` input rows ->
``mm`` with ``W[n]`` into the piece's product buffer, then each output row sums its own products
with ``embedding_bag`` (identity first, then offsets in order), so every row is summed in the same
order however the rows are cut: results are deterministic on CPU and CUDA. Without gradients (a
map used about once, by inference) each offset's products are scattered with ``index_add_``
instead, in the same order; a conv with few input channels reads whole neighbourhoods instead
(``FEW_CHANNELS``).
"""
from __future__ import annotations

import warnings
from typing import List, Optional, Tuple

import torch

from pcseg.sparse.tensor import KernelMapCache, SparseTensor
from pcseg.sparse.workers import conv_threads, run_tasks

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
    mirrored:  offset ``K - 1 - n`` has offset n's pairs with input and output swapped (a
               submanifold map): the transposed map is this one with the offsets renumbered
    """

    __slots__ = ("pairs", "n_in", "n_out", "kernel_volume", "identity", "out_coords", "mirrored",
                 "_blocks", "_row_ranges", "_transposed", "_neighbours")

    def __init__(self, pairs, n_in: int, n_out: int, kernel_volume: int, identity=None,
                 out_coords=None, mirrored: bool = False) -> None:
        self.pairs, self.n_in, self.n_out = pairs, n_in, n_out
        self.kernel_volume, self.identity, self.out_coords = kernel_volume, identity, out_coords
        self.mirrored = mirrored
        self._blocks: dict[int, list[Block]] = {}
        self._row_ranges: dict[int, list[Block]] = {}
        self._transposed = None
        self._neighbours = None

    def neighbours(self) -> torch.Tensor:
        """LongTensor[n_out, K]: the input row each output row reads through each offset, ``n_in``
        where it reads none (built once)."""
        if self._neighbours is None:
            device = self.pairs[0][1].device if self.pairs else None
            table = torch.full((self.n_out, self.kernel_volume), self.n_in, dtype=torch.long, device=device)
            flat, k = table.view(-1), self.kernel_volume
            for n, i, o in self.pairs:
                flat.scatter_(0, o * k + n, i)
            if self.identity is not None:
                table[:, self.identity] = torch.arange(self.n_out, device=device)
            self._neighbours = table
        return self._neighbours

    def transposed(self) -> "KernelMap":
        """The same pairs read backwards (output -> input): the map of the transposed conv (built once)."""
        if self._transposed is None:
            pairs = [(n, o, i) for n, i, o in self.pairs]
            self._transposed = KernelMap(pairs, self.n_out, self.n_in, self.kernel_volume, self.identity,
                                         mirrored=self.mirrored)
            self._transposed._transposed = self
        return self._transposed

    def num_pairs(self) -> int:
        """Number of (input, output, offset) products, the identity offset included."""
        return sum(i.numel() for _, i, _ in self.pairs) + (self.n_in if self.identity is not None else 0)

    def row_ranges(self, count: int) -> list["Block"]:
        """The output rows cut into ``count`` contiguous ranges, each one piece with the pairs
        that write it but no bag (built once per count): cheap to make, for a conv that scatters."""
        if count not in self._row_ranges:
            self._row_ranges[count] = _split_rows(self, count)
        return self._row_ranges[count]

    def blocks(self, count: int) -> list["Block"]:
        """The output rows cut into ``count`` contiguous ranges of about equal work, each cut again
        into pieces (built once per count): what each conv worker computes, a piece at a time."""
        if count not in self._blocks:
            twin = self._transposed
            if self.mirrored and twin is not None and count in twin._blocks:
                # this map's offset n holds the twin's offset K - 1 - n pairs: same pieces and sums
                last = self.kernel_volume - 1
                self._blocks[count] = [Block(b.lo, b.hi, [
                    Piece(p.lo, p.hi, [(last - n, i, o) for n, i, o in p.pairs], p.bag, p.bag_offsets)
                    for p in b.pieces]) for b in twin._blocks[count]]
            else:
                self._blocks[count] = _cut_rows(self, count)
        return self._blocks[count]


class Piece:
    """Output rows ``[lo, hi)``, the pairs (n, in_idx, out_idx) that write them (slices of the map's
    pairs), and how their products add up. A piece's products lie in one buffer: the identity
    offset's ``hi - lo`` rows first (when the map has one), then each offset's pairs in order;
    output row ``lo + r`` is the sum of the buffer rows ``bag[bag_offsets[r]:bag_offsets[r + 1]]``,
    in that order."""

    __slots__ = ("lo", "hi", "pairs", "bag", "bag_offsets", "size")

    def __init__(self, lo, hi, pairs, bag, bag_offsets) -> None:
        self.lo, self.hi, self.pairs = lo, hi, pairs
        self.bag, self.bag_offsets = bag, bag_offsets
        self.size = bag.numel() if bag is not None else 0

    def plan(self) -> tuple:
        """The piece as the compiled loops take it (see ``_forward_pieces``)."""
        return (self.lo, self.hi, [n for n, _, _ in self.pairs], [i for _, i, _ in self.pairs],
                [o for _, _, o in self.pairs], self.bag, self.bag_offsets, self.size)


class Block:
    """Output rows ``[lo, hi)`` of one worker, as consecutive pieces."""

    __slots__ = ("lo", "hi", "pieces", "_plans")

    def __init__(self, lo: int, hi: int, pieces: list[Piece]) -> None:
        self.lo, self.hi, self.pieces = lo, hi, pieces
        self._plans = None

    def plans(self) -> list[tuple]:
        if self._plans is None:
            self._plans = [p.plan() for p in self.pieces]
        return self._plans


def _sorted_by_output(pairs) -> list:
    """The pairs of each offset in increasing output row (most maps already are)."""
    out = []
    for n, in_idx, out_idx in pairs:
        if out_idx.numel() > 1 and bool((out_idx[1:] < out_idx[:-1]).any()):
            out_idx, order = torch.sort(out_idx, stable=True)
            in_idx = in_idx[order]
        out.append((n, in_idx, out_idx))
    return out


def _cut_offsets(pairs, bounds: torch.Tensor) -> list:
    """Each offset's pairs (sorted by output row) with where the output-row ``bounds`` cut them."""
    return [(n, i, o, torch.searchsorted(o, bounds).tolist()) for n, i, o in pairs]


def _between(cut: list, b: int) -> list:
    """The (n, in_idx, out_idx) slices of ``cut`` (``_cut_offsets``) between bounds b and b + 1."""
    return [(n, i[at[b]:at[b + 1]], o[at[b]:at[b + 1]]) for n, i, o, at in cut if at[b + 1] > at[b]]


def _split_rows(kmap: KernelMap, count: int) -> list[Block]:
    if count <= 1 or kmap.n_out < 64 * count:
        return [Block(0, kmap.n_out, [Piece(0, kmap.n_out, kmap.pairs, None, None)])]
    pairs = _sorted_by_output(kmap.pairs)
    cuts = [kmap.n_out * k // count for k in range(count + 1)]
    cut = _cut_offsets(pairs, torch.tensor(cuts, device=pairs[0][2].device if pairs else None))
    return [Block(lo, hi, [Piece(lo, hi, _between(cut, b), None, None)])
            for b, (lo, hi) in enumerate(zip(cuts[:-1], cuts[1:]))]


def _cut_rows(kmap: KernelMap, count: int) -> list[Block]:
    """``count`` blocks (fewer for small maps) of consecutive output rows with about equal numbers
    of products, each cut into pieces of at most about ``_piece_products`` products."""
    pairs = _sorted_by_output(kmap.pairs)
    device = pairs[0][2].device if pairs else None
    n_out, identity = kmap.n_out, kmap.identity is not None
    outs = [o for _, _, o in pairs]
    work = torch.bincount(torch.cat(outs), minlength=n_out) if outs else torch.zeros(n_out, dtype=torch.long)
    work += int(identity)                              # products per output row
    row_start = torch.cumsum(work, 0) - work          # each row's first slot in the whole map's bag
    total = int(work.sum())
    count = max(1, min(count, n_out // 64))
    per_block = max(1, -(-total // (count * _piece_products(device))))
    pieces = count * per_block
    targets = torch.tensor([total * k // pieces for k in range(1, pieces)], dtype=torch.long, device=device)
    cuts = torch.cat([torch.zeros(1, dtype=torch.long, device=device),
                      torch.searchsorted(row_start, targets), torch.full((1,), n_out, device=device)])
    cuts = torch.cummax(cuts, 0).values
    rows = cuts[1:] - cuts[:-1]
    # Where each product sits in its piece's buffer, and the bag: slot row_start[o] + k holds the
    # k-th product of row o (identity first, then offsets in order).
    bag = torch.empty(total, dtype=torch.long, device=device)
    used = rows.clone() if identity else torch.zeros_like(rows)     # buffer rows used per piece
    free = row_start.clone()                                        # each row's next free slot
    if identity:
        bag.scatter_(0, row_start, torch.arange(n_out, device=device) - torch.repeat_interleave(cuts[:-1], rows))
        free += 1
    cut = _cut_offsets(pairs, cuts)
    for _, _, o, where in cut:
        at = torch.tensor(where, device=device)
        counts = at[1:] - at[:-1]
        # position in the piece's buffer: rows used before this offset + rank within the offset
        pos = torch.arange(o.numel(), device=device) + torch.repeat_interleave(used - at[:-1], counts)
        slot = torch.index_select(free, 0, o)
        bag.scatter_(0, slot, pos)  # 1-d scatter_: 2-3x faster than index_copy_ here
        free.scatter_(0, o, slot + 1)
        used += counts
    cut_list, slots = cuts.tolist(), row_start.tolist() + [total]
    made = []
    for b, (lo, hi) in enumerate(zip(cut_list[:-1], cut_list[1:])):
        if hi > lo:
            made.append((b // per_block, Piece(lo, hi, _between(cut, b), bag[slots[lo]:slots[hi]],
                                               row_start[lo:hi] - slots[lo])))
    blocks = []
    for w in range(count):
        mine = [p for owner, p in made if owner == w]
        if mine:
            blocks.append(Block(mine[0].lo, mine[-1].hi, mine))
    return blocks or [Block(0, 0, [])]


def _group_pairs(valid: torch.Tensor, in_rows: torch.Tensor, out_rows: torch.Tensor, skip=None):
    """valid, in_rows, out_rows: [K, M] -> list of (n, in_idx, out_idx) for offsets with pairs."""
    counts = valid.sum(1).tolist()
    pairs = []
    for n, count in enumerate(counts):
        if count and n != skip:
            mask = valid[n]
            pairs.append((n, in_rows[n][mask], out_rows[n][mask]))
    return pairs


def _submanifold_pairs(task) -> list:
    """Pairs of the offsets ``ns`` (with their key shifts) of a submanifold map."""
    table, ns, shifts, centre = task
    sk, perm = table.sorted_keys, table.perm
    m = sk.numel()
    # Query in sorted-key order: each offset's queries are then sorted too, which makes the binary
    # searches cache-friendly (about 2.5x faster than querying in row order on a CPU).
    query = sk[None, :] + shifts[:, None]                                    # [K', M]
    pos = torch.searchsorted(sk, query).clamp_(max=max(m - 1, 0))
    found = sk[pos] == query if m else torch.zeros_like(query, dtype=torch.bool)
    pairs = []
    for j, count in enumerate(found.sum(1).tolist()):
        n = ns[j]
        if count and n != centre:
            mask = found[j]
            pairs.append((n, perm[pos[j][mask]], perm[mask]))
    return pairs


def submanifold_map(table: HashTable, kernel_size: int) -> KernelMap:
    """Map of a submanifold conv (odd ``kernel_size``): output sites = input sites. Only the offsets
    before the centre are searched (in chunks on the conv workers): the sites one offset joins are
    those its mirror image joins the other way round, so offset ``K - 1 - n`` takes offset n's pairs
    with input and output swapped."""
    m = table.keys.numel()
    volume, centre = kernel_size ** 3, kernel_size ** 3 // 2
    shifts = offset_keys(kernel_offsets(kernel_size, table.keys.device) - kernel_size // 2)[:centre]
    chunks = _worker_count(table.keys) if m >= 4096 else 1
    cuts = [len(shifts) * k // chunks for k in range(chunks + 1)]
    tasks = [(table, list(range(lo, hi)), shifts[lo:hi], centre) for lo, hi in zip(cuts[:-1], cuts[1:])]
    half = [p for part in run_tasks(_submanifold_pairs, tasks) for p in part]
    mirrored = [(volume - 1 - n, out_idx, in_idx) for n, in_idx, out_idx in reversed(half)]
    return KernelMap(half + mirrored, m, m, volume, identity=centre, mirrored=True)


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
    if kernel_size == stride:
        return _tiling_downsample_map(coords, stride)
    return _searched_downsample_map(coords, kernel_size, stride)


def _searched_downsample_map(coords: torch.Tensor, kernel_size: int, stride: int) -> KernelMap:
    """``downsample_map`` for any kernel: every offset tried for every fine site."""
    m = coords.shape[0]
    valid, qkeys = _coarse_sites(coords, kernel_size, stride)
    out_keys, inverse = torch.unique(qkeys[valid], sorted=True, return_inverse=True)
    out_rows = torch.full_like(qkeys, -1)
    out_rows[valid] = inverse
    in_rows = torch.arange(m, device=coords.device).expand_as(out_rows)
    pairs = _group_pairs(valid, in_rows, out_rows)
    return KernelMap(pairs, m, out_keys.numel(), kernel_size ** 3, out_coords=unhash_keys(out_keys))


def _tiling_downsample_map(coords: torch.Tensor, stride: int) -> KernelMap:
    """``downsample_map`` when the kernel equals the stride (the U-Net's 2 x 2 x 2, stride 2): the
    kernels tile space, so each fine site has exactly one coarse site, ``floor(site / stride)``, and
    one offset, ``site mod stride``; no search over the offsets. The same pairs, in the same order."""
    c = coords.long()
    q = torch.div(c[:, 1:], stride, rounding_mode="floor")
    r = c[:, 1:] - q * stride
    offset = (r[:, 0] * stride + r[:, 1]) * stride + r[:, 2]
    out_keys, out_rows = torch.unique(hash_coords(torch.cat([c[:, :1], q], 1)), sorted=True, return_inverse=True)
    order = torch.argsort(offset, stable=True)  # by offset, each offset's input rows ascending
    counts = torch.bincount(offset, minlength=stride ** 3).tolist()
    pairs, start = [], 0
    for n, count in enumerate(counts):
        if count:
            rows = order[start:start + count]
            pairs.append((n, rows, out_rows[rows]))
        start += count
    return KernelMap(pairs, c.shape[0], out_keys.numel(), stride ** 3, out_coords=unhash_keys(out_keys))


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

# The products of a piece are added up with ``embedding_bag`` (mode "sum"): each output row reads its
# own products, in offset order, and is written once, 4-7x faster on a CPU than scattering each
# offset's products with ``index_add_``. A piece holds about this many products (4 MB at 32 channels,
# in the shared cache); smaller pieces mean more and smaller calls (bench_sparse's U-Net: 16384 2-5%
# slower, 8192 10-40%), larger ones the same or slower.
PIECE_PRODUCTS = 32768


def _piece_products(device) -> int:
    # On a GPU fewer, larger kernels: pieces of 2M products (512 MB of buffer at 64 channels), so
    # that a large batch's buffer stays bounded.
    return PIECE_PRODUCTS if device is None or torch.device(device).type == "cpu" else 1 << 21


def _scratch(x: torch.Tensor, block: Block, widths: tuple[int, ...]) -> list[torch.Tensor]:
    """Buffers reused by every piece of a block: the products (piece size rows), then one gather
    buffer per further width (the most pairs one offset has in a piece: gathered one offset at a
    time, its rows are still in the core's cache for the product)."""
    size = max((p.size for p in block.pieces), default=0)
    most = max((i.numel() for p in block.pieces for _, i, _ in p.pairs), default=0)
    return [x.new_empty(size, widths[0])] + [x.new_empty(most, w) for w in widths[1:]]


# The loops over a block's pieces are written so that TorchScript can compile them: a compiled loop
# runs without Python's GIL, and two conv workers running thousands of small ops each no longer
# queue for it (bench_sparse's U-Net forward + backward on 2 workers 0.93x -> 0.89x of the time
# before pieces, inference 1.0x -> 0.96x; run unoptimised, as the ops are all library calls, so
# that a new scene's shapes never trigger a re-profile). Where it cannot compile, the same
# functions run as Python (tests: equal results).
Plan = Tuple[int, int, List[int], List[torch.Tensor], List[torch.Tensor], torch.Tensor, torch.Tensor, int]


def _forward_pieces(x: torch.Tensor, weight: torch.Tensor, identity: int, plans: List[Plan],
                    out: torch.Tensor, products: torch.Tensor, gathered: torch.Tensor) -> None:
    """out[lo:hi] = identity term + each piece's pairs: x[i] @ weight[n] summed at row o."""
    for lo, hi, offsets, reads, writes, bag, bag_offsets, size in plans:
        at = 0
        if identity >= 0:
            at = hi - lo
            torch.mm(x[lo:hi], weight[identity], out=products[:at])
        for k in range(len(offsets)):
            i = reads[k]
            p = i.numel()
            torch.mm(torch.index_select(x, 0, i, out=gathered[:p]), weight[offsets[k]], out=products[at:at + p])
            at += p
        _sum_products(products, bag, bag_offsets, size, out[lo:hi])


def _backward_pieces(x: torch.Tensor, weight_t: torch.Tensor, grad_out: torch.Tensor, identity: int,
                     plans: List[Plan], grad_x: Optional[torch.Tensor], grad_w: Optional[torch.Tensor],
                     products: torch.Tensor, g_buf: torch.Tensor, x_buf: torch.Tensor) -> None:
    """Pieces of the transposed map (reads: rows of grad_out, writes: rows of x): grad_x[lo:hi] and
    grad_W += x[i]^T @ grad_out[o]; each offset's rows of grad_out are gathered once for both."""
    for lo, hi, offsets, reads, writes, bag, bag_offsets, size in plans:
        at = 0
        if identity >= 0:
            if grad_x is not None:
                at = hi - lo
                torch.mm(grad_out[lo:hi], weight_t[identity], out=products[:at])
            if grad_w is not None:
                grad_w[identity].addmm_(x[lo:hi].t(), grad_out[lo:hi])
        for k in range(len(offsets)):
            o = reads[k]
            p = o.numel()
            g = torch.index_select(grad_out, 0, o, out=g_buf[:p])
            if grad_x is not None:
                torch.mm(g, weight_t[offsets[k]], out=products[at:at + p])
                at += p
            if grad_w is not None:
                grad_w[offsets[k]].addmm_(torch.index_select(x, 0, writes[k], out=x_buf[:p]).t(), g)
        if grad_x is not None:
            _sum_products(products, bag, bag_offsets, size, grad_x[lo:hi])


def _sum_products(products: torch.Tensor, bag: torch.Tensor, bag_offsets: torch.Tensor, size: int,
                  rows: torch.Tensor) -> None:
    """rows = the sums of each row's products (zero for a row with none)."""
    if size == 0:
        rows.zero_()
    else:
        rows.copy_(torch.embedding_bag(products[:size], bag, bag_offsets, False, 0, False, None, False, None)[0])


_compiled: dict = {}


def _loop(fn):
    """``fn`` compiled by TorchScript (once, on first use), or ``fn`` itself where it cannot be."""
    if fn.__name__ not in _compiled:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # torch.jit.script is deprecated, still the one GIL-free loop
                _compiled[fn.__name__] = torch.jit.script(fn)
        except Exception:  # noqa: BLE001 - any failure to compile leaves the Python loop
            _compiled[fn.__name__] = fn
    return _compiled[fn.__name__]


def _forward_block(task) -> None:
    x, weight, kmap, block, out, loop = task
    products, gathered = _scratch(x, block, (weight.shape[2], x.shape[1]))
    identity = -1 if kmap.identity is None else kmap.identity
    with torch.jit.optimized_execution(False):
        loop(x, weight, identity, block.plans(), out, products, gathered)


# Without gradients a conv's map is usually used once (inference on a new scene), where cutting it
# into pieces with bags costs about what the sums save: such a conv adds each offset's products into
# the output with ``index_add_`` instead, ~1 MB of pairs at a time so that gathered rows and products
# stay in the core's cache. Each row is summed in the same order (identity, then offsets in order).
CHUNK_BYTES = 1 << 20


def _scatter_pairs(x: torch.Tensor, weight: torch.Tensor, identity: int, lo: int, hi: int, offsets: List[int],
                   reads: List[torch.Tensor], writes: List[torch.Tensor], out: torch.Tensor, chunk: int,
                   gathered: torch.Tensor, product: torch.Tensor) -> None:
    """out[lo:hi] = identity term, then each offset's x[i] @ weight[n] added at rows o, a chunk at a time."""
    if identity >= 0:
        torch.mm(x[lo:hi], weight[identity], out=out[lo:hi])
    else:
        out[lo:hi].zero_()
    for k in range(len(offsets)):
        for start in range(0, reads[k].numel(), chunk):
            i = reads[k][start:start + chunk]
            p = i.numel()
            g = torch.index_select(x, 0, i, out=gathered[:p])
            out.index_add_(0, writes[k][start:start + chunk], torch.mm(g, weight[offsets[k]], out=product[:p]))


def _scatter_block(task) -> None:
    x, weight, kmap, block, out, loop = task
    lo, hi, offsets, reads, writes, _, _, _ = block.plans()[0]
    chunk = max(1024, CHUNK_BYTES // (4 * max(x.shape[1], weight.shape[2])))
    most = min(chunk, max((i.numel() for i in reads), default=0))
    gathered, product = x.new_empty(most, x.shape[1]), x.new_empty(most, weight.shape[2])
    with torch.jit.optimized_execution(False):
        loop(x, weight, -1 if kmap.identity is None else kmap.identity, lo, hi, offsets, reads, writes, out,
             chunk, gathered, product)


def _gather_mm_scatter(x: torch.Tensor, weight: torch.Tensor, kmap: KernelMap, pieces: bool = True) -> torch.Tensor:
    """out[n_out, C_out] = sum over pairs (n, i, o) of x[i] @ weight[n], added at row o.

    On a CPU the output rows are cut into one block per conv worker (``pcseg.sparse.workers``):
    one hand-off per conv instead of a parallel region per op, and every row is summed in the
    same order (identity, then offsets in order) however many workers run. ``pieces=False``
    scatters instead of building the map's pieces, unless they exist already."""
    out = x.new_empty(kmap.n_out, weight.shape[2])
    count = _worker_count(x)
    if pieces or count in kmap._blocks:
        loop = _loop(_forward_pieces)
        run_tasks(_forward_block, [(x, weight, kmap, b, out, loop) for b in kmap.blocks(count)])
    else:
        loop = _loop(_scatter_pairs)
        run_tasks(_scatter_block, [(x, weight, kmap, b, out, loop) for b in kmap.row_ranges(count)])
    return out


def _backward_block(task) -> torch.Tensor | None:
    """For the input rows [lo, hi) of one block of the transposed map: those rows of grad_x (written
    in place) and the block's share of grad_W, FloatTensor[K, C_in, C_out] (or None)."""
    x, weight, grad_out, tmap, block, grad_x, need_w, loop = task
    c_in, c_out = weight.shape[1], weight.shape[2]
    grad_w = x.new_zeros(weight.shape) if need_w else None
    products, g_buf, x_buf = _scratch(x, block, (c_in, c_out, c_in if need_w else 0))
    identity = -1 if tmap.identity is None else tmap.identity
    with torch.jit.optimized_execution(False):
        loop(x, weight.transpose(1, 2), grad_out, identity, block.plans(), grad_x, grad_w, products, g_buf, x_buf)
    return grad_w


def _conv_backward(x, weight, grad_out, kmap: KernelMap, need_x: bool, need_w: bool):
    """Gradients of ``_gather_mm_scatter``: grad_x[i] += grad_out[o] @ W[n]^T (the transposed conv)
    and grad_W[n] = sum x[i]^T @ grad_out[o], in blocks of input rows on the conv workers."""
    tmap = kmap.transposed()
    grad_x = x.new_empty(kmap.n_in, weight.shape[1]) if need_x else None
    loop = _loop(_backward_pieces)
    tasks = [(x, weight, grad_out, tmap, b, grad_x, need_w, loop) for b in tmap.blocks(_worker_count(x))]
    shares = run_tasks(_backward_block, tasks)
    return grad_x, (_summed(shares) if need_w else None)


def _summed(shares: list[torch.Tensor]) -> torch.Tensor:
    """The workers' shares of a weight gradient, added in task order (the first one in place)."""
    total = shares[0]
    for share in shares[1:]:
        total += share
    return total


def _worker_count(x: torch.Tensor) -> int:
    return conv_threads() if x.device.type == "cpu" else 1


# A conv with few input channels (a network's first layer, on colours) reads each output row's whole
# neighbourhood instead: one gather of K rows of C_in (a zero row where a neighbour is missing) and
# one product with all K * C_in weights. Per pair the other way would write and sum C_out products
# for C_in inputs; on a 67k-voxel room's 3 -> 32 stem, forward 11.5 -> 9.8 ms and the weight
# gradient 16.8 -> 10.0 ms on one thread, and it is a few large calls that two workers share well.
FEW_CHANNELS = 8
COLUMN_ROWS = 4096   # output rows per gather; fixed, so each row's sum does not depend on the workers


def _column_chunks(kmap: KernelMap, x: torch.Tensor) -> list[list[tuple[int, int]]]:
    """Row ranges of ``COLUMN_ROWS``, dealt out to the conv workers in contiguous runs."""
    ranges = [(lo, min(lo + COLUMN_ROWS, kmap.n_out)) for lo in range(0, kmap.n_out, COLUMN_ROWS)]
    count = max(1, min(_worker_count(x), len(ranges)))
    return [ranges[len(ranges) * k // count:len(ranges) * (k + 1) // count] for k in range(count)]


def _columns(x_padded: torch.Tensor, kmap: KernelMap, lo: int, hi: int) -> torch.Tensor:
    """[hi - lo, K * C_in]: the inputs each output row in [lo, hi) reads, offset after offset."""
    rows = kmap.neighbours()[lo:hi].reshape(-1)
    return torch.index_select(x_padded, 0, rows).view(hi - lo, -1)


def _padded(x: torch.Tensor) -> torch.Tensor:
    return torch.cat([x, x.new_zeros(1, x.shape[1])])


def _columns_forward(x: torch.Tensor, weight: torch.Tensor, kmap: KernelMap) -> torch.Tensor:
    out = x.new_empty(kmap.n_out, weight.shape[2])
    flat, x_padded = weight.reshape(-1, weight.shape[2]), _padded(x)

    def task(ranges):
        for lo, hi in ranges:
            torch.mm(_columns(x_padded, kmap, lo, hi), flat, out=out[lo:hi])

    run_tasks(task, _column_chunks(kmap, x))
    return out


def _columns_weight_grad(x: torch.Tensor, weight: torch.Tensor, grad_out: torch.Tensor, kmap: KernelMap):
    x_padded = _padded(x)

    def task(ranges):
        share = x.new_zeros(weight.shape[0] * weight.shape[1], weight.shape[2])
        for lo, hi in ranges:
            share.addmm_(_columns(x_padded, kmap, lo, hi).t(), grad_out[lo:hi])
        return share

    return _summed(run_tasks(task, _column_chunks(kmap, x))).view(weight.shape)


def _few_channels(features: torch.Tensor) -> bool:
    return features.shape[1] <= FEW_CHANNELS


class _SparseConvFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, features, weight, kmap, backward_follows):
        ctx.save_for_backward(features, weight)
        ctx.kmap = kmap
        if _few_channels(features) and (backward_follows or kmap._neighbours is not None):
            ctx.columns = True
            return _columns_forward(features, weight, kmap)
        ctx.columns = False
        return _gather_mm_scatter(features, weight, kmap, pieces=backward_follows)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):
        features, weight = ctx.saved_tensors
        grad_out = grad_out.contiguous()
        need_x, need_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        if ctx.columns and need_w:
            grad_w = _columns_weight_grad(features, weight, grad_out, ctx.kmap)
            grad_x = _conv_backward(features, weight, grad_out, ctx.kmap, True, False)[0] if need_x else None
            return grad_x, grad_w, None, None
        grad_x, grad_w = _conv_backward(features, weight, grad_out, ctx.kmap, need_x, need_w)
        return grad_x, grad_w, None, None


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
    backward_follows = torch.is_grad_enabled() and (features.requires_grad or weight.requires_grad)
    return _SparseConvFunction.apply(features.contiguous(), weight.contiguous(), kmap, backward_follows)


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
