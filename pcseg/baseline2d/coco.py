"""COCO instances JSON of a FrameDataset (masks as RLE via pycocotools), for other 2D tools and for
pycocotools' COCOeval (2D mask and box AP).

Images carry the masks' grid: the depth grid. ``file_name`` is relative to the dataset root when a
frame's colour image already lies on that grid (our synthetic frames); otherwise (real ScanNet,
colour 1296x968) the colour resampled onto the depth grid is written to ``images_dir`` and
``file_name`` is relative to that folder. Each image also names its ``scene``, ``frame`` and
``depth_file`` so predictions can be lifted back into 3D.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from ..errors import DataError
from ..io.atomic import write_text
from ..labels import INSTANCE_IDS
from .dataset import FrameDataset
from .targets import CATEGORY_NAMES


def categories() -> list[dict]:
    """The 18 benchmark classes as COCO categories (ids 1..18, as the targets' labels)."""
    return [{"id": c, "name": name, "supercategory": "object", "nyu40_id": int(INSTANCE_IDS[c - 1])}
            for c, name in CATEGORY_NAMES.items()]


def encode_masks(masks: np.ndarray) -> list[dict]:
    """UInt8Array[K, H, W] -> K COCO RLEs with ``counts`` as str (JSON-ready)."""
    from pycocotools import mask as mask_utils

    if len(masks) == 0:
        return []
    rles = mask_utils.encode(np.asfortranarray(np.moveaxis(masks.astype(np.uint8), 0, -1)))
    for r in rles:
        r["counts"] = r["counts"].decode("ascii")
    return rles


def coco_dict(dataset: FrameDataset, images_dir: str | os.PathLike | None = None, progress: bool = False) -> dict:
    """The COCO instances dict of every frame of ``dataset`` (labels required)."""
    from pycocotools import mask as mask_utils

    images, annotations = [], []
    for item in tqdm(range(len(dataset)), desc="export COCO", unit="frame", disable=not progress):
        sample = dataset[item]
        if sample.targets is None:
            raise DataError(dataset.color_path(item).parent.parent, "label/instance",
                            "missing: COCO export needs labels")
        h, w = sample.depth.shape
        rec = dataset.records[item]
        if dataset.on_depth_grid(item):
            file_name = os.path.relpath(dataset.color_path(item), dataset.root)
        elif images_dir is None:
            raise DataError(dataset.color_path(item), None,
                            f"colour image is not on the {w}x{h} depth grid of the masks: pass an images folder "
                            "(--images DIR) to write colour images resampled onto it")
        else:
            file_name = f"{rec.scene}_{rec.index}.jpg"
            Path(images_dir).mkdir(parents=True, exist_ok=True)
            Image.fromarray(sample.image).save(Path(images_dir) / file_name, quality=95)
        image_id = item + 1
        images.append({"id": image_id, "file_name": file_name, "width": w, "height": h, "scene": rec.scene,
                       "frame": rec.index, "depth_file": os.path.relpath(rec.folder / "depth" / f"{rec.index}.png",
                                                                         dataset.root)})
        t = sample.targets
        rles = encode_masks(t.masks)
        areas = mask_utils.area(rles) if rles else []
        boxes = mask_utils.toBbox(rles) if rles else []
        for k, rle in enumerate(rles):
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": int(t.labels[k]),
                                "segmentation": rle, "area": float(areas[k]), "bbox": [float(v) for v in boxes[k]],
                                "iscrowd": 0, "instance_id": int(t.instance_ids[k])})
    return {"info": {"description": f"pcseg frames of {dataset.root}", "version": "1.0"},
            "images": images, "annotations": annotations, "categories": categories()}


def export_coco(root: str | os.PathLike, out: str | os.PathLike, split: str | None = None, frames_dir: str = "frames",
                step: int = 1, images_dir: str | os.PathLike | None = None, progress: bool = True) -> dict:
    """Write the COCO instances JSON of the frames of dataset ``root`` to ``out`` (atomically).
    Returns counts: images, annotations."""
    dataset = FrameDataset(root, split=split, frames_dir=frames_dir, step=step, progress=progress)
    coco = coco_dict(dataset, images_dir, progress)
    write_text(out, json.dumps(coco))
    return {"images": len(coco["images"]), "annotations": len(coco["annotations"])}
