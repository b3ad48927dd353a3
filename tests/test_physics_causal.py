"""Causal physics adapters (prefix semantics) and padding: no token sees a later token in a
causal model, padding never changes a real token's output, explicit widths, GPU-clean bases."""
import numpy as np
import pytest
import scipy.linalg
import torch
from torch import nn

import physics
from physics import PhysicsAdapter, PhysicsConfig, PhysicsLayer
from physics.solvers import heat_multiplier, poisson_multiplier, wave_multipliers
from qiadapters import get_adapter_model
from qiadapters.testing import logits, perturb, tiny_bert, tiny_gpt2, tiny_llama

torch.set_num_threads(1)
BOUNDARIES = sorted(physics.BOUNDARIES)
ROUTERS = sorted(physics.ROUTERS)


def _activate(adapter, seed=1, scale=0.5):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in adapter.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return adapter


# ------------------------------------------------------------------ the causal operator
def _dense_reference(kind, n, boundary, c=0.8, t=1.3, eps=0.1):
    """The operator on n points from the sparse stencil (no spectral basis): expm for heat,
    eigh of the dense -Δ for wave (cos) and a dense solve for screened Poisson."""
    neg = -physics.laplacian_matrix(n, boundary).toarray()
    if kind == "heat":
        return scipy.linalg.expm(-c * t * neg)
    if kind == "wave":
        lam, vec = np.linalg.eigh(neg)
        return vec @ np.diag(np.cos(c * t * np.sqrt(np.clip(lam, 0, None)))) @ vec.T
    return np.linalg.inv(neg + eps * np.eye(n))


MULTIPLIERS = {"heat": lambda lam: heat_multiplier(lam[:, None], 0.8, 1.3),
               "wave": lambda lam: wave_multipliers(lam[:, None], 0.8, 1.3)[0],
               "poisson": lambda lam: poisson_multiplier(lam[:, None], "screened", 0.1)}


@pytest.mark.parametrize("boundary", BOUNDARIES)
@pytest.mark.parametrize("kind", sorted(MULTIPLIERS))
def test_causal_kernel_rows_are_the_prefix_operators_last_rows(kind, boundary):
    n = 9
    kernel = physics.causal_kernel(MULTIPLIERS[kind], n, boundary)[..., 0].numpy()
    for t in range(n):
        ref = _dense_reference(kind, t + 1, boundary)
        np.testing.assert_allclose(kernel[t, :t + 1], ref[t], atol=1e-12)
        assert np.all(kernel[t, t + 1:] == 0)


@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_causal_solve_is_the_solver_on_each_prefix_and_the_full_solve_at_the_end(boundary):
    u = torch.randn(2, 11, 3, dtype=torch.float64)
    kappa = torch.tensor([0.3, 1.0, 2.0], dtype=torch.float64)
    y = physics.causal_solve(u, lambda lam: heat_multiplier(lam[:, None], kappa, 0.7), boundary)
    for t in range(11):
        torch.testing.assert_close(y[:, t], physics.heat(u[:, :t + 1], kappa, 0.7, boundary)[:, t])
    # not the lower-triangular part of the full operator: that one differs before the end
    full = physics.heat(u, kappa, 0.7, boundary)
    torch.testing.assert_close(y[:, -1], full[:, -1])
    assert (y[:, :-1] - full[:, :-1]).abs().max() > 1e-3


@pytest.mark.parametrize("router", ROUTERS)
@pytest.mark.parametrize("extra", [0, 1])
def test_causal_adapter_equals_the_bidirectional_adapter_on_each_prefix(router, extra):
    torch.manual_seed(0)
    causal = _activate(PhysicsAdapter(12, rank=3, grid="sequence", router=router,
                                       extra_tokens=extra, causal=True).double())
    bidir = PhysicsAdapter(12, rank=3, grid="sequence", router=router, extra_tokens=extra).double()
    bidir.load_state_dict(causal.state_dict())
    x = torch.randn(2, extra + 10, 12, dtype=torch.float64)
    y = causal(x)
    for t in range(extra, x.shape[1]):
        torch.testing.assert_close(y[:, t], bidir(x[:, :t + 1])[:, t])
    assert (y[:, extra:-1] - bidir(x)[:, extra:-1]).abs().max() > 1e-4


