"""Which way up looks most like a room to the shipped bottom-up model: the judge ``--up auto`` asks when
a scan's geometry leaves several candidate floors (a corner of a room: its walls have nothing opposite
and look like floors too; ``io.upright``). A room turned the right way is what the model was trained
on: its classes come out more confident than on the same cloud lying on its side."""
from __future__ import annotations

import functools

import numpy as np


@functools.lru_cache(maxsize=1)
def _shipped():
    from .predict import load_model

    return load_model()


def room_confidence(points: np.ndarray, colors: np.ndarray) -> float:
    """The shipped model's mean top class probability over the points (FloatArray[N, 3], z up;
    colours in 0..1): higher for a cloud that stands the right way up."""
    from ...structures import Scene
    from .predict import run_network

    model, recipe = _shipped()
    out = run_network(model, Scene(np.asarray(points, np.float32), np.asarray(colors, np.float32)), recipe)
    return float((out.probs.max(1).values * out.counts).sum() / out.counts.sum())
