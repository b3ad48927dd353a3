"""The saved adapter format: one directory per adapter with two files.

``adapter_config.json``
    the config's :meth:`~qiadapters.adapters.config.AdapterConfig.to_dict` plus
    ``"format_version"`` (the layout of these two files, :data:`FORMAT_VERSION`),
    ``"qiadapters_version"`` (the library that wrote them, for information) and ``"layers"``:
    the shape of every adapted layer, keyed by module path (:func:`layer_shape`: ``in`` /
    ``out`` features, a convolution's channels and ``kernel``), e.g.
    ``{"bert.encoder.layer.0.attention.self.query": {"in": 32, "out": 32}}``; loading
    checks it against the model before anything is built (:func:`check_layers`).
``adapter_model.safetensors``
    every tensor in the adapter's modules (``adapter_layer_names`` ModuleDicts and
    ``modules_to_save`` copies), keyed ``<module path>.<attr>.<param>`` without the adapter
    name, e.g. ``bert.encoder.layer.0.attention.self.query.hamming.weight`` or
    ``classifier.modules_to_save.weight``; a mixture's experts are layers of their own, so
    their keys read ``<module path>.experts.<i>.<attr>.expert.<param>``.  No base weights;
    index tables are non-persistent buffers and are not saved.

Format versions (a file of any listed version loads; a newer one is refused by name):

===  ==================  ==================================================================
 1   qiadapters 0.1.x    no ``format_version`` key; mixture expert keys without ``expert.``
 2   qiadapters 0.2.0    ``format_version`` recorded; mixture experts are submodule layers
 3   qiadapters 0.2.1    a physics adapter with a single prior holds no router (its weight
                         is 1 and no gradient reached the router's tensors); older files'
                         router tensors of such adapters are dropped on load
 4   qiadapters 0.3.0    a Hamming config with neither ``blocks`` nor ``block_size`` (saved
                         as ``null``) means ``max(3, d // 128)`` blocks on a ``d``-wide layer
                         (:func:`~qiadapters.adapters.hamming.default_blocks`); in older
                         files it meant 3 blocks on every layer, so such configs (a
                         mixture's experts included) load with ``blocks=3``
 5   0.4.0 (pre-release) ``"layers"``: each adapted layer's shape, checked on load (an
                         adapter whose tensors fit another model, e.g. Hamming blocks of
                         the same layout on another width, is refused), and each Hamming
                         layer's resolved layout (blocks, n, block size, orders, side,
                         parametrization; a mixture's per expert), which loading builds
                         the layer with; formats 1-4 have no record and load unchecked
                         with the layout the config meant then, as before
 6   qiadapters 0.4.0    a Hamming config records ``"default_layout"``, the rule for layers
                         with neither ``blocks`` nor ``block_size``: ``"compact"`` (the
                         default from 0.4.0: blocks of about 32) or ``"paper"``
                         (``max(3, d // 128)``); configs in formats 4-5 load with
                         ``"paper"``, the rule they were saved under
===  ==================  ==================================================================

Writing is atomic per file (a temporary file in the same directory, then ``os.replace``),
tensors first and the config last, so an interrupted save leaves the previous adapter in
the directory loadable; see :func:`save_adapter`.
"""
from __future__ import annotations

import json
import os
import re
import secrets
import stat
from typing import Callable

import torch
from safetensors import SafetensorError
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from .._version import __version__
from ..adapters.config import CONFIG_NAME, AdapterConfig, naming_file
from ..adapters.formats import FORMAT_KEY, FORMAT_VERSION, PEFT_KEY, PEFT_NOTE, VERSION_KEY
from ..adapters.formats import format_of as _format_of
from ..adapters.formats import upgrade_config as _upgrade_config
from ..adapters.formats import LAYERS_KEY
from ..adapters.selection import LAYOUT_KEYS
from ..adapters.formats import check_layers as _check_record
from ..adapters.formats import check_regular, read_json
from ..adapters.base_modules import base_widths, input_width
from ..adapters.layer import AdapterLayer, unwrap
from .injection import adapter_layers
from .modules_to_save import ModulesToSave
from .selection import layout_record

