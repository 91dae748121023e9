"""Threads that run the pure-PyTorch sparse convolution in parallel on a CPU.

Why not torch's own intra-op threads: a sparse conv is thousands of small ops (per kernel offset a
gather, a matmul and a scatter), and with OpenMP each of them is a parallel region that ends in a
barrier. Idle OpenMP threads spin at those barriers; when other processes compete for the cores a
spinning thread takes the core from the thread everyone waits for, and a predict that takes 2 s
alone took 101 s beside a training run. ``OMP_WAIT_POLICY=PASSIVE`` stops the spinning but makes
every region pay a wake-up, which doubles the idle time.

So the conv parallelises itself, coarsely: its output rows are cut into blocks and each block is one
task (all offsets, gather -> mm -> scatter) for a worker thread whose own torch ops run on one thread.
There is one hand-off per conv instead of one barrier per op, and a worker that waits for work
sleeps. Blocks own disjoint output rows, so results do not depend on which worker ran which block.

    set_conv_threads(4)          # 4 workers from now on; 1 = run inline (no threads)
    conv_threads()               # -> the number in force
    run_tasks(fn, items)         # [fn(item) for item in items], spread over the workers
"""
from __future__ import annotations

import os
import queue
import threading
from typing import Callable, Sequence

import torch

_setting = 0                     # 0 = follow torch.get_num_threads() at each call; else a fixed count
_pool: "_Workers | None" = None
_pool_lock = threading.Lock()


def set_conv_threads(threads: int) -> None:
    """Worker threads for CPU sparse convs: ``threads >= 1``, or 0 to follow ``torch.get_num_threads()``."""
    global _setting
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 0:
        raise ValueError(f"set_conv_threads: threads must be an int >= 0, got {threads!r}")
    _setting = threads


def conv_threads() -> int:
    """The number of workers a CPU sparse conv uses now (1 = inline, no threads)."""
    if threading.current_thread().name.startswith(_WORKER_PREFIX):
        return 1  # a task never fans out again
    return _setting or torch.get_num_threads()


_WORKER_PREFIX = "pcseg-conv-"


class _Workers:
    """Fixed daemon threads, each with single-threaded torch ops and grad mode off."""

    def __init__(self, count: int) -> None:
        self.count, self.pid = count, os.getpid()
        self.tasks: queue.SimpleQueue = queue.SimpleQueue()
        main_threads = torch.get_num_threads()
        ready = threading.Barrier(count + 1)
        self.threads = [threading.Thread(target=self._loop, args=(ready,), name=f"{_WORKER_PREFIX}{i}",
                                         daemon=True) for i in range(count)]
        for t in self.threads:
            t.start()
        ready.wait()
        # A worker's set_num_threads(1) also changed torch's process-wide default: restore it.
        torch.set_num_threads(main_threads)

    def _loop(self, ready: threading.Barrier) -> None:
        # torch keeps the OpenMP / MKL thread count per thread once a thread has initialised it:
        # initialise first, then set this thread to 1.
        torch.get_num_threads()
        torch.set_num_threads(1)
        ready.wait()
        while True:
            job = self.tasks.get()
            if job is None:
                return
            fn, item, results, index, done = job
            try:
                with torch.no_grad():
                    results[index] = (True, fn(item))
            except BaseException as e:  # handed back to the caller
                results[index] = (False, e)
            done.release()

    def stop(self) -> None:
        for _ in self.threads:
            self.tasks.put(None)


def _workers(count: int) -> _Workers:
    global _pool
    with _pool_lock:
        if _pool is None or _pool.count != count or _pool.pid != os.getpid():
            if _pool is not None and _pool.pid == os.getpid():
                _pool.stop()
            _pool = _Workers(count)  # also after a fork: the parent's threads do not exist here
        return _pool


def run_tasks(fn: Callable, items: Sequence) -> list:
    """``[fn(item) for item in items]``, on the conv workers when there are several (tasks run
    with grad mode off). Exceptions from a task are raised here."""
    threads = conv_threads()
    if threads <= 1 or len(items) <= 1:
        return [fn(item) for item in items]
    pool = _workers(threads)
    results: list = [None] * len(items)
    done = threading.Semaphore(0)
    for index, item in enumerate(items):
        pool.tasks.put((fn, item, results, index, done))
    for _ in items:
        done.acquire()
    out = []
    for ok, value in results:
        if not ok:
            raise value
        out.append(value)
    return out


__all__ = ["set_conv_threads", "conv_threads", "run_tasks"]
