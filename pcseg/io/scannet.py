"""ScanNet v2 scene folders (``scans/<sceneId>/``): read them into a Scene and write a Scene back.

Files of one scene (docs/scannet-format.md §1-§4):
    <id>_vh_clean_2.ply                  mesh: vertex x y z float, red green blue alpha uchar; faces
    <id>_vh_clean_2.0.010000.segs.json   segIndices: over-segment id per vertex
    <id>.aggregation.json                segGroups: objects = (id, objectId, segments, label)
    <id>.txt                             "key = value" meta lines, axisAlignment = 16 floats (4x4)
Test scans (``scans_test/``) have only the mesh and the meta txt: they read as unlabelled Scenes.

Labels are built by ``pcseg.io.annotation`` exactly as ScanNet's official helper builds them.
"""
from __future__ import annotations

import json
import os
import re
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import DataError
from ..labels import BUNDLED_RAW_CATEGORIES, LABELS_TSV_NAME, NYU40_NAMES
from ..structures import Scene, SegGroup
from .annotation import _label_map, build_labels, find_labels_tsv, owner_groups
from .atomic import atomic_path
from .plain import check_points, load_ply, rgb_to_unit, save_ply, unit_to_uchar

PLY_SUFFIX = "_vh_clean_2.ply"
SEGS_SUFFIX = "_vh_clean_2.0.010000.segs.json"
AGG_SUFFIX = ".aggregation.json"
META_SUFFIX = ".txt"
APP_ID = "pcseg"
# The over-segmentation parameters found in ScanNet's segs.json files (§3); written for the format's sake.
SEGS_PARAMS = {"kThresh": "0.0001", "segMinVerts": "20", "minPoints": "750", "maxPoints": "30000",
               "thinThresh": "0.05", "flatThresh": "0.001", "minLength": "0.02", "maxLength": "1"}


def scene_files(folder: str | os.PathLike, scene_id: str) -> dict[str, Path]:
    """The four files of scene ``scene_id`` in ``folder``: keys ply, segs, aggregation, meta."""
    folder = Path(folder)
    return {"ply": folder / f"{scene_id}{PLY_SUFFIX}", "segs": folder / f"{scene_id}{SEGS_SUFFIX}",
            "aggregation": folder / f"{scene_id}{AGG_SUFFIX}", "meta": folder / f"{scene_id}{META_SUFFIX}"}


def _scene_id(folder: Path) -> str:
    """The scene id: the folder name, or the prefix of the folder's only ``*_vh_clean_2.ply``."""
    if not folder.is_dir():
        raise DataError(folder, None, "not a folder (expected a ScanNet scene folder scans/<sceneId>/)")
    if (folder / f"{folder.name}{PLY_SUFFIX}").is_file():
        return folder.name
    found = sorted(p.name for p in folder.glob(f"*{PLY_SUFFIX}"))
    if len(found) == 1:
        return found[0][: -len(PLY_SUFFIX)]
    if not found:
        raise DataError(folder / f"{folder.name}{PLY_SUFFIX}", None,
                        f"missing: a ScanNet scene folder needs the mesh <sceneId>{PLY_SUFFIX}")
    raise DataError(folder, None, f"several meshes {found}: cannot tell which scene this folder holds")


# --- small file readers ---------------------------------------------------------------------------
def _load_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise DataError(path, f"line {e.lineno} column {e.colno}", f"corrupt JSON ({e.msg})") from None
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(path, None, f"cannot read ({type(e).__name__}: {e})") from None


def _int_list(value, path: Path, field: str) -> np.ndarray:
    """A JSON list of integers as IntArray; DataError naming ``field`` otherwise."""
    # set(map(type, ...)) runs in C (4x faster than an isinstance loop); JSON gives exact ints, never bool
    if not isinstance(value, list) or not set(map(type, value)) <= {int}:
        raise DataError(path, field, "expected a list of integers")
    try:
        return np.asarray(value, np.int64).reshape(-1)
    except OverflowError:
        raise DataError(path, field, "holds integers outside the int64 range") from None


_SEG_INDICES = re.compile(rb'"segIndices"\s*:\s*\[([^\]]*)\]')
_INT64 = np.iinfo(np.int64)


