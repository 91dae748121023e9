"""Reading and writing data: ScanNet v2 scene folders, official GT/submission files, plain PLY/NPZ,
RGB-D frame folders. ``read_scene`` picks the right reader for a path."""
from __future__ import annotations

import os
from pathlib import Path

from ..errors import DataError
from ..structures import Scene


def read_scene(path: str | os.PathLike, labels_tsv: str | os.PathLike | None = None, labels: bool = True,
               up: str = "z", up_judge=None) -> Scene:
    """Read a ScanNet scene folder, or a plain point cloud (``io.plain.CLOUD_SUFFIXES``: a user's own data).
    labels=False: a scene folder's annotation is not read (prediction needs none). ``up``: a plain
    cloud's up axis (z, y, x, -z, -y, -x, or auto: estimated, ``io.upright``), turned to +z; ScanNet
    folders are z-up by definition. ``up_judge``: see ``io.upright.estimate_up``'s ``judge``."""
    path = Path(path)
    from .plain import UP_CHOICES

    if up not in UP_CHOICES:
        raise DataError(path, "up", f"expected one of {', '.join(UP_CHOICES)}, got {up!r}")
    if path.is_dir():
        from .scannet import read_scannet_scene

        if up != "z":
            raise DataError(path, None, f"up={up!r} applies to plain point clouds; a ScanNet scene folder is z-up")
        return read_scannet_scene(path, labels_tsv, labels)
    from .plain import CLOUD_SUFFIXES, read_point_cloud

    if path.suffix.lower() in CLOUD_SUFFIXES:
        return read_point_cloud(path, up, up_judge)
    if not path.exists():
        raise DataError(path, None, "no such file or folder")
    raise DataError(path, None, f"expected a ScanNet scene folder or a {', '.join(CLOUD_SUFFIXES)} file")
