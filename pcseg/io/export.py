"""Dataset-level conversions: official GT files for every scene of a ScanNet-format dataset."""
from __future__ import annotations

import os
import warnings
from pathlib import Path

from tqdm import tqdm

from ..errors import DataError
from .official import encode_gt_ids, write_gt_txt
from .scannet import list_scenes, read_scannet_scene, read_split


def export_gt(scannet_root: str | os.PathLike, out_dir: str | os.PathLike, labels_tsv: str | os.PathLike | None = None,
              split: str | None = None, progress: bool = True) -> list[Path]:
    """Write ``<out_dir>/<scene>.txt`` (nyu40 * 1000 + instance per vertex) for every annotated scene.

    All or nothing: if any scene fails, the files written by this call are removed again.
    Scenes without annotation (ScanNet's test scans) are skipped with a warning.
    """
    folders = list_scenes(scannet_root)
    if split is not None:
        wanted = set(read_split(scannet_root, split))
        folders = [f for f in folders if f.name in wanted]
    if not folders:
        raise DataError(scannet_root, None, "no scene folders found" + (f" for split {split!r}" if split else ""))
    out_dir = Path(out_dir)
    written: list[Path] = []
    try:
        for folder in tqdm(folders, desc="export GT", unit="scene", disable=not progress):
            scene = read_scannet_scene(folder, labels_tsv)
            if not scene.has_labels:
                warnings.warn(f"{folder}: no annotation (test scan?), no GT written")
                continue
            path = out_dir / f"{scene.name}.txt"
            write_gt_txt(path, encode_gt_ids(scene.semantic, scene.instance))
            written.append(path)
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        raise
    return written
