"""The oracle: ground-truth per-frame instance masks (score 1) through lifting and fusion. Its 3D AP
is the upper bound of the 2D pipeline on those frames, limited by what the frames see."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..io.frames import RGBDFrame
from .targets import frame_targets


def gt_predictions(frame: RGBDFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A frame's ground truth as predictions: (masks BoolArray[K, H, W], labels IntArray[K] NYU40,
    scores FloatArray[K] = 1), benchmark classes only."""
    if frame.label is None or frame.instance is None:
        raise ValueError("gt_predictions: the frame has no label/instance images")
    t = frame_targets(frame.label, frame.instance)
    return t.masks.astype(bool), t.nyu40, np.ones(len(t), np.float32)


def oracle_predictions(frames: Sequence[RGBDFrame]) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    return [gt_predictions(f) for f in frames]
