"""The bottom-up network trains on a GPU as it does on the CPU: the same losses and gradients for
the same batch and weights. Marked ``cuda``: skipped without a CUDA device (benchmarks/gpu_check.py)."""
import copy

import pytest
import torch

from pcseg.models.segmenter import build_bottomup
from pcseg.structures import Batch
from pcseg.sparse import use_backend

pytestmark = pytest.mark.cuda


def batch(seed=0, counts=(3000, 2000)):
    g = torch.Generator().manual_seed(seed)
    m = sum(counts)
    return Batch(points=torch.rand(m, 3, generator=g) * 2, features=torch.rand(m, 3, generator=g),
                 offset=torch.cumsum(torch.tensor(counts), 0),
                 semantic=torch.randint(-1, 5, (m,), generator=g), instance=torch.randint(-1, 6, (m,), generator=g))


def losses_and_grads(model, data, device):
    model = copy.deepcopy(model).to(device).train()
    with use_backend("torch"):
        losses = model(data.to(device))
        losses["total"].backward()
    return ({k: v.item() for k, v in losses.items()},
            {n: p.grad.cpu() for n, p in model.named_parameters() if p.grad is not None})


def test_training_step_on_cuda_matches_cpu():
    torch.manual_seed(0)
    model = build_bottomup(3, num_classes=5, embed_dim=4, widths=(8, 16, 24), voxel_size=0.1, offsets=True).double()
    data = batch()
    data = Batch(data.points.double(), data.features.double(), data.offset, data.semantic, data.instance)
    gpu_losses, gpu_grads = losses_and_grads(model, data, "cuda")
    cpu_losses, cpu_grads = losses_and_grads(model, data, "cpu")
    assert gpu_losses == pytest.approx(cpu_losses, rel=1e-8, abs=1e-10)
    assert gpu_grads.keys() == cpu_grads.keys()
    for name in cpu_grads:
        torch.testing.assert_close(gpu_grads[name], cpu_grads[name], rtol=1e-7, atol=1e-9, msg=name)
