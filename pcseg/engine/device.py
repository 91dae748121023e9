"""The device a command runs on."""
from __future__ import annotations

import torch

from ..errors import ConfigError


def resolve_device(name: str | torch.device) -> torch.device:
    """``auto`` (CUDA when available, else CPU), ``cpu``, ``cuda`` or ``cuda:N``; a ConfigError that says
    why when the device does not exist on this machine."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise ConfigError(f"device: {name!r} is not a device; use cpu, cuda, cuda:N or auto") from None
    if device.type not in ("cpu", "cuda"):
        raise ConfigError(f"device: {name!r}: pcseg runs on cpu or cuda (cuda:N), not {device.type}")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            build = "a CPU-only build of torch" if torch.version.cuda is None else f"torch built for CUDA {torch.version.cuda}"
            raise ConfigError(f"device: {name!r} requested but CUDA is not available on this machine "
                              f"({build}, no usable GPU); use --device cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(f"device: {name!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return device


def synchronize(device: str | torch.device) -> None:
    """Wait for the queued CUDA work on ``device`` (a no-op on a CPU), so that a wall-clock stage
    timing includes the kernels it launched rather than only their launch."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
