"""The method table of the trade-off benchmark (:mod:`benchmarks.tradeoff`).

Each row is a :class:`Method`: a name, a family, a label, a builder that turns the freshly
loaded MiniLM into the model to train (and records the configuration that actually ran), and
its learning-rate grid.  Add a method by adding a row to :data:`METHODS`.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Callable, Optional

from torch import nn

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS = REPO_ROOT / "benchmarks" / "results"
TARGETS = ["query", "value"]
HEAD = "classifier"

#: The adapter grid: spans 5e-4 .. 1e-2 as the issue asks, plus 2e-2: at 100 steps every
#: method's best validation accuracy sat at 1e-2, the old edge, so the grid is extended past it
#: until the optimum is bracketed (a sweep whose best value is its last says nothing).
ADAPTER_LRS = (5e-4, 2e-3, 5e-3, 1e-2, 2e-2)
#: LoRA r=8 is the paper's reference: its grid gets the two geometric midpoints around its
#: optimum (1e-2; 2e-2 diverges) as well, so the claim is checked against the strongest
#: LoRA r=8 the protocol can find. Only this row gets them, which can only favour LoRA.
LORA_R8_LRS = (5e-4, 2e-3, 5e-3, 7.1e-3, 1e-2, 1.41e-2, 2e-2)
#: Full fine-tuning diverges at adapter learning rates; its grid is two decades lower.
FULL_LRS = (5e-5, 1e-4, 3e-4, 1e-3)
#: The head alone is a linear probe of frozen features: the adapter grid shifted up (its best
#: was 3e-2, the old edge, so 1e-1 brackets it).
HEAD_LRS = (2e-3, 5e-3, 1e-2, 3e-2, 1e-1)

# A builder takes the freshly loaded model and returns
# (model to train, aux_loss_fn or None, record of the configuration that actually ran).
Builder = Callable[[nn.Module], tuple]


@dataclass(frozen=True)
class Method:
    """One row of the trade-off table."""
    name: str
    family: str                      # "full", "head", "peft", "qiadapters", "physics", "mixture"
    label: str                       # what the table and plot call it
    build: Builder = field(repr=False)
    lrs: tuple = ADAPTER_LRS
    #: For a mixture: the rows that train its experts alone (the comparison of issue 6).
    experts: tuple = ()


# ---------------------------------------------------------------------------------- builders

def head_parameters(model: nn.Module) -> int:
    """Trainable parameters of the classification head (its trainable copy under an adapter)."""
    return sum(p.numel() for name, p in model.named_parameters()
               if p.requires_grad and f".{HEAD}." in f".{name}")


def _build_full(model):
    for p in model.parameters():
        p.requires_grad_(True)
    return model, None, {"trainable": "all parameters (encoder, pooler, head)"}


def _build_head(model):
    for name, p in model.named_parameters():
        p.requires_grad_(f".{HEAD}." in f".{name}")
    return model, None, {"trainable": HEAD}


def _peft_record(config) -> dict:
    keep = {}
    for key, value in config.to_dict().items():
        if isinstance(value, set):
            value = sorted(value)
        if key in {"peft_type", "r", "lora_alpha", "lora_dropout", "target_modules",
                   "oft_block_size", "use_cayley_neumann", "coft", "block_share",
                   "boft_block_size", "boft_block_num", "boft_n_butterfly_factor",
                   "boft_dropout", "module_dropout", "modules_to_save"}:
            keep[key] = str(value) if key == "peft_type" else value
    return keep


def _lora(r: int) -> Builder:
    def build(model):
        from peft import LoraConfig, get_peft_model
        # lora_alpha = r: scale 1 for every rank, so the lr sweep compares ranks, not scales.
        config = LoraConfig(r=r, lora_alpha=r, lora_dropout=0.0, target_modules=TARGETS,
                            modules_to_save=[HEAD])
        return get_peft_model(model, config), None, _peft_record(config)
    return build


def _build_oft(model):
    from peft import OFTConfig, get_peft_model
    config = OFTConfig(oft_block_size=32, target_modules=TARGETS, modules_to_save=[HEAD])
    return get_peft_model(model, config), None, _peft_record(config)


def _build_boft(model):
    """BOFT asks for 2 butterfly factors of 8x8 blocks. Without peft's fbd CUDA extension
    (any CPU machine) peft silently runs 1 factor, i.e. block-diagonal OFT with 8x8 blocks;
    the record says what the layers actually hold."""
    import warnings

    from peft import BOFTConfig, get_peft_model
    config = BOFTConfig(boft_block_size=8, boft_n_butterfly_factor=2, boft_dropout=0.0,
                        target_modules=TARGETS, modules_to_save=[HEAD])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = get_peft_model(model, config)
    record = _peft_record(config)
    shapes = {tuple(p.shape) for name, p in model.named_parameters() if "boft_R" in name}
    # boft_R: (n_butterfly_factor, block_num, block_size, block_size)
    record["ran_boft_R_shapes"] = sorted(list(s) for s in shapes)
    record["ran_n_butterfly_factor"] = sorted({s[0] for s in shapes})
    layer = next(m for m in model.modules() if hasattr(m, "fbd_cuda_available"))
    record["fbd_cuda_available"] = bool(layer.fbd_cuda_available)
    record["peft_warnings"] = sorted({str(w.message)[:160] for w in caught
                                      if "butterfly" in str(w.message).lower()
                                      or "cuda" in str(w.message).lower()})
    return model, None, record


def _hamming_config(orders, blocks, parametrization="cayley", targets=TARGETS,
                    side="output"):
    import qiadapters
    return qiadapters.HammingConfig(target_modules=targets, orders=orders, blocks=blocks,
                                    parametrization=parametrization, side=side)


def _hamming(*args, **kwargs) -> Builder:
    """A Hamming row; arguments as :func:`_hamming_config`."""
    def build(model):
        config = _hamming_config(*args, **kwargs)
        adapted, aux_loss, _ = _adapted(model, config)
        record = {k: v for k, v in config.to_dict().items()
                  if k in {"orders", "blocks", "parametrization", "side", "layout", "gate",
                           "target_modules", "n_qubits"}}
        layer = next((m for m in adapted.modules()
                      if type(m).__name__ == "HammingAdapter"), None)
        if layer is not None and hasattr(layer, "n_qubits"):
            record["ran_n_qubits"] = int(layer.n_qubits)
        return adapted, aux_loss, record
    return build


def _physics(targets, placement, rank, boundary="neumann"):
    import physics
    return physics.PhysicsConfig(target_modules=targets, placement=placement, rank=rank,
                                 grid="sequence", boundary=boundary)


def _adapted(model, config):
    import qiadapters
    config.modules_to_save = [HEAD]
    adapted = qiadapters.get_adapter_model(model, config)
    return adapted, adapted.aux_loss, _config_record(config)


def _build_physics(model):
    # MoPPA's placement: before self-attention, on the 1D token grid of the sequence.
    return _adapted(model, _physics(["attention"], "input", 8))


def _physics_qv(rank: int, boundary: str = "neumann"):
    """Beside query / value (placement "parallel"): the same sites as the Hamming rows, so a
    mixture can hold both families on one module."""
    return _physics(TARGETS, "parallel", rank, boundary)


def _mixture(*experts: Callable) -> Builder:
    """A global-router mixture (one learned logit per expert and layer: adds 2 parameters a
    layer, so a mixture's count is the sum of its experts'); ``experts`` build configs."""
    def build(model):
        import qiadapters
        config = qiadapters.MixtureConfig(target_modules=TARGETS, router="global",
                                          experts=[make() for make in experts])
        return _adapted(model, config)
    return build


def _config_record(config) -> dict:
    return json.loads(json.dumps(config.to_dict(), default=str))


def _methods(*rows: Method) -> dict[str, Method]:
    return {m.name: m for m in rows}


#: Every row, in the order the full run trains them (the issue's priority order).
METHODS: dict[str, Method] = _methods(
    Method("lora-r8", "peft", "peft LoRA r=8", _lora(8), LORA_R8_LRS),
    Method("lora-r1", "peft", "peft LoRA r=1", _lora(1)),
    Method("head", "head", "head only", _build_head, HEAD_LRS),
    Method("hamming-12-b3", "qiadapters", "Hamming {1,2}, 3 blocks", _hamming((1, 2), 3)),
    Method("hamming-12-b8", "qiadapters", "Hamming {1,2}, 8 blocks", _hamming((1, 2), 8)),
    Method("hamming-1-b8", "qiadapters", "Hamming {1}, 8 blocks", _hamming((1,), 8)),
    Method("hamming-123-b8", "qiadapters", "Hamming {1,2,3}, 8 blocks",
           _hamming((1, 2, 3), 8)),
    Method("oft", "peft", "peft OFT (block 32)", _build_oft),
    Method("boft", "peft", "peft BOFT (8x8 blocks; see config)", _build_boft),
    Method("hamming-123-b3", "qiadapters", "Hamming {1,2,3}, 3 blocks",
           _hamming((1, 2, 3), 3)),
    Method("hamming-1-b3", "qiadapters", "Hamming {1}, 3 blocks", _hamming((1,), 3)),
    Method("lora-r4", "peft", "peft LoRA r=4", _lora(4)),
    Method("lora-r2", "peft", "peft LoRA r=2", _lora(2)),
    Method("full", "full", "full fine-tuning", _build_full, FULL_LRS),
    Method("hamming-12-b3-expm", "qiadapters", "Hamming {1,2}, 3 blocks, expm",
           _hamming((1, 2), 3, "expm")),
    Method("hamming-12-b3-circuit", "qiadapters", "Hamming {1,2}, 3 blocks, circuit",
           _hamming((1, 2), 3, "circuit")),
    # Placement and side: {1,2} b8 on value alone is the only {1,2} setting under the claim's
    # 40x bound (1,728 parameters); input side rotates x instead of W x.
    Method("hamming-12-b8-value", "qiadapters", "Hamming {1,2}, 8 blocks, value only",
           _hamming((1, 2), 8, targets=["value"])),
    Method("hamming-12-b3-input-side", "qiadapters", "Hamming {1,2}, 3 blocks, input side",
           _hamming((1, 2), 3, side="input")),
    Method("physics", "physics", "physics priors (MoPPA, rank 8)", _build_physics),
    # issue 6: mixtures of one family, of the other, and of both; each next to single experts
    # of the same family at the same sites with about the same parameter count.
    Method("physics-qv-r8", "physics", "physics rank 8 on query/value",
           lambda model: _adapted(model, _physics_qv(8))),
    Method("physics-qv-r4", "physics", "physics rank 4 on query/value",
           lambda model: _adapted(model, _physics_qv(4))),
    Method("mixture-quantum", "mixture", "mixture: Hamming {1,2} b3 + {1,2} b8",
           _mixture(partial(_hamming_config, (1, 2), 3), partial(_hamming_config, (1, 2), 8)),
           experts=("hamming-12-b3", "hamming-12-b8")),
    Method("mixture-physics", "mixture", "mixture: physics r4 neumann + r4 periodic",
           _mixture(partial(_physics_qv, 4), partial(_physics_qv, 4, "periodic")),
           experts=("physics-qv-r4",)),
    Method("mixture-both", "mixture", "mixture: Hamming {1,2} b3 + physics r4",
           _mixture(partial(_hamming_config, (1, 2), 3), partial(_physics_qv, 4)),
           experts=("hamming-12-b3", "physics-qv-r4")),
)

#: ``--quick``: a smoke check of every code path that matters, well under 10 minutes.
QUICK = {"methods": ("head", "lora-r8", "hamming-12-b3"), "lrs": (2e-3, 1e-2),
         "seeds": (0, 1), "steps": 15, "eval_examples": 256}


def family_available(method: Method) -> Optional[str]:
    """None when the method can be built here, else why not (physics / mixture in progress)."""
    try:
        if method.family == "physics":
            import physics
            if not hasattr(physics, "PhysicsConfig"):
                return "physics.PhysicsConfig does not exist yet"
        elif method.family == "mixture":
            import qiadapters
            if not hasattr(qiadapters, "MixtureConfig"):
                return "qiadapters.MixtureConfig does not exist yet"
    except Exception as err:  # an import error in a half-finished family
        return f"{type(err).__name__}: {err}"
    return None
