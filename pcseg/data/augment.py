"""Training augmentations on a Scene (numpy), driven by an ``np.random.Generator`` passed in.

    aug = Augmentation(rotate_max=math.pi, elastic_params=((0.2, 0.4), (0.8, 1.6)))
    scene = aug(scene, np.random.default_rng(seed))

Steps, in order (each one switched by its flag): point dropout, holes, crop, rotation about z, flips
of x and y, isotropic scaling, elastic distortion, point noise, colour jitter. Geometric steps act about the scene's
"anchor" (the centre of its x/y bounding box at the height of its lowest point), so the scene stays
where it was and the floor stays at the floor's height under rotation, flips and scaling.
Labels, instance ids and point order are untouched, except that dropout and crop select points
(keeping their relative order). A geometrically changed scene loses its ``axis_alignment``: the
matrix no longer describes its points.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from ..errors import ConfigError
from ..structures import Scene

# The elastic noise grid is materialised; refuse grids that would take gigabytes.
MAX_ELASTIC_CELLS = 20_000_000


@dataclass
class Augmentation:
    """What to apply and how strongly. Validated on construction (ConfigError on bad values).

    rotate / rotate_max:     rotation about z by an angle uniform in [-rotate_max, rotate_max] radians
                             (pi = any angle).
    flip / flip_prob:        mirror x, and independently y, each with probability flip_prob.
    scale / scale_range:     isotropic scale by a factor uniform in scale_range.
    elastic / elastic_params / elastic_prob:
                             with probability elastic_prob, for each (granularity, magnitude) pair in
                             metres, displace points by smooth noise (see ``elastic_distortion``).
    color / brightness / contrast / color_noise:
                             add one shift uniform in [-brightness, brightness] to every colour; scale
                             colours about their mean by a factor uniform in [1-contrast, 1+contrast]; add
                             per-point Gaussian noise of std color_noise; clip to 0..1.
    color_cast:              per-scene gain per channel uniform in [1-color_cast, 1+color_cast] (a colour
                             cast: warm, cold or tinted lighting; 0 = off).
    gray_prob:               probability that the scene's colours become their grey level.
    color_drop_prob:         probability that every colour is replaced by one constant grey, so that
                             geometry alone must carry the classes.
    dropout:                 fraction of points dropped at random (0 = off).
    holes / hole_radius:     cut 0..holes holes (a uniform count) per scene: the points within a radius
                             uniform in hole_radius (metres) of a random point go, as where a real scan
                             saw nothing (0 = off).
    point_noise:             per-scene sensor noise: every point moves by Gaussian noise of a std drawn
                             uniformly in [0, point_noise] metres for the scene (0 = off).
    crop_points:             keep at most this many points: those nearest a random point (None = off).
    """

    rotate: bool = True
    rotate_max: float = math.pi
    flip: bool = True
    flip_prob: float = 0.5
    scale: bool = True
    scale_range: tuple[float, float] = (0.9, 1.1)
    elastic: bool = True
    elastic_params: tuple[tuple[float, float], ...] = ((0.2, 0.4), (0.8, 1.6))
    elastic_prob: float = 0.95
    color: bool = True
    brightness: float = 0.1
    contrast: float = 0.2
    color_noise: float = 0.02
    color_cast: float = 0.0
    gray_prob: float = 0.0
    color_drop_prob: float = 0.0
    dropout: float = 0.0
    holes: int = 0
    hole_radius: tuple[float, float] = (0.2, 0.6)
    point_noise: float = 0.0
    crop_points: int | None = None

    def __post_init__(self) -> None:
        def bad(name, why):
            raise ConfigError(f"Augmentation.{name}: {why}, got {getattr(self, name)!r}")

        for name in ("rotate", "flip", "scale", "elastic", "color"):
            if not isinstance(getattr(self, name), bool):
                bad(name, "expected true or false")
        for name in ("rotate_max", "flip_prob", "elastic_prob", "brightness", "contrast", "color_noise", "dropout",
                     "color_cast", "gray_prob", "color_drop_prob", "point_noise"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                bad(name, "expected a finite number >= 0")
            setattr(self, name, float(v))
        for name in ("flip_prob", "elastic_prob", "contrast", "color_cast", "gray_prob", "color_drop_prob"):
            if getattr(self, name) > 1:
                bad(name, "expected a value in 0..1")
        if self.rotate_max > math.pi:
            bad("rotate_max", "expected at most pi (a full turn)")
        if self.dropout >= 1:
            bad("dropout", "expected a fraction in [0, 1)")
        def positive_range(name):
            try:
                lo, hi = (float(v) for v in getattr(self, name))
            except (TypeError, ValueError):
                bad(name, "expected two numbers (low, high)")
            if not (0 < lo <= hi and math.isfinite(hi)):
                bad(name, "expected 0 < low <= high")
            setattr(self, name, (lo, hi))

        positive_range("scale_range")
        try:
            pairs = tuple((float(g), float(m)) for g, m in self.elastic_params)
        except (TypeError, ValueError):
            bad("elastic_params", "expected a list of (granularity, magnitude) pairs")
        if any(not (0 < g < math.inf and 0 <= m < math.inf) for g, m in pairs):
            bad("elastic_params", "expected granularity > 0 and magnitude >= 0 (metres)")
        self.elastic_params = pairs
        if isinstance(self.holes, bool) or not isinstance(self.holes, int) or self.holes < 0:
            bad("holes", "expected an integer >= 0")
        positive_range("hole_radius")
        if self.crop_points is not None and (isinstance(self.crop_points, bool) or not isinstance(self.crop_points, int)
                                             or self.crop_points < 1):
            bad("crop_points", "expected a positive integer or null")

    def __call__(self, scene: Scene, rng: np.random.Generator) -> Scene:
        """Return an augmented copy of ``scene`` (the input is not modified)."""
        if len(scene) == 0:
            return scene
        if self.dropout > 0:
            keep = rng.random(len(scene)) >= self.dropout
            if not keep.any():
                keep[rng.integers(len(scene))] = True
            scene = scene[keep]
        if self.holes > 0:
            scene = scene[hole_mask(scene.points, int(rng.integers(0, self.holes + 1)), self.hole_radius, rng)]
        if self.crop_points is not None and len(scene) > self.crop_points:
            scene = scene[crop_indices(scene.points, self.crop_points, rng)]

        points = scene.points.astype(np.float64)
        normals = None if scene.normals is None else scene.normals.astype(np.float64)
        anchor = np.array([*(points[:, :2].min(0) + points[:, :2].max(0)) / 2, points[:, 2].min()])
        points -= anchor
        if self.rotate and self.rotate_max > 0:
            rot = rotation_z(rng.uniform(-self.rotate_max, self.rotate_max))
            points = points @ rot.T
            normals = None if normals is None else normals @ rot.T
        if self.flip:
            for axis in (0, 1):
                if rng.random() < self.flip_prob:
                    points[:, axis] *= -1
                    if normals is not None:
                        normals[:, axis] *= -1
        if self.scale:
            points *= rng.uniform(*self.scale_range)
        points += anchor
        if self.elastic and self.elastic_params and rng.random() < self.elastic_prob:
            for granularity, magnitude in self.elastic_params:
                points = elastic_distortion(points, granularity, magnitude, rng)
        if self.point_noise > 0:
            points = points + rng.normal(0.0, rng.uniform(0.0, self.point_noise), points.shape)

        colors = scene.colors
        if self.color:
            colors = jitter_colors(colors, self.brightness, self.contrast, self.color_noise, rng)
        colors = randomize_appearance(colors, self.color_cast, self.gray_prob, self.color_drop_prob, rng)
        geometric = self.rotate or self.flip or self.scale or self.elastic or self.point_noise > 0
        return replace(scene, points=points.astype(np.float32), colors=colors,
                       normals=None if normals is None else normals.astype(np.float32),
                       axis_alignment=None if geometric else scene.axis_alignment)


def rotation_z(angle: float) -> np.ndarray:
    """FloatArray[3, 3]: rotation by ``angle`` radians about the z axis (counter-clockwise seen from above)."""
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def hole_mask(points: np.ndarray, count: int, radius: tuple[float, float], rng: np.random.Generator) -> np.ndarray:
    """BoolArray[N]: False for the points within ``count`` balls around random points (radii uniform in
    ``radius``); at least one point is always kept."""
    keep = np.ones(len(points), bool)
    for _ in range(count):
        centre = points[rng.integers(len(points))]
        keep &= np.square(points - centre).sum(1) > rng.uniform(*radius) ** 2
    if not keep.any():
        keep[rng.integers(len(points))] = True
    return keep


def crop_indices(points: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """IntArray[n]: the ``n`` points nearest a randomly chosen point, in their original order."""
    centre = points[rng.integers(len(points))]
    d = np.square(points - centre).sum(1)
    return np.sort(np.argpartition(d, n - 1)[:n])


def elastic_distortion(points: np.ndarray, granularity: float, magnitude: float,
                       rng: np.random.Generator) -> np.ndarray:
    """Displace points by a smooth random field (the SparseConvNet / MinkowskiEngine recipe).

    points: FloatArray[N, 3]. A grid of N(0, 1) noise vectors with cell size ``granularity`` covers
    the points with one cell of margin; each component is smoothed by a 3-wide box filter along x,
    y and z, twice (std about 0.11); the field is trilinearly interpolated at the points, clipped to
    [-1, 1] (about 9 std, so this only makes the bound exact) and scaled by ``magnitude``. Every
    point therefore moves by at most ``magnitude`` along each axis, and points closer than
    ``granularity`` move almost alike. Returns FloatArray[N, 3] (float64).
    """
    from scipy.interpolate import RegularGridInterpolator
    from scipy.ndimage import uniform_filter1d

    points = np.asarray(points, np.float64)
    if magnitude == 0 or len(points) == 0:
        return points.copy()
    lo = points.min(0)
    dims = ((points.max(0) - lo) // granularity).astype(np.int64) + 3
    if int(np.prod(dims)) > MAX_ELASTIC_CELLS:
        raise ValueError(f"elastic_distortion: granularity {granularity} gives a noise grid of {dims.tolist()} "
                         f"cells for a scene of extent {(points.max(0) - lo).round(2).tolist()} m; use a coarser one")
    noise = rng.standard_normal((*dims.tolist(), 3))
    for _ in range(2):
        for axis in range(3):
            noise = uniform_filter1d(noise, size=3, axis=axis, mode="constant", cval=0.0)
    axes = [lo[a] + granularity * (np.arange(dims[a]) - 1) for a in range(3)]
    field = RegularGridInterpolator(axes, noise, method="linear", bounds_error=False, fill_value=0.0)
    return points + magnitude * np.clip(field(points), -1.0, 1.0)


def randomize_appearance(colors: np.ndarray, cast: float, gray_prob: float, drop_prob: float,
                         rng: np.random.Generator) -> np.ndarray:
    """FloatArray[N, 3]: a per-channel colour cast (gains uniform in [1-cast, 1+cast]), then with
    probability ``gray_prob`` grey levels, and with probability ``drop_prob`` one constant grey for
    every point. Draws nothing from ``rng`` when all three are 0 (earlier recipes stay reproducible)."""
    if cast == 0 and gray_prob == 0 and drop_prob == 0:
        return colors
    c = np.asarray(colors, np.float64)
    if cast > 0:
        c = c * rng.uniform(1 - cast, 1 + cast, size=3)
    if gray_prob > 0 and rng.random() < gray_prob:
        c = np.repeat(c @ np.array([[0.299], [0.587], [0.114]]), 3, axis=1)
    if drop_prob > 0 and rng.random() < drop_prob:
        c = np.full_like(c, 0.5)
    return np.clip(c, 0.0, 1.0).astype(np.float32)


def jitter_colors(colors: np.ndarray, brightness: float, contrast: float, noise: float,
                  rng: np.random.Generator) -> np.ndarray:
    """FloatArray[N, 3] colours in 0..1 -> jittered colours, clipped to 0..1 (float32)."""
    c = np.asarray(colors, np.float64)
    if brightness > 0:
        c = c + rng.uniform(-brightness, brightness)
    if contrast > 0:
        mean = c.mean(0, keepdims=True)
        c = mean + (c - mean) * rng.uniform(1 - contrast, 1 + contrast)
    if noise > 0:
        c = c + rng.normal(0.0, noise, c.shape)
    return np.clip(c, 0.0, 1.0).astype(np.float32)
