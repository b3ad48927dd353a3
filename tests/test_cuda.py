"""On a CUDA device (the module is skipped without one).

* every family passes every contract check on CUDA, ``torch.compile`` included;
* CUDA computes the same function as the CPU: float64 outputs and gradients of a perturbed
  adapter agree to 1e-10 (the CPU is the reference);
* a bf16-autocast training step on CUDA keeps the adapter in float32 and lowers the loss;
* a ``fullgraph=True`` compiled forward + backward on CUDA matches eager;
* a file saved from CUDA loads on the CPU bit for bit;
* the compounds of many blocks (the batched builds' shapes, the flattened column gathers)
  and their gradients match the CPU in float64.
"""
import copy

import pytest
import torch

from qiadapters import AdapterModel, HammingConfig, MixtureConfig, get_adapter_model
from qiadapters.testing import (adapter_parameters, assert_valid_adapter, logits, on_device,
                                perturb, tiny_bert, tiny_gpt2)

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")

physics = pytest.importorskip("physics")

TARGETS = ["query", "value"]
CONFIGS = {
    "hamming-cayley": HammingConfig(target_modules=TARGETS, orders=(1, 2), blocks=2),
    "hamming-expm-123": HammingConfig(target_modules=TARGETS, orders=(1, 2, 3), blocks=1,
                                      parametrization="expm"),
    "hamming-circuit-brick": HammingConfig(target_modules=TARGETS, parametrization="circuit",
                                           layout="brick"),
    "hamming-input-side": HammingConfig(target_modules=["dense"], side="input", blocks=2),
    "physics-moppa": physics.PhysicsConfig(target_modules=TARGETS, rank=4, grid="sequence"),
    "physics-heat-input": physics.PhysicsConfig(target_modules=["attention"], rank=4,
                                                priors=("heat",), placement="input",
                                                grid="sequence"),
    "mixture-token-top1": MixtureConfig(
        target_modules=TARGETS, router="token", top_k=1,
        experts=[HammingConfig(orders=(1,)), physics.PhysicsConfig(rank=4, grid="sequence")]),
}


@pytest.mark.parametrize("name", list(CONFIGS))
def test_every_contract_check_on_cuda(name):
    assert_valid_adapter(tiny_bert, CONFIGS[name], device="cuda",
                         checks=["identity", "merge", "save_load", "training", "disable",
                                 "low_precision", "pickle", "compile"])


def _output_and_grads(am, inputs, call=None):
    """Output of ``call`` (default ``am``; e.g. a compiled ``am``) and the gradients of
    ``am``'s adapter parameters, on the CPU."""
    am.zero_grad(set_to_none=True)
    out = logits((am if call is None else call)(**inputs))
    out.square().sum().backward()
    return out.detach().cpu(), {n: p.grad.detach().cpu() for n, p in
                                adapter_parameters(am).items() if p.grad is not None}


@pytest.mark.parametrize("name", list(CONFIGS))
def test_cuda_computes_what_the_cpu_computes_in_float64(name):
    model, inputs = tiny_bert()
    am = get_adapter_model(model.double(), CONFIGS[name])
    perturb(am, scale=0.3)
    cpu_out, cpu_grads = _output_and_grads(am, inputs)
    am_cuda = copy.deepcopy(am).to("cuda")
    cuda_out, cuda_grads = _output_and_grads(
        am_cuda, {k: v.to("cuda") for k, v in inputs.items()})
    assert torch.allclose(cuda_out, cpu_out, rtol=0, atol=1e-10), (cuda_out - cpu_out).abs().max()
    assert cuda_grads.keys() == cpu_grads.keys() and cpu_grads
    for key, grad in cpu_grads.items():
        assert torch.allclose(cuda_grads[key], grad, rtol=0, atol=1e-10), key


@pytest.mark.parametrize("name", ["hamming-cayley", "physics-moppa", "mixture-token-top1"])
def test_bf16_autocast_training_on_cuda(name):
    model, inputs = on_device(tiny_bert, "cuda")(0)
    am = get_adapter_model(model.train(), CONFIGS[name])
    params = list(adapter_parameters(am).values())
    optimizer = torch.optim.AdamW(params, lr=3e-2)
    labels = torch.tensor([0, 2], device="cuda")
    losses = []
    for _ in range(8):
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = torch.nn.functional.cross_entropy(logits(am(**inputs)).float(), labels)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
    assert all(p.dtype == torch.float32 and p.device.type == "cuda" for p in params)
    assert all(map(lambda v: v == v and abs(v) < 1e4, losses)), losses
    assert losses[-1] < losses[0], losses


