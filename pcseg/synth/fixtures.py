"""Bathroom fixtures, small furniture, and objects that hang on walls (doors, windows, curtains,
pictures). Same local frame as :mod:`pcseg.synth.furniture`: back at -y, front +y, floor z = 0.
Wall items are built with their back on the wall plane y = -depth/2 of a zero-depth footprint.
"""
from __future__ import annotations

import numpy as np

from .furniture import BRIGHT, FABRIC, METAL, WHITE, WOOD, Group, Obj, basin, color, lamp
from .parts import box, cylinder, pleated


def toilet(rng) -> Group:
    """A toilet: tank against the wall, base, bowl with a seat."""
    c = color(rng, WHITE)
    d = rng.uniform(0.65, 0.75)
    tw = rng.uniform(0.38, 0.45)
    parts = [box((-tw / 2, -d / 2, 0.38), (tw / 2, -d / 2 + 0.18, 0.8), c),
             box((-0.12, -d / 2 + 0.1, 0), (0.12, d / 2 - 0.2, 0.3), c, bottom=False),
             cylinder((0, d / 2 - 0.2), 0.19, 0.22, 0.4, c, bottom=True),
             box((-0.17, -d / 2 + 0.18, 0.3), (0.17, -d / 2 + 0.35, 0.4), c, bottom=True)]
    return Group([Obj("toilet", parts)], tw, d, 0.8)


def bathtub(rng, curtain: bool = True) -> Group:
    """A bathtub (open basin with thick walls); with a pleated 'shower curtain' along its front."""
    w, d, h = rng.uniform(1.4, 1.75), rng.uniform(0.7, 0.8), rng.uniform(0.5, 0.6)
    c = color(rng, WHITE)
    t = 0.08
    parts = [box((-w / 2, -d / 2, 0), (w / 2, d / 2, 0.06), c, bottom=False),
             box((-w / 2, -d / 2, 0), (-w / 2 + t, d / 2, h), c, bottom=False),
             box((w / 2 - t, -d / 2, 0), (w / 2, d / 2, h), c, bottom=False),
             box((-w / 2 + t, -d / 2, 0), (w / 2 - t, -d / 2 + t, h), c, bottom=False),
             box((-w / 2 + t, d / 2 - t, 0), (w / 2 - t, d / 2, h), c, bottom=False)]
    objs = [Obj("bathtub", parts)]
    if curtain:
        drawn = rng.uniform(0.3, 0.9) * w
        x0 = rng.choice([-w / 2, w / 2 - drawn])
        cc = color(rng, WHITE + BRIGHT)
        objs.append(Obj("shower curtain", [pleated(x0, x0 + drawn, d / 2 - 0.06, h + 0.08, 2.0, cc, depth=0.04),
                                           cylinder((x0 + drawn / 2, d / 2 - 0.04), 0.01, 2.0, 2.03, METAL[1])]))
    return Group(objs, w, d, 2.0 if curtain else h, tall=curtain)


def vanity(rng, sinks: int = 1) -> Group:
    """A bathroom vanity: 'cabinet' body, a 'counter' top with ``sinks`` basins sunk into it."""
    w = rng.uniform(0.6, 0.9) * sinks
    d, h = rng.uniform(0.45, 0.55), rng.uniform(0.8, 0.88)
    c, top_c, sc = color(rng, WOOD + WHITE), color(rng, WHITE + METAL), color(rng, WHITE)
    objs = [Obj(rng.choice(["cabinet", "bathroom vanity"]),
                [box((-w / 2, -d / 2, 0), (w / 2, d / 2 - 0.02, h - 0.03), c, bottom=False),
                 box((-w / 2 + 0.01, d / 2 - 0.02, 0.08), (w / 2 - 0.01, d / 2, h - 0.05), c, bottom=False)])]
    edges = np.linspace(-w / 2, w / 2, sinks + 1)
    slab = []
    prev = -w / 2
    for a, b in zip(edges[:-1], edges[1:]):
        sx0, sx1 = (a + b) / 2 - 0.2, (a + b) / 2 + 0.2
        sy0, sy1 = -d / 2 + 0.12, d / 2 - 0.06
        slab += [box((prev, -d / 2, h - 0.03), (sx0, d / 2, h), top_c),
                 box((sx0, -d / 2, h - 0.03), (sx1, sy0, h), top_c), box((sx0, sy1, h - 0.03), (sx1, d / 2, h), top_c)]
        prev = sx1
        objs.append(Obj("sink", basin(sx0, sx1, sy0, sy1, h - 0.16, h + 0.005, sc)
                        + [cylinder(((sx0 + sx1) / 2, sy0 - 0.05), 0.015, h, h + 0.22, METAL[1])]))
    slab.append(box((prev, -d / 2, h - 0.03), (w / 2, d / 2, h), top_c))
    objs.append(Obj("counter", slab))
    return Group(objs, w, d, h)


