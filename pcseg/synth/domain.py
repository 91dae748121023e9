"""Generator settings that a model should not depend on: the standard rooms, and a shifted domain
that training never sees, to measure how much a model memorised the generator.

    standard   what every recipe trains on (and what earlier releases generated, byte for byte)
    shifted    per-scene colour casts darker and warmer than any training jitter (real scans are:
               mean colour 0.47, 0.42, 0.36 against 0.56, 0.53, 0.50), 2.7x the vertex noise, holes
               cut into the scan, and small clutter left unannotated four times as often

Only the mesh changes; RGB-D frames keep the standard colours.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Domain:
    name: str
    skip_clutter: float                   # probability that a small clutter object is left unannotated
    noise_sigma: float                    # vertex jitter (m)
    holes: tuple[int, int]                # how many holes are cut into the scan (inclusive range)
    hole_radius: tuple[float, float]      # their radius (m)
    color_cast: bool                      # a per-scene, per-channel colour cast and darkening

    def cut_holes(self, verts: np.ndarray, visible: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """``visible`` without the vertices inside this domain's holes (spheres centred on seen vertices)."""
        count = int(rng.integers(self.holes[0], self.holes[1] + 1)) if self.holes[1] > 0 else 0
        seen = np.flatnonzero(visible)
        keep = visible.copy()
        for centre in verts[rng.choice(seen, size=min(count, len(seen)), replace=False)]:
            radius = rng.uniform(*self.hole_radius)
            keep &= np.linalg.norm(verts - centre, axis=1) > radius
        return keep

    def recolor(self, colors: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """FloatArray[N, 3] colours with this domain's colour cast (unchanged without one)."""
        if not self.color_cast:
            return colors
        cast = np.array([rng.uniform(0.85, 1.0), rng.uniform(0.72, 0.88), rng.uniform(0.62, 0.82)])
        return np.clip(colors * cast + rng.uniform(-0.12, -0.04), 0.0, 1.0)


DOMAINS = {
    "standard": Domain("standard", skip_clutter=0.15, noise_sigma=0.003, holes=(0, 0), hole_radius=(0.0, 0.0),
                       color_cast=False),
    "shifted": Domain("shifted", skip_clutter=0.6, noise_sigma=0.008, holes=(3, 8), hole_radius=(0.15, 0.4),
                      color_cast=True),
}


def get_domain(name: str) -> Domain:
    if name not in DOMAINS:
        raise ValueError(f"unknown synthetic domain {name!r}; expected one of {sorted(DOMAINS)}")
    return DOMAINS[name]
