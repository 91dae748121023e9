"""How many CPU threads pcseg uses, and how: one setting for every command and library entry point.

pcseg runs torch's own operators (and numpy's BLAS) on one thread and parallelises its sparse convolutions itself
(``pcseg.sparse.workers``: one hand-off per conv to N worker threads). torch's intra-op threads use
OpenMP, whose idle threads spin at the end of each of the thousands of small parallel regions a
sparse U-Net runs; beside other CPU-bound processes those spinning threads take the cores from the
threads that would make progress (a 2 s predict took 101 s beside a training run). With one
intra-op thread nothing spins, and the conv workers sleep when they wait.

    set_threads(4)      # 4 conv workers, torch ops on 1 thread (the CLI's --threads / recipe threads=)
    set_threads(None)   # the default: as many workers as this process may use cores
    use_default_threads()   # what pcseg's entry points call: set_threads(None) unless already set

Dense work that is not a sparse conv (the 2D Mask R-CNN baseline) asks ``dense_threads()`` and sets
torch's thread count to it for its own run.
"""
from __future__ import annotations

import logging
import os

_threads: int | None = None      # the number in force once set_threads ran
_explicit = False                # set by the user (--threads, set_threads): recipes do not override it

log = logging.getLogger(__name__)


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity, e.g. a container's limit), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _check(threads) -> int | None:
    if threads is None or threads == 0:
        return None
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 0:
        raise ValueError(f"threads: must be an int >= 1 (0 or None = all usable cores), got {threads!r}")
    return threads


def set_threads(threads: int | None = None, explicit: bool = True) -> int:
    """Use ``threads`` CPU threads (None or 0: all usable cores): that many sparse-conv workers, and
    torch's own intra-op threads set to 1. Returns the number in force. ``explicit=False`` marks a
    default that a recipe's ``threads`` key may still change."""
    global _threads, _explicit
    import torch

    from .sparse.workers import set_conv_threads

    count = _check(threads) or usable_cores()
    torch.set_num_threads(1)
    _single_threaded_blas()
    set_conv_threads(count)
    _threads, _explicit = count, explicit
    return count


def _single_threaded_blas() -> None:
    """numpy's BLAS (OpenBLAS) on one thread too: its idle threads spin like OpenMP's, and the products
    pcseg hands it (mean-shift's seeds x points) run faster on one thread than split over two."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(1, user_api="blas")


def use_default_threads() -> int:
    """Apply the default (all usable cores) unless threads were already set; returns the number in force."""
    if _threads is None:
        count = set_threads(None, explicit=False)
        log.debug("pcseg: %d sparse-conv worker thread(s), torch ops on 1 thread", count)
    return _threads


def apply_recipe_threads(threads: int) -> int:
    """A recipe's ``threads`` key (0 = default): applied unless the user chose explicitly (--threads)."""
    if _explicit:
        return _threads
    if _check(threads) is None:
        return use_default_threads()
    return set_threads(threads, explicit=False)


def apply_prediction_threads(recipe_threads: int, overridden: bool) -> int:
    """At prediction the threads a model was trained with do not apply; a ``threads=N`` override does."""
    return apply_recipe_threads(recipe_threads) if overridden else use_default_threads()


def dense_threads() -> int:
    """Threads for dense torch work (the 2D baseline's convolutions): the number in force."""
    return use_default_threads()


__all__ = ["set_threads", "use_default_threads", "apply_recipe_threads", "apply_prediction_threads", "dense_threads",
           "usable_cores"]
