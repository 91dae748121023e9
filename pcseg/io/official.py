"""The official ScanNet v2 evaluation file formats (docs/scannet-format.md §8).

* GT for instance evaluation: one ``nyu40 * 1000 + instance`` integer per vertex line (§8.1).
* Instance submission: ``<pred_dir>/<scene>.txt`` with lines ``<relative mask path> <nyu40> <score>``
  and one mask file per instance, one integer per vertex line (§8.2).
* Semantic labels: one nyu40 id per vertex line (§8.3).

The readers follow the official reader's rules (``util_3d.read_instance_prediction_file`` /
``load_ids``): integers parsed as Python ``int`` does (so ``1.0`` is rejected), exactly three
space-separated fields, relative mask paths that stay inside the prediction folder. Where the
official script prints an error and exits, these raise ``DataError`` naming the file and the line.
One leniency: blank lines at the very end of a file are ignored (the official reader fails on them).
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from ..errors import DataError
from ..structures import InstanceSet, MemberInstances
from .atomic import write_bytes
from .compact import compact_path, read_compact_instances

INSTANCE_ID_LIMIT = 1000  # the GT encoding nyu40 * 1000 + instance needs instance < 1000


# --- integer-per-line files ----------------------------------------------------------------------
def _binary_lines(text: str) -> np.ndarray | None:
    """IntArray[L] for text that is exactly "d\\n" per line with d in 0/1 (what mask writers produce),
    read straight from the bytes; None for anything else (then the general parser decides)."""
    data = np.frombuffer(text.encode("ascii", "replace"), np.uint8)
    if data.size == 0 or data.size % 2 or not np.all(data[1::2] == 10):
        return None
    digits = data[0::2] - 48
    if np.any(digits > 1):
        return None
    return digits.astype(np.int64)


def _int_lines(path: Path, what: str) -> np.ndarray:
    """Read one integer per line -> IntArray[L]. Raises DataError naming the first bad line."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise DataError(path, None, f"{what} file not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(path, None, f"cannot read {what} file: {e}") from None
    fast = _binary_lines(text)
    if fast is not None:
        return fast
    lines = text.splitlines()
    while lines and not lines[-1].strip():  # trailing blank lines: tolerated
        lines.pop()
    try:
        return np.array(lines, dtype=np.int64).reshape(len(lines))
    except (ValueError, OverflowError):
        for number, line in enumerate(lines, start=1):
            try:
                int(line)
            except ValueError:
                problem = "blank line" if not line.strip() else f"not an integer: {line!r}"
                raise DataError(path, f"line {number}", problem) from None
        raise DataError(path, None, f"{what} values out of the int64 range") from None


def _write_int_lines(path: str | os.PathLike, values: np.ndarray, atomic: bool = True) -> Path:
    values = np.asarray(values)
    if values.ndim != 1:
        raise ValueError(f"{path}: expected a 1-D array of integers, got shape {values.shape}")
    if atomic:
        return write_bytes(path, int_lines_bytes(values))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(int_lines_bytes(values))
    return path


_POWERS_OF_TEN = 10 ** np.arange(1, 20, dtype=np.uint64)  # 10 .. 10^19
_TABLE_DIGITS = 5  # values 0 .. 99999 (class ids, instance ids, segment ids) are looked up
_tables: dict[int, tuple[np.ndarray, np.ndarray]] = {}


def _digit_table(width: int) -> tuple[np.ndarray, np.ndarray]:
    """The lines of 0 .. 10^width - 1, each right-aligned in a row of ``width`` + 1 bytes, and which
    bytes of each row are the line (built once per width)."""
    if width not in _tables:
        _tables[width] = _aligned_rows(np.arange(10 ** width, dtype=np.uint64), width=width)
    return _tables[width]


def _aligned_rows(magnitude: np.ndarray, negative: np.ndarray | None = None, width: int | None = None):
    """UInt8Array[N, width + 1]: each value's digits right-aligned then a newline ('-' before a
    negative one's digits), and BoolArray[N, width + 1]: which bytes belong to the value's line
    (``width``: the widest line's characters, by default as the values need). ``magnitude``
    (UInt64Array, a temporary of the caller's) is used up: divided down to zero in place."""
    used = np.searchsorted(_POWERS_OF_TEN, magnitude, side="right") + 1  # characters per value
    if negative is not None:
        used += negative
    width = int(used.max()) if width is None else width
    rows = np.empty((magnitude.size, width + 1), np.uint8)
    rows[:, width] = ord("\n")
    for column in range(width - 1, -1, -1):
        rows[:, column] = ord("0") + (magnitude % 10).astype(np.uint8)
        magnitude //= 10
    first = width - used  # column of each value's first character
    if negative is not None and negative.any():
        rows[np.flatnonzero(negative), first[negative]] = ord("-")
    return rows, np.arange(width + 1)[None, :] >= first[:, None]


