"""Errors raised on bad input. They always say which file and which field is wrong."""
from __future__ import annotations

import os


class PcsegError(Exception):
    """Base class of every error pcseg raises on purpose."""


class DataError(PcsegError, ValueError):
    """Bad input data: a missing, truncated or inconsistent file or field.

    ``DataError(path, field, problem)`` formats as ``"<path>: <field>: <problem>"`` so the
    message always names where the problem is.
    """

    def __init__(self, path: str | os.PathLike | None, field: str | None, problem: str):
        self.path = None if path is None else str(path)
        self.field = field
        self.problem = problem
        parts = [p for p in (self.path, field, problem) if p]
        super().__init__(": ".join(parts))


class ConfigError(PcsegError, ValueError):
    """A bad recipe or command-line override (unknown key, wrong type, bad value)."""