def _plain_seg_indices(text: bytes) -> np.ndarray | None:
    """``segIndices`` of a segs.json's bytes, the list parsed in C (``np.fromstring``) and the rest of
    the file by ``json`` (a 100k-vertex file: ~2 ms instead of ~9); None unless the file is a plain
    JSON object holding that key once with a list of integers (``read_segments`` then reads it with
    ``json`` alone and names what is wrong)."""
    if text.count(b'"segIndices"') != 1 or not (found := _SEG_INDICES.search(text)):
        return None
    try:  # the rest must be valid JSON, with the key at the top level
        rest = json.loads(text[:found.start(1)] + text[found.end(1):])
    except ValueError:
        return None
    if not isinstance(rest, dict) or rest.get("segIndices") != []:
        return None
    body = found.group(1)
    if not body.strip():
        return np.zeros(0, np.int64)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # numpy warns, and stops, at anything but integers
            seg = np.fromstring(body, dtype=np.int64, sep=",")
    except (ValueError, DeprecationWarning):
        return None
    # one value per comma-separated item, none clipped to the int64 range
    if seg.size != body.count(b",") + 1 or seg.max() == _INT64.max or seg.min() == _INT64.min:
        return None
    return seg


def read_segments(path: str | os.PathLike, num_vertices: int, mesh_name: str = "the mesh") -> np.ndarray:
    """IntArray[N]: ``segIndices`` of a segs.json, checked against the mesh's vertex count."""
    path = Path(path)
    try:
        seg = _plain_seg_indices(path.read_bytes())
    except OSError as e:
        raise DataError(path, None, f"cannot read ({type(e).__name__}: {e})") from None
    if seg is None:
        data = _load_json(path)
        if not isinstance(data, dict) or "segIndices" not in data:
            raise DataError(path, "segIndices", "missing")
        seg = _int_list(data["segIndices"], path, "segIndices")
    if len(seg) != num_vertices:
        raise DataError(path, "segIndices", f"has {len(seg)} entries but {mesh_name} has {num_vertices} vertices")
    return seg


def write_segments(path: str | os.PathLike, scene_id: str, segments: np.ndarray, params: dict | None = None) -> Path:
    """Write per-vertex segment ids as a ScanNet segs.json (``segIndices``), atomically."""
    from .atomic import write_text

    return write_text(path, json.dumps({"params": {k: str(v) for k, v in (params or SEGS_PARAMS).items()},
                                        "sceneId": scene_id, "segIndices": np.asarray(segments).tolist()}))


def read_seg_groups(path: str | os.PathLike) -> tuple[SegGroup, ...]:
    """The ``segGroups`` of an aggregation.json, in file order (a missing ``id`` defaults to the position)."""
    path = Path(path)
    data = _load_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("segGroups"), list):
        raise DataError(path, "segGroups", "missing or not a list")
    groups = []
    for i, g in enumerate(data["segGroups"]):
        where = f"segGroups[{i}]"
        if not isinstance(g, dict):
            raise DataError(path, where, "expected an object")
        for key in ("objectId", "segments", "label"):
            if key not in g:
                raise DataError(path, f"{where}.{key}", "missing")
        ids = {}
        for key in ("id", "objectId"):
            v = g.get(key, i)
            if not isinstance(v, int) or isinstance(v, bool):
                raise DataError(path, f"{where}.{key}", f"expected an integer, got {v!r}")
            ids[key] = v
        if not isinstance(g["label"], str):
            raise DataError(path, f"{where}.label", f"expected a string, got {g['label']!r}")
        segs = _int_list(g["segments"], path, f"{where}.segments")
        groups.append(SegGroup(id=ids["id"], object_id=ids["objectId"], label=g["label"],
                               segments=tuple(int(s) for s in segs)))
    return tuple(groups)


