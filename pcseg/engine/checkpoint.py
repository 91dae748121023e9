"""Checkpoints: written atomically, loadable with ``torch.load(weights_only=True)``.

A checkpoint is a plain dict of tensors and Python primitives:
``{"format": 1, "kind": str, "config": dict, "model": state_dict, "optimizer": state_dict | None,
"scheduler": state_dict | None, "epoch": int, "step": int, "rng": {...}, "metrics": dict}``.
"""
from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import torch

from ..errors import DataError
from ..io.atomic import atomic_path

FORMAT = 1


def rng_state() -> dict[str, Any]:
    """The random states a resumed run needs (Python, NumPy's legacy global, torch CPU)."""
    py = random.getstate()
    np_state = np.random.get_state()
    return {"python": [py[0], list(py[1]), py[2]],
            "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
            "torch": torch.get_rng_state()}


def set_rng_state(state: dict[str, Any]) -> None:
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    np_state = state["numpy"]
    np.random.set_state((np_state[0], np_state[1].numpy().astype(np.uint32), *np_state[2:]))
    torch.set_rng_state(state["torch"])


def save_checkpoint(path: str | os.PathLike, payload: dict[str, Any]) -> Path:
    """Write ``payload`` (plus the format version) atomically to ``path``."""
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save({"format": FORMAT, **payload}, tmp)
    return path


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True``; a missing or corrupt file is a DataError naming it."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, None, "checkpoint not found")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # torch raises many kinds of errors for truncated or foreign files
        first = (str(e).strip().splitlines() or [""])[0][:160]
        raise DataError(path, None, f"not a readable checkpoint ({type(e).__name__}: {first})") from None
    if not isinstance(ckpt, dict) or "model" not in ckpt or "config" not in ckpt:
        raise DataError(path, None, "not a pcseg checkpoint (no 'model'/'config' entries)")
    if ckpt.get("format") != FORMAT:
        raise DataError(path, "format", f"unsupported checkpoint format {ckpt.get('format')!r} (expected {FORMAT})")
    return ckpt


def check_compatible(path: str | os.PathLike, saved: dict[str, Any], current: dict[str, Any],
                     keys: Iterable[str]) -> None:
    """Raise a DataError listing the architecture keys whose values differ between configs."""
    diff = [f"{k}: checkpoint {saved.get(k)!r} vs config {current.get(k)!r}"
            for k in keys if saved.get(k) != current.get(k)]
    if diff:
        raise DataError(path, "config", "checkpoint was trained with another model configuration; "
                        + "; ".join(diff))


def load_model_state(path: str | os.PathLike, model: torch.nn.Module, state: dict[str, Any]) -> None:
    """``model.load_state_dict`` with a clear error on missing/unexpected/mis-shaped weights."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [f"{k}: {tuple(state[k].shape)} vs {tuple(v.shape)}" for k, v in own.items()
              if k in state and tuple(state[k].shape) != tuple(v.shape)]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"missing {missing[:5]}")
        if unexpected:
            parts.append(f"unexpected {unexpected[:5]}")
        if shapes:
            parts.append(f"shape mismatch {shapes[:5]}")
        raise DataError(path, "model", "weights do not fit this model: " + "; ".join(parts))
    model.load_state_dict(state)


def export_weights(src: str | os.PathLike, dst: str | os.PathLike, half: bool = True) -> Path:
    """Write a small inference-only copy of a checkpoint: recipe + weights (float16 when ``half``;
    ``load_state_dict`` casts them back to the model's float32) + what the run reported."""
    ckpt = load_checkpoint(src)
    weights = {k: v.half() if half and v.is_floating_point() else v for k, v in ckpt["model"].items()}
    keep = {k: ckpt[k] for k in ("kind", "config", "step", "train_seconds", "validation") if k in ckpt}
    return save_checkpoint(dst, {**keep, "model": weights})