WEIGHTS_NAME = "adapter_model.safetensors"


def _distributed() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def _whole(t: torch.Tensor) -> torch.Tensor:
    """``t``, or the whole tensor of a sharded one (an FSDP2 ``DTensor``: gathering it is a
    collective, so under ``torch.distributed`` every rank must ask for it)."""
    full = getattr(t, "full_tensor", None)
    return full() if callable(full) else t


def _adapter_tensors(model: nn.Module, adapter_name: str):
    """``(saved key, tensor as held)`` for every tensor of one adapter."""
    for path, layer in adapter_layers(model):
        for attr in layer.adapter_layer_names:
            modules = getattr(layer, attr)
            if adapter_name in modules:
                for key, value in modules[adapter_name].state_dict().items():
                    yield f"{path}.{attr}.{key}", value


def is_sharded(model: nn.Module, adapter_name: str) -> bool:
    """Whether any tensor of the adapter is sharded across ranks (FSDP2's ``DTensor``)."""
    return any(callable(getattr(v, "full_tensor", None))
               for _, v in _adapter_tensors(model, adapter_name))


def adapter_state_dict(model: nn.Module, adapter_name: str) -> dict[str, torch.Tensor]:
    """The tensors of one adapter, keyed as in the saved file (sharded tensors gathered
    whole: for a sharded adapter every rank must call this, see :func:`save_adapter`)."""
    return {key: _whole(value) for key, value in _adapter_tensors(model, adapter_name)}


def _temporary_beside(path: str) -> tuple[str, int]:
    """A new empty file beside ``path``, and the mode ``open(path, "w")`` would leave: that of
    ``path`` if it exists, else ``0o666`` less the umask (``tempfile.mkstemp`` and the
    safetensors writer make ``0o600`` files, which the other users of a shared checkpoint
    folder could not read)."""
    directory, name = os.path.split(path)
    while True:
        tmp = os.path.join(directory, f".{name}.{secrets.token_hex(6)}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask applies
        except FileExistsError:
            continue
        try:
            mode = stat.S_IMODE(os.fstat(fd).st_mode)
        finally:
            os.close(fd)
        try:
            return tmp, stat.S_IMODE(os.stat(path).st_mode)
        except FileNotFoundError:
            return tmp, mode


def _atomic_write(path: str, write: Callable[[str], None]) -> None:
    """``write(tmp)`` into a temporary file beside ``path``, then rename it over ``path``;
    the file gets the mode a plain ``open(path, "w")`` would give it."""
    tmp, mode = _temporary_beside(path)
    try:
        write(tmp)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def save_adapter(directory: str | os.PathLike, config: AdapterConfig,
                 state: dict[str, torch.Tensor], collective: bool = False,
                 layers: dict[str, dict] | None = None) -> None:
    """Write ``adapter_model.safetensors``, then ``adapter_config.json``, into ``directory``
    (``layers``: the record of :func:`layer_shapes`, written into the config).

    Each file is written to a temporary name and renamed into place, so a save that fails
    or is killed half-way never leaves a truncated file: the directory holds the previous
    pair, or the new tensors beside the previous config until the config lands last.

    ``collective``: every rank of a ``torch.distributed`` group calls this with the same
    (gathered) tensors -- the case of a sharded adapter, whose gathering already needs every
    rank; rank 0 then writes and every rank returns once the files are in place.  Otherwise
    whoever calls writes (with DDP, call it on rank 0 alone, or on every rank: the writes are
    atomic and equal).
    """
    collective = collective and _distributed()
    if collective and torch.distributed.get_rank() != 0:
        torch.distributed.barrier()  # rank 0 is writing
        return
    directory = os.fspath(directory)
    os.makedirs(directory, exist_ok=True)
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in state.items()}
    metadata = {"format": "pt", VERSION_KEY: __version__, FORMAT_KEY: str(FORMAT_VERSION)}
    _atomic_write(os.path.join(directory, WEIGHTS_NAME),
                  lambda tmp: save_file(tensors, tmp, metadata=metadata))
    data = {**config.to_dict(), VERSION_KEY: __version__, FORMAT_KEY: FORMAT_VERSION,
            PEFT_KEY: PEFT_NOTE}
    if layers is not None:
        data[LAYERS_KEY] = layers

    def write_config(tmp: str) -> None:
        with open(tmp, "w") as f:
            json.dump(data, f, indent=2, sort_keys=True)

    _atomic_write(os.path.join(directory, CONFIG_NAME), write_config)
    if collective:
        torch.distributed.barrier()  # the other ranks may read the files from here on