def int_lines_bytes(values: np.ndarray) -> bytes:
    """IntArray[N] -> b"<v0>\\n<v1>\\n..." exactly as ``"".join(f"{v}\\n" for v in values)`` encodes,
    built with array operations instead of one Python string per value: every value is written
    right-aligned into a fixed-width row, then the padding is dropped. Values 0 .. 99999 (what pcseg
    writes: classes, instance ids) take their rows from a table (a 240k-vertex file: ~2 ms instead of
    ~11 with the arithmetic every other value goes through)."""
    v = np.asarray(values).astype(np.int64, copy=False).reshape(-1)
    if v.size == 0:
        return b""
    low, high = int(v.min()), int(v.max())
    if low >= 0 and high < 10 ** _TABLE_DIGITS:
        rows, keep = _digit_table(len(str(high)))
        return np.take(rows, v, axis=0)[np.take(keep, v, axis=0)].tobytes()
    negative = v < 0
    magnitude = np.where(negative, -(v + 1), v).astype(np.uint64) + negative  # |v|, int64 min included
    rows, keep = _aligned_rows(magnitude, negative)
    return rows[keep].tobytes()


MASK_CHUNK_BYTES = 1 << 28


def _mask_files(instances: InstanceSet):
    """The bytes of each instance's mask file in turn (each to be written before the next is asked
    for: a ``MemberInstances``' files share one buffer, its members set to 1 and back)."""
    if isinstance(instances, MemberInstances):  # no K x N array: one N-line buffer
        lines = np.empty((instances.num_points, 2), np.uint8)
        lines[:, 0], lines[:, 1] = ord("0"), ord("\n")
        for members in instances.members:
            lines[members, 0] = ord("1")
            yield lines
            lines[members, 0] = ord("0")
        return
    # the files' bytes are 2 per point and mask: formatted a chunk of masks at a time (~256 MB)
    chunk = max(1, MASK_CHUNK_BYTES // max(2 * instances.num_points, 1))
    for k in range(len(instances)):
        if k % chunk == 0:
            mask_lines = _mask_lines(instances.masks[k:k + chunk])
        yield mask_lines[k % chunk]


def _mask_lines(masks: np.ndarray) -> np.ndarray:
    """BoolArray[K, N] -> UInt8Array[K, 2N], row k the bytes of mask file k: b'0\\n1\\n...'. Each
    line is one little-endian uint16 (digit, newline): one contiguous add for all masks."""
    lines = np.asarray(masks, bool).view(np.uint8).astype("<u2")
    lines += ord("0") | ord("\n") << 8
    return lines.view(np.uint8)


def _write_file(path: Path, data, atomic: bool, written: list[tuple[str, Path]]) -> None:
    """Write ``path``: atomic, under a temporary name to be renamed onto it (listed in ``written``);
    else in place (listed too, to be removed on failure)."""
    if atomic:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    else:
        fd, tmp = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666), str(path)
    written.append((tmp, path))
    _write_new_file(fd, data)


def _write_new_file(fd: int, data) -> None:
    with os.fdopen(fd, "wb") as f:
        f.write(data)


# --- ground truth (§8.1) -------------------------------------------------------------------------
def encode_gt_ids(semantic: np.ndarray, instance: np.ndarray) -> np.ndarray:
    """Official GT ids: ``nyu40 * 1000 + instance`` where ``instance >= 1``, else 0.

    semantic: IntArray[N] NYU40 ids; instance: IntArray[N] ids >= 1, anything else = none.
    Returns IntArray[N] (int64).
    """
    semantic = np.asarray(semantic, np.int64)
    instance = np.asarray(instance, np.int64)
    if semantic.shape != instance.shape or semantic.ndim != 1:
        raise ValueError(f"encode_gt_ids: semantic {semantic.shape} and instance {instance.shape} "
                         "must be 1-D arrays of one length")
    if instance.size and instance.max() >= INSTANCE_ID_LIMIT:
        raise ValueError(f"encode_gt_ids: instance id {int(instance.max())} >= {INSTANCE_ID_LIMIT} "
                         "does not fit the nyu40 * 1000 + instance encoding")
    if semantic.size and semantic.min() < 0:
        raise ValueError(f"encode_gt_ids: negative semantic id {int(semantic.min())}")
    return np.where(instance >= 1, semantic * 1000 + instance, 0)


def write_gt_txt(path: str | os.PathLike, gt_ids: np.ndarray) -> Path:
    """Atomically write official GT ids (IntArray[N]), one per line."""
    return _write_int_lines(path, gt_ids)