def read_meta(path: str | os.PathLike) -> tuple[dict[str, str], np.ndarray | None]:
    """The meta txt: (other keys in file order, axis alignment FloatArray[4, 4] or None)."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(path, None, f"cannot read ({type(e).__name__}: {e})") from None
    meta: dict[str, str] = {}
    axis = None
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        key, sep, value = line.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key:
            raise DataError(path, f"line {lineno}", f"expected 'key = value', got {line!r}")
        if key == "axisAlignment":
            try:
                axis = np.array([float(v) for v in value.split()], np.float64)
            except ValueError:
                raise DataError(path, "axisAlignment", f"not a list of numbers: {value!r}") from None
            if axis.shape != (16,) or not np.all(np.isfinite(axis)):
                raise DataError(path, "axisAlignment", f"expected 16 finite numbers (a 4x4 matrix), got {value!r}")
            axis = axis.reshape(4, 4)
        else:
            meta[key] = value
    return meta, axis


# --- reading --------------------------------------------------------------------------------------
def read_scannet_scene(folder: str | os.PathLike, labels_tsv: str | os.PathLike | None = None,
                       labels: bool = True) -> Scene:
    """Read a ScanNet v2 scene folder into a Scene named after the scene id.

    labels_tsv: ``scannetv2-labels.combined.tsv``; default: found beside ``scans/`` (the dataset root).
    Returns points FloatArray[N, 3], colors FloatArray[N, 3] in 0..1, faces IntArray[F, 3], and,
    when the scene is annotated, segments/semantic/instance IntArray[N] and seg_groups.
    labels=False: the annotation (aggregation.json, the tsv) is not read, as prediction needs none of
    it: a scan predicts without its tsv, and a 240k-vertex scan reads in half the time.
    """
    folder = Path(folder)
    scene_id = _scene_id(folder)
    files = scene_files(folder, scene_id)
    ply = files["ply"]
    vertex, faces = load_ply(ply)
    names = vertex.dtype.names
    if any(c not in names for c in "xyz"):
        raise DataError(ply, "vertex", f"missing coordinate properties x, y, z (has {list(names)})")
    points = check_points(np.stack([vertex[c] for c in "xyz"], 1), ply, "vertex x/y/z")
    colors = None
    if all(c in names for c in ("red", "green", "blue")):
        colors = rgb_to_unit(np.stack([vertex[c] for c in ("red", "green", "blue")], 1), ply, "vertex red/green/blue")

    meta, axis = read_meta(files["meta"]) if files["meta"].is_file() else ({}, None)
    segments = groups = semantic = instance = None
    if files["segs"].is_file():
        segments = read_segments(files["segs"], len(points), ply.name)
    if labels and files["aggregation"].is_file():
        if segments is None:
            raise DataError(files["segs"], None, f"missing: {files['aggregation'].name} needs the segmentation file")
        groups = read_seg_groups(files["aggregation"])
        tsv = Path(labels_tsv) if labels_tsv is not None else find_labels_tsv(folder)
        if tsv is None:
            raise DataError(folder.parent.parent / LABELS_TSV_NAME, None,
                            f"label mapping tsv not found beside scans/; pass --labels PATH to {LABELS_TSV_NAME}")
        semantic, instance = build_labels(segments, groups, _label_map(tsv), files["aggregation"])
    elif labels and folder.parent.name == "scans":
        warnings.warn(f"{folder}: no {files['aggregation'].name} in a scans/ folder: read as unlabelled", stacklevel=2)
    try:
        return Scene(points=points, colors=colors, semantic=semantic, instance=instance, name=scene_id,
                     faces=faces, segments=segments, seg_groups=groups, axis_alignment=axis, meta=meta)
    except ValueError as e:
        raise DataError(ply, None, str(e)) from None


# --- writing --------------------------------------------------------------------------------------
def raw_category_for(nyu40: int) -> str:
    """A raw category that the bundled tsv maps to ``nyu40``: the NYU40 class name where the tsv
    has it, else the tsv's first raw category of that class, else the NYU40 name itself (which the
    bundled tsv does not know, so it reads back as unannotated)."""
    name = NYU40_NAMES[nyu40]
    if BUNDLED_RAW_CATEGORIES.get(name) == nyu40:
        return name
    return next((raw for raw, n in BUNDLED_RAW_CATEGORIES.items() if n == nyu40), name)


def derive_seg_groups(scene: Scene, where: str | os.PathLike = "") -> tuple[np.ndarray, tuple[SegGroup, ...]]:
    """(segments IntArray[N], seg_groups) for a labelled scene that has no aggregation.

    One group per instance id >= 1 (objectId = id - 1, label = ``raw_category_for`` its majority
    class). The scene's own segments are kept when no segment straddles two instances; otherwise
    each instance becomes one segment (segment id = instance id, 0 for unassigned points). Points
    with instance < 1 are in no group, so they read back as semantic 0 / instance -1.
    """
    sem, inst = scene.semantic, scene.instance
    valid = inst >= 1
    if np.any(~valid & (sem != 0)):
        warnings.warn(f"{where}: {int(np.sum(~valid & (sem != 0)))} points have a class but no instance: "
                      "written as unannotated", stacklevel=3)
    key = np.where(valid, inst, 0)
    segments = scene.segments
    if segments is None or len(np.unique(np.stack([segments, key]), axis=1)[0]) != len(np.unique(segments)):
        segments = key
    bad = sem[valid][(sem[valid] < 0) | (sem[valid] > 40)]
    if bad.size:
        raise DataError(where, "Scene.semantic", f"class id {int(bad[0])} is not an NYU40 id (0..40)")
    groups, mixed = [], 0
    for k, iid in enumerate(np.unique(inst[valid])):
        m = inst == iid
        values, counts = np.unique(sem[m], return_counts=True)
        mixed += len(values) > 1
        groups.append(SegGroup(id=k, object_id=int(iid) - 1, label=raw_category_for(int(values[np.argmax(counts)])),
                               segments=tuple(int(s) for s in np.unique(segments[m]))))
    if mixed:
        warnings.warn(f"{where}: {mixed} instances span several classes: written with their majority class",
                      stacklevel=3)
    return segments, tuple(groups)


def _check_groups_match(scene: Scene, segments: np.ndarray, groups: Sequence[SegGroup], where: Path) -> None:
    """Raise when the scene's labels would not read back from its segments and groups."""
    owner = owner_groups(segments, groups, warn=False)
    if scene.instance is not None:
        obj = np.array([g.object_id + 1 for g in groups] + [-1], np.int64)
        expected = obj[owner]  # owner -1 picks the trailing -1
        bad = np.flatnonzero((expected != scene.instance) & ~((expected == -1) & (scene.instance < 1)))
        if bad.size:
            v = int(bad[0])
            raise DataError(where, "Scene.instance", f"disagrees with seg_groups at vertex {v} "
                            f"({int(scene.instance[v])} vs {int(expected[v])}); set seg_groups=None to derive them")
    if scene.semantic is not None:
        pairs = np.unique(np.stack([owner, scene.semantic]), axis=1)
        if pairs.shape[1] != len(np.unique(owner)) or np.any((pairs[0] == -1) & (pairs[1] != 0)):
            raise DataError(where, "Scene.semantic", "not one class per seg_group (or a class on vertices in "
                            "no group): it would not read back; set seg_groups=None to derive them")


