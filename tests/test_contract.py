"""The adapter contract (qiadapters.testing) on every configuration the library offers.

One row per configuration: ``(name, model_factory, config)``; ``config`` may be a list (a
stack of adapters, all active).  A new family adds rows here, not tests.
"""
import pytest
import torch
from torch import nn

from qiadapters import HammingConfig
from qiadapters.testing import (CHECKS, available_devices, on_device, tiny_bert, tiny_cnn,
                                tiny_gpt2, tiny_mlp)

#: The contract runs on every device present: the CPU always, CUDA where a GPU is.
DEVICES = available_devices()


def _device_id(device: str) -> str:
    return "" if device == "cpu" else f"-{device}"

# One thread per xdist worker: on 2 cores, two multi-threaded workers thrash on tiny ops.

MLP = ["fc1", "fc2"]


class DoublingLinear(nn.Linear):
    """An ``nn.Linear`` subclass with its own forward, ``2 (x W^T + b)``: as bitsandbytes',
    torchao's or any custom Linear, its forward is not ``F.linear``."""

    def forward(self, x):
        return 2 * super().forward(x)


def _swap_mlp(seed, make):
    """``tiny_mlp(seed)`` with ``fc1`` and ``fc2`` rebuilt by ``make(linear)``, in eval mode."""
    model, inputs = tiny_mlp(seed)
    for name in MLP:
        setattr(model, name, make(getattr(model, name)))
    return model.eval(), inputs


def _doubling(linear):
    new = DoublingLinear(linear.in_features, linear.out_features)
    new.load_state_dict(linear.state_dict())
    return new


def custom_linear_mlp(seed=0):
    """``tiny_mlp`` whose ``fc1`` and ``fc2`` are :class:`DoublingLinear`."""
    return _swap_mlp(seed, _doubling)


def _int8(linear):
    import bitsandbytes as bnb

    new = bnb.nn.Linear8bitLt(linear.in_features, linear.out_features, has_fp16_weights=False)
    new.load_state_dict(linear.state_dict())
    return new.to("cpu")  # quantizes the weight (int8 + per-row scale)


def int8_mlp(seed=0):
    """``tiny_mlp`` whose ``fc1`` and ``fc2`` are bitsandbytes ``Linear8bitLt`` (QLoRA-style
    8-bit, CPU backend)."""
    return _swap_mlp(seed, _int8)


try:
    import bitsandbytes  # noqa: F401
except ImportError:  # pragma: no cover - the test extra installs it
    bitsandbytes = None


def lora_mlp(seed=0):
    """``tiny_mlp`` in a peft ``PeftModel`` with a frozen (nonzero) LoRA on ``fc1`` and
    ``fc2``: the Hamming layers wrap peft's ``lora.Linear`` (base kind ``peft-linear``)."""
    import peft

    model, batch = tiny_mlp(seed)
    cfg = peft.LoraConfig(target_modules=MLP, r=2, init_lora_weights=False)
    pm = peft.get_peft_model(model, cfg)
    pm.requires_grad_(False)
    return pm, batch

