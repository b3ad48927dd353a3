"""Every benchmark row's ``adapter_config.json`` is what its config class writes now from the
registry (so the two cannot drift), holds the registry's own values, and loads back through
the class as the same config; rows that are not an adapter of a config class have none."""
from __future__ import annotations

import json

import pytest

pytest.importorskip("peft")

from benchmarks.common import adapter_configs, experiments, registry  # noqa: E402

BENCHMARKS = sorted(adapter_configs.BENCHMARKS.items())


def _rows(folder):
    return [(name, experiments.experiment_dir(folder, name) / adapter_configs.FILE)
            for name in experiments.names(folder)]


@pytest.mark.parametrize("benchmark,folder", BENCHMARKS)
def test_every_file_is_what_the_config_classes_write_now(benchmark, folder):
    stale = adapter_configs.differing(folder)
    assert not stale, (
        f"{len(stale)} adapter_config.json file(s) of {benchmark} differ from what the config "
        f"classes write from the registry now, e.g. {stale[0]}; regenerate them with "
        f"`{adapter_configs.COMMAND}` (or `make bench-experiments`) and commit the result")


@pytest.mark.parametrize("benchmark,folder", BENCHMARKS)
def test_a_file_holds_the_registry_values_and_adapter_rows_have_one(benchmark, folder):
    checked = 0
    for name, path in _rows(folder):
        entry = registry.get(name)
        if entry.family in {"head", "full", "bottleneck", "paper_dense"}:
            assert not path.exists(), f"{path}: {entry.family} is not an adapter config"
            continue
        data = json.loads(path.read_text())
        for key, value in dict(entry.config, target_modules=entry.targets).items():
            if key in registry.BENCHMARK_KEYS:  # the benchmark's own switch, not saved
                assert key not in data, (path, key)
                continue
            if isinstance(value, list):  # peft keeps target_modules as a set
                assert sorted(data[key]) == sorted(value), (path, key)
            else:
                assert data[key] == value, (path, key)
        if entry.family == "mixture":
            assert [e["adapter_type"] for e in data["experts"]] == [
                registry.get(e).family for e in entry.experts], path
        assert data["modules_to_save"] == ["classifier"], path
        checked += 1
    assert checked >= 10


@pytest.mark.parametrize("benchmark,folder", BENCHMARKS)
def test_a_file_loads_back_as_the_same_config(benchmark, folder):
    for name, path in _rows(folder):
        config = adapter_configs.config_of(name)
        if config is None:
            continue
        loaded = adapter_configs.load(path.parent, name)
        assert type(loaded) is type(config), path
        assert adapter_configs.text_of(loaded) == adapter_configs.text_of(config), path