@pytest.mark.parametrize("router", ROUTERS)
def test_causal_adapter_never_lets_a_token_see_a_later_one(router):
    torch.manual_seed(0)
    adapter = _activate(PhysicsAdapter(8, rank=4, grid="sequence", router=router, causal=True))
    x = torch.randn(2, 12, 8)
    y = adapter(x)
    for t in range(11):
        x2 = x.clone()
        x2[:, t + 1:] += 10 * torch.randn_like(x2[:, t + 1:])
        torch.testing.assert_close(adapter(x2)[:, :t + 1], y[:, :t + 1], atol=1e-5, rtol=1e-5)


def test_causal_rejects_2d_grids_and_reads_auto_as_a_sequence():
    with pytest.raises(ValueError, match=r"grid=\(4, 4\) is not valid with causal=True"):
        PhysicsAdapter(8, grid=(4, 4), causal=True)
    assert PhysicsAdapter(8, grid="auto", causal=True).grid_shape(16) == (16,)
    with pytest.raises(ValueError, match=r"causal=1 must be True or False"):
        PhysicsAdapter(8, causal=1)
    with pytest.raises(ValueError, match=r"causal='yes' must be True or False"):
        PhysicsConfig(target_modules=["attn"], causal="yes")


# ------------------------------------------------------------------ causal models
def _leaks(am, inputs, vocab=64):
    """Max change of the logits at positions <= t when tokens t+1.. change, over every t."""
    ids = inputs["input_ids"][:1]
    with torch.no_grad():
        base = logits(am(input_ids=ids))
        worst = 0.0
        for t in range(ids.shape[1] - 1):
            other = ids.clone()
            other[:, t + 1:] = (other[:, t + 1:] + 1 + torch.arange(ids.shape[1] - t - 1)) % vocab
            out = logits(am(input_ids=other))
            worst = max(worst, float((out[:, :t + 1] - base[:, :t + 1]).abs().max()))
    return worst


CAUSAL_CASES = [
    ("gpt2-input-attn", tiny_gpt2, dict(target_modules=["attn"], placement="input")),
    ("gpt2-input-mlp-sample", tiny_gpt2, dict(target_modules=["mlp"], placement="input",
                                              router="sample")),
    ("llama-input-self_attn", tiny_llama, dict(target_modules=["self_attn"], placement="input",
                                               boundary="periodic")),
    ("llama-parallel-q-v", tiny_llama, dict(target_modules=["q_proj", "v_proj"],
                                            router="global", boundary="dirichlet")),
]


@pytest.mark.parametrize("factory, options", [c[1:] for c in CAUSAL_CASES],
                         ids=[c[0] for c in CAUSAL_CASES])
def test_causal_models_get_causal_adapters_and_no_token_sees_a_later_one(factory, options):
    model, inputs = factory()
    am = get_adapter_model(model, PhysicsConfig(rank=4, grid="sequence", **options))
    layers = [l for _, l in am.adapter_layers() if isinstance(l, PhysicsLayer)]
    assert layers and all(l.physics["default"].causal for l in layers)
    perturb(am, scale=0.5)
    with torch.no_grad():
        assert (logits(am(input_ids=inputs["input_ids"][:1]))
                - logits(model.__class__(model.config).eval()(input_ids=inputs["input_ids"][:1]))
                ).abs().max() > 0
    assert _leaks(am, inputs) < 1e-5
    # the check can fail: the same adapters made bidirectional leak future tokens
    for layer in layers:
        layer.physics["default"].causal = False
    assert _leaks(am, inputs) > 1e-3


def test_bidirectional_physics_is_refused_in_a_causal_model():
    model, _ = tiny_gpt2()
    with pytest.raises(ValueError, match=r"module 'transformer\.h\.0\.attn' \(GPT2Attention\): "
                       r"causal=False is not valid in GPT2LMHeadModel, a causal model "
                       r"\(transformer\.h\.0\.attn\.is_causal=True\).*causal=True"):
        get_adapter_model(model, PhysicsConfig(target_modules=["attn"], placement="input",
                                               causal=False))
    assert not any(isinstance(m, PhysicsLayer) for m in model.modules())


