"""Per-point colours: RGB, NYU40 semantic palette, instances, embeddings (PCA) and errors."""
from __future__ import annotations

import colorsys

import numpy as np

from ..labels import INSTANCE_IDS, NYU40_PALETTE
from ..structures import InstanceSet, Scene

COLOR_MODES = ("rgb", "semantic", "instance", "embedding", "errors")
NONE_GREY = np.array([0.75, 0.75, 0.75], np.float32)


def instance_colors(n: int) -> np.ndarray:
    """FloatArray[n, 3]: distinct colours, the same for instance k in every run (golden-ratio hues)."""
    hues = (np.arange(n) * 0.618033988749895) % 1.0
    sat = 0.55 + 0.35 * ((np.arange(n) * 7) % 3) / 2
    val = 0.95 - 0.25 * ((np.arange(n) * 5) % 2)
    return np.array([colorsys.hsv_to_rgb(h, s, v) for h, s, v in zip(hues, sat, val)], np.float32).reshape(n, 3)


def semantic_colors(semantic: np.ndarray) -> np.ndarray:
    """IntArray[N] NYU40 ids -> FloatArray[N, 3] NYU40 palette colours (ids outside 0..40 are black)."""
    semantic = np.asarray(semantic, np.int64)
    ok = (semantic >= 0) & (semantic <= 40)
    return NYU40_PALETTE[np.where(ok, semantic, 0)].astype(np.float32) / 255.0


def pca_components(embeddings: np.ndarray, k: int = 3, sample: int = 50_000) -> tuple[np.ndarray, np.ndarray]:
    """The top ``k`` principal axes of ``embeddings`` (FloatArray[N, D]).

    Returns (mean FloatArray[D], axes FloatArray[k, D]). Each axis is signed so that its largest
    loading is positive (as sklearn's ``svd_flip``): the same embeddings give the same colours in
    every run, whatever sign the eigen-solver returns. The covariance is estimated on at most
    ``sample`` evenly spaced points (deterministic) so 200k points cost milliseconds.
    """
    x = np.asarray(embeddings, np.float64)
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"embeddings: expected a non-empty (N, D) array, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("embeddings: NaN or infinite values")
    sub = x[:: max(1, x.shape[0] // sample)]
    mean = sub.mean(0)
    cov = np.cov(sub - mean, rowvar=False).reshape(x.shape[1], x.shape[1])
    values, vectors = np.linalg.eigh(cov)
    axes = vectors[:, np.argsort(values)[::-1][:k]].T
    axes *= np.sign(axes[np.arange(axes.shape[0]), np.abs(axes).argmax(1)])[:, None]
    if axes.shape[0] < k:  # fewer than k dimensions: the missing channels stay constant
        axes = np.vstack([axes, np.zeros((k - axes.shape[0], x.shape[1]))])
    return mean, axes


def embedding_colors(embeddings: np.ndarray) -> np.ndarray:
    """FloatArray[N, D] per-point embeddings -> FloatArray[N, 3] RGB: the first three principal
    components, each mapped from its 1st..99th percentile to 0..1 (outliers clipped). Points close
    in embedding space get close colours; the colours are deterministic (see ``pca_components``)."""
    mean, axes = pca_components(embeddings)
    proj = (np.asarray(embeddings, np.float64) - mean) @ axes.T
    lo, hi = np.percentile(proj, 1, axis=0), np.percentile(proj, 99, axis=0)
    scale = np.where(hi - lo > 1e-12, hi - lo, 1.0)
    return np.clip((proj - lo) / scale, 0, 1).astype(np.float32)


def colorize(scene: Scene, mode: str = "rgb", instances: InstanceSet | None = None,
             embeddings: np.ndarray | None = None) -> np.ndarray:
    """FloatArray[N, 3] per-point colours for ``mode`` in COLOR_MODES.

    rgb:       the scan's colours.
    semantic:  NYU40 palette of ``scene.semantic``.
    instance:  the given InstanceSet (highest score wins overlaps), else the scene's GT instances of
               the 18 benchmark instance classes (walls and floor are no instances to the
               benchmark, nor to any predictor); points in no instance are grey.
    embedding: ``embeddings`` FloatArray[N, D] projected to RGB by PCA (``embedding_colors``).
    errors:    ``instances`` (the prediction) against the scene's GT (``pcseg.viz.errors``).
    """
    if mode == "rgb":
        return scene.colors
    if mode == "semantic":
        if scene.semantic is None:
            raise ValueError(f"Scene({scene.name!r}) has no semantic labels to colour by")
        return semantic_colors(scene.semantic)
    if mode == "instance":
        if instances is not None:
            _check_instances(scene, instances)
            ids = instances.to_ids()
        elif scene.instance is not None:
            scored = scene.semantic is None or np.isin(scene.semantic, INSTANCE_IDS)
            ids = np.where((scene.instance > 0) & scored, scene.instance, 0)
        else:
            raise ValueError(f"Scene({scene.name!r}) has no instances to colour by")
        colors = np.tile(NONE_GREY, (len(scene), 1))
        has = ids > 0
        colors[has] = instance_colors(int(ids.max(initial=0)) + 1)[ids[has]]
        return colors
    if mode == "embedding":
        if embeddings is None:
            raise ValueError(f"Scene({scene.name!r}): colour mode 'embedding' needs per-point embeddings")
        if len(embeddings) != len(scene):
            raise ValueError(f"Scene({scene.name!r}): {len(embeddings)} embeddings for {len(scene)} points")
        return embedding_colors(embeddings)
    if mode == "errors":
        from .errors import error_colors

        if instances is None:
            raise ValueError(f"Scene({scene.name!r}): colour mode 'errors' needs predicted instances")
        return error_colors(scene, instances)[0]
    raise ValueError(f"unknown colour mode {mode!r}; choose one of {COLOR_MODES}")


def _check_instances(scene: Scene, instances: InstanceSet) -> None:
    if instances.num_points != len(scene):
        raise ValueError(f"Scene({scene.name!r}): instance masks cover {instances.num_points} points "
                         f"but the scene has {len(scene)}")
