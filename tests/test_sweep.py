"""--sweep SPEC: parsing and expansion (the real 8-configuration run is in test_headless.py)."""
import pytest

from neurontui.sweep import SweepError, check, expand, parse_sweep
from workloads.config import WorkloadConfig


def test_cross_product_in_reading_order():
    axes = parse_sweep("model=cnn,resnet50 mode=single,dp batch=1,4,16 concurrency=1,4")
    configs = expand(WorkloadConfig(backend="cpu", duration=2.0), axes)
    assert len(configs) == 2 * 2 * 3 * 2
    # first key varies slowest, last fastest: rows group per model, then per mode
    assert [(c.model, c.mode, c.batch, c.concurrency) for c in configs[:3]] == [
        ("cnn", "single", 1, 1), ("cnn", "single", 1, 4), ("cnn", "single", 4, 1)]
    assert configs[-1].model == "resnet50" and configs[-1].batch == 16
    # flags not swept are kept from the command line
    assert all(c.backend == "cpu" and c.duration == 2.0 for c in configs)


def test_values_get_the_field_type():
    axes = parse_sweep("batch=1,8 qps=10,2.5 channels-last=true,false precision=fp32,bf16")
    assert axes == {"batch": [1, 8], "qps": [10.0, 2.5], "channels_last": [True, False], "precision": ["fp32", "bf16"]}


@pytest.mark.parametrize("spec,needle", [
    ("batch=1,x", "not a number"),
    ("colour=red", "cannot vary 'colour'"),
    ("duration=1,2", "cannot vary 'duration'"),
    ("model", "expected KEY=V1,V2"),
    ("batch=", "has no values"),
    ("batch=1 batch=2", "given twice"),
    ("", "empty spec"),
])
def test_bad_specs_get_one_line(spec, needle):
    with pytest.raises(SweepError) as info:
        parse_sweep(spec)
    assert needle in str(info.value) and "\n" not in str(info.value)


def test_cli_rejects_a_bad_sweep_before_starting(python, child_env, tmp_path):
    import subprocess
    out = subprocess.run([python, "-m", "neurontui", "--sweep", "batch=1,two", "--backend", "cpu",
                          "--export", str(tmp_path / "x.json"), "--monitor", "none"],
                         capture_output=True, text=True, env=child_env, timeout=60)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == ["neurontui: sweep: batch='two' is not a number"]
    assert not (tmp_path / "x.json").exists()


@pytest.mark.parametrize("spec,needle", [
    ("model=cnn,nope", "sweep: model='nope': unknown model 'nope': choose from cnn, resnet50, bert, craft"),
    ("backend=cpu,gpu", "unknown backend 'gpu'"),
    ("precision=fp32,fp8", "unknown precision 'fp8'"),
    ("model=cnn batch=4,0", "sweep: batch=0: --batch must be at least 1, got 0"),
    ("mode=single,pipe", "unknown mode 'pipe'"),
    ("concurrency=1,0", "sweep: concurrency=0: --concurrency must be at least 1, got 0"),
])
def test_values_a_single_run_would_refuse_are_refused_up_front(spec, needle):
    with pytest.raises(SweepError) as info:
        check(WorkloadConfig(backend="cpu"), parse_sweep(spec))
    assert needle in str(info.value) and "\n" not in str(info.value)


def test_a_sweep_a_single_run_would_accept_passes_the_check():
    check(WorkloadConfig(backend="cpu"), parse_sweep("model=cnn,bert scenario=server qps=5,10 batch=1,4"))
    # a combination that cannot run is left to the sweep, as a skipped row (see test_headless.py)
    check(WorkloadConfig(backend="cpu"), parse_sweep("scenario=single-stream,server"))


def test_cli_rejects_an_unknown_value_before_measuring_anything(python, child_env, tmp_path):
    import subprocess
    out = subprocess.run([python, "-m", "neurontui", "--sweep", "model=cnn,nope", "--backend", "cpu",
                          "--export", str(tmp_path / "x.json"), "--monitor", "none"],
                         capture_output=True, text=True, env=child_env, timeout=60)
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.strip().splitlines() == [
        "neurontui: sweep: model='nope': unknown model 'nope': choose from cnn, resnet50, bert, craft"]
    assert not (tmp_path / "x.json").exists()  # and cnn was not measured first: no progress lines
