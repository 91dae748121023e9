"""Generate one synthetic ScanNet-style scene: furnish a room, mesh it, scan it, label it.

Pipeline (all seeded from one ``np.random.SeedSequence``): ``rooms.make_room`` -> ``mesh.assemble``
-> trajectory + visibility (``scan``) -> keep what was seen -> move into a random scan frame ->
sensor noise -> segments and segGroups -> optional RGB-D frames rendered along the trajectory.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.spatial import cKDTree

from ..io.frames import FrameIntrinsics, RGBDFrame
from ..labels import BUNDLED_RAW_CATEGORIES, INSTANCE_IDS
from ..structures import Scene, SegGroup
from . import frames as frames_mod
from .domain import get_domain
from .mesh import assemble
from .rooms import ROOM_TYPES, make_room
from .scan import cull, look_poses, raycaster, sensor_noise, trajectory, triangle_areas, visible_vertices

SCENE_TYPE = {"bedroom": "Bedroom / Hotel", "office": "Office", "living room": "Living room / Lounge",
              "kitchen": "Kitchen", "bathroom": "Bathroom", "conference room": "Conference Room",
              "classroom": "Classroom"}
TRAJECTORY_CAMERAS = 48
CAMERAS_PER_VERTEX = 8
TOUCH_DISTANCE = 0.02
# void clutter that is sometimes left unannotated (as annotators skip small things)
SKIPPABLE = {"books", "keyboard", "backpack", "box", "towel"}


@dataclass
class SynthScene:
    """A generated scene: the labelled mesh, its RGB-D frames (scan frame) and statistics."""

    scene: Scene
    frames: list[RGBDFrame] = field(default_factory=list)
    intrinsics: FrameIntrinsics | None = None
    stats: dict = field(default_factory=dict)


def _scan_transform(rng: np.random.Generator) -> np.ndarray:
    """FloatArray[4, 4]: room frame -> scan frame (random yaw and shift, as real scans start anywhere)."""
    a = rng.uniform(0, 2 * np.pi)
    m = np.eye(4)
    m[:2, :2] = [[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]]
    m[:3, 3] = [rng.uniform(-3, 3), rng.uniform(-3, 3), rng.uniform(-0.1, 0.1)]
    return m


def touching_pairs(points: np.ndarray, semantic: np.ndarray, instance: np.ndarray,
                   distance: float = TOUCH_DISTANCE) -> int:
    """Number of pairs of benchmark-class instances of the same class closer than ``distance``."""
    pairs = set()
    for c in np.unique(semantic[np.isin(semantic, INSTANCE_IDS)]):
        sel = np.flatnonzero((semantic == c) & (instance > 0))
        if len(np.unique(instance[sel])) < 2:
            continue
        tree = cKDTree(points[sel])
        _, nb = tree.query(points[sel], k=8, distance_upper_bound=distance)
        valid = nb < len(sel)
        a = np.broadcast_to(instance[sel][:, None], nb.shape)[valid]
        b = instance[sel][nb[valid]]
        diff = a != b
        pairs.update(zip(np.minimum(a, b)[diff].tolist(), np.maximum(a, b)[diff].tolist()))
    return len(pairs)


def generate_scene(seed: int, name: str, frames: int = 0, kind: str | None = None,
                   domain: str = "standard") -> SynthScene:
    """A synthetic scene named ``name`` (e.g. 'scene0000_00') from ``seed``, with ``frames``
    RGB-D frames; ``kind`` picks the room type (one of rooms.ROOM_TYPES; random when None);
    ``domain``: "standard", or "shifted" (``synth.domain``: a domain training never sees)."""
    dom = get_domain(domain)
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"generate_scene: seed must be a non-negative integer, got {seed!r}")
    if not isinstance(frames, (int, np.integer)) or isinstance(frames, bool) or frames < 0:
        raise ValueError(f"generate_scene: frames must be a non-negative integer, got {frames!r}")
    if kind is not None and kind not in ROOM_TYPES:
        raise ValueError(f"generate_scene: unknown room type {kind!r}; expected one of {ROOM_TYPES}")
    r_room, r_scan, r_noise, r_frames = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(4))
    r_domain = np.random.default_rng(np.random.SeedSequence(seed).spawn(5)[4])  # the standard rooms never draw from it

    room = make_room(r_room, kind)
    mesh = assemble(room.objects, r_room)
    rc = raycaster(mesh)
    cams = trajectory(room, max(TRAJECTORY_CAMERAS, frames), r_scan)
    visible = visible_vertices(rc, mesh, cams, CAMERAS_PER_VERTEX, r_scan)
    index, faces = cull(mesh, dom.cut_holes(mesh.verts, visible, r_domain))

    # annotation: every object that survived the scan, minus a few small void ones
    obj = mesh.obj[index]
    present = np.unique(obj)
    annotated = [int(o) for o in present
                 if not (room.objects[o].raw in SKIPPABLE and r_noise.random() < dom.skip_clutter)]
    object_id = np.full(len(room.objects), -1, np.int64)
    object_id[annotated] = np.arange(len(annotated))
    nyu = np.array([BUNDLED_RAW_CATEGORIES[o.raw] for o in room.objects], np.int64)
    instance = np.where(object_id[obj] >= 0, object_id[obj] + 1, -1)
    semantic = np.where(object_id[obj] >= 0, nyu[obj], 0)

    # segments: ids are the lowest vertex index of the segment (arbitrary, non-contiguous as in ScanNet)
    _, inv = np.unique(mesh.seg[index], return_inverse=True)
    first = np.full(inv.max() + 1, len(index), np.int64)
    np.minimum.at(first, inv, np.arange(len(index)))
    segments = first[inv]
    groups = []
    for o in annotated:
        segs = np.unique(segments[obj == o])
        groups.append(SegGroup(int(object_id[o]), int(object_id[o]), room.objects[o].raw, tuple(int(s) for s in segs)))

    to_scan = _scan_transform(r_noise)
    pts = mesh.verts[index] @ to_scan[:3, :3].T + to_scan[:3, 3]
    pts, colors = sensor_noise(pts, mesh.colors[index], r_noise, sigma=dom.noise_sigma)
    colors = dom.recolor(colors, r_domain)
    meta = {"sceneType": SCENE_TYPE[room.kind],
            "colorHeight": str(frames_mod.HEIGHT), "colorWidth": str(frames_mod.WIDTH),
            "depthHeight": str(frames_mod.HEIGHT), "depthWidth": str(frames_mod.WIDTH)}
    k = frames_mod.INTRINSICS
    for cam, mat in (("color", k.intrinsic_color), ("depth", k.intrinsic_depth)):
        meta.update({f"fx_{cam}": f"{mat[0, 0]:f}", f"fy_{cam}": f"{mat[1, 1]:f}",
                     f"mx_{cam}": f"{mat[0, 2]:f}", f"my_{cam}": f"{mat[1, 2]:f}"})
    meta.update({"numColorFrames": str(frames), "numDepthFrames": str(frames), "numIMUmeasurements": "0"})
    scene = Scene(points=pts.astype(np.float32), colors=colors.astype(np.float32), semantic=semantic,
                  instance=instance, name=name, faces=faces, segments=segments, seg_groups=tuple(groups),
                  axis_alignment=np.linalg.inv(to_scan), meta=meta)

    rendered = []
    if frames:
        face_obj = mesh.face_obj
        face_inst = np.where(object_id[face_obj] >= 0, object_id[face_obj] + 1, 0)
        face_label = np.where(object_id[face_obj] >= 0, nyu[face_obj], 0)
        centres = cams[np.linspace(0, len(cams) - 1, frames).round().astype(int)]
        poses = look_poses(room, centres, r_frames)
        rendered = frames_mod.render(rc, mesh, face_label, face_inst, poses, r_frames)
        for f in rendered:
            f.pose = to_scan @ f.pose

    full_area = triangle_areas(mesh.verts, mesh.faces).sum()
    kept_area = triangle_areas(mesh.verts[index], faces).sum()
    bench = [o for o in annotated if nyu[o] in INSTANCE_IDS]
    dist, _ = cKDTree(pts).query(pts, k=2)
    stats = {"name": name, "room_type": room.kind, "vertices": int(len(pts)), "faces": int(len(faces)),
             "objects": len(annotated), "benchmark_instances": len(bench),
             "classes": sorted({int(nyu[o]) for o in bench}),
             "touching_pairs": touching_pairs(pts, semantic, instance),
             "visible_fraction": float(kept_area / full_area), "nn_spacing": float(np.median(dist[:, 1])),
             "segments": int(len(np.unique(segments))), "frames": int(frames), "domain": dom.name}
    return SynthScene(scene, rendered, k if frames else None, stats)
