"""The compiled-artifact cache: private directory, keys, hits, and models that cannot be traced."""
from __future__ import annotations

import os
import stat

import pytest
import torch
from torch import nn

from workloads.cache import (artifact_key, default_cache_dir, load_or_compile, private_dir, quiet_jit,
                             trace_module)
from workloads.errors import WorkloadFailure


class Small(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        return self.fc(x)


class BranchesOnValues(nn.Module):
    """Tensor-dependent control flow: a trace would silently freeze one branch."""

    def forward(self, x):
        if x.sum() > 0:
            return x * 2
        return x - 1


class WrongShape(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(5, 2)

    def forward(self, x):
        return self.fc(x)


def test_cache_directory_is_private_and_follows_xdg(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "neurontui"
    created = private_dir(None)
    assert stat.S_IMODE(created.stat().st_mode) == 0o700



def test_a_given_cache_dir_open_to_others_is_left_alone_and_a_private_one_is_made_inside(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)  # like /tmp
    inside = private_dir(shared)
    assert stat.S_IMODE(shared.stat().st_mode) == 0o1777, "the shared directory was re-permissioned"
    assert inside.parent == shared and stat.S_IMODE(inside.stat().st_mode) == 0o700
    assert private_dir(shared) == inside  # the next start finds it again


def test_a_given_private_cache_dir_of_ours_is_used_as_it_is(tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir(mode=0o700)
    assert private_dir(mine) == mine
    assert private_dir(tmp_path / "new" / "dir") == tmp_path / "new" / "dir"  # created by us: 0700


def test_a_link_planted_in_a_shared_cache_dir_is_refused(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    (shared / f"neurontui-{os.getuid()}").symlink_to(elsewhere)
    with pytest.raises(WorkloadFailure, match="not a private directory"):
        private_dir(shared)


def test_second_start_loads_the_artifact_instead_of_compiling(tmp_path):
    compiles = []
    x = torch.rand(3, 4)

    def compile_fn():
        compiles.append(1)
        return trace_module(Small(), (x,))

    key = {"model": "small", "inputs": ["(3, 4)"]}
    first, info1 = load_or_compile(tmp_path, "small-cpu", key, compile_fn)
    second, info2 = load_or_compile(tmp_path, "small-cpu", key, compile_fn)
    assert len(compiles) == 1
    assert not info1.cached and info2.cached and info2.compile_seconds == 0
    assert info1.artifact_bytes == info2.artifact_bytes == info2.path.stat().st_size > 0
    assert torch.equal(first(x), second(x))
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".partial")]


def test_a_damaged_artifact_is_rebuilt(tmp_path):
    x = torch.rand(3, 4)
    _, info = load_or_compile(tmp_path, "small-cpu", {"k": 1}, lambda: trace_module(Small(), (x,)))
    info.path.write_bytes(b"truncated")
    module, again = load_or_compile(tmp_path, "small-cpu", {"k": 1}, lambda: trace_module(Small(), (x,)))
    assert not again.cached and module(x).shape == (3, 2)


class Planted(nn.Module):
    def forward(self, x):
        return x * 0 - 42


def artifact_of(tmp_path, key):
    x = torch.rand(3, 4)
    _, info = load_or_compile(tmp_path, "small-cpu", key, lambda: trace_module(Small(), (x,)))
    return x, info.path


def reload(tmp_path, key, x):
    return load_or_compile(tmp_path, "small-cpu", key, lambda: trace_module(Small(), (x,)))


def test_a_planted_artifact_that_is_not_what_we_saved_is_rebuilt_not_loaded(tmp_path):
    x, path = artifact_of(tmp_path, {"k": "planted"})
    with quiet_jit():
        torch.jit.save(torch.jit.trace(Planted(), (x,)), str(path))  # a valid module, ours, mode 0644
    module, info = reload(tmp_path, {"k": "planted"}, x)
    assert not info.cached and not torch.equal(module(x), torch.full((3, 4), -42.0))
    assert module(x).shape == (3, 2)


def test_an_artifact_others_can_write_is_rebuilt_not_loaded(tmp_path):
    x, path = artifact_of(tmp_path, {"k": "loose"})
    os.chmod(path, 0o666)
    _, info = reload(tmp_path, {"k": "loose"}, x)
    assert not info.cached and stat.S_IMODE(path.stat().st_mode) == 0o600


@pytest.mark.skipif(os.getuid() != 0, reason="giving a file to another user needs root")
def test_an_artifact_owned_by_another_user_is_rebuilt_not_loaded(tmp_path):
    x, path = artifact_of(tmp_path, {"k": "theirs"})
    os.chown(path, 4242, 4242)
    os.chown(path.with_suffix(".sha256"), 4242, 4242)
    _, info = reload(tmp_path, {"k": "theirs"}, x)
    assert not info.cached and path.stat().st_uid == os.getuid()


def test_key_changes_with_anything_that_shapes_the_artifact():
    base = {"model": "cnn", "inputs": ["(1, 1, 28, 28):torch.float32"], "backend": "cpu", "precision": "fp32"}
    variants = [dict(base, inputs=["(8, 1, 28, 28):torch.float32"]), dict(base, precision="bf16"),
                dict(base, backend="torch_neuron"), dict(base, compiler_args=["--neuroncore-pipeline-cores", "4"])]
    keys = {artifact_key(base), *(artifact_key(v) for v in variants)}
    assert len(keys) == 1 + len(variants)
    assert artifact_key(dict(reversed(list(base.items())))) == artifact_key(base)


def test_tensor_dependent_control_flow_is_a_clear_trace_error():
    with pytest.raises(WorkloadFailure) as caught:
        trace_module(BranchesOnValues(), (torch.rand(2, 3),))
    assert caught.value.kind == "trace"
    assert "BranchesOnValues cannot be traced" in caught.value.message
    assert "tensor-dependent control flow" in caught.value.message


def test_a_shape_error_while_tracing_names_the_inputs():
    with pytest.raises(WorkloadFailure) as caught:
        trace_module(WrongShape(), (torch.rand(2, 3),))
    assert caught.value.kind == "trace" and "(2, 3):torch.float32" in caught.value.message


def test_a_long_compile_keeps_reporting_so_the_parent_does_not_think_it_hung(tmp_path, monkeypatch):
    import time

    from workloads import cache

    monkeypatch.setattr(cache, "HEARTBEAT_SECONDS", 0.05)
    beats = []

    def slow_compile():
        time.sleep(0.3)
        return trace_module(Small(), (torch.rand(3, 4),))

    load_or_compile(tmp_path, "small-cpu", {"k": 2}, slow_compile, on_compile=beats.append)
    assert beats[0] == 0.0 and len(beats) >= 3 and beats == sorted(beats)
