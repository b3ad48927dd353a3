"""Contenders of the speed benchmark: how each method is attached to a model.

One registry, :data:`METHODS`, maps a name to a function ``(model) -> (model, info)`` that
freezes the base, attaches the method on ``query``/``value`` and leaves the classification
head trainable.  ``info`` records the configuration that actually ran (peft's BOFT silently
changes its butterfly factor without its CUDA extension, so the effective one is read back
from the built layers).

:class:`DenseCompoundLinear` is the paper's construction, written here on purpose the slow,
literal way: every step it rebuilds the dense ``d x d`` matrix ``D`` from all ``k x k`` minors
(``itertools.combinations`` index lists, batched ``torch.linalg.det``) of a Cayley ``Q`` and
applies ``y @ D`` to the layer's output.
"""
from __future__ import annotations

import itertools
import warnings
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

import qiadapters as qa
from qiadapters.adapters.hamming import plan_blocks

TARGETS = ["query", "value"]
HEAD = ["classifier"]


class DenseCompoundLinear(nn.Module):
    r"""``y = (x W_0^T) D + b`` with ``D`` rebuilt densely from minors on every forward.

    ``D = ⊕_i [⊕_k C_k(Q_i) ⊕ I_pad] ⊕ I_tail`` with ``Q_i = (I - S_i)(I + S_i)^{-1}`` and
    ``C_k(Q)[I, J] = det Q[I, J]`` over the k-subsets from ``itertools.combinations`` --
    the same block layout as :class:`qiadapters.HammingAdapter` (so both have the same
    parameters and the same function), but built and applied the paper's way.
    """

    def __init__(self, linear: nn.Linear, orders=(1, 2), blocks: int = 3):
        super().__init__()
        self.base_layer = linear.requires_grad_(False)
        self.layout = plan_blocks(linear.out_features, orders, blocks=blocks)
        n = self.layout.n
        self.weight = nn.Parameter(torch.zeros(self.layout.blocks, n * (n - 1) // 2))
        self.register_buffer("triu", torch.triu_indices(n, n, 1), persistent=False)
        for k in self.layout.orders:
            subsets = torch.tensor(list(itertools.combinations(range(n), k)), dtype=torch.long)
            self.register_buffer(f"subsets_{k}", subsets, persistent=False)

    def cayley(self) -> torch.Tensor:
        r, n = self.layout.blocks, self.layout.n
        upper = self.weight.new_zeros(r, n, n)
        upper[:, self.triu[0], self.triu[1]] = self.weight
        S = upper - upper.transpose(-1, -2)
        eye = torch.eye(n, dtype=S.dtype)
        return torch.linalg.solve(eye + S, eye - S)

    def dense(self) -> torch.Tensor:
        Q = self.cayley()
        lay = self.layout
        minors = {}
        for k in lay.orders:
            sub = getattr(self, f"subsets_{k}")
            minors[k] = torch.linalg.det(Q[:, sub[:, None, :, None], sub[None, :, None, :]])
        parts = []
        eye_pad = torch.eye(lay.pad, dtype=Q.dtype)
        for i in range(lay.blocks):
            parts += [minors[k][i] for k in lay.orders] + [eye_pad]
        parts.append(torch.eye(lay.tail, dtype=Q.dtype))
        return torch.block_diag(*parts)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        base = self.base_layer
        y = F.linear(x, base.weight) @ self.dense().to(x.dtype)
        return y if base.bias is None else y + base.bias


def _replace(model: nn.Module, suffixes, make: Callable[[nn.Linear], nn.Module]) -> int:
    names = [n for n, m in model.named_modules()
             if isinstance(m, nn.Linear) and n.split(".")[-1] in suffixes]
    for name in names:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name)
        setattr(parent, child, make(getattr(parent, child)))
    return len(names)


def _freeze_but_head(model: nn.Module) -> None:
    for name, p in model.named_parameters():
        p.requires_grad_(any(h in name.split(".") for h in HEAD))


def hamming(orders, blocks, side="output"):
    def attach(model):
        cfg = qa.HammingConfig(target_modules=TARGETS, orders=orders, blocks=blocks,
                               side=side, modules_to_save=HEAD)
        am = qa.get_adapter_model(model, cfg)
        n = next(l for _, l in am.adapter_layers()
                 if isinstance(l, qa.HammingAdapter)).hamming["default"].block_layout.n
        where = "" if side == "output" else f", side={side!r}"
        return am, f"HammingConfig(orders={tuple(orders)}, blocks={blocks}{where}) -> n={n}"
    return attach


def lora(r=8):
    def attach(model):
        from peft import LoraConfig, get_peft_model
        cfg = LoraConfig(r=r, lora_alpha=2 * r, lora_dropout=0.0, target_modules=TARGETS,
                         modules_to_save=HEAD)
        return get_peft_model(model, cfg), f"LoraConfig(r={r}, lora_alpha={2 * r}, dropout=0)"
    return attach


def oft(block_size=32):
    def attach(model):
        from peft import OFTConfig, get_peft_model
        cfg = OFTConfig(r=0, oft_block_size=block_size, target_modules=TARGETS,
                        modules_to_save=HEAD)
        pm = get_peft_model(model, cfg)
        layer = next(m for m in pm.modules() if hasattr(m, "oft_R"))
        d = layer.in_features
        return pm, (f"OFTConfig(oft_block_size={block_size}, r=0 -> {d // block_size} "
                    f"blocks, use_cayley_neumann={cfg.use_cayley_neumann})")
    return attach


def boft(block_size=4, butterfly=2):
    def attach(model):
        from peft import BOFTConfig, get_peft_model
        cfg = BOFTConfig(boft_block_size=block_size, boft_n_butterfly_factor=butterfly,
                         target_modules=TARGETS, modules_to_save=HEAD)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            pm = get_peft_model(model, cfg)
        layer = next(m for m in pm.modules() if hasattr(m, "boft_R"))
        R = layer.boft_R["default"]
        info = (f"BOFTConfig(boft_block_size={block_size}, boft_n_butterfly_factor={butterfly}) "
                f"requested; ran boft_R {tuple(R.shape)} = {R.shape[0]} butterfly factor(s), "
                f"fbd_cuda_available={layer.fbd_cuda_available}")
        if any("CUDA extension" in str(w.message) for w in caught):
            info += " (CUDA extension failed to load: peft fell back to factor 1)"
        return pm, info
    return attach


def hra(r=8):
    def attach(model):
        from peft import HRAConfig, get_peft_model
        cfg = HRAConfig(r=r, target_modules=TARGETS, modules_to_save=HEAD)
        return get_peft_model(model, cfg), f"HRAConfig(r={r})"
    return attach


def head_only():
    def attach(model):
        _freeze_but_head(model)
        return model, "base frozen, classifier trainable"
    return attach


def paper_dense(orders=(1, 2), blocks=3):
    def attach(model):
        _freeze_but_head(model)
        count = _replace(model, TARGETS, lambda lin: DenseCompoundLinear(lin, orders, blocks))
        return model, (f"dense D from minors (itertools + linalg.det), orders={tuple(orders)}, "
                       f"blocks={blocks}, {count} layers")
    return attach


#: name -> attach function; the first entries are the ones the PASS/FAIL lines compare.
METHODS: dict[str, Callable] = {
    "hamming_o12_b3": hamming((1, 2), 3),
    "lora_r8": lora(8),
    "head_only": head_only(),
    "paper_dense_o12_b3": paper_dense((1, 2), 3),
    "hamming_o12_b8": hamming((1, 2), 8),
    "hamming_o123_b3": hamming((1, 2, 3), 3),
    "hamming_o12_b3_input": hamming((1, 2), 3, side="input"),
    "oft_b32": oft(32),
    "boft_b4_f2": boft(4, 2),
    "hra_r8": hra(8),
}

#: A smaller set for ``--quick``.
QUICK_METHODS = ["hamming_o12_b3", "lora_r8", "head_only", "paper_dense_o12_b3"]


def trainable_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def minilm_batch(batch: int = 32, seq: int = 64, num_labels: int = 26, seed: int = 0):
    """Random token ids (speed does not depend on the text), full attention mask, labels."""
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(1000, 30000, (batch, seq), generator=gen)
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids),
            "labels": torch.randint(0, num_labels, (batch,), generator=gen)}


def train_step_fn(model: nn.Module, batch: dict, lr: float = 1e-4) -> Callable[[], None]:
    """One call = forward, backward, AdamW step, zero_grad (set_to_none)."""
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    model.train()

    def step():
        loss = model(**batch).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    return step