ROWS = [
    # parametrizations (MLP: fc1 16->48, fc2 48->48, head 48->4)
    ("mlp-cayley", tiny_mlp, HammingConfig(target_modules=MLP)),
    ("mlp-expm", tiny_mlp, HammingConfig(target_modules=MLP, parametrization="expm")),
    ("mlp-circuit-pyramid-rbs", tiny_mlp,
     HammingConfig(target_modules=MLP, parametrization="circuit")),
    ("mlp-circuit-pyramid-fbs", tiny_mlp,
     HammingConfig(target_modules=MLP, parametrization="circuit", gate="fbs")),
    ("mlp-circuit-brick-fbs", tiny_mlp,
     HammingConfig(target_modules=MLP, parametrization="circuit", layout="brick", gate="fbs")),
    ("mlp-circuit-x-rbs", tiny_mlp,
     HammingConfig(target_modules=MLP, parametrization="circuit", layout="x")),
    ("mlp-circuit-butterfly-rbs", tiny_mlp,
     HammingConfig(target_modules=MLP, parametrization="circuit", layout="butterfly")),
    ("mlp-circuit-butterfly-fbs", tiny_mlp,
     HammingConfig(target_modules=MLP, parametrization="circuit", layout="butterfly", gate="fbs")),
    # sides, orders, sharing, target syntaxes
    ("mlp-input-side", tiny_mlp, HammingConfig(target_modules=MLP, side="input", blocks=2)),
    ("mlp-order-1", tiny_mlp, HammingConfig(target_modules=MLP, orders=(1,), blocks=4)),
    ("mlp-order-123", tiny_mlp, HammingConfig(target_modules=MLP, orders=(1, 2, 3), blocks=2)),
    ("mlp-block-size", tiny_mlp, HammingConfig(target_modules=MLP, block_size=20, n_qubits=4)),
    ("mlp-shared", tiny_mlp, HammingConfig(target_modules=MLP, share_blocks=True)),
    ("mlp-regex-save-head", tiny_mlp,
     HammingConfig(target_modules=r"fc\d", parametrization="expm", modules_to_save=["head"])),
    ("mlp-all-linear", tiny_mlp,
     HammingConfig(target_modules="all-linear", side="input", blocks=1)),
    # stacks: product of adapters in the order added, mixed sides and parametrizations
    ("mlp-stacked", tiny_mlp, [
        HammingConfig(target_modules=MLP),
        HammingConfig(target_modules=["fc2"], parametrization="circuit", layout="brick",
                      gate="fbs"),
        HammingConfig(target_modules=MLP, side="input", parametrization="expm", blocks=2)]),
    # tiny BERT (hidden 32)
    ("bert-cayley-qv-demo", tiny_bert,
     HammingConfig(target_modules=["query", "value"], orders=(1, 2), blocks=3,
                   modules_to_save=["classifier"])),
    ("bert-expm-all-linear-input", tiny_bert,
     HammingConfig(target_modules="all-linear", parametrization="expm", side="input", blocks=2)),
    ("bert-circuit-fbs-order-123", tiny_bert,
     HammingConfig(target_modules=["key", "dense"], parametrization="circuit", gate="fbs",
                   orders=(1, 2, 3), blocks=1)),
    ("bert-order-1-shared", tiny_bert,
     HammingConfig(target_modules=["value"], orders=(1,), blocks=8, share_blocks=True)),
    ("bert-stacked", tiny_bert, [
        HammingConfig(target_modules=["query", "value"], modules_to_save=["classifier"]),
        HammingConfig(target_modules=["value"], parametrization="circuit", layout="x")]),
    # base kinds (qiadapters/adapters/hamming/kinds.py): transformers' Conv1D (GPT-2, weight
    # stored (in, out)), nn.Conv2d (channels), a Linear subclass with its own forward
    ("gpt2-conv1d-attn", tiny_gpt2,
     HammingConfig(target_modules=["c_attn", "attn.c_proj"], blocks=2)),
    ("gpt2-all-linear-input-stacked", tiny_gpt2, [
        HammingConfig(target_modules="all-linear", side="input", parametrization="expm",
                      blocks=1),
        HammingConfig(target_modules=["c_fc"], orders=(1,), blocks=4)]),
    ("cnn-conv2d", tiny_cnn, HammingConfig(target_modules=["conv1", "conv2"], blocks=1)),
    ("cnn-conv2d-input-stacked", tiny_cnn, [
        HammingConfig(target_modules=["conv2"], side="input", blocks=1),
        HammingConfig(target_modules=["conv1", "conv2"], parametrization="circuit",
                      gate="fbs", blocks=1)]),
    # not mergeable: the merge check asserts the refusal
    ("mlp-custom-linear-subclass", custom_linear_mlp,
     HammingConfig(target_modules=MLP, side="output")),
    ("mlp-custom-linear-subclass-input", custom_linear_mlp,
     HammingConfig(target_modules=MLP, side="input", blocks=2)),
]
# Hamming stacked on peft's LoRA (qiadapters/integrations/peft.py): not mergeable
ROWS += [("mlp-peft-lora-stacked", lora_mlp, HammingConfig(target_modules=MLP, blocks=2))]
if bitsandbytes is not None:
    ROWS += [("mlp-bnb-int8", int8_mlp, [HammingConfig(target_modules=MLP),
                                         HammingConfig(target_modules=["fc2"], side="input")])]

