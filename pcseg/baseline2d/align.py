"""Colour images onto the depth grid. Real ScanNet has colour 1296x968 and depth 640x480 with
their own intrinsics; masks, targets and lifting all live on the depth grid, so the colour image is
resampled there (docs/scannet-format.md §9: "resize colour to 640x480 and rescale the intrinsics")."""
from __future__ import annotations

import numpy as np
from PIL import Image


def on_depth_grid(color: np.ndarray, k_color: np.ndarray, k_depth: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """UInt8Array[Hc, Wc, 3] -> UInt8Array[H, W, 3]: the colour seen through each depth pixel.

    With identical extrinsics the two pinhole cameras share a centre, so depth pixel (u, v) looks
    along the ray of colour pixel ``u_c = fx_c / fx_d * (u - cx_d) + cx_c`` (same for v): an affine
    map, independent of depth. Returned unchanged when the grids already agree.
    """
    h, w = shape
    ax, ay = k_color[0, 0] / k_depth[0, 0], k_color[1, 1] / k_depth[1, 1]
    bx, by = k_color[0, 2] - ax * k_depth[0, 2], k_color[1, 2] - ay * k_depth[1, 2]
    if color.shape[:2] == (h, w) and np.allclose((ax, ay, bx, by), (1, 1, 0, 0), atol=1e-6):
        return color
    # PIL's affine map works in continuous coordinates (pixel i spans [i, i + 1)); ours put pixel
    # centres at integers, hence the half-pixel shifts
    coeffs = (ax, 0.0, bx + 0.5 - 0.5 * ax, 0.0, ay, by + 0.5 - 0.5 * ay)
    out = Image.fromarray(color).transform((w, h), Image.Transform.AFFINE, coeffs, resample=Image.Resampling.BILINEAR)
    return np.asarray(out)
