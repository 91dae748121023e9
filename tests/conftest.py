"""Shared test fixtures."""
import contextlib

import pytest
import torch


@contextlib.contextmanager
def torch_threads(n: int):
    """Run with ``n`` torch CPU threads, restoring the previous count afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture
def one_thread():
    """One torch thread: tiny sparse convs are dominated by thread start-up on a busy 2-core machine,
    and spconv's CPU path is only correct single-threaded."""
    with torch_threads(1):
        yield


@pytest.fixture
def two_threads():
    """Two torch threads: the pure-PyTorch backend must be correct multithreaded."""
    with torch_threads(2):
        yield
