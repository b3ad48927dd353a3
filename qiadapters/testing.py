"""The adapter contract, as checks any adapter family must pass (PennyLane ``assert_valid`` style).

:func:`assert_valid_adapter` runs every check in :data:`CHECKS` on one
``(model_factory, config)`` pair; a test suite drives it from a table of rows, so a new
family adds rows, not tests::

    from qiadapters.testing import assert_valid_adapter, tiny_mlp
    assert_valid_adapter(tiny_mlp, HammingConfig(target_modules=["fc1", "fc2"]))

* ``model_factory(seed) -> (model, inputs)`` builds the same base model for the same seed;
  ``model(**inputs)`` returns a tensor or a Hugging Face ``ModelOutput`` (``logits`` are used).
* ``config`` is an :class:`~qiadapters.adapters.config.AdapterConfig`, or a list of them: a
  stack, injected as ``"default"``, ``"adapter1"``, ... and all activated.
* Capabilities come from the layers: a family whose layers refuse merging (``merge_blocker``) is
  checked to refuse merging instead of being checked to merge exactly.

Every family must: be the identity at init; (if mergeable) give the same output merged and
unmerged and restore the base weights on unmerge; save/load to identical outputs; train only
its own parameters (all of them); give back the base model when disabled; run with fp16 and
bf16 base weights; pickle and ``state_dict`` round-trip; and (:func:`check_compile`) compile.

The library's own test helpers (``HostSyncs``, ``HOST_SYNC_OPS``, ``exit_worker``,
``random_orthogonal``) moved to its test suite; their names here still work in 0.4, with a
``DeprecationWarning``.
"""
from __future__ import annotations

import copy
import importlib
import os
import pickle
import tempfile
import warnings
from typing import Any, Callable, Sequence

import torch
from torch import nn

from .adapters.config import AdapterConfig
from .adapters.layer import AdapterLayer
from .model import AdapterModel, get_adapter_model
from .model.injection import adapter_parameter_ids
from .model.io import CONFIG_NAME, WEIGHTS_NAME, adapter_state_dict
from .model.modules_to_save import ModulesToSave
from .tiny_models import (TinyCNN, TinyMLP, tiny_bert, tiny_cnn,  # noqa: F401 (re-exported:
                          tiny_gpt2, tiny_llama, tiny_mlp)        # the factories the checks take)

ModelFactory = Callable[[int], tuple[nn.Module, dict[str, Any]]]


# ---------------------------------------------------------------------------- devices
def available_devices() -> list[str]:
    """The devices the contract runs on here: ``"cpu"``, and ``"cuda"`` when present."""
    return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def on_device(model_factory: ModelFactory, device: str | torch.device | None) -> ModelFactory:
    """``model_factory`` with its model and tensor inputs moved to ``device`` (``None``: as
    is), so every check runs there: ``check_merge(on_device(tiny_mlp, "cuda"), config)``."""
    if device is None:
        return model_factory

    def factory(seed: int = 0):
        model, inputs = model_factory(seed)
        return model.to(device), {k: v.to(device) if torch.is_tensor(v) else v
                                  for k, v in inputs.items()}
    return factory


# ---------------------------------------------------------------------------- helpers
def logits(out) -> torch.Tensor:
    """The tensor a model returned (``.logits`` of a ``ModelOutput``)."""
    if isinstance(out, torch.Tensor):
        return out
    if hasattr(out, "logits"):
        return out.logits
    return out[0]


def adapter_names(config: AdapterConfig | Sequence[AdapterConfig]) -> list[str]:
    configs = [config] if isinstance(config, AdapterConfig) else list(config)
    return ["default"] + [f"adapter{i}" for i in range(1, len(configs))]


def build(model_factory: ModelFactory, config, seed: int = 0,
          dtype: torch.dtype | None = None) -> tuple[AdapterModel, dict[str, Any]]:
    """Base model from ``model_factory(seed)`` (cast to ``dtype``), adapters injected and all
    active; adapter initialisation is seeded so equal arguments give equal models."""
    model, inputs = model_factory(seed)
    if dtype is not None:
        model.to(dtype)
        inputs = {k: v.to(dtype) if torch.is_tensor(v) and v.is_floating_point() else v
                  for k, v in inputs.items()}
    configs = [config] if isinstance(config, AdapterConfig) else list(config)
    names = adapter_names(configs)
    torch.manual_seed(seed + 1)
    am = get_adapter_model(model, configs[0], names[0])
    for name, cfg in zip(names[1:], configs[1:]):
        am.add_adapter(name, cfg)
    am.set_adapter(names)
    return am, inputs