def small_furniture(rng, raw: str) -> Group:
    """Nightstand, dresser, wardrobe, tv stand (+ tv), trash can, ottoman, stool, plant."""
    if raw in ("nightstand", "dresser", "wardrobe", "tv stand"):
        lo_hi = {"nightstand": ((0.4, 0.55), (0.35, 0.45), (0.45, 0.65)), "dresser": ((0.8, 1.4), (0.45, 0.55), (0.75, 1.1)),
                 "wardrobe": ((0.8, 1.5), (0.5, 0.65), (1.8, 2.2)), "tv stand": ((1.0, 1.8), (0.35, 0.5), (0.4, 0.6))}[raw]
        w, d, h = (rng.uniform(*r) for r in lo_hi)
        c = color(rng, WOOD + WHITE)
        parts = [box((-w / 2, -d / 2, 0), (w / 2, d / 2 - 0.02, h), c, bottom=False)]
        rows = max(1, int(h / 0.3)) if raw != "wardrobe" else 1
        cols = 2 if w > 0.7 else 1
        for i in range(rows):
            for j in range(cols):
                x0, x1 = -w / 2 + j * w / cols + 0.005, -w / 2 + (j + 1) * w / cols - 0.005
                z0, z1 = 0.05 + i * (h - 0.07) / rows + 0.005, 0.05 + (i + 1) * (h - 0.07) / rows - 0.005
                parts.append(box((x0, d / 2 - 0.02, z0), (x1, d / 2, z1), c, bottom=False))
                hx = (x0 + x1) / 2 if raw != "wardrobe" else (x1 - 0.05 if j == 0 else x0 + 0.05)
                parts.append(box((hx - 0.05, d / 2, (z0 + z1) / 2 - 0.01), (hx + 0.05, d / 2 + 0.02, (z0 + z1) / 2 + 0.01),
                                 METAL[1]))
        objs = [Obj(raw, parts)]
        if raw == "tv stand":
            tw = min(w - 0.1, rng.uniform(0.9, 1.4))
            tc = METAL[2]
            objs.append(Obj("tv", [box((-0.15, -0.1, h), (0.15, 0.1, h + 0.03), tc, bottom=False),
                                   box((-0.03, -0.05, h + 0.03), (0.03, -0.01, h + 0.12), tc, bottom=False),
                                   box((-tw / 2, -0.01, h + 0.08), (tw / 2, 0.05, h + 0.08 + tw * 0.58), tc)]))
        if raw == "nightstand" and rng.random() < 0.7:
            objs.append(lamp(rng, 0.0, -0.05, h, small=True))
        return Group(objs, w, d, h, tall=h > 0.9)
    if raw in ("trash can", "plant"):
        r = rng.uniform(0.12, 0.2)
        h = rng.uniform(0.3, 0.5)
        parts = [cylinder((0, 0), r, 0, h, color(rng, METAL + BRIGHT))]
        if raw == "plant":
            f = rng.uniform(0.25, 0.4)
            parts.append(box((-f / 2, -f / 2, h), (f / 2, f / 2, h + rng.uniform(0.3, 0.8)), color(rng, [(0.2, 0.5, 0.2)])))
        return Group([Obj(raw, parts)], 2 * r, 2 * r, h)
    if raw == "ottoman":
        s = rng.uniform(0.4, 0.7)
        return Group([Obj(raw, [box((-s / 2, -s / 2, 0), (s / 2, s / 2, rng.uniform(0.35, 0.45)),
                                    color(rng, FABRIC), bottom=False)])], s, s, 0.45)
    if raw == "stool":
        h, r = rng.uniform(0.45, 0.75), rng.uniform(0.15, 0.2)
        c = color(rng, WOOD + METAL)
        parts = [cylinder((0, 0), r, h - 0.04, h, c, bottom=True)]
        for a in (0.0, 2.1, 4.2):
            x, y = 0.7 * r * np.cos(a), 0.7 * r * np.sin(a)
            parts.append(box((x - 0.015, y - 0.015, 0), (x + 0.015, y + 0.015, h - 0.04), c, bottom=False))
        return Group([Obj(raw, parts)], 2 * r, 2 * r, h)
    if raw == "box":
        s = rng.uniform(0.25, 0.6, 3)
        return Group([Obj(raw, [box((-s[0] / 2, -s[1] / 2, 0), (s[0] / 2, s[1] / 2, s[2]), color(rng, WOOD + WHITE),
                                    bottom=False)])], s[0], s[1], s[2])
    if raw == "backpack":
        return Group([Obj(raw, [box((-0.15, -0.1, 0), (0.15, 0.1, 0.4), color(rng, BRIGHT + FABRIC), bottom=False)])],
                     0.3, 0.2, 0.4)
    raise ValueError(f"small_furniture: unknown raw category {raw!r}")


