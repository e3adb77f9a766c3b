"""The rules a run is judged by, written once (workloads/rules.py) and used by both packages."""
import pytest

from neurontui.store import Store
from workloads.models import REGISTRY
from workloads.protocol import Hello
from workloads.rules import effective_backend, pipeline_cores, pipeline_cores_unclamped, stability


@pytest.mark.parametrize("params,cores,expected", [
    (25_557_032, 16, 4),    # resnet50: 4 * round(1.28)
    (109_482_240, 16, 16),  # bert-base: 4 * round(5.47) = 20, clamped to the 16 cores there are
    (109_482_240, 64, 20),
    (30_000_000, 64, 8),    # round half up (1.5 -> 2), as the seed computed it
    (50_000_000, 64, 12),   # 2.5 -> 3: Python's round() would say 2 (half to even)
    (100_000, 4, 1),        # a tiny CNN rounds to 0 cores: at least 1
    (25_557_032, 2, 2),
])
def test_pipeline_rule_of_thumb(params, cores, expected):
    assert pipeline_cores(params, cores) == expected


def test_an_explicit_pipeline_size_is_clamped_to_the_cores_there_are():
    assert pipeline_cores(25_557_032, 4, requested=8) == 4 and pipeline_cores(25_557_032, 16, requested=3) == 3


def test_the_registry_shows_the_same_rule_as_the_hint():
    for spec in REGISTRY.values():
        assert spec.pipeline_cores_rule == pipeline_cores_unclamped(spec.params)
        assert pipeline_cores(spec.params, 1024) == max(1, spec.pipeline_cores_rule)


@pytest.mark.parametrize("rates,verdict", [
    ([100, 500, 100, 105, 98], "stable"),  # only the last 3 windows count
    ([100, 100, 130], "unstable"),
    ([100, 100], "too few windows"),
    ([0, 0, 0], "unstable"),
])
def test_stability_follows_perf_analyzer(rates, verdict):
    assert stability(rates) == verdict


def test_auto_becomes_what_the_child_reported_but_an_explicit_backend_stays():
    assert effective_backend("auto", "cuda") == "cuda"
    assert effective_backend("auto", None) == "auto"
    assert effective_backend("cpu", "cuda") == "cpu"  # a switch asked for cpu; the old run's hello said cuda
    store = Store()
    store.workload_starting({"backend": "auto"}, pid=1)
    store.workload_event(Hello(pid=1, backend="neuron"))
    assert store.workload.backend == "neuron"
