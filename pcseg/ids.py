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