#: rows whose layers must refuse merging (quantized weights, a forward of their own)
UNMERGEABLE_ROWS = {"mlp-custom-linear-subclass", "mlp-custom-linear-subclass-input",
                    "mlp-bnb-int8", "mlp-peft-lora-stacked"}

# torch.compile is slow on 2 cores: a matrix row, a circuit row and a convolution row only
# (every base kind's forward is traced as one graph in tests/test_hamming_kinds.py).
COMPILE_ROWS = {"mlp-cayley", "mlp-circuit-butterfly-rbs", "cnn-conv2d"}


def contract_cases(rows, compile_rows):
    """One pytest case per (row, check, device); the compile check only for ``compile_rows``;
    each factory moves its model and inputs to the device (CPU ids carry no suffix)."""
    return [pytest.param(on_device(factory, d), config, check, id=f"{name}-{check}{_device_id(d)}")
            for name, factory, config in rows for check in CHECKS for d in DEVICES
            if check != "compile" or name in compile_rows]


CASES = contract_cases(ROWS, COMPILE_ROWS)


def test_rows_cover_every_option():
    configs = [c for _, _, cfg in ROWS for c in (cfg if isinstance(cfg, list) else [cfg])]
    seen = lambda attr: {getattr(c, attr) for c in configs}
    from qiadapters.adapters.hamming import PARAMETRIZATIONS
    from qiadapters.circuits import GATES, LAYOUTS

    assert seen("parametrization") == set(PARAMETRIZATIONS)
    assert seen("side") == {"input", "output"}
    assert {c.layout for c in configs if c.parametrization == "circuit"} == set(LAYOUTS)
    assert {c.gate for c in configs if c.parametrization == "circuit"} == set(GATES)
    assert {(1,), (1, 2), (1, 2, 3)} <= seen("orders")
    assert seen("share_blocks") == {False, True}


@pytest.mark.parametrize("factory, config, check", CASES)
def test_contract(factory, config, check):
    CHECKS[check](factory, config)


@pytest.mark.parametrize("name, factory, config", [r for r in ROWS],
                         ids=[r[0] for r in ROWS])
def test_rows_declare_mergeability(name, factory, config):
    """Every row's layers are mergeable unless the row is listed as not (so the merge check
    of a listed row tests the refusal, and of any other row the exact merge)."""
    from qiadapters.testing import build, is_mergeable

    assert is_mergeable(build(factory, config)[0]) == (name not in UNMERGEABLE_ROWS)


def test_rows_cover_every_base_kind():
    from qiadapters import HammingAdapter
    from qiadapters.adapters.hamming.kinds import BASE_KINDS
    from qiadapters.testing import build

    kinds = {layer.kind.name for _, factory, config in ROWS
             for _, layer in build(factory, config)[0].adapter_layers()
             if isinstance(layer, HammingAdapter)}
    assert kinds == set(BASE_KINDS)


# ------------------------------------------------------------------ physics-prior family
# Not mergeable: its merge check asserts the refusal.  Text grids are "sequence" (an 8-token
# batch would otherwise be read as a 1D grid anyway, but a 16-token one as 4x4).
import physics  # noqa: E402  (registers PhysicsConfig)
from physics import PhysicsConfig  # noqa: E402