def adapter_parameters(am: nn.Module) -> dict[str, nn.Parameter]:
    ids = adapter_parameter_ids(am)
    return {n: p for n, p in am.named_parameters() if id(p) in ids}


def base_parameters(am: AdapterModel) -> dict[str, nn.Parameter]:
    ids = adapter_parameter_ids(am)
    return {n: p for n, p in am.named_parameters() if id(p) not in ids}


@torch.no_grad()
def perturb(model: nn.Module, scale: float = 0.2, seed: int = 1) -> nn.Module:
    """Move every adapter parameter of ``model`` (an :class:`AdapterModel`, any model holding
    adapter layers, or one adapter layer) off its initial value: a reproducible random step.
    Returns ``model``."""
    g = torch.Generator().manual_seed(seed)
    for p in adapter_parameters(model).values():
        p.add_(scale * torch.randn(p.shape, generator=g).to(p))
    return model


def _layers(am: AdapterModel) -> list[AdapterLayer]:
    return [layer for _, layer in am.adapter_layers()]


def is_mergeable(am: AdapterModel) -> bool:
    return all(layer.mergeable for layer in _layers(am))


def _close(actual, expected, atol, what):
    torch.testing.assert_close(actual, expected, atol=atol, rtol=atol, msg=lambda m: f"{what}: {m}")


def _relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double(), b.double()
    return float((a - b).norm() / b.norm().clamp_min(1e-12))


# ---------------------------------------------------------------------------- checks
@torch.no_grad()
def check_identity_at_init(model_factory: ModelFactory, config, atol: float = 1e-5) -> None:
    """A freshly injected adapter leaves the model's output unchanged."""
    base, inputs = model_factory(0)
    expected = logits(base(**inputs))
    am, inputs = build(model_factory, config)
    assert _layers(am), "no adapter layer was injected"
    _close(logits(am(**inputs)), expected, atol, "output at init differs from the base model")


@torch.no_grad()
def check_merge(model_factory: ModelFactory, config, atol: float = 1e-5,
                weight_atol: float = 1e-6) -> None:
    """merged == unmerged; a second merge warns; unmerge restores the base weights;
    ``merge_and_unload`` leaves a plain model with the same output.  Non-mergeable families
    must refuse (TypeError) without modifying anything."""
    am, inputs = build(model_factory, config)
    perturb(am)
    expected = logits(am(**inputs))
    before = {n: p.detach().clone() for n, p in base_parameters(am).items()}
    if not is_mergeable(am):
        for call in (am.merge_adapter, am.merge_and_unload):
            try:
                call()
            except TypeError:
                pass
            else:
                raise AssertionError(f"{call.__name__} did not refuse a non-mergeable adapter")
        _close(logits(am(**inputs)), expected, 0.0, "refused merge changed the output")
        return
    am.merge_adapter()
    assert all(layer.merged for layer in _layers(am) if not isinstance(layer, ModulesToSave))
    _close(logits(am(**inputs)), expected, atol, "merged output differs from unmerged")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        am.merge_adapter()
    assert caught, "a second merge must warn (and do nothing)"
    _close(logits(am(**inputs)), expected, atol, "second merge changed the output")
    am.unmerge_adapter()
    for name, p in base_parameters(am).items():
        _close(p, before[name], weight_atol, f"unmerge did not restore {name}")
    _close(logits(am(**inputs)), expected, atol, "unmerged output changed")
    plain = am.merge_and_unload()
    leftover = [n for n, m in plain.named_modules() if isinstance(m, AdapterLayer)]
    assert not leftover, f"merge_and_unload left adapter modules: {leftover}"
    _close(logits(plain(**inputs)), expected, atol, "merge_and_unload changed the output")


