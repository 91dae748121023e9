"""Small ScanNet v2 scene folders for tests, written directly with plyfile and json (independent of
pcseg's writer), plus an independent re-implementation of the official label construction."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
from plyfile import PlyData, PlyElement

TSV_NAME = "scannetv2-labels.combined.tsv"
# raw_category -> nyu40id of the fixture tsv (a tiny subset of ScanNet's)
FIXTURE_TSV = {"wall": 1, "floor": 2, "kitchen cabinets": 3, "chair": 5, "couch": 6, "table": 7}


def write_tsv(path: Path, mapping: dict[str, int] = FIXTURE_TSV) -> Path:
    header = ["id", "raw_category", "category", "count", "nyu40id", "eigen13id", "nyuClass", "nyu40class",
              "eigen13class", "ModelNet40", "ModelNet10", "ShapeNetCore55", "synsetoffset", "wnsynsetid",
              "wnsynsetkey", "mpcat40", "mpcat40index"]
    with open(path, "w", newline="") as f:
        w = csv.writer(f, delimiter="\t", lineterminator="\n")
        w.writerow(header)
        for i, (raw, nyu) in enumerate(mapping.items(), start=1):
            w.writerow([i, raw, raw, 1, nyu] + [""] * 12)
    return path


def write_ply(path: Path, points, colors_u8, faces, text: bool = False) -> Path:
    n = len(points)
    vertex = np.empty(n, [("x", "f4"), ("y", "f4"), ("z", "f4"),
                          ("red", "u1"), ("green", "u1"), ("blue", "u1"), ("alpha", "u1")])
    for i, c in enumerate("xyz"):
        vertex[c] = points[:, i]
    for i, c in enumerate(("red", "green", "blue")):
        vertex[c] = colors_u8[:, i]
    vertex["alpha"] = 255
    face = np.empty(len(faces), [("vertex_indices", "O")])
    face["vertex_indices"] = [np.asarray(f, np.int32) for f in faces]
    elements = [PlyElement.describe(vertex, "vertex"),
                PlyElement.describe(face, "face", len_types={"vertex_indices": "u1"},
                                    val_types={"vertex_indices": "i4"})]
    PlyData(elements, text=text, byte_order="<").write(str(path))
    return path


# The standard fixture: 8 segments with arbitrary ids, 6 vertices each (48 vertices).
SEG_IDS = [7, 3, 15, 42, 8, 100, 23, 5]
GROUPS = [
    {"id": 0, "objectId": 0, "segments": [7, 3], "label": "chair"},
    {"id": 1, "objectId": 1, "segments": [3, 15], "label": "table"},          # overlaps group 0 on 3
    {"id": 2, "objectId": 2, "segments": [42], "label": "mystery gadget"},    # raw category not in tsv
    {"id": 3, "objectId": 3, "segments": [8], "label": "chair"},
    {"id": 4, "objectId": 1, "segments": [3, 15], "label": "table"},          # duplicate of group 1
    {"id": 5, "objectId": 4, "segments": [100], "label": "couch"},
]  # segments 23 and 5 are in no group: unannotated
META = ["axisAlignment = 0.945519 0.325568 0.000000 -5.384390 -0.325568 0.945519 0.000000 -2.871780 "
        "0.000000 0.000000 1.000000 -0.064350 0.000000 0.000000 0.000000 1.000000",
        "colorHeight = 968", "colorWidth = 1296", "sceneType = Apartment"]


def scene_arrays(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    points = rng.uniform(-3, 3, (n, 3)).astype(np.float32)
    colors = rng.integers(0, 256, (n, 3), dtype=np.uint8)
    faces = [sorted(rng.choice(n, 3, replace=False).tolist()) for _ in range(max(1, n // 2))]
    return points, colors, faces


def write_scene(folder: Path, scene_id: str | None = None, *, seg_indices=None, groups=GROUPS, meta=META,
                points=None, colors=None, faces=None, annotated: bool = True, text_ply: bool = False) -> Path:
    """Write one scene folder; returns it. Defaults: the standard fixture above."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    sid = scene_id or folder.name
    if seg_indices is None:
        seg_indices = [s for s in SEG_IDS for _ in range(6)]
    n = len(seg_indices) if points is None else len(points)
    p, c, f = scene_arrays(n)
    points = p if points is None else points
    colors = c if colors is None else colors
    faces = f if faces is None else faces
    write_ply(folder / f"{sid}_vh_clean_2.ply", points, colors, faces, text=text_ply)
    if meta is not None:
        (folder / f"{sid}.txt").write_text("".join(line + "\n" for line in meta))
    if annotated:
        (folder / f"{sid}_vh_clean_2.0.010000.segs.json").write_text(json.dumps(
            {"params": {"kThresh": "0.0001"}, "sceneId": sid, "segIndices": list(seg_indices)}))
        (folder / f"{sid}.aggregation.json").write_text(json.dumps(
            {"sceneId": f"scannet.{sid}", "appId": "Aggregator.v2", "segGroups": groups,
             "segmentsFile": f"scannet.{sid}_vh_clean_2.0.010000.segs.json"}))
    return folder


# --- independent reference implementations of the per-vertex labels ----------------------------
def _read_tsv(path):
    with open(path, newline="") as f:
        return {row["raw_category"]: int(row["nyu40id"]) for row in csv.DictReader(f, delimiter="\t")}


def _read_segmentation(filename):
    with open(filename) as f:
        seg = json.load(f)["segIndices"]
    seg_to_verts = {}
    for i, s in enumerate(seg):
        seg_to_verts.setdefault(s, []).append(i)
    return seg_to_verts, len(seg)


def reference_labels(segs_file, agg_file, tsv_file):
    """Per-vertex loop of docs/scannet-format.md §4: groups in order, later ones overwrite.
    Returns (semantic, instance) with 0 / -1 for vertices in no group; unknown labels -> 0."""
    label_map = _read_tsv(tsv_file)
    seg_to_verts, num_verts = _read_segmentation(segs_file)
    with open(agg_file) as f:
        groups = json.load(f)["segGroups"]
    semantic = [0] * num_verts
    instance = [-1] * num_verts
    for g in groups:
        for seg in g["segments"]:
            for v in seg_to_verts.get(seg, []):
                instance[v] = g["objectId"] + 1
                semantic[v] = label_map.get(g["label"], 0)
    return np.array(semantic), np.array(instance)


def official_helper_labels(segs_file, agg_file, tsv_file):
    """The official ``export_train_mesh_for_evaluation.py`` logic as written (labels filled per raw
    category, instances per objectId, including its list aliasing), with 0 -> -1 for instances and
    unknown labels -> 0 (the script would raise KeyError)."""
    label_map = _read_tsv(tsv_file)
    seg_to_verts, num_verts = _read_segmentation(segs_file)
    object_id_to_segs, label_to_segs = {}, {}
    with open(agg_file) as f:
        data = json.load(f)
    for g in data["segGroups"]:
        object_id = g["objectId"] + 1
        segs = g["segments"]
        object_id_to_segs[object_id] = segs
        if g["label"] in label_to_segs:
            label_to_segs[g["label"]].extend(segs)
        else:
            label_to_segs[g["label"]] = segs
    label_ids = np.zeros(num_verts, np.int64)
    for label, segs in label_to_segs.items():
        for seg in segs:
            label_ids[seg_to_verts[seg]] = label_map.get(label, 0)
    instance_ids = np.zeros(num_verts, np.int64)
    for object_id, segs in object_id_to_segs.items():
        for seg in segs:
            instance_ids[seg_to_verts[seg]] = object_id
    return label_ids, np.where(instance_ids == 0, -1, instance_ids)