def test_causal_detection_follows_the_attention_modules():
    bert, _ = tiny_bert()
    gpt2, _ = tiny_gpt2()
    llama, _ = tiny_llama()
    assert physics.causal_reason(bert.bert.encoder.layer[0].attention.output.dense, bert) is None
    q = llama.model.layers[0].self_attn.q_proj
    assert physics.causal_reason(q, llama) == "model.layers.0.self_attn.is_causal=True"
    assert physics.causal_reason(gpt2.transformer.h[1].mlp.c_fc, gpt2) == \
        "transformer.h.1.attn.is_causal=True"
    assert physics.causal_reason(q) is None  # alone, a Linear says nothing
    assert physics.causal_reason(gpt2.transformer.h[0].attn) == "GPT2Attention.is_causal=True"
    am = get_adapter_model(bert, PhysicsConfig(target_modules=["attention.self"],
                                               placement="input", grid="sequence"))
    assert not any(l.physics["default"].causal for _, l in am.adapter_layers())


# ------------------------------------------------------------------ padding
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("router", ROUTERS)
@pytest.mark.parametrize("grid, extra", [("sequence", 0), ("auto", 1)])
def test_padding_never_changes_real_tokens(router, grid, extra, causal):
    if causal and grid == "auto":
        grid = "sequence"
    torch.manual_seed(0)
    adapter = _activate(PhysicsAdapter(6, rank=3, grid=grid, router=router, extra_tokens=extra,
                                       causal=causal).double())
    rows = [torch.randn(1, extra + n, 6, dtype=torch.float64) for n in (9, 4, 7)]
    alone = [adapter(r)[0] for r in rows]
    width = extra + 12
    for side in ("right", "left", "middle"):
        x = 100 * torch.randn(3, width, 6, dtype=torch.float64)   # loud padding
        mask = torch.zeros(3, width, dtype=torch.long)
        for i, r in enumerate(rows):
            n = r.shape[1] - extra
            mask[i, :extra] = 1
            x[i, :extra] = r[0, :extra]
            start = {"right": extra, "left": width - n, "middle": extra + 2}[side]
            pos = list(range(start, start + n)) if side != "middle" else \
                list(range(extra, extra + 2)) + list(range(extra + 4, extra + 2 + n))
            pos = pos[:n]
            x[i, pos] = r[0, extra:]
            mask[i, pos] = 1
        y = adapter(x, mask)
        for i, r in enumerate(rows):
            real = mask[i].bool()
            torch.testing.assert_close(y[i, real], alone[i], atol=1e-10, rtol=0)


def test_padded_route_loss_counts_real_tokens_only():
    torch.manual_seed(0)
    adapter = _activate(PhysicsAdapter(6, rank=3, grid="sequence", router="token",
                                       balance=1.0, entropy=0.5).double())
    x = torch.randn(2, 8, 6, dtype=torch.float64)
    mask = torch.ones(2, 8, dtype=torch.long)
    mask[1, 5:] = 0
    adapter(x, mask)
    w = torch.cat([adapter.route(x[:1]).reshape(-1, 3), adapter.route(x[1:, :5]).reshape(-1, 3)])
    torch.testing.assert_close(adapter.aux_loss(), physics.route_loss(w, 1.0, 0.5))
    with pytest.raises(ValueError, match=r"mask.shape=\(2, 7\) is not valid; valid: "
                                         r"\(batch, tokens\) = \(2, 8\)"):
        adapter(x, mask[:, :7])


@pytest.mark.parametrize("causal", [True, False])
def test_a_batch_of_padding_only_has_a_route_loss_of_zero(causal):
    """No real token, no routed unit: the regulariser is 0 (it was -balance on the causal
    path: the masked means were 0 over a count clamped to 1)."""
    torch.manual_seed(0)
    adapter = _activate(PhysicsAdapter(6, rank=3, grid="sequence", router="token", causal=causal,
                                       balance=1.0, entropy=0.5).double())
    x = torch.randn(2, 8, 6, dtype=torch.float64)
    adapter(x, torch.zeros(2, 8, dtype=torch.long))
    loss = adapter.aux_loss()
    assert float(loss) == 0.0
    assert physics.route_loss(torch.full((4, 3), 1 / 3), 1.0, 0.5, mask=torch.zeros(4)) == 0


