"""Legends and titles drawn onto rendered images (PIL)."""
from __future__ import annotations

import numpy as np

from ..labels import NYU40_NAMES, NYU40_PALETTE
from ..structures import Scene


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)  # scalable with FreeType (Pillow >= 10.1)
    except TypeError:
        return ImageFont.load_default()


def semantic_legend(labels: "Scene | np.ndarray | list[np.ndarray]",
                    min_points: int = 1) -> list[tuple[str, tuple[float, float, float]]]:
    """(class name, RGB 0..1) for each NYU40 class shown with at least ``min_points`` points, most
    frequent first (0 = unannotated is left out). ``labels``: a scene (its GT), or the NYU40 label
    arrays of the panels shown (e.g. a prediction's, or GT and prediction side by side)."""
    if isinstance(labels, Scene):
        if labels.semantic is None:
            raise ValueError(f"Scene({labels.name!r}) has no semantic labels for a legend")
        labels = [labels.semantic]
    elif isinstance(labels, np.ndarray):
        labels = [labels]
    sem = np.concatenate([np.asarray(a, np.int64).ravel() for a in labels]) if labels else np.zeros(0, np.int64)
    sem = sem[(sem >= 1) & (sem <= 40)]
    counts = np.bincount(sem, minlength=41)
    order = [c for c in np.argsort(-counts, kind="stable") if counts[c] >= max(min_points, 1)]
    return [(NYU40_NAMES[c], tuple(float(v) / 255 for v in NYU40_PALETTE[c])) for c in order]


def legend_for(scene: Scene, mode: str, shown: list[np.ndarray] | None = None
               ) -> list[tuple[str, tuple[float, float, float]]]:
    """Legend entries of a colour mode: for ``semantic`` the classes of the label arrays ``shown``
    (default: the scene's GT), the error categories for ``errors``, none for the others (their
    colours carry no fixed meaning)."""
    if mode == "semantic":
        return semantic_legend(scene if shown is None else shown)
    if mode == "errors":
        from .errors import ERROR_LEGEND

        return list(ERROR_LEGEND.items())
    return []


def draw_legend(image: np.ndarray, entries: list[tuple[str, tuple[float, float, float]]],
                corner: str = "top-left", font_size: int | None = None) -> np.ndarray:
    """UInt8Array[H, W, 3]: a copy of ``image`` with a box of colour swatches and names in one
    corner (``top-left``, ``top-right``, ``bottom-left``, ``bottom-right``). Entries that do not
    fit the image's height are dropped (the most important come first)."""
    from PIL import Image, ImageDraw

    if not entries:
        return image.copy()
    h, w = image.shape[:2]
    size = font_size or max(10, h // 40)
    font = _font(size)
    pil = Image.fromarray(image)
    draw = ImageDraw.Draw(pil, "RGBA")
    row, pad, swatch = int(size * 1.4), size // 2, size
    fit = max(1, (h - 2 * pad) // row)
    entries = entries[:fit]
    text_w = max(draw.textlength(name, font=font) for name, _ in entries)
    box_w, box_h = int(swatch + 3 * pad + text_w), row * len(entries) + pad
    x0 = pad if "left" in corner else w - box_w - pad
    y0 = pad if "top" in corner else h - box_h - pad
    draw.rectangle([x0, y0, x0 + box_w, y0 + box_h], fill=(255, 255, 255, 215), outline=(90, 90, 90, 255))
    for i, (name, color) in enumerate(entries):
        y = y0 + pad + i * row
        rgb = tuple(int(round(c * 255)) for c in color)
        draw.rectangle([x0 + pad, y, x0 + pad + swatch, y + swatch], fill=rgb + (255,), outline=(60, 60, 60, 255))
        draw.text((x0 + 2 * pad + swatch, y + swatch / 2), name, fill=(20, 20, 20, 255), font=font, anchor="lm")
    return np.asarray(pil.convert("RGB"))


def titled(image: np.ndarray, title: str, font_size: int | None = None) -> np.ndarray:
    """UInt8Array[H + band, W, 3]: ``image`` under a white band holding ``title``, centred."""
    from PIL import Image, ImageDraw

    h, w = image.shape[:2]
    size = font_size or max(12, h // 30)
    band = int(size * 1.8)
    pil = Image.new("RGB", (w, h + band), (255, 255, 255))
    pil.paste(Image.fromarray(image), (0, band))
    ImageDraw.Draw(pil).text((w / 2, band / 2), title, fill=(20, 20, 20), font=_font(size), anchor="mm")
    return np.asarray(pil)
