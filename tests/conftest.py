"""Shared test fixtures."""
import contextlib

import pytest
import torch

from pcseg.synth import write_synthetic_dataset


def pytest_collection_modifyitems(config, items):
    """Tests marked ``cuda`` skip, with one reason, where torch sees no CUDA device."""
    if torch.cuda.is_available():
        return
    build = "a CPU-only build of torch" if torch.version.cuda is None else f"torch {torch.__version__}"
    skip = pytest.mark.skip(reason=f"needs a CUDA device ({build}, none visible); benchmarks/gpu_check.py runs it")
    for item in items:
        if item.get_closest_marker("cuda") is not None:
            item.add_marker(skip)


# the tiny synthetic dataset with RGB-D frames shared by tests/baseline2d and tests/pipelines
ROOMS, FRAMES, SEED = 2, 5, 7


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


@pytest.fixture(scope="session")
def frames_root(tmp_path_factory):
    """Dataset root with scans/scene0000_00 and scene0001_00, 5 frames each (treat as read-only)."""
    root = tmp_path_factory.mktemp("baseline2d") / "synth"
    write_synthetic_dataset(root, ROOMS, seed=SEED, frames=FRAMES, workers=1, progress=False)
    return root