@pytest.mark.parametrize("target, placement", [("attention.self", "input"),
                                               ("attention.output.dense", "parallel")])
def test_bert_right_padding_leaves_real_tokens_unchanged(target, placement):
    model, inputs = tiny_bert()
    am = get_adapter_model(model, PhysicsConfig(target_modules=[target], placement=placement,
                                                grid="sequence", rank=4))
    perturb(am, scale=0.5)
    ids = inputs["input_ids"][:1, :6]

    def run(pad):
        full = torch.cat([ids, torch.randint(1, 64, (1, pad))], 1)
        mask = torch.cat([torch.ones(1, 6), torch.zeros(1, pad)], 1).long()
        with torch.no_grad():
            out = am(input_ids=full, attention_mask=mask, output_hidden_states=True)
        return out.logits, out.hidden_states[-1][:, :6]

    ref_logits, ref_hidden = run(0)
    for pad in (1, 4, 8):
        got_logits, got_hidden = run(pad)
        torch.testing.assert_close(got_hidden, ref_hidden, atol=1e-5, rtol=0)
        torch.testing.assert_close(got_logits, ref_logits, atol=1e-5, rtol=0)
    # the check can fail: without the mask the padding moves the real tokens
    with torch.no_grad():
        full = torch.cat([ids, torch.randint(1, 64, (1, 4))], 1)
        mask = torch.cat([torch.ones(1, 6), torch.zeros(1, 4)], 1).long()
        layer = next(l for _, l in am.adapter_layers())
        layer._mask = lambda x: None
        hidden = am(input_ids=full, attention_mask=mask, output_hidden_states=True
                    ).hidden_states[-1][:, :6]
    assert (hidden - ref_hidden).abs().max() > 1e-4


def test_token_mask_context_for_plain_pytorch_and_a_mismatched_mask():
    torch.manual_seed(0)
    layer = PhysicsLayer(nn.Linear(8, 8), rank=3, grid="sequence")
    _activate(layer.physics["default"])
    x = torch.randn(1, 5, 8)
    alone = layer(x)
    padded = torch.cat([x, torch.randn(1, 3, 8)], 1)
    with physics.token_mask(torch.tensor([[1] * 5 + [0] * 3])):
        torch.testing.assert_close(layer(padded)[:, :5], alone, atol=1e-6, rtol=0)
        with pytest.raises(ValueError, match=r"attention_mask.shape=\(1, 8\) does not fit .*"
                                             r"use_cache=False"):
            layer(x)
    assert (layer(padded)[:, :5] - alone).abs().max() > 1e-4   # outside: no mask


# ------------------------------------------------------------------ explicit width
def test_gpt2_width_is_inferred_from_conv1d_and_dim_is_explicit_where_needed():
    model, _ = tiny_gpt2()
    am = get_adapter_model(model, PhysicsConfig(target_modules=["attn"], placement="input"))
    assert {l.physics["default"].dim for _, l in am.adapter_layers()} == {32}
    model, _ = tiny_gpt2()
    am = get_adapter_model(model, PhysicsConfig(target_modules=["c_fc"], rank=2))  # parallel
    assert {(l.physics["default"].dim, l.physics["default"].out_dim)
            for _, l in am.adapter_layers()} == {(32, 128)}
    model, _ = tiny_gpt2()
    with pytest.raises(TypeError, match=r"module 'transformer\.h\.0\.attn\.attn_dropout' "
                       r"\(Dropout\): cannot tell the hidden width .* PhysicsConfig\(dim=\.\.\.\)"):
        get_adapter_model(model, PhysicsConfig(target_modules=["attn_dropout"], placement="input"))
    am = get_adapter_model(model, PhysicsConfig(target_modules=["attn.resid_dropout"],
                                                placement="input", dim=32))
    assert {l.physics["default"].dim for _, l in am.adapter_layers()} == {32}
    with pytest.raises(ValueError, match=r"dim=0 is out of range"):
        PhysicsConfig(target_modules=["attn"], dim=0)
    with pytest.raises(ValueError, match=r"dim=16 is not valid for placement='parallel' on a "
                                         r"Linear with input width 8; valid: None or 8"):
        PhysicsLayer(nn.Linear(8, 8), dim=16)


