"""Label sets: NYU40 (ScanNet's files), the 20 semantic / 18 instance benchmark classes, the raw
category -> NYU40 mapping of ``scannetv2-labels.combined.tsv``, and colour palettes."""
from __future__ import annotations

import csv
import os
import warnings
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np

from .errors import DataError

IGNORE = -1  # "no class" in every contiguous label space of ours

# index = NYU40 id; 0 = unannotated. Spelling as in ScanNet's tsv ("refridgerator").
NYU40_NAMES = (
    "unannotated", "wall", "floor", "cabinet", "bed", "chair", "sofa", "table", "door", "window",
    "bookshelf", "picture", "counter", "blinds", "desk", "shelves", "curtain", "dresser", "pillow",
    "mirror", "floor mat", "clothes", "ceiling", "books", "refridgerator", "television", "paper",
    "towel", "shower curtain", "box", "whiteboard", "person", "night stand", "toilet", "sink", "lamp",
    "bathtub", "bag", "otherstructure", "otherfurniture", "otherprop",
)

# The 20 semantic benchmark classes (NYU40 ids) and their official names.
SEMANTIC20_IDS = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14, 16, 24, 28, 33, 34, 36, 39)
SEMANTIC20_NAMES = (
    "wall", "floor", "cabinet", "bed", "chair", "sofa", "table", "door", "window", "bookshelf",
    "picture", "counter", "desk", "curtain", "refrigerator", "shower curtain", "toilet", "sink",
    "bathtub", "otherfurniture",
)
# The 18 instance benchmark classes: the 20 without wall and floor.
INSTANCE_IDS = SEMANTIC20_IDS[2:]
INSTANCE_NAMES = SEMANTIC20_NAMES[2:]
INSTANCE_NAME_OF = dict(zip(INSTANCE_IDS, INSTANCE_NAMES))

_NYU40_TO_SEM20 = np.full(41, IGNORE, np.int64)
_NYU40_TO_SEM20[list(SEMANTIC20_IDS)] = np.arange(20)


def nyu40_to_semantic20(nyu40: np.ndarray) -> np.ndarray:
    """IntArray[N] NYU40 ids -> contiguous 0..19 ScanNet20 index, IGNORE for every other id."""
    nyu40 = np.asarray(nyu40, np.int64)
    out = np.full(nyu40.shape, IGNORE, np.int64)
    ok = (nyu40 >= 0) & (nyu40 <= 40)
    out[ok] = _NYU40_TO_SEM20[nyu40[ok]]
    return out


def semantic20_to_nyu40(index: np.ndarray) -> np.ndarray:
    """IntArray[N] 0..19 ScanNet20 index -> NYU40 id (IGNORE -> 0)."""
    index = np.asarray(index, np.int64)
    table = np.asarray(SEMANTIC20_IDS, np.int64)
    return np.where((index >= 0) & (index < 20), table[np.clip(index, 0, 19)], 0)


# NYU40 colours as ScanNet's visualisations use them (index = NYU40 id, 0 = black).
NYU40_PALETTE = np.array([
    (0, 0, 0), (174, 199, 232), (152, 223, 138), (31, 119, 180), (255, 187, 120), (188, 189, 34),
    (140, 86, 75), (255, 152, 150), (214, 39, 40), (197, 176, 213), (148, 103, 189), (196, 156, 148),
    (23, 190, 207), (178, 76, 76), (247, 182, 210), (66, 188, 102), (219, 219, 141), (140, 57, 197),
    (202, 185, 52), (51, 176, 203), (200, 54, 131), (92, 193, 61), (78, 71, 183), (172, 114, 82),
    (255, 127, 14), (91, 163, 138), (153, 98, 156), (140, 153, 101), (158, 218, 229), (100, 125, 154),
    (178, 127, 135), (120, 185, 128), (146, 111, 194), (44, 160, 44), (112, 128, 144), (96, 207, 209),
    (227, 119, 194), (213, 92, 176), (94, 106, 211), (82, 84, 163), (100, 85, 144),
], np.uint8)

