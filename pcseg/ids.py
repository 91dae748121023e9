"""Integer ids (segment ids, class ids) -> their distinct values and each entry's position among them."""
from __future__ import annotations

import numpy as np


def dense_ids(ids) -> tuple[np.ndarray, np.ndarray]:
    """IntArray[N] -> (distinct values, sorted; IntArray[N] position of each entry among them), what
    ``np.unique(ids, return_inverse=True)`` returns. Small non-negative ids (segs.json numbers a
    segment by one of its vertices; class ids) take a lookup table: O(N) where np.unique sorts, 5-10x
    faster on a scan's 10^5 vertices."""
    ids = np.asarray(ids).reshape(-1).astype(np.int64, copy=False)
    if ids.size and 0 <= ids.min() and ids.max() < 4 * ids.size + 1024:
        present = np.zeros(int(ids.max()) + 1, bool)
        present[ids] = True
        return np.flatnonzero(present), (np.cumsum(present) - 1)[ids]
    values, index = np.unique(ids, return_inverse=True)
    return values, index.reshape(-1).astype(np.int64)


def _runs(ids: np.ndarray, num_ids: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(order, count, start): positions sorted by id (stable: torch's sort, ~10x numpy's on 10^5
    int64 ids), and each id's run in ``order``."""
    import torch

    order = torch.sort(torch.from_numpy(ids.astype(np.int32 if num_ids < 2 ** 31 else np.int64)),
                       stable=True)[1].numpy()
    count = np.bincount(ids, minlength=num_ids)
    return order, count, np.cumsum(count) - count


def _positions(order: np.ndarray, count: np.ndarray, start: np.ndarray, selected: np.ndarray) -> np.ndarray:
    lengths = count[selected]
    heads = np.cumsum(lengths) - lengths  # where each selected id's run begins in the answer
    return order[np.repeat(start[selected] - heads, lengths) + np.arange(int(lengths.sum()))]


def positions_of(ids, num_ids: int):
    """For ids IntArray[N] in 0..num_ids-1, a function ``of(selected)`` -> IntArray: the positions of
    the entries whose id is one of ``selected`` (distinct ids), id by id in the order given, ascending
    within an id. One sort up front, so each call costs the size of its answer, not N."""
    runs = _runs(np.asarray(ids).reshape(-1), num_ids)
    return lambda selected: _positions(*runs, np.asarray(selected, np.int64).reshape(-1))


def nonzero_pairs(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(row, column) IntArrays of the non-zero entries of a 2-D array, row by row: ~10x faster than
    np.nonzero on 2-D."""
    return np.divmod(np.flatnonzero(rows), max(rows.shape[1], 1))


def members_of_rows(rows: np.ndarray, ids) -> list[np.ndarray]:
    """BoolArray[K, G] over groups (voxels, segments) and each entry's group ids IntArray[N] in
    0..G-1 -> for each row, the ascending positions of the entries whose group it holds: K masks over
    groups made masks over the N entries as index lists, in a handful of array calls whatever K."""
    if rows.shape[0] == 0:
        return []
    return members_of_pairs(*nonzero_pairs(rows), ids, rows.shape[0], rows.shape[1])


def members_of_pairs(row: np.ndarray, group: np.ndarray, ids, num_rows: int, num_groups: int) -> list[np.ndarray]:
    """``members_of_rows`` for the masks given as (row, group) pairs (each row's groups distinct, in
    any order): for each of ``num_rows`` rows, the ascending positions of the entries of ``ids``
    (IntArray[N] in 0..num_groups-1) whose group it holds."""
    import torch

    ids = np.asarray(ids).reshape(-1)
    if num_rows == 0:
        return []
    order, count, start = _runs(ids, num_groups)
    points = _positions(order, count, start, group)
    row = np.repeat(row, count[group])
    key = torch.sort(torch.from_numpy(row * ids.size + points))[0].numpy()  # by row, then position
    return np.split(key % max(ids.size, 1), np.cumsum(np.bincount(row, minlength=num_rows))[:-1])
