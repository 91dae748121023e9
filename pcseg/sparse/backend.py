"""Choosing the sparse-convolution backend the layers run on.

Backends (one explicit table, ``BACKENDS``):

* ``"torch"``     — pure PyTorch (``pcseg.sparse.torch_backend``), runs everywhere; the CPU default
  and the reference the others are tested against.
* ``"spconv"``    — ``pcseg.sparse.spconv_backend`` on spconv 2.x; the default on CUDA when a CUDA
  build of spconv (``spconv-cu12x``) imports; the CPU wheel ``spconv`` serves CPU tensors only. On a CPU it is allowed only while ``torch.get_num_threads() == 1``: spconv's CPU
  scatter-add is not safe with several threads. We refuse rather than change the thread count
  behind the user's back (that would slow down everything else in the process); call
  ``torch.set_num_threads(1)`` first if you want spconv on a CPU.
* ``"minkowski"`` — ``pcseg.sparse.minkowski_backend`` on MinkowskiEngine 0.5; selectable when
  ``MinkowskiEngine`` imports (an optional sdist-only build, see DESIGN.md); never chosen by "auto".

The layers read the process-wide setting at every forward and resolve it against the input's
device, so one model runs on any backend with the same weights (layout ``(K, C_in, C_out)``):

    use_backend("spconv")            # from now on
    with use_backend("torch"):       # only inside the block, restored afterwards
        y = model(x)
    get_backend()                    # -> "auto" | "torch" | "spconv" | "minkowski"
"""
from __future__ import annotations

import importlib
import threading

import torch

# name -> (module that must import for the backend to be available, pip hint)
BACKENDS = {
    "torch": ("torch", "pip install torch"),
    "spconv": ("spconv.pytorch", "pip install spconv (CPU) or spconv-cu12x (CUDA 12)"),
    "minkowski": ("MinkowskiEngine", "see https://github.com/NVIDIA/MinkowskiEngine (sdist only)"),
}
_CHOICES = ("auto", *BACKENDS)

_importable: dict[str, bool] = {}
_setting = "auto"
_lock = threading.Lock()


def _check_name(name) -> str:
    if not isinstance(name, str) or name not in _CHOICES:
        raise ValueError(f"sparse backend: unknown backend {name!r}; choose one of {list(_CHOICES)}")
    return name


def is_importable(name: str) -> bool:
    """Whether the library behind backend ``name`` imports (checked once, then remembered)."""
    _check_name(name)
    if name == "auto":
        return True
    if name not in _importable:
        try:
            importlib.import_module(BACKENDS[name][0])
            _importable[name] = True
        except Exception:  # a broken install (ABI mismatch, missing .so) counts as absent
            _importable[name] = False
    return _importable[name]


def _spconv_has_cuda() -> bool:
    """False for the CPU-only spconv wheel (``pip install spconv``), which cannot run CUDA tensors."""
    from cumm import tensorview as tv
    return not tv.is_cpu_only()


def available_backends() -> list[str]:
    """Names of the backends whose library imports here, "torch" first."""
    return [name for name in BACKENDS if is_importable(name)]


def resolve_backend(name: str = "auto", device=None) -> str:
    """The concrete backend for ``name`` on ``device`` (a torch.device or string; default CPU).

    auto -> "spconv" on CUDA when spconv imports, else "torch".
    Raises ValueError for an unknown name, RuntimeError when the named backend cannot run:
    library not importable, or spconv on a CPU with ``torch.get_num_threads() > 1``.
    """
    _check_name(name)
    device = torch.device("cpu" if device is None else device)
    if name == "auto":
        use_spconv = device.type == "cuda" and is_importable("spconv") and _spconv_has_cuda()
        return "spconv" if use_spconv else "torch"
    if not is_importable(name):
        raise RuntimeError(f"sparse backend {name!r} is not available: could not import "
                           f"{BACKENDS[name][0]} ({BACKENDS[name][1]}); available: {available_backends()}")
    if name == "spconv" and device.type == "cuda" and not _spconv_has_cuda():
        raise RuntimeError("sparse backend 'spconv' on CUDA needs a CUDA build of spconv "
                           "(pip install spconv-cu12x in place of the CPU wheel 'spconv')")
    if name == "spconv" and device.type == "cpu" and torch.get_num_threads() > 1:
        raise RuntimeError(
            f"sparse backend 'spconv' on a CPU needs torch.get_num_threads() == 1 (now "
            f"{torch.get_num_threads()}): spconv's CPU scatter-add gives wrong results with several "
            "threads. Call torch.set_num_threads(1), or use the 'torch' backend on a CPU.")
    return name


def get_backend() -> str:
    """The current setting: "auto" or a backend name."""
    return _setting


class use_backend:
    """Set the backend the layers use: ``use_backend(name)`` from now on, or ``with use_backend(name):``
    for the block only (the previous setting comes back on exit). ``name`` is checked at once
    (ValueError for unknown names); whether it can run is checked at each forward, on the input's device.
    """

    def __init__(self, name: str) -> None:
        global _setting
        _check_name(name)
        with _lock:
            self._previous, _setting = _setting, name

    def __enter__(self) -> "use_backend":
        return self

    def __exit__(self, *exc) -> None:
        global _setting
        with _lock:
            _setting = self._previous


def current_backend(device) -> str:
    """``resolve_backend(get_backend(), device)``: what a layer runs on for an input on ``device``."""
    return resolve_backend(_setting, device)


__all__ = ["BACKENDS", "available_backends", "resolve_backend", "use_backend", "get_backend",
           "current_backend", "is_importable"]
