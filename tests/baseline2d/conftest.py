"""A tiny synthetic dataset with RGB-D frames, shared by the baseline2d tests (generated once)."""
import pytest

from pcseg.synth import write_synthetic_dataset

ROOMS, FRAMES, SEED = 2, 5, 7


@pytest.fixture(scope="session")
def frames_root(tmp_path_factory):
    """Dataset root with scans/scene0000_00 and scene0001_00, 5 frames each (treat as read-only)."""
    root = tmp_path_factory.mktemp("baseline2d") / "synth"
    write_synthetic_dataset(root, ROOMS, seed=SEED, frames=FRAMES, workers=1, progress=False)
    return root
