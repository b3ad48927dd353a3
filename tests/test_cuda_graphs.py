"""A Hamming train step is CUDA-graph ready: no host syncs, capturable, compilable whole.

* CPU: a steady-state forward + backward (both routes, both sides) runs no op that reads a
  value back on the host or makes a data-dependent shape (``HOST_SYNC_OPS``, recorded over
  the whole step, not only inside the adapter layers); ``torch.compile(model,
  mode="reduce-overhead", fullgraph=True)`` compiles the train step (slow: inductor) and
  equals eager.
* CUDA (skipped without): the same step, the optimizer's included, under
  ``torch.cuda.set_sync_debug_mode("error")``; the eager step captured by
  ``torch.cuda.graph`` and replayed on new inputs equals the eager step, with the Triton
  kernels off and in their default mode.
"""
import os
import sys

import pytest
import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from qiadapters import AdapterModel, HammingConfig
from qiadapters.adapters.hamming import set_route
from qiadapters.circuits import kernels
from qiadapters.testing import perturb

sys.path.insert(0, os.path.dirname(__file__))  # the suite's helpers
from test_fold_route import _assert_same, _step  # noqa: E402
from testing_utils import HOST_SYNC_OPS  # noqa: E402

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
ROUTES = [("output", "activation"), ("input", "activation"), ("output", "fold")]


def _model(side="output", route="activation", device="cpu", seed=0):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(24, 40), nn.Tanh(), nn.Linear(40, 24), nn.Tanh(),
                          nn.Linear(24, 3))
    am = perturb(AdapterModel(model, HammingConfig(target_modules=["0", "2"], block_size=12,
                                                   side=side, scale=True)), scale=0.3)
    am.base_model[4].weight.requires_grad_(True)  # a trained head
    if route == "fold":
        set_route(am, "fold")
    return am.to(device)


class _Recorded(TorchDispatchMode):
    """Every op of :data:`HOST_SYNC_OPS` run while active (anywhere, backward included)."""

    def __init__(self):
        super().__init__()
        self.ops = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = f"aten::{func._schema.name.split('::')[-1]}"
        if name in HOST_SYNC_OPS:
            self.ops.append(name)
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("side,route", ROUTES)
def test_train_step_has_no_host_sync_cpu(side, route):
    am = _model(side, route)
    x = torch.randn(2, 5, 24)
    am(x).square().sum().backward()  # the first call fills the table caches
    am.zero_grad(set_to_none=True)
    with _Recorded() as found:
        am(x).square().sum().backward()
    assert found.ops == []
    with _Recorded() as control:  # the recorder sees a read-back
        bool(am(x).sum() > 0)
    assert control.ops == ["aten::_local_scalar_dense"]


@pytest.mark.slow
@pytest.mark.parametrize("route", ["activation", "fold"])
def test_reduce_overhead_fullgraph_train_step_cpu(route):
    """``torch.compile(model, mode="reduce-overhead", fullgraph=True)`` (CUDA graphs where
    the step runs on CUDA; on the CPU the same graph without them) compiles the adapted
    train step as one graph each way; outputs and gradients equal eager's."""
    torch._dynamo.reset()
    am = _model(route=route)
    x = torch.randn(2, 5, 24)
    eager = _step(am, torch.float32, x)
    compiled = torch.compile(am, mode="reduce-overhead", fullgraph=True)
    for _ in range(2):  # the second call reruns the compiled graph
        am.zero_grad(set_to_none=True)
        out = compiled(x)
        out.square().sum().backward()
    _assert_same(eager, (out.detach(), {n: p.grad for n, p in am.named_parameters()
                                        if p.requires_grad}), 1e-4)


def _train_step(am, opt, x):
    loss = am(x).square().mean()
    loss.backward()
    opt.step()
    return loss


@cuda
@pytest.mark.parametrize("side,route", ROUTES)
@pytest.mark.parametrize("mode", ["off", "auto"])
def test_train_step_has_no_host_sync_cuda(side, route, mode):
    """Forward, backward and a capturable Adam step under the sync debug mode ("error": any
    synchronizing call raises), after a first step that fills the caches."""
    with kernels.using(mode):
        am = _model(side, route, "cuda")
        opt = torch.optim.Adam([p for p in am.parameters() if p.requires_grad], lr=1e-3,
                               capturable=True)
        x = torch.randn(2, 5, 24, device="cuda")
        _train_step(am, opt, x)
        opt.zero_grad(set_to_none=True)
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")
        try:
            _train_step(am, opt, x)
            opt.zero_grad(set_to_none=True)
        finally:
            torch.cuda.set_sync_debug_mode("default")


@cuda
@pytest.mark.parametrize("side,route", ROUTES)
@pytest.mark.parametrize("mode", ["off", "auto"])
def test_eager_train_step_is_captured_by_cuda_graphs(side, route, mode):
    """The whole eager step (forward, backward, capturable Adam) captured once by
    ``torch.cuda.graph`` and replayed on three new inputs: the losses and the parameters
    equal those of an identical model stepped eagerly on the same inputs."""
    with kernels.using(mode):
        graphed, eager = _model(side, route, "cuda"), _model(side, route, "cuda")
        opts = [torch.optim.Adam([p for p in m.parameters() if p.requires_grad], lr=1e-2,
                                 capturable=True) for m in (graphed, eager)]
        g = torch.Generator(device="cuda").manual_seed(0)
        inputs = [torch.randn(2, 5, 24, device="cuda", generator=g) for _ in range(6)]
        static_x = inputs[0].clone()
        side_stream = torch.cuda.Stream()
        side_stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side_stream):  # warm-up, on a side stream as capture wants
            for x in inputs[:3]:
                for model, opt in zip((graphed, eager), opts):
                    opt.zero_grad(set_to_none=True)
                    _train_step(model, opt, x)
        torch.cuda.current_stream().wait_stream(side_stream)
        graph = torch.cuda.CUDAGraph()
        opts[0].zero_grad(set_to_none=True)
        with torch.cuda.graph(graph):
            static_loss = _train_step(graphed, opts[0], static_x)
        for x in inputs[3:]:
            static_x.copy_(x)
            graph.replay()
            opts[1].zero_grad(set_to_none=True)
            loss = _train_step(eager, opts[1], x)
            torch.testing.assert_close(static_loss, loss, atol=1e-5, rtol=1e-5)
        for (name, a), b in zip(graphed.named_parameters(), eager.parameters()):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5, msg=name)