def _meta_text(scene: Scene, where: Path) -> str:
    lines = []
    if scene.axis_alignment is not None:
        lines.append("axisAlignment = " + " ".join(repr(float(v)) for v in scene.axis_alignment.reshape(-1)))
    for key, value in scene.meta.items():
        key, value = str(key), str(value)
        if not key.strip() or "=" in key or "\n" in key + value or key.strip() == "axisAlignment":
            raise DataError(where, f"Scene.meta[{key!r}]", "cannot be written as a 'key = value' line")
        lines.append(f"{key} = {value}")
    return "".join(line + "\n" for line in lines)


def write_scannet_scene(scene: Scene, folder: str | os.PathLike) -> Path:
    """Write ``scene`` as a ScanNet v2 scene folder ``folder`` (files named after ``scene.name``).

    Writes the mesh ply (binary little-endian; alpha 255), the meta txt, and, when the scene has
    segments / groups, the segs.json and aggregation.json. A labelled scene without seg_groups
    gets them from ``derive_seg_groups``. All files are written to a temporary folder that is
    renamed into place, so a failure leaves nothing; an existing folder holding other files is
    refused rather than replaced. Returns ``folder``.
    """
    folder = Path(folder)
    name = scene.name
    if not name or name in (".", "..") or "/" in name or os.sep in name:
        raise DataError(folder, "Scene.name", f"{name!r} cannot name the scene's files")
    if len(scene) == 0:
        raise DataError(folder, "Scene.points", "no points (empty scene)")
    segments, groups = scene.segments, scene.seg_groups
    if groups is None and (scene.semantic is None) != (scene.instance is None):
        raise DataError(folder, "Scene.instance" if scene.instance is None else "Scene.semantic",
                        "missing: the ScanNet format stores semantic and instance labels together")
    if groups is None and scene.has_labels:
        segments, groups = derive_seg_groups(scene, folder)
    elif groups is not None:
        if segments is None:
            raise DataError(folder, "Scene.segments", "missing: seg_groups refer to segments")
        _check_groups_match(scene, segments, groups, folder)
    files = scene_files(folder, name)
    if folder.exists():
        if not folder.is_dir():
            raise DataError(folder, None, "exists and is not a folder")
        ours = {p.name for p in files.values()}
        other = sorted(p.name for p in folder.iterdir() if p.name not in ours)
        if other:
            raise DataError(folder, None, f"exists and holds other files {other[:5]}: refusing to replace it")

    with atomic_path(folder) as tmp:
        tmp.mkdir()
        out = scene_files(tmp, name)
        vertex = np.empty(len(scene), [("x", "f4"), ("y", "f4"), ("z", "f4"),
                                       ("red", "u1"), ("green", "u1"), ("blue", "u1"), ("alpha", "u1")])
        for i, c in enumerate("xyz"):
            vertex[c] = scene.points[:, i]
        rgb = unit_to_uchar(scene.colors)
        for i, c in enumerate(("red", "green", "blue")):
            vertex[c] = rgb[:, i]
        vertex["alpha"] = 255
        save_ply(out["ply"], vertex, scene.faces)
        out["meta"].write_text(_meta_text(scene, folder), encoding="utf-8")
        if segments is not None:
            write_segments(out["segs"], name, segments)
        if groups is not None:
            agg = {"sceneId": f"scannet.{name}", "appId": APP_ID,
                   "segGroups": [{"id": g.id, "objectId": g.object_id, "segments": list(g.segments),
                                  "label": g.label} for g in groups],
                   "segmentsFile": f"scannet.{name}{SEGS_SUFFIX}"}
            out["aggregation"].write_text(json.dumps(agg, indent=1), encoding="utf-8")
    return folder


