"""The conv worker threads: same results as inline, single-threaded torch inside, errors surface."""
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch

from pcseg import runtime
from pcseg.sparse import SparseConv3d, SparseInverseConv3d, SparseTensor, SubMConv3d
from pcseg.sparse import workers

from test_torch_backend import layer, random_tensor


@pytest.fixture
def restore_threads():
    torch_before, conv_before = torch.get_num_threads(), workers._setting
    state = runtime._threads, runtime._explicit
    yield
    torch.set_num_threads(torch_before)
    workers.set_conv_threads(conv_before)
    runtime._threads, runtime._explicit = state


def unet_pass(threads: int, seed: int = 0):
    """Output and gradients of subm -> strided -> subm -> inverse on rows in random order."""
    workers.set_conv_threads(threads)
    x = random_tensor(seed, 6, grid=12, occupancy=0.4)
    subm, down = layer(SubMConv3d, 6, 8, seed=1), layer(SparseConv3d, 8, 16, seed=2)
    coarse, up = layer(SubMConv3d, 16, 16, seed=3), layer(SparseInverseConv3d, 16, 8, seed=4)
    fine = subm(x)
    y = up(coarse(down(fine)), fine)
    loss = (y.features * torch.linspace(-1, 1, y.features.numel(), dtype=y.features.dtype).view_as(y.features)).sum()
    params = [x.features, subm.weight, down.weight, coarse.weight, up.weight]
    return [y.features.detach(), *torch.autograd.grad(loss, params)]


def test_workers_give_the_inline_results_forward_and_backward(restore_threads):
    inline = unet_pass(1)
    for threads in (2, 3):
        for got, want in zip(unet_pass(threads), inline):
            torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


def test_rows_are_cut_into_one_block_per_worker_with_every_pair_once():
    x = random_tensor(3, 4, grid=12, occupancy=0.4)
    from pcseg.sparse import torch_backend as backend

    kmap = backend.get_downsample_map(x, 2, 2)  # pairs not sorted by output row
    blocks = kmap.blocks(3)
    assert len(blocks) == 3 and blocks[0].lo == 0 and blocks[-1].hi == kmap.n_out
    assert all(a.hi == b.lo for a, b in zip(blocks[:-1], blocks[1:]))
    pieces = [p for block in blocks for p in block.pieces]
    for piece in pieces:
        for _, _, out_idx in piece.pairs:
            assert bool(((out_idx >= piece.lo) & (out_idx < piece.hi)).all())
    for n, in_idx, out_idx in kmap.pairs:
        parts = [(i, o) for p in pieces for m, i, o in p.pairs if m == n]
        got = sorted(zip(torch.cat([i for i, _ in parts]).tolist(), torch.cat([o for _, o in parts]).tolist()))
        assert got == sorted(zip(in_idx.tolist(), out_idx.tolist()))


def test_workers_run_torch_on_one_thread_and_leave_the_caller_alone(restore_threads):
    torch.set_num_threads(2)
    workers.set_conv_threads(3)
    inside = workers.run_tasks(lambda _: (torch.get_num_threads(), workers.conv_threads(),
                                          threading.current_thread().name, torch.is_grad_enabled()), range(3))
    assert all(t == 1 and c == 1 and name.startswith("pcseg-conv-") and not grad for t, c, name, grad in inside)
    assert torch.get_num_threads() == 2 and workers.conv_threads() == 3


def test_a_failing_task_raises_in_the_caller(restore_threads):
    workers.set_conv_threads(2)

    def task(i):
        if i == 1:
            raise KeyError("task 1 failed")
        return i

    with pytest.raises(KeyError, match="task 1 failed"):
        workers.run_tasks(task, [0, 1, 2])
    assert workers.run_tasks(lambda i: i * 2, [1, 2, 3]) == [2, 4, 6]  # the workers survived


_FORK_SCRIPT = """
import multiprocessing, sys, torch
sys.path.insert(0, sys.argv[1])
from test_workers import unet_pass

def child(queue):
    queue.put(unet_pass(2)[0].numpy())  # an array: a tensor's shared memory dies with the child

torch.set_num_threads(1)  # as pcseg.runtime runs torch ops
want = unet_pass(2)[0]  # the parent's pool exists now
ctx = multiprocessing.get_context("fork")
queue = ctx.Queue()
proc = ctx.Process(target=child, args=(queue,))
proc.start()
got = torch.from_numpy(queue.get(timeout=60))
proc.join(timeout=60)
assert proc.exitcode == 0, proc.exitcode
torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
print("ok")
"""


def test_a_forked_child_gets_its_own_workers():
    # a fresh process: libgomp hangs a forked child once its parent ran multi-threaded OpenMP
    # regions, which other tests in this worker process may have done
    here = str(Path(__file__).parent)
    done = subprocess.run([sys.executable, "-c", _FORK_SCRIPT, here], capture_output=True, text=True, timeout=180)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


def test_set_threads_runs_torch_on_one_thread_and_convs_on_n_workers(restore_threads):
    assert runtime.set_threads(3) == 3
    assert torch.get_num_threads() == 1 and workers.conv_threads() == 3
    from threadpoolctl import threadpool_info
    blas = [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]
    assert blas and set(blas) == {1}  # numpy's BLAS does not spin beside the conv workers either
    assert runtime.apply_recipe_threads(1) == 3  # explicit choice wins over a recipe
    runtime.set_threads(2, explicit=False)
    assert runtime.apply_recipe_threads(1) == 1 and workers.conv_threads() == 1
    assert runtime.set_threads(None) == runtime.usable_cores()
    with pytest.raises(ValueError, match="threads"):
        runtime.set_threads(-1)
    with pytest.raises(ValueError, match="threads"):
        workers.set_conv_threads(1.5)


def test_piece_loops_compile_and_equal_their_python(restore_threads, monkeypatch):
    """The conv's loops are compiled by TorchScript (GIL-free on the workers); where that is not
    possible they run as Python: both give the same results, forward and backward."""
    from pcseg.sparse import torch_backend as backend

    loops = (backend._forward_pieces, backend._backward_pieces, backend._scatter_pairs)
    for fn in loops:
        assert isinstance(backend._loop(fn), torch.jit.ScriptFunction), fn.__name__
    compiled = unet_pass(2)
    with torch.no_grad():
        compiled_inference = unet_pass_inference()
    monkeypatch.setattr(backend, "_compiled", {fn.__name__: fn for fn in loops})
    for got, want in zip(unet_pass(2), compiled):
        torch.testing.assert_close(got, want, rtol=0, atol=0)
    with torch.no_grad():
        torch.testing.assert_close(unet_pass_inference(), compiled_inference, rtol=0, atol=0)


def unet_pass_inference():
    x = random_tensor(0, 12, grid=12, occupancy=0.4)
    subm, down = layer(SubMConv3d, 12, 8, seed=1), layer(SparseConv3d, 8, 16, seed=2)
    fine = subm(x)
    return layer(SparseInverseConv3d, 16, 8, seed=4)(down(fine), fine).features