@torch.no_grad()
def check_save_load(model_factory: ModelFactory, config, atol: float = 1e-6) -> None:
    """save_pretrained writes only the adapter's two files and tensors; from_pretrained on a
    fresh base (adapters initialised under another seed) gives identical outputs."""
    configs = [config] if isinstance(config, AdapterConfig) else list(config)
    names = adapter_names(configs)
    for cfg in configs:
        again = type(cfg).from_dict(cfg.to_dict())
        assert again == cfg, f"config JSON round trip changed {cfg} into {again}"
    am, inputs = build(model_factory, config)
    perturb(am)
    expected = logits(am(**inputs))
    with tempfile.TemporaryDirectory() as d:
        am.save_pretrained(d)
        files = {f for f in os.listdir(d) if os.path.isfile(os.path.join(d, f))}
        assert files == {CONFIG_NAME, WEIGHTS_NAME}, f"save_pretrained wrote {sorted(files)}"
        from safetensors.torch import load_file

        saved = load_file(os.path.join(d, WEIGHTS_NAME))
        own = adapter_state_dict(am.base_model, names[0])
        assert set(saved) == set(own), f"saved keys {sorted(set(saved) ^ set(own))[:5]} differ"
        n_adapter = sum(v.numel() for v in saved.values())
        n_base = sum(p.numel() for p in base_parameters(am).values())
        assert n_adapter < n_base, "the checkpoint is larger than the base model"
        fresh, _ = model_factory(0)
        torch.manual_seed(12345)  # another seed: loading must overwrite every initial value
        loaded = AdapterModel.from_pretrained(fresh, d, adapter_name=names[0])
        for name in names[1:]:
            loaded.load_adapter(os.path.join(d, name), name)
        loaded.set_adapter(names)
        _close(logits(loaded(**inputs)), expected, atol, "reloaded adapter output differs")
        assert not any(p.requires_grad for p in loaded.parameters()), \
            "from_pretrained(is_trainable=False) must freeze the adapter"