# --- raw categories -----------------------------------------------------------------------------
LABELS_TSV_NAME = "scannetv2-labels.combined.tsv"
TSV_COLUMNS = ("id", "raw_category", "category", "count", "nyu40id", "eigen13id", "nyuClass",
               "nyu40class", "eigen13class", "ModelNet40", "ModelNet10", "ShapeNetCore55",
               "synsetoffset", "wnsynsetid", "wnsynsetkey", "mpcat40", "mpcat40index")

# The raw categories the synthetic generator writes, with their NYU40 class. This is the table of
# the bundled tsv; real ScanNet data uses ScanNet's own (much longer) tsv found at the dataset root.
BUNDLED_RAW_CATEGORIES: dict[str, int] = {
    "wall": 1, "floor": 2, "ceiling": 22,
    "kitchen cabinets": 3, "kitchen cabinet": 3, "cabinet": 3, "file cabinet": 3,
    "bed": 4, "chair": 5, "office chair": 5, "armchair": 5, "sofa": 6, "couch": 6,
    "table": 7, "coffee table": 7, "dining table": 7, "door": 8, "window": 9,
    "bookshelf": 10, "bookshelves": 10, "picture": 11, "counter": 12, "kitchen counter": 12,
    "blinds": 13, "desk": 14, "shelf": 15, "curtain": 16, "dresser": 17, "pillow": 18,
    "mirror": 19, "rug": 20, "books": 23, "refrigerator": 24, "tv": 25, "towel": 27,
    "shower curtain": 28, "box": 29, "whiteboard": 30, "nightstand": 32, "toilet": 33, "sink": 34,
    "lamp": 35, "bathtub": 36, "backpack": 37, "trash can": 39, "ottoman": 39, "stool": 39,
    "monitor": 40, "plant": 40, "object": 40,
    "sofa chair": 5, "bathroom vanity": 3, "wardrobe": 39, "tv stand": 39,
    "keyboard": 40,
}


def write_label_tsv(path: str | os.PathLike, mapping: Mapping[str, int] = BUNDLED_RAW_CATEGORIES) -> Path:
    """Write a ``scannetv2-labels.combined.tsv`` with ScanNet's 17 columns for ``mapping``
    (raw_category -> NYU40 id). Columns we have no data for are left empty."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.writer(f, delimiter="\t", lineterminator="\n")
        w.writerow(TSV_COLUMNS)
        for i, (raw, nyu) in enumerate(mapping.items(), start=1):
            row = {"id": i, "raw_category": raw, "category": raw, "count": 0, "nyu40id": nyu,
                   "nyu40class": NYU40_NAMES[nyu]}
            w.writerow([row.get(c, "") for c in TSV_COLUMNS])
    os.replace(tmp, path)
    return path


def read_label_map(path: str | os.PathLike, label_to: str = "nyu40id") -> dict[str, int]:
    """Read ``scannetv2-labels.combined.tsv``: raw_category -> ``label_to`` column (an int).

    Rows whose target column is empty are skipped (ScanNet's tsv has a few)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, None, "label mapping tsv not found (pass --labels or put it beside scans/)")
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f, delimiter="\t")
        header = reader.fieldnames or []
        for col in ("raw_category", label_to):
            if col not in header:
                raise DataError(path, col, f"column missing from the header {header}")
        mapping: dict[str, int] = {}
        for line, row in enumerate(reader, start=2):
            value = (row.get(label_to) or "").strip()
            if not value:
                continue
            try:
                mapping[row["raw_category"]] = int(value)
            except ValueError:
                raise DataError(path, f"line {line}, {label_to}", f"not an integer: {value!r}") from None
    if not mapping:
        raise DataError(path, None, "no label rows")
    return mapping


def map_raw_categories(raw: Iterable[str], mapping: Mapping[str, int], source: str | os.PathLike = "") -> np.ndarray:
    """Map raw category strings to NYU40 ids. Unknown categories become 0 (unannotated, i.e. void for
    the benchmark) with one warning naming them, never an exception."""
    raw = list(raw)
    out = np.zeros(len(raw), np.int64)
    unknown = set()
    for i, name in enumerate(raw):
        nyu = mapping.get(name)
        if nyu is None:
            unknown.add(name)
        else:
            out[i] = nyu
    if unknown:
        where = f"{source}: " if source else ""
        warnings.warn(f"{where}raw categories not in the label tsv, treated as unannotated: "
                      f"{sorted(unknown)}", stacklevel=2)
    return out
