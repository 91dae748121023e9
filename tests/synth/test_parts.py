"""Mesh primitives: areas, edge lengths, orientation, welding into closed surfaces."""
import numpy as np
import pytest

from pcseg.synth.furniture import Obj
from pcseg.synth.mesh import assemble
from pcseg.synth.parts import EDGE, box, cylinder, rect
from pcseg.synth.scan import triangle_areas


def face_normals(verts, faces):
    a, b, c = verts[faces[:, 0]], verts[faces[:, 1]], verts[faces[:, 2]]
    n = np.cross(b - a, c - a)
    return n / np.linalg.norm(n, axis=1, keepdims=True)


def test_box_area_edges_and_outward_orientation():
    p = box((0.1, -0.2, 0.0), (0.9, 0.3, 0.4), (0.5, 0.5, 0.5))
    area = 2 * (0.8 * 0.5 + 0.8 * 0.4 + 0.5 * 0.4)
    assert triangle_areas(p.verts, p.faces).sum() == pytest.approx(area, rel=1e-9)
    edges = np.linalg.norm(p.verts[p.faces] - p.verts[np.roll(p.faces, 1, 1)], axis=2)
    assert edges.max() <= EDGE * np.sqrt(2) + 1e-9
    # triangles wind counter-clockwise around the outward vertex normals
    fn = face_normals(p.verts, p.faces)
    assert np.all((fn * p.normals[p.faces[:, 0]]).sum(1) > 0.99)
    centre = np.array([0.5, 0.05, 0.2])
    assert np.all(((p.verts - centre) * p.normals).sum(1) > 0)


def test_cylinder_area_and_orientation():
    p = cylinder((1.0, 2.0), 0.2, 0.1, 0.6, (0.3, 0.3, 0.3), top=True, bottom=True)
    area = 2 * np.pi * 0.2 * 0.5 + 2 * np.pi * 0.2 ** 2
    assert triangle_areas(p.verts, p.faces).sum() == pytest.approx(area, rel=0.02)
    fn = face_normals(p.verts, p.faces)
    assert np.all((fn * p.normals[p.faces[:, 0]]).sum(1) > 0.9)


def test_rect_holes_remove_their_area():
    full = rect((0, 0, 0), (4, 0, 0), (0, 0, 2.5), (1, 1, 1))
    holed = rect((0, 0, 0), (4, 0, 0), (0, 0, 2.5), (1, 1, 1), holes=[(1.0, 2.0, 0.0, 2.0)])
    removed = triangle_areas(full.verts, full.faces).sum() - triangle_areas(holed.verts, holed.faces).sum()
    assert removed == pytest.approx(2.0, abs=0.1)


def test_assemble_welds_a_box_into_a_closed_surface():
    mesh = assemble([Obj("box", [box((0, 0, 0), (0.5, 0.4, 0.3), (0.5, 0.4, 0.3))])], np.random.default_rng(0))
    f = mesh.faces
    directed = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
    # closed and consistently oriented: every directed edge once, and its reverse once
    assert len(np.unique(directed, axis=0)) == len(directed)
    rev = set(map(tuple, directed[:, ::-1].tolist()))
    assert all(tuple(e) in rev for e in directed.tolist())
    # welded corner vertices carry the averaged (diagonal) normal
    corner = np.flatnonzero(np.all(np.isclose(mesh.verts, 0.0), axis=1))
    assert len(corner) == 1
    assert mesh.normals[corner[0]] == pytest.approx(-np.ones(3) / np.sqrt(3))


def test_assemble_keeps_objects_apart_in_segments():
    a = box((0, 0, 0), (0.5, 0.5, 0.5), (1, 0, 0))
    b = box((0.5, 0, 0), (1.0, 0.5, 0.5), (0, 1, 0))  # touching a: shared face plane, same positions
    mesh = assemble([Obj("box", [a]), Obj("box", [b])], np.random.default_rng(0))
    assert set(np.unique(mesh.obj)) == {0, 1}
    for s in np.unique(mesh.seg):
        assert len(np.unique(mesh.obj[mesh.seg == s])) == 1
    assert np.all(mesh.obj[mesh.faces[:, 0]] == mesh.obj[mesh.faces[:, 1]])
