"""A plain bottleneck adapter as a benchmark family: ``delta(x) = up(gelu(down(x)))``.

The baseline a physics-prior adapter is compared with at the same rank and placement: the
same down- and up-projections (``up`` zero-initialised, so the model starts unchanged) with a
GELU between them instead of the heat / wave / Poisson operator on the token grid.  The
module is :class:`benchmarks.physics.Bottleneck` (the speed benchmark's baseline); here it is
attached to a model with forward hooks:

* ``placement="input"``: before each target module, ``f(x + delta(x), ...)`` (a ViT's
  ``attention``, MoPPA's placement);
* ``placement="parallel"``: beside each target ``nn.Linear`` with equal input and output
  widths, ``f(x) + delta(x)``.

Targets match like peft's: a module whose name is, or ends with ``.`` +, a target.
"""
from __future__ import annotations

from torch import nn

from .run import Bottleneck

PLACEMENTS = ("input", "parallel")
#: The attribute under which each adapter is registered on its target module.
ATTRIBUTE = "bottleneck_adapter"


def _width(module: nn.Module, placement: str) -> int:
    """The hidden width a bottleneck on ``module`` reads: a Linear's (square) width, or for
    ``input`` the first Linear inside the module."""
    linears = [module] if isinstance(module, nn.Linear) else \
        [m for m in module.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise TypeError(f"a bottleneck adapter needs an nn.Linear target or one inside the "
                        f"target; {type(module).__name__} has none")
    first = linears[0]
    if placement == "parallel" and (not isinstance(module, nn.Linear)
                                    or first.in_features != first.out_features):
        raise TypeError(f"placement='parallel' needs a square nn.Linear target, got "
                        f"{type(module).__name__}; use placement='input'")
    return first.in_features


def _input_hook(module, args, kwargs):
    x = args[0]
    return (x + getattr(module, ATTRIBUTE)(x), *args[1:]), kwargs


def _parallel_hook(module, args, output):
    return output + getattr(module, ATTRIBUTE)(args[0])


def add_bottlenecks(model: nn.Module, target_modules, rank: int, placement: str) -> list[str]:
    """Attach a zero-initialised :class:`Bottleneck` of ``rank`` to every target of ``model``
    (in place); returns the adapted module names.  Freezing is the caller's business."""
    if placement not in PLACEMENTS:
        raise ValueError(f"placement={placement!r}; valid: {list(PLACEMENTS)}")
    names = [name for name, _ in model.named_modules()
             if any(name == t or name.endswith("." + t) for t in target_modules)]
    if not names:
        raise ValueError(f"no module of {type(model).__name__} matches target_modules="
                         f"{list(target_modules)}")
    for name in names:
        module = model.get_submodule(name)
        adapter = Bottleneck(_width(module, placement), rank)
        nn.init.zeros_(adapter.up.weight)
        nn.init.zeros_(adapter.up.bias)
        setattr(module, ATTRIBUTE, adapter)
        if placement == "input":
            module.register_forward_pre_hook(_input_hook, with_kwargs=True)
        else:
            module.register_forward_hook(_parallel_hook)
    return names