def read_gt_txt(path: str | os.PathLike) -> np.ndarray:
    """Read an official GT file -> IntArray[N]."""
    return _int_lines(Path(path), "ground-truth")


# --- semantic labels (§8.3) ----------------------------------------------------------------------
def write_semantic_txt(path: str | os.PathLike, labels: np.ndarray, atomic: bool = True) -> Path:
    """Atomically write one NYU40 id per line (IntArray[N]); ``atomic=False``: in place, for a
    folder that is itself written under a temporary name (``io.atomic.atomic_path``)."""
    return _write_int_lines(path, labels, atomic)


def read_semantic_txt(path: str | os.PathLike) -> np.ndarray:
    """Read one NYU40 id per line -> IntArray[N]."""
    return _int_lines(Path(path), "semantic label")


# --- instance submission (§8.2) ------------------------------------------------------------------
def write_instance_predictions(pred_dir: str | os.PathLike, scene_name: str, instances: InstanceSet,
                               mask_subdir: str = "predicted_masks", atomic: bool = True) -> Path:
    """Write ``<pred_dir>/<scene>.txt`` and ``<pred_dir>/<mask_subdir>/<scene>_<k:03d>.txt``.

    Lines: ``<mask_subdir>/<scene>_<k:03d>.txt <nyu40> <score:.6f>``; masks hold one 0/1 per line.
    All files are written under temporary names first; the scene txt is renamed last, so a
    failure never leaves a scene file that points at missing or half-written masks.
    ``atomic=False``: every file under its own name at once (no renames: a rename costs as much as
    writing a mask), for a ``pred_dir`` that is itself written under a temporary name and renamed
    whole (``io.atomic.atomic_path``, as ``pcseg predict`` does); a failure still removes the
    files it wrote. Returns the scene txt path.
    """
    if not scene_name or any(c in scene_name for c in " /\\"):
        raise ValueError(f"write_instance_predictions: bad scene name {scene_name!r}")
    if not mask_subdir or " " in mask_subdir or os.path.isabs(mask_subdir) or ".." in Path(mask_subdir).parts:
        raise ValueError(f"write_instance_predictions: mask_subdir must be a relative sub-folder without spaces, "
                         f"got {mask_subdir!r}")
    pred_dir = Path(pred_dir)
    mask_dir = pred_dir / mask_subdir
    mask_dir.mkdir(parents=True, exist_ok=True)
    rel = Path(mask_subdir).as_posix()
    written: list[tuple[str, Path]] = []  # (the file written, its final name)
    lines = []
    try:
        for k, mask_bytes in enumerate(_mask_files(instances)):
            name = f"{scene_name}_{k:03d}.txt"
            _write_file(mask_dir / name, mask_bytes, atomic, written)
            lines.append(f"{rel}/{name} {int(instances.labels[k])} {float(instances.scores[k]):.6f}\n")
        scene_txt = pred_dir / f"{scene_name}.txt"
        _write_file(scene_txt, "".join(lines).encode(), atomic, written)
        for tmp, final in written if atomic else ():  # the scene txt is last: it commits the scene
            os.replace(tmp, final)
    except BaseException:
        for tmp, _ in written:
            if os.path.exists(tmp):
                os.remove(tmp)
        raise
    # masks of an earlier, larger prediction of this scene are no longer referenced: remove them
    # (they are numbered on from len(instances); probing them keeps a write O(K), not O(folder))
    k = len(instances)
    while (stale := mask_dir / f"{scene_name}_{k:03d}.txt").is_file():
        stale.unlink()
        k += 1
    return scene_txt


def _compact_instead(pred_dir: str | os.PathLike, scene_name: str) -> Path | None:
    """pcseg's compact file of the scene (``io.compact``) where there is no ``<scene>.txt``, else None."""
    compact = compact_path(pred_dir, scene_name)
    return compact if not (Path(pred_dir) / f"{scene_name}.txt").is_file() and compact.is_file() else None


def prediction_exists(pred_dir: str | os.PathLike, scene_name: str) -> bool:
    """Whether ``pred_dir`` holds a prediction of the scene: ``<scene>.txt`` or pcseg's compact file."""
    return (Path(pred_dir) / f"{scene_name}.txt").is_file() or compact_path(pred_dir, scene_name).is_file()