# ------------------------------------------------------------------ bases: device, cache, compile
def test_cache_is_bounded_and_least_recently_used(monkeypatch):
    from physics import bases

    monkeypatch.setattr(bases, "CACHE_SIZE", 3)
    bases.clear_cache()
    first = physics.basis("neumann", 5)
    for n in (6, 7):
        physics.basis("neumann", n)
    assert physics.basis("neumann", 5) is first            # a hit moves it to the end
    physics.basis("neumann", 8)                              # evicts 6, the oldest
    assert len(bases._CACHE) == 3
    assert physics.basis("neumann", 5) is first
    assert torch.equal(physics.basis("neumann", 6), bases.Neumann().basis_matrix(6, "cpu"))
    bases.clear_cache()


def test_causal_adapter_compiles_as_one_graph_from_a_cold_cache():
    from physics import bases

    torch.manual_seed(0)
    adapter = _activate(PhysicsAdapter(8, rank=3, grid="sequence", router="token", causal=True,
                                       boundary="periodic"))
    x = torch.randn(2, 7, 8)
    bases.clear_cache()
    compiled = torch.compile(adapter, backend="aot_eager", fullgraph=True)
    out = compiled(x)
    assert len(bases._CACHE) == 0                            # built inside the graph
    torch.testing.assert_close(out, adapter(x), atol=1e-6, rtol=1e-6)


def test_dim_and_causal_are_saved_only_when_set():
    plain = PhysicsConfig(target_modules=["attn"])
    assert "dim" not in plain.to_dict() and "causal" not in plain.to_dict()
    assert PhysicsConfig.from_dict(plain.to_dict()) == plain
    set_ = PhysicsConfig(target_modules=["attn"], dim=32, causal=True)
    assert set_.to_dict()["dim"] == 32 and set_.to_dict()["causal"] is True
    assert PhysicsConfig.from_dict(set_.to_dict()) == set_


def test_the_mask_reaches_layers_through_any_call_of_the_model():
    """The context is set by hooks on the wrapped model, so calling it directly (as
    generate() does) publishes the mask as AdapterModel.forward does."""
    model, inputs = tiny_bert()
    am = get_adapter_model(model, PhysicsConfig(target_modules=["attention.self"],
                                                placement="input", grid="sequence", rank=4))
    perturb(am, scale=0.5)
    with torch.no_grad():
        via_wrapper = am(**inputs).logits
        direct = am.base_model(**inputs).logits
        unmasked = am.base_model(input_ids=inputs["input_ids"]).logits
    torch.testing.assert_close(direct, via_wrapper, rtol=0, atol=0)
    assert (unmasked[1] - direct[1]).abs().max() > 1e-4  # row 1 is padded: the mask mattered
    plain = am.unload()
    assert not plain._forward_pre_hooks and not plain._forward_hooks


def test_generate_with_a_kv_cache_is_refused_and_without_one_is_causal():
    model, inputs = tiny_llama()
    am = get_adapter_model(model, PhysicsConfig(target_modules=["self_attn"], placement="input",
                                                grid="sequence", rank=4))
    perturb(am, scale=0.5)
    prompt = inputs["input_ids"][:1, :5]
    with pytest.raises(ValueError, match=r"after 5 cached ones.*use_cache=False"):
        am.generate(prompt, max_new_tokens=3, do_sample=False, use_cache=True)
    out = am.generate(prompt, max_new_tokens=3, do_sample=False, use_cache=False)
    assert out.shape == (1, 8) and torch.equal(out[:, :5], prompt)
    with torch.no_grad():  # each greedy token is the argmax of the full forward (causal)
        logits_ = am(input_ids=out[:, :-1]).logits
    assert torch.equal(logits_[0, 4:].argmax(-1), out[0, 5:])
