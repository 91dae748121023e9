"""Procedural ScanNet-style rooms: layout, furniture meshes, simulated scanning, RGB-D frames.

    generate_scene(seed, name, frames=0) -> SynthScene       one labelled scene in memory
    write_synthetic_dataset(out_dir, num_scenes, seed=0, frames=0, workers=None) -> dict
                                                              a ScanNet-layout dataset on disk, all or nothing
    ensure_synthetic_dataset(root, num_scenes, seed=0, frames=0) -> bool
                                                              the same, unless root holds one already

The submodules import Open3D; they are loaded on first use of these names.
"""
from __future__ import annotations

_EXPORTS = {"generate_scene": "generate", "SynthScene": "generate", "ROOM_TYPES": "rooms",
            "write_synthetic_dataset": "dataset", "summarize": "dataset",
            "ensure_synthetic_dataset": "dataset", "is_complete_dataset": "dataset"}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
