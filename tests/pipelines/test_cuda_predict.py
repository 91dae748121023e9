"""The shipped bottom-up model predicts on a GPU what it predicts on the CPU (the network's class
probabilities, then the instances after clustering on the GPU). Marked ``cuda``: skipped without a
CUDA device (benchmarks/gpu_check.py runs it, and compares the backends on real-sized rooms)."""
import numpy as np
import pytest

from pcseg.pipelines.bottomup.predict import load_model, predict_scene, run_network
from pcseg.sparse import use_backend
from pcseg.structures import Scene

pytestmark = pytest.mark.cuda


def box_room(seed=0, n=40_000) -> Scene:
    """A 5 x 4 m room: floor, four walls and four boxes (table- and cabinet-sized), uniform surface samples."""
    rng = np.random.default_rng(seed)
    boxes = [((0, 0, 0), (5, 4, 0)), ((0, 0, 0), (0, 4, 2.5)), ((5, 0, 0), (5, 4, 2.5)),
             ((0, 0, 0), (5, 0, 2.5)), ((0, 4, 0), (5, 4, 2.5)),
             ((1, 1, 0), (2.2, 1.8, 0.75)), ((3, 2.5, 0), (3.5, 3.9, 1.8)), ((0.2, 3, 0), (0.7, 3.5, 0.45)),
             ((3.6, 0.5, 0), (4.4, 1.2, 0.75))]
    parts, colours = [], []
    for k, (lo, hi) in enumerate(boxes):
        lo, hi = np.array(lo, float), np.array(hi, float)
        p = lo + rng.random((n // len(boxes), 3)) * (hi - lo)
        flat = hi - lo > 0
        axis = rng.choice(np.flatnonzero(flat), len(p)) if flat.all() else np.full(len(p), np.flatnonzero(~flat)[0])
        p[np.arange(len(p)), axis] = np.where(rng.random(len(p)) < 0.5, lo[axis], hi[axis])
        parts.append(p)
        colours.append(np.clip(rng.random(3) * 0.6 + 0.2 + 0.03 * rng.standard_normal((len(p), 3)), 0, 1))
    return Scene(np.concatenate(parts).astype(np.float32), np.concatenate(colours).astype(np.float32), name="box_room")


def test_shipped_model_on_cuda_matches_cpu():
    scene = box_room()
    results = {}
    for device in ("cuda", "cpu"):
        model, recipe = load_model(device=device)
        with use_backend("torch"):
            out = run_network(model, scene, recipe, device)
            pred = predict_scene(model, scene, recipe, device)
        results[device] = (out.probs.cpu().numpy(), pred)
    (p_gpu, gpu), (p_cpu, cpu) = results["cuda"], results["cpu"]
    assert np.abs(p_gpu - p_cpu).max() < 1e-3
    assert (p_gpu.argmax(1) == p_cpu.argmax(1)).mean() > 0.999
    assert (gpu.semantic == cpu.semantic).mean() > 0.999
    assert abs(len(gpu.instances) - len(cpu.instances)) <= 1