def read_prediction_arrays(pred_dir: str | os.PathLike, scene_name: str, num_points: int | None = None
                           ) -> tuple[np.ndarray | MemberInstances, np.ndarray, np.ndarray]:
    """Read one scene of a submission -> (masks BoolArray[K, N], labels IntArray[K], scores FloatArray[K]
    float64 as the official reader keeps them). See ``read_instance_predictions``. A scene written as
    pcseg's compact file gives its ``MemberInstances`` in place of the masks (the evaluator counts
    their point lists; a building floor's K x N masks would take gigabytes)."""
    compact = _compact_instead(pred_dir, scene_name)
    if compact is not None:
        instances = read_compact_instances(compact, num_points)
        return instances, instances.labels, instances.scores.astype(np.float64)
    return _read_scene_txt(Path(pred_dir), scene_name, num_points)


def _read_scene_txt(pred_dir: Path, scene_name: str, num_points: int | None
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``read_prediction_arrays`` of a scene written as ``<scene>.txt`` and its mask files."""
    scene_txt = pred_dir / f"{scene_name}.txt"
    if not scene_txt.is_file():
        raise DataError(scene_txt, None, f"prediction file not found (nor {compact_path(pred_dir, scene_name)})")
    root = os.path.abspath(pred_dir)
    entries: dict[str, tuple[int, float, int]] = {}  # mask path -> (label, score, line); last line wins
    lines = scene_txt.read_text().splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    for number, line in enumerate(lines, start=1):
        where = f"line {number}"
        parts = line.split(" ")
        if len(parts) != 3:
            raise DataError(scene_txt, where, f"expected 3 space-separated fields "
                            f"'<relative mask path> <nyu40 id> <score>', got {len(parts)}: {line!r}")
        rel, label_text, score_text = parts
        if os.path.isabs(rel) or rel.startswith(("/", "\\")):
            raise DataError(scene_txt, where, f"mask path must be relative to the prediction folder: {rel!r}")
        mask_path = os.path.abspath(os.path.join(pred_dir, rel))
        if os.path.commonpath([mask_path, root]) != root or mask_path == root:
            raise DataError(scene_txt, where, f"mask path {rel!r} points outside the prediction folder {root}")
        try:
            label = int(float(label_text))
        except (ValueError, OverflowError):
            raise DataError(scene_txt, where, f"class id is not a number: {label_text!r}") from None
        try:
            score = float(score_text)
        except ValueError:
            raise DataError(scene_txt, where, f"score is not a number: {score_text!r}") from None
        if not np.isfinite(score):
            raise DataError(scene_txt, where, f"score is not finite: {score_text!r}")
        entries[mask_path] = (label, score, number)

    masks = []
    for mask_path, (_, _, number) in entries.items():
        if not os.path.isfile(mask_path):
            raise DataError(mask_path, None, f"mask file not found (referenced by {scene_txt}, line {number})")
        values = _int_lines(Path(mask_path), "mask")
        expected = num_points if num_points is not None else (masks[0].shape[0] if masks else None)
        if expected is not None and values.shape[0] != expected:
            what = "the scene's vertices" if num_points is not None else "the scene's first mask"
            raise DataError(mask_path, "length", f"expected {expected} lines ({what}), got {values.shape[0]}")
        masks.append(values != 0)
    n = num_points if num_points is not None else (masks[0].shape[0] if masks else 0)
    mask_array = np.stack(masks) if masks else np.zeros((0, n), bool)
    labels = np.array([e[0] for e in entries.values()], np.int64)
    scores = np.array([e[1] for e in entries.values()], np.float64)
    return mask_array, labels, scores


def read_instance_predictions(pred_dir: str | os.PathLike, scene_name: str,
                              num_points: int | None = None) -> InstanceSet:
    """Read ``<pred_dir>/<scene>.txt`` and its masks -> InstanceSet (masks (K, N), labels as given, scores).

    Lines keep their file order (greedy matching at AP25 depends on it, caveat C1). A repeated mask
    path keeps the last line's class and score at the position of its first line, as the official
    reader's dict does in Python 3. Labels are kept as written (the evaluator drops non-benchmark
    ones). ``num_points``: expected mask length (the scene's vertex count); if None all masks must
    have one common length. An empty file means no instances. A scene written as pcseg's compact file
    instead (``io.compact``, no ``<scene>.txt``) is read from there, as MemberInstances.
    """
    compact = _compact_instead(pred_dir, scene_name)
    if compact is not None:
        return read_compact_instances(compact, num_points)
    masks, labels, scores = _read_scene_txt(Path(pred_dir), scene_name, num_points)
    return InstanceSet(masks, labels, scores.astype(np.float32))


def write_instance_ids_txt(path: str | os.PathLike, instance_ids: np.ndarray, atomic: bool = True) -> Path:
    """Per-vertex instance ids (0 = none), one integer per line: a compact companion of the
    submission format for viewers and users' own tools. ``atomic`` as in ``write_semantic_txt``."""
    return _write_int_lines(path, instance_ids, atomic)