# --- dataset level --------------------------------------------------------------------------------
def _is_scene_folder(path: Path) -> bool:
    return path.is_dir() and next(path.glob(f"*{PLY_SUFFIX}"), None) is not None


def list_scenes(root: str | os.PathLike, subset: str = "scans") -> list[Path]:
    """Sorted scene folders under ``root``: a dataset root holding ``scans/`` (or ``subset``), a
    folder of scene folders, or a single scene folder."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(root, None, "not a folder")
    if _is_scene_folder(root):
        return [root]
    base = root / subset if (root / subset).is_dir() else root
    scenes = sorted(p for p in base.iterdir() if _is_scene_folder(p))
    if not scenes:
        raise DataError(base, None, f"no ScanNet scene folders (<sceneId>/<sceneId>{PLY_SUFFIX}) found")
    return scenes


def read_split(root: str | os.PathLike, split: str) -> list[str]:
    """Scene ids of ``scannetv2_<split>.txt`` (one per line), found in ``root`` or its parent
    (``root`` may be the dataset root or its ``scans/``), or ``root`` itself when it is that file."""
    root = Path(root)
    name = f"scannetv2_{split}.txt"
    path = next((p for p in (root, root / name, root.parent / name) if p.is_file()), None)
    if path is None:
        raise DataError(root / name, None, "split file not found")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(path, None, f"cannot read ({type(e).__name__}: {e})") from None
    ids = [line.strip() for line in lines if line.strip()]
    for lineno, sid in enumerate(ids, start=1):
        if len(sid.split()) != 1 or "/" in sid:
            raise DataError(path, f"entry {lineno}", f"not a scene id: {sid!r}")
    return ids