# --- wall items: local x along the wall, y = 0 on the wall plane, +y into the room -------------------
def flat_on_wall(rng, raw: str, w: float, h: float, z0: float, thick: float = 0.025) -> Obj:
    """A flat object on the wall: 'picture' (frame + canvas), 'whiteboard', 'mirror', 'towel', 'tv'."""
    if raw == "picture":
        fc, cc = color(rng, WOOD + METAL), color(rng, BRIGHT + FABRIC)
        return Obj(raw, [box((-w / 2, 0, z0), (w / 2, thick, z0 + h), fc),
                         box((-w / 2 + 0.04, thick, z0 + 0.04), (w / 2 - 0.04, thick + 0.005, z0 + h - 0.04), cc)])
    palette = {"whiteboard": WHITE, "mirror": [(0.75, 0.8, 0.85)], "towel": BRIGHT + WHITE, "tv": METAL[2:]}[raw]
    return Obj(raw, [box((-w / 2, 0, z0), (w / 2, thick, z0 + h), color(rng, palette))])


def door(rng, w: float, h: float) -> Obj:
    """A closed door in a wall opening x in [-w/2, w/2], z in [0, h]: leaf behind the wall plane,
    jambs lining the opening, a casing around it, a handle."""
    c, fc = color(rng, WOOD + WHITE), color(rng, WHITE + WOOD)
    t = 0.15  # wall thickness the jambs line
    leaf_y = -t + 0.02
    return Obj("door", [
        box((-w / 2, leaf_y - 0.04, 0), (w / 2, leaf_y, h), c, bottom=False),
        box((-w / 2 - 0.02, -t, 0), (-w / 2, 0, h), fc, bottom=False),
        box((w / 2, -t, 0), (w / 2 + 0.02, 0, h), fc, bottom=False),
        box((-w / 2 - 0.02, -t, h), (w / 2 + 0.02, 0, h + 0.02), fc),
        box((-w / 2 - 0.08, 0, 0), (-w / 2, 0.015, h + 0.08), fc, bottom=False),
        box((w / 2, 0, 0), (w / 2 + 0.08, 0.015, h + 0.08), fc, bottom=False),
        box((-w / 2, 0, h), (w / 2, 0.015, h + 0.08), fc),
        box((w / 2 - 0.12, leaf_y, 0.98), (w / 2 - 0.05, leaf_y + 0.06, 1.02), METAL[1]),
        box((-w / 2, leaf_y, 0), (w / 2, 0, 0.01), fc, bottom=False)])  # threshold: the floor of the opening


def window(rng, w: float, z0: float, z1: float) -> Obj:
    """A window in a wall opening x in [-w/2, w/2], z in [z0, z1]: frame, mullion, sill (no glass:
    a depth sensor sees through it)."""
    c = color(rng, WHITE + WOOD)
    t, f = 0.15, 0.05
    parts = [box((-w / 2, -t, z0), (w / 2, 0.0, z0 + f), c), box((-w / 2, -t, z1 - f), (w / 2, 0.0, z1), c),
             box((-w / 2, -t, z0), (-w / 2 + f, 0.0, z1), c), box((w / 2 - f, -t, z0), (w / 2, 0.0, z1), c),
             box((-0.025, -t + 0.04, z0), (0.025, -t + 0.1, z1), c),
             box((-w / 2 - 0.05, 0.0, z0 - 0.03), (w / 2 + 0.05, 0.12, z0), c)]
    if rng.random() < 0.5:
        zm = rng.uniform(z0 + 0.3, z1 - 0.3)
        parts.append(box((-w / 2, -t + 0.04, zm - 0.025), (w / 2, -t + 0.1, zm + 0.025), c))
    return Obj("window", parts)


def curtain(rng, x0: float, x1: float, z0: float, z1: float, raw: str = "curtain") -> Obj:
    """A pleated curtain hanging from z1 down to z0 in front of the wall, x from x0 to x1."""
    return Obj(raw, [pleated(x0, x1, 0.1, z0, z1, color(rng, FABRIC + WHITE), depth=rng.uniform(0.03, 0.07))])