PHYSICS_ROWS = [
    # MoPPA's placement: before self-attention (the residual keeps the unadapted x)
    ("bert-physics-moppa-input", tiny_bert,
     PhysicsConfig(target_modules=["attention.self"], placement="input", grid="sequence",
                   modules_to_save=["classifier"])),
    ("bert-physics-parallel-global-periodic", tiny_bert,
     PhysicsConfig(target_modules=["attention.output.dense"], grid="sequence", router="global",
                   boundary="periodic", priors=("heat", "poisson"), entropy=0.1,
                   route_weight=2.0)),
    # a stack on one layer: a parallel and an input-placed adapter read the same x
    ("bert-physics-stacked-mixed", tiny_bert, [
        PhysicsConfig(target_modules=["attention.output.dense"], grid="sequence",
                      router="sample", boundary="dirichlet", rank=4),
        PhysicsConfig(target_modules=["attention.output.dense"], placement="input",
                      grid="sequence", priors=("wave", "poisson"), rank=2,
                      poisson_zero_mode="zero_mean", bias=False)]),
]

# torch.compile costs ~30 s on 2 cores: one row.
PHYSICS_COMPILE_ROWS = {"bert-physics-moppa-input"}

PHYSICS_CASES = contract_cases(PHYSICS_ROWS, PHYSICS_COMPILE_ROWS)


def test_physics_rows_cover_every_option():
    configs = [c for _, _, cfg in PHYSICS_ROWS for c in (cfg if isinstance(cfg, list) else [cfg])]
    seen = lambda attr: {getattr(c, attr) for c in configs}
    from physics.config import PLACEMENTS

    assert seen("router") == set(physics.ROUTERS)
    assert seen("boundary") == set(physics.BOUNDARIES)
    assert seen("placement") == set(PLACEMENTS)
    assert seen("poisson_zero_mode") == set(physics.ZERO_MODES)
    assert {p for c in configs for p in c.priors} == set(physics.PRIORS)


@pytest.mark.parametrize("factory, config, check", PHYSICS_CASES)
def test_physics_contract(factory, config, check):
    CHECKS[check](factory, config)


# ------------------------------------------------------------------------- mixture layer
from qiadapters import MixtureConfig  # noqa: E402

try:  # the physics family registers itself on import (top-level package beside qiadapters)
    from physics import PhysicsConfig
except ImportError:  # pragma: no cover - physics not installed
    PhysicsConfig = None


def _experts(targets, physics=False):
    out = [HammingConfig(target_modules=targets, orders=(1,), blocks=2),
           HammingConfig(target_modules=targets, parametrization="expm"),
           HammingConfig(target_modules=targets, side="input", blocks=1)]
    if physics:
        out = out[:2] + [PhysicsConfig(target_modules=targets, rank=4, grid="sequence")]
    return out


MIXTURE_ROWS = [
    # (name, factory, config, mergeable)
    ("mlp-mixture-global", tiny_mlp,
     MixtureConfig(experts=_experts(MLP), router="global", z_loss=1e-3), True),
    ("mlp-mixture-token", tiny_mlp,
     MixtureConfig(experts=_experts(MLP), router="token", temperature=0.5,
                   modules_to_save=["head"]), False),
    ("bert-mixture-global-qv", tiny_bert,
     MixtureConfig(experts=_experts(["query", "value"])[:2], router="global"), True),
]
if PhysicsConfig is not None:
    MIXTURE_ROWS += [
        ("mlp-mixture-sample-hamming-physics", tiny_mlp,
         MixtureConfig(experts=_experts(["fc2"], physics=True), router="sample"), False),
        ("bert-mixture-global-hamming-physics", tiny_bert,
         MixtureConfig(experts=_experts(["value"], physics=True), router="global",
                       modules_to_save=["classifier"]), False),
    ]

MIXTURE_CASES = [pytest.param(on_device(factory, d), config, mergeable, check,
                              id=f"{name}-{check}{_device_id(d)}")
                 for name, factory, config, mergeable in MIXTURE_ROWS
                 for check in CHECKS if check != "compile" for d in DEVICES]


@pytest.mark.parametrize("factory, config, mergeable, check", MIXTURE_CASES)
def test_mixture_contract(factory, config, mergeable, check):
    from qiadapters.testing import build, is_mergeable

    assert is_mergeable(build(factory, config)[0]) == mergeable
    CHECKS[check](factory, config)