@pytest.mark.parametrize("name", ["hamming-cayley", "hamming-circuit-brick", "physics-moppa"])
def test_fullgraph_compiled_forward_and_backward_on_cuda(name):
    torch._dynamo.reset()
    model, inputs = on_device(tiny_bert, "cuda")(0)
    # no attention mask: with one the physics adapter solves a grid per real length, a
    # data-dependent path that compiles with a graph break (docs/physics.md, "Padding")
    inputs = {"input_ids": inputs["input_ids"]}
    am = get_adapter_model(model, CONFIGS[name])
    perturb(am, scale=0.3)
    eager_out, eager_grads = _output_and_grads(am, inputs)
    compiled = torch.compile(am, fullgraph=True)
    out, grads = _output_and_grads(am, inputs, call=compiled)
    assert grads.keys() == eager_grads.keys() and grads
    assert torch.allclose(out, eager_out, atol=1e-4), (out - eager_out).abs().max()
    for key, grad in eager_grads.items():
        assert torch.allclose(grads[key], grad, atol=1e-4, rtol=1e-3), key


def test_saved_on_cuda_loads_on_cpu_bit_for_bit(tmp_path):
    model, inputs = on_device(tiny_gpt2, "cuda")(0)
    am = get_adapter_model(model, HammingConfig(target_modules=["c_attn"], blocks=2))
    perturb(am)
    am.save_pretrained(tmp_path)
    cpu_model, cpu_inputs = tiny_gpt2(0)
    loaded = AdapterModel.from_pretrained(cpu_model, tmp_path)
    saved = {k: v.cpu() for k, v in adapter_parameters(am).items()}
    for key, value in adapter_parameters(loaded).items():
        assert torch.equal(value.detach(), saved[key].detach()), key
    with torch.no_grad():
        expected = logits(am(**inputs)).cpu()
        assert torch.allclose(logits(loaded(**cpu_inputs)), expected, atol=1e-4)



def _compounds_and_gradient(U, orders, weights, device):
    """The compounds of ``U`` on ``device``, and the gradient of ``sum_k <C_k(U), W_k>``."""
    from qiadapters.circuits.compound import compounds

    Ud = U.to(device).requires_grad_()
    out = compounds(Ud, orders)
    sum((o * w.to(device)).sum() for o, w in zip(out, weights)).backward()
    return [o.detach().cpu() for o in out], Ud.grad.cpu()


@pytest.mark.parametrize("n, blocks", [(7, 660), (15, 165), (11, 8)])
def test_many_blocks_compounds_on_cuda_match_the_cpu(n, blocks):
    """The batched builds' shapes (660 blocks of n = 7: blocks of 32 on every linear layer of
    MiniLM; 165 of n = 15): the column gathers through the flattened matrix
    (``take_columns`` from ``FLAT_TAKE_MIN_ENTRIES`` entries) and the order-2 and order-3
    compounds, forward and gradient, against the CPU in float64."""
    from math import comb

    from qiadapters.circuits.compound import FLAT_TAKE_MIN_ENTRIES, take_columns

    gen = torch.Generator().manual_seed(n)
    U = torch.randn(blocks, n, n, dtype=torch.float64, generator=gen)
    idx = torch.randint(0, n, (3 * n,), generator=gen)
    if blocks * n * idx.numel() >= FLAT_TAKE_MIN_ENTRIES:
        assert torch.equal(take_columns(U.cuda(), idx.cuda()).cpu(), take_columns(U, idx))
    orders = (1, 2, 3) if n <= 11 else (1, 2)
    weights = [torch.randn(blocks, comb(n, k), comb(n, k), dtype=torch.float64, generator=gen)
               for k in orders]
    cpu_out, cpu_grad = _compounds_and_gradient(U, orders, weights, "cpu")
    cuda_out, cuda_grad = _compounds_and_gradient(U, orders, weights, "cuda")
    for a, b in zip(cpu_out, cuda_out):
        assert torch.allclose(a, b, rtol=0, atol=1e-10)
    assert torch.allclose(cpu_grad, cuda_grad, rtol=0, atol=1e-9)