#: A mixture expert's tensor in format 1: ``<path>.experts.<i>.<attr>.<param>``.
_V1_EXPERT = re.compile(r"^(.*\.experts\.\d+\.[^.]+)\.(.+)$")


def _single_prior_routers(config: AdapterConfig) -> re.Pattern | None:
    """Tensor names (current layout) of the routers that formats 1-2 held for physics
    adapters with a single prior; None when ``config`` has no such adapter."""
    def single(cfg) -> bool:
        return cfg.adapter_type == "physics" and len(cfg.priors) == 1
    if single(config):
        return re.compile(r"\.physics\.router\.")
    if config.adapter_type == "mixture":
        experts = [str(i) for i, cfg in enumerate(config.experts) if single(cfg)]
        if experts:
            return re.compile(rf"\.experts\.({'|'.join(experts)})\.physics\.expert\.router\.")
    return None


def _upgrade_state(fmt: int, config: AdapterConfig,
                   state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Tensors of an older format in the current layout (the table in the module docstring)."""
    if fmt == 1 and config.adapter_type == "mixture":
        state = {(_V1_EXPERT.sub(r"\1.expert.\2", k) if ".experts." in k else k): v
                 for k, v in state.items()}
    routers = _single_prior_routers(config) if fmt <= 2 else None
    if routers is not None:
        state = {k: v for k, v in state.items() if not routers.search(k)}
    return state


#: A Hugging Face Hub repository id (``user/name``), which this library does not download.
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def check_directory(directory: str | os.PathLike) -> str:
    """``directory`` as a string if it is an existing folder, else FileNotFoundError (a Hub
    repository id gets told how to download it first)."""
    if not isinstance(directory, (str, os.PathLike)):
        raise TypeError(f"directory={directory!r} must be a path (str or os.PathLike), got "
                        f"{type(directory).__name__}")
    path = os.fspath(directory)
    if os.path.isdir(path):
        return path
    if _HUB_ID.match(path) and not os.path.exists(path):
        raise FileNotFoundError(
            f"directory={path!r} is not a local folder; it looks like a Hugging Face Hub id, "
            f"but only local folders are supported: download it first with "
            f"`folder = huggingface_hub.snapshot_download({path!r})` and pass that folder")
    what = "is a file, not a folder" if os.path.exists(path) else "does not exist"
    raise FileNotFoundError(f"directory={path!r} {what}; give the folder a save_pretrained() "
                            f"wrote (holding {CONFIG_NAME} and {WEIGHTS_NAME})")


def check_save_directory(save_directory: str | os.PathLike) -> None:
    """Refuse a ``save_directory`` that cannot become a folder (TypeError for a non-path,
    FileExistsError for a file, NotADirectoryError when a file stands where a folder above
    it would be created), before anything is written."""
    if not isinstance(save_directory, (str, os.PathLike)):
        raise TypeError(f"save_directory={save_directory!r} must be a path (str or "
                        f"os.PathLike), got {type(save_directory).__name__}")
    if os.path.isfile(save_directory):
        raise FileExistsError(f"save_directory={os.fspath(save_directory)!r} is a file; "
                              f"give a folder (it is created if missing)")
    above = os.path.dirname(os.path.abspath(save_directory))
    while not os.path.exists(above):  # the nearest existing folder above must be a folder
        above = os.path.dirname(above)
    if not os.path.isdir(above):
        raise NotADirectoryError(f"save_directory={os.fspath(save_directory)!r} cannot be "
                                 f"created: {above!r} is a file, not a folder; give a "
                                 f"folder path")


def read_adapter(directory: str | os.PathLike, allow_nonfinite: bool = False
                 ) -> tuple[AdapterConfig, dict[str, torch.Tensor]]:
    """Read a saved adapter of any supported format; every problem with the files raises
    (FileNotFoundError / ValueError naming the file) before anything else happens: tensors
    that are not floating point, or hold NaN or infinity unless ``allow_nonfinite``
    (:func:`check_tensors`), included."""
    return read_saved(directory, allow_nonfinite)[:2]


def check_tensors(state: dict[str, torch.Tensor], where: str,
                  allow_nonfinite: bool = False) -> None:
    """ValueError naming the first tensor of ``state`` (read from the file ``where``) that is
    not floating point (an adapter's tensors never are: an integer or bool tensor would be
    cast silently), or that holds NaN or infinity (every output of the adapter would be NaN)
    unless ``allow_nonfinite``."""
    for key, t in state.items():
        if not t.is_floating_point():
            raise ValueError(f"{where!r}: tensor {key!r} has dtype {t.dtype}; adapter tensors "
                             f"are floating point (float32, float16, bfloat16, float64): the "
                             f"file was not written by save_pretrained")
        if not allow_nonfinite:
            bad = int((~torch.isfinite(t)).sum())
            if bad:
                raise ValueError(f"{where!r}: tensor {key!r} holds {bad} NaN or infinite "
                                 f"value(s) of {t.numel()}, which would make every output NaN; "
                                 f"pass allow_nonfinite=True to load it anyway")


def read_saved(directory: str | os.PathLike, allow_nonfinite: bool = False
               ) -> tuple[AdapterConfig, dict[str, torch.Tensor], dict[str, dict] | None]:
    """:func:`read_adapter`, and the file's per-layer record (None before format 5)."""
    directory = check_directory(directory)
    cfg_path = os.path.join(directory, CONFIG_NAME)
    weights = os.path.join(directory, WEIGHTS_NAME)
    for path in (cfg_path, weights):
        if not check_regular(path):
            subs = sorted(d for d in os.listdir(directory)
                          if os.path.isfile(os.path.join(directory, d, CONFIG_NAME)))
            hint = f"; adapters saved in its subfolders: {subs}" if subs else ""
            raise FileNotFoundError(f"{path!r} does not exist; a saved adapter directory holds "
                                    f"{CONFIG_NAME} and {WEIGHTS_NAME}{hint}")
    data = read_json(cfg_path)
    layers = data.pop(LAYERS_KEY, None)
    with naming_file(cfg_path):
        fmt = _format_of(data, cfg_path)
        config = AdapterConfig.from_dict(_upgrade_config(fmt, data))
    layers = _check_record(layers, cfg_path)
    try:
        state = load_file(weights)
    except (SafetensorError, OSError, ValueError) as e:
        size = os.path.getsize(weights)
        raise ValueError(f"{weights!r} ({size} bytes) is not a readable safetensors file "
                         f"({e}); it is truncated or corrupted: save the adapter again") from None
    check_tensors(state, weights, allow_nonfinite)
    return config, _upgrade_state(fmt, config, state), layers


def _saved_signature(directory: str) -> tuple[dict, dict] | None:
    """``(config fields, {tensor name: shape})`` of the adapter saved in ``directory`` (the
    fields in their current meaning, as :func:`read_adapter` reads them, and the per-layer
    record under :data:`~qiadapters.adapters.formats.LAYERS_KEY`), None if there is
    none; unreadable files give ``({}, {})`` (never equal to a real adapter's).  Tensors
    without a config (a save whose config has not landed yet: another rank's, in progress)
    give ``(None, shapes)``."""
    cfg_path = os.path.join(directory, CONFIG_NAME)
    weights = os.path.join(directory, WEIGHTS_NAME)
    if not (check_regular(cfg_path) | check_regular(weights)):  # a device or pipe: refused
        return None
    try:
        with safe_open(weights, "pt") as f:
            shapes = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
        if not os.path.exists(cfg_path):
            return None, shapes
        data = read_json(cfg_path)
        layers = data.pop(LAYERS_KEY, None) if isinstance(data, dict) else None
        try:
            fmt = _format_of(data, cfg_path)
        except ValueError:  # no or an unknown format: its fields are compared as written
            fmt = FORMAT_VERSION
        data = _upgrade_config(fmt, data)
        return (data if layers is None else {**data, LAYERS_KEY: layers}), shapes
    except (OSError, ValueError, SafetensorError, AttributeError):
        return {}, {}


def check_replaceable(directory: str | os.PathLike) -> None:
    """ValueError naming the file if one that a save into ``directory`` replaces is not a
    regular file or a link to one (a folder, a device, a pipe), checked before anything is
    written, ``overwrite=True`` included."""
    for name in (WEIGHTS_NAME, CONFIG_NAME):
        check_regular(os.path.join(os.fspath(directory), name))


def check_overwrite(directory: str | os.PathLike, config: AdapterConfig,
                    state: dict[str, torch.Tensor], layers: dict[str, dict] | None = None) -> None:
    """Refuse (FileExistsError) to save over a DIFFERENT adapter in ``directory``: another
    config, other layer shapes (``layers``, when both have a record), or other tensor names
    or shapes.  Saving the same adapter again (same config,
    same tensor names and shapes, new values: a later training checkpoint) is an update and
    is allowed; so is a folder without adapter files, and one holding only the tensors file
    with this adapter's tensor names and shapes (a save of it whose config has not landed:
    with DDP every rank may save the same adapter at once)."""
    directory = os.fspath(directory)
    saved = _saved_signature(directory)
    if saved is None:
        return
    data, shapes = saved
    saved_layers = data.pop(LAYERS_KEY, None) if data else None
    new = json.loads(json.dumps(config.to_dict()))
    if data is None:  # tensors only: compare them alone
        data = new
    if data != new:
        diff = sorted(k for k in set(data) | set(new) if data.get(k) != new.get(k))
        why = f"its config differs in {diff[:5]}" if data else "its files are unreadable"
    else:
        ours = {k: tuple(v.shape) for k, v in state.items()}
        if shapes == ours:
            if layers is None or not isinstance(saved_layers, dict) or saved_layers == layers:
                return
            first = sorted(p for p in set(saved_layers) | set(layers)
                           if saved_layers.get(p) != layers.get(p))[0]
            why = (f"its layers differ, first {first!r}: {_shape_text(saved_layers.get(first))} "
                   f"saved, {_shape_text(layers.get(first))} now")
        else:
            diff = sorted(k for k in set(shapes) | set(ours) if shapes.get(k) != ours.get(k))
            why = f"its tensors differ, first {diff[0]!r}: {shapes.get(diff[0])} saved, " \
                  f"{ours.get(diff[0])} now"
    raise FileExistsError(f"{directory!r} already holds a different adapter ({why}); nothing "
                          f"was written: pass overwrite=True to replace it, or save to another "
                          f"folder")


def check_state(expected: dict[str, torch.Size], state: dict[str, torch.Tensor],
                directory: str | os.PathLike) -> None:
    """Raise ValueError naming the first keys that are missing, unexpected or mis-shaped."""
    where = os.fspath(directory)
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise ValueError(f"adapter in {where!r} does not fit this model: missing tensors "
                         f"{missing[:5]}, unexpected tensors {unexpected[:5]} (was it saved "
                         f"for another model or config?)")
    for key, shape in expected.items():
        if tuple(state[key].shape) != tuple(shape):
            module = key.rsplit(".", 2)[0]
            raise ValueError(f"adapter in {where!r} does not fit module {module!r}: tensor "
                             f"{key!r} has shape {tuple(state[key].shape)} in the file but "
                             f"{tuple(shape)} for this model (saved for other layer shapes?)")


#: The entries of a layer's record that :func:`check_layers` compares, in the order shown.
SHAPE_KEYS = ("in", "out", "kernel", "normalized")


def layer_shape(module: nn.Module) -> dict[str, int | list[int]]:
    """The shape an adapter on ``module`` (an adapter layer: its base) depends on: a
    convolution's ``in`` / ``out`` channels and ``kernel``; a linear map's ``in`` / ``out``
    features (``nn.Linear`` and subclasses, transformers' ``Conv1D``); a ``LayerNorm``'s
    ``normalized`` shape; any other module's ``in`` width, that of the first linear map in it
    (the hidden states it takes: what a physics adapter placed at its input maps).  A
    mixture's experts wrap the mixture's base, so its record covers them."""
    module = unwrap(module.base_layer if isinstance(module, AdapterLayer) else module)
    widths = base_widths(module)
    if widths is not None:
        shape = {"in": widths[0], "out": widths[1]}
        if isinstance(module, nn.modules.conv._ConvNd):
            shape["kernel"] = list(module.kernel_size)
        return shape
    if isinstance(module, nn.LayerNorm):
        return {"normalized": list(module.normalized_shape)}
    inner = input_width(module)
    return {} if inner is None else {"in": inner}


def layer_shapes(model: nn.Module, adapter_name: str) -> dict[str, dict]:
    """The record saved with an adapter: ``{module path: layer_shape}`` of every layer that
    holds it (``modules_to_save`` copies are whole modules: their tensors say their shape),
    with a Hamming layer's resolved layout (:func:`~qiadapters.model.selection.layout_record`:
    loading builds the layer with it, whatever the library's default)."""
    return {path: {**layer_shape(layer), **layout_record(layer, adapter_name)}
            for path, layer in adapter_layers(model)
            if adapter_name in layer.adapter_names and not isinstance(layer, ModulesToSave)}


def _shape_text(shape: dict | None) -> str:
    if shape is None:
        return "no such layer"
    keys = [k for k in SHAPE_KEYS if k in shape] + sorted(
        k for k in shape if k not in SHAPE_KEYS and k not in LAYOUT_KEYS)
    return "(" + ", ".join(f"{k}={shape[k]}" for k in keys) + ")"


def check_layers(model: nn.Module, record: dict[str, dict] | None,
                 directory: str | os.PathLike) -> None:
    """Raise ValueError naming the first layer of ``model`` whose shape differs from the
    saved ``record`` (:func:`layer_shapes`; None, a file before format 5: nothing to check).
    A recorded path the model lacks is left to the tensor names (:func:`check_state`)."""
    for path, saved in (record or {}).items():
        try:
            module = model.get_submodule(path)
        except AttributeError:
            continue
        have = layer_shape(module)
        if any(have.get(k) != v for k, v in saved.items() if k in SHAPE_KEYS):
            raise ValueError(f"adapter in {os.fspath(directory)!r} does not fit module {path!r}: "
                             f"it was saved for a layer of shape {_shape_text(saved)}, this "
                             f"model's is {_shape_text(have)}; load it onto the model it was "
                             f"trained for (one with the same layer shapes)")
