"""Reading and writing data: ScanNet v2 scene folders, official GT/submission files, plain PLY/NPZ,
RGB-D frame folders. ``read_scene`` picks the right reader for a path."""
from __future__ import annotations

import os
from pathlib import Path

from ..errors import DataError
from ..structures import Scene


def read_scene(path: str | os.PathLike, labels_tsv: str | os.PathLike | None = None, labels: bool = True) -> Scene:
    """Read a ScanNet scene folder, or a plain ``.ply`` / ``.npz`` / ``.pcd`` point cloud (a user's own data).
    labels=False: a scene folder's annotation is not read (prediction needs none)."""
    path = Path(path)
    if path.is_dir():
        from .scannet import read_scannet_scene

        return read_scannet_scene(path, labels_tsv, labels)
    from .plain import CLOUD_SUFFIXES

    if path.suffix.lower() in CLOUD_SUFFIXES:
        from .plain import read_point_cloud

        return read_point_cloud(path)
    if not path.exists():
        raise DataError(path, None, "no such file or folder")
    raise DataError(path, None, "expected a ScanNet scene folder, a .ply, .npz or .pcd file")