def check_training(model_factory: ModelFactory, config, steps: int = 3, lr: float = 1e-2) -> None:
    """Exactly the adapter (and modules_to_save) parameters are trainable; a few Adam steps on
    a real loss change every one of them and nothing else."""
    am, inputs = build(model_factory, config)
    own = adapter_parameters(am)
    trainable = {n for n, p in am.named_parameters() if p.requires_grad}
    assert trainable == set(own), (f"trainable parameters differ from the adapters': "
                                   f"{sorted(trainable ^ set(own))[:5]}")
    count, _ = am.get_nb_trainable_parameters()
    assert count == sum(p.numel() for p in own.values())
    before = {n: p.detach().clone() for n, p in am.named_parameters()}
    am.train()
    with torch.no_grad():
        out = logits(am(**inputs))
        target = torch.randn(out.shape, generator=torch.Generator().manual_seed(3)).to(out)
    opt = torch.optim.Adam(own.values(), lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        loss = (logits(am(**inputs)) - target).pow(2).mean() + am.aux_loss()
        loss.backward()
        opt.step()
    for name, p in am.named_parameters():
        if name in own:
            moved = (p.detach() != before[name])
            assert moved.all(), (f"{name}: {int((~moved).sum())} of {p.numel()} entries did not "
                                 f"change in training (no gradient reaches them)")
        else:
            assert torch.equal(p.detach(), before[name]), f"frozen parameter {name} changed"
            assert p.grad is None, f"frozen parameter {name} received a gradient"


@torch.no_grad()
def check_disable(model_factory: ModelFactory, config, atol: float = 1e-6) -> None:
    """``disable_adapter()`` gives the base model's output, also when merged; the adapted
    output comes back afterwards."""
    base, inputs = model_factory(0)
    expected = logits(base(**inputs))
    am, inputs = build(model_factory, config)
    perturb(am)
    adapted = logits(am(**inputs))
    assert _relative_error(adapted, expected) > 1e-3, "perturbed adapter has no effect"
    with am.disable_adapter():
        _close(logits(am(**inputs)), expected, atol, "disabled output differs from the base")
    _close(logits(am(**inputs)), adapted, atol, "output after disable_adapter() changed")
    if is_mergeable(am):
        am.merge_adapter()
        with am.disable_adapter():
            _close(logits(am(**inputs)), expected, 1e-5, "disabled merged output differs")
        _close(logits(am(**inputs)), adapted, 1e-5, "output after disabling a merged model")


@torch.no_grad()
def check_low_precision(model_factory: ModelFactory, config,
                        dtypes: Sequence[torch.dtype] = (torch.float16, torch.bfloat16)) -> None:
    """fp16 / bf16 base weights: adapter parameters stay fp32, outputs are finite, in the base
    dtype and close to the fp32 model's; merging works too."""
    ref_am, inputs32 = build(model_factory, config)
    perturb(ref_am)
    reference = logits(ref_am(**inputs32))
    for dtype in dtypes:
        tol = 0.03 if dtype == torch.float16 else 0.1
        am, inputs = build(model_factory, config, dtype=dtype)
        for name, p in adapter_parameters(am).items():
            if ".modules_to_save." not in name:
                assert p.dtype == torch.float32, f"{name} is {p.dtype}; adapter math is fp32"
        perturb(am)
        y = logits(am(**inputs))
        assert y.dtype == dtype, f"output dtype {y.dtype}, base dtype {dtype}"
        assert torch.isfinite(y).all(), f"non-finite output with {dtype} base weights"
        err = _relative_error(y, reference)
        assert err < tol, f"{dtype} output is {err:.3g} (relative) away from fp32's (> {tol})"
        if is_mergeable(am):
            am.merge_adapter()
            merged = logits(am(**inputs))
            assert torch.isfinite(merged).all(), f"non-finite merged output with {dtype}"
            err = _relative_error(merged, reference)
            assert err < tol, f"{dtype} merged output is {err:.3g} away from fp32's (> {tol})"


@torch.no_grad()
def check_pickle(model_factory: ModelFactory, config) -> None:
    """Pickling, deep copies and a ``state_dict`` round trip reproduce the outputs."""
    am, inputs = build(model_factory, config)
    perturb(am)
    expected = logits(am(**inputs))
    clone = pickle.loads(pickle.dumps(am))
    _close(logits(clone(**inputs)), expected, 0.0, "unpickled model differs")
    _close(logits(copy.deepcopy(am)(**inputs)), expected, 0.0, "deep copy differs")
    other, _ = build(model_factory, config, seed=7)
    other.load_state_dict(am.state_dict())
    _close(logits(other(**inputs)), expected, 0.0, "state_dict round trip differs")


@torch.no_grad()
def check_compile(model_factory: ModelFactory, config, atol: float = 1e-5) -> None:
    """``torch.compile(model)`` gives the eager output."""
    am, inputs = build(model_factory, config)
    perturb(am)
    expected = logits(am(**inputs))
    compiled = torch.compile(am)
    _close(logits(compiled(**inputs)), expected, atol, "compiled output differs from eager")


#: Every check by name; :func:`assert_valid_adapter` runs them all (compile on request).
CHECKS: dict[str, Callable[..., None]] = {
    "identity": check_identity_at_init,
    "merge": check_merge,
    "save_load": check_save_load,
    "training": check_training,
    "disable": check_disable,
    "low_precision": check_low_precision,
    "pickle": check_pickle,
    "compile": check_compile,
}


def assert_valid_adapter(model_factory: ModelFactory, config, *,
                         checks: Sequence[str] | None = None,
                         mergeable: bool | None = None,
                         device: str | torch.device | None = None) -> None:
    """Run the contract checks (default: all but ``"compile"``) on ``config`` applied to
    ``model_factory``'s model, on ``device`` if given (:func:`on_device`; e.g. each of
    :func:`available_devices`).  ``mergeable``, if given, must match the layers' capability."""
    model_factory = on_device(model_factory, device)
    names = [c for c in CHECKS if c != "compile"] if checks is None else list(checks)
    unknown = [c for c in names if c not in CHECKS]
    if unknown:
        raise ValueError(f"checks={unknown} are not valid; choose from {list(CHECKS)}")
    if mergeable is not None:
        am, _ = build(model_factory, config)
        assert is_mergeable(am) == mergeable, (f"layers say mergeable={is_mergeable(am)}, "
                                               f"expected {mergeable}")
    for name in names:
        CHECKS[name](model_factory, config)


#: Names that moved to the library's test suite: served for one version, with a warning.
_MOVED = ("HostSyncs", "HOST_SYNC_OPS", "exit_worker", "random_orthogonal")


def __getattr__(name: str):
    if name not in _MOVED:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    warnings.warn(f"qiadapters.testing.{name} is deprecated and goes in qiadapters 0.5: it is a "
                  f"helper of the library's own tests (tests/testing_utils.py in the source "
                  f"tree); copy it into your tests", DeprecationWarning, stacklevel=2)
    return getattr(importlib.import_module("qiadapters._testing_deprecated"), name)
