"""neuron-monitor reports of every generation, and hostile variants of them."""
import copy
import json

import pytest

from neurontui.sources.neuron_report import parse_report
from tests.conftest import FIXTURES

TRN1N = FIXTURES / "v2_trn1n_32xlarge_2runtimes.json"
V1 = FIXTURES / "v1_from_docs.json"


def load(path):
    return json.loads(path.read_text())


def neuroncores(snapshot):
    return {core.index: core for core in snapshot.cores_of("neuroncore")}


def test_trn1n_two_runtimes_per_core_values():
    result = parse_report(TRN1N.read_text(), time=123.0)
    snap = result.snapshot
    assert snap.time == 123.0 and snap.source == "neuron-monitor"
    cores = neuroncores(snap)
    assert sorted(cores) == list(range(32))
    # only core 6 of tag 367 is busy; the other runtime lists it idle
    assert cores[6].utilization == pytest.approx(0.414)
    assert all(core.utilization == 0.0 for index, core in cores.items() if index != 6)
    # both runtimes report 100752896 model code + 9912852 tensors on every core: summed
    assert snap.memory.per_core[0].model_code == 2 * 100752896
    assert snap.memory.per_core[31].tensors == 2 * 9912852
    assert cores[17].memory_used_bytes == 2 * (100752896 + 9912852)
    assert snap.memory.device_used_bytes == 2 * 3541303936
    assert snap.memory.device_total_bytes == 16 * 32 * 2**30
    assert snap.memory.host_total_bytes == 532523487232
    assert snap.memory.host_used_bytes == 81207975936
    assert snap.memory.host_breakdown["dma_buffers"] == 2 * 8388608
    assert len(snap.cores_of("vcpu")) == snap.vcpu_count == 128
    assert snap.cores_of("vcpu")[0].utilization == pytest.approx(0.5131)
    assert snap.vcpu_user_ratio == pytest.approx(0.1966)
    assert snap.vcpu_system_ratio == pytest.approx(0.0167)
    assert snap.instance["instance_type"] == "trn1n.32xlarge"
    assert snap.hardware == {"neuron_device_count": 16, "neuroncore_per_device_count": 2}
    assert len(snap.ecc) == 16 and snap.ecc[0].mem_ecc_corrected == 1


def test_trn1n_runtimes_keep_their_own_figures_and_errors():
    snap = parse_report(TRN1N.read_text()).snapshot
    first, second = snap.runtimes
    assert (first.tag, first.key, first.pid) == ("367", "367", 457402)
    assert (second.tag, second.key) == ("123", "123")
    assert first.core_utilization[6] == pytest.approx(0.414)
    assert second.core_utilization[6] == 0.0
    assert first.cores == list(range(32))
    assert first.completed == 2 and first.errors["generic"] == 2
    assert first.latency_seconds == {} and first.device_latency_seconds == {}  # null latency blocks
    assert first.device_memory_bytes == 3541303936 and first.host_memory_bytes == 9043968
    assert first.vcpu_user_ratio is None  # its group carries an error
    assert "runtime[367].neuron_runtime_vcpu_usage: open/proc/457402/stat:nosuchfileordirectory" in snap.errors
    assert len(first.loaded_models) >= 1


def test_v1_from_docs():
    result = parse_report(V1.read_text())
    snap = result.snapshot
    assert result.problems == []
    assert [(c.index, c.utilization) for c in snap.cores_of("neuroncore")] == [
        (0, pytest.approx(0.4201)), (1, pytest.approx(0.4202)), (2, pytest.approx(0.4203)), (3, pytest.approx(0.4204))]
    (runtime,) = snap.runtimes
    assert (runtime.tag, runtime.key, runtime.pid) == ("0", "0", None)
    assert runtime.completed == 123 and runtime.status["completed"] == 123
    assert runtime.latency_seconds["p50"] == pytest.approx(0.01100008)
    assert runtime.device_latency_seconds["p99"] == pytest.approx(0.01000012)
    assert runtime.vcpu_user_ratio == pytest.approx(0.4201)
    assert runtime.device_memory_bytes == 2000000
    assert "my_model" in runtime.loaded_models and "my_model:my_subgraph1" in runtime.loaded_models
    assert snap.memory.device_used_bytes == 2000000
    assert snap.memory.device_total_bytes == 8 * 2**30  # inf1.xlarge: one 8 GiB chip
    assert snap.instance["instance_id"] == "i-0011223344556677a"  # from instance_data
    assert snap.ecc[0].device_index == 0  # runtime-level hw_counters
    assert len(snap.cores_of("vcpu")) == 2


def test_inference_stats_name_in_a_gen2_report():
    report = load(TRN1N)
    for entry in report["neuron_runtime_data"]:
        entry["report"]["inference_stats"] = entry["report"].pop("execution_stats")
    snap = parse_report(report).snapshot
    assert snap.runtimes[0].completed == 2 and snap.runtimes[0].errors["generic"] == 2


def test_runtimes_sharing_a_tag_get_unique_stable_keys():
    report = load(TRN1N)
    entries = report["neuron_runtime_data"]
    third = copy.deepcopy(entries[0])
    for entry in (*entries, third):
        entry["neuron_runtime_tag"] = "worker"
    entries.append(third)
    keys = [rt.key for rt in parse_report(report).snapshot.runtimes]
    assert keys == ["worker", "worker#2", "worker#3"]
    assert keys == [rt.key for rt in parse_report(report).snapshot.runtimes]
    entries[1]["neuron_runtime_tag"] = "worker#2"  # a tag that looks like a key
    assert [rt.key for rt in parse_report(report).snapshot.runtimes] == ["worker", "worker#2", "worker#3"]
    entries[0]["neuron_runtime_tag"] = "worker#2"
    entries[1]["neuron_runtime_tag"] = "worker"
    assert [rt.key for rt in parse_report(report).snapshot.runtimes] == ["worker#2", "worker", "worker#3"]


def test_utilization_sums_over_runtimes_and_clamps():
    report = load(TRN1N)
    first, second = report["neuron_runtime_data"]
    first["report"]["neuroncore_counters"]["neuroncores_in_use"]["3"]["neuroncore_utilization"] = 30.0
    second["report"]["neuroncore_counters"]["neuroncores_in_use"]["3"]["neuroncore_utilization"] = 25.0
    second["report"]["neuroncore_counters"]["neuroncores_in_use"]["6"]["neuroncore_utilization"] = 80.0
    cores = neuroncores(parse_report(report).snapshot)
    assert cores[3].utilization == pytest.approx(0.55)
    assert cores[6].utilization == 1.0


def test_truncated_line_is_not_a_report():
    line = json.dumps(load(TRN1N))
    result = parse_report(line[: len(line) // 2])
    assert result.snapshot is None and not result.ok
    assert result.problems[0].startswith("report: not JSON")


@pytest.mark.parametrize("garbage", [b"\x00\xff\xfe\x80garbage\x81", b"", b"[1, 2, 3]", b"null", b'"text"'])
def test_binary_garbage_and_non_objects(garbage):
    result = parse_report(garbage)
    assert result.snapshot is None and len(result.problems) == 1


def test_group_with_error_skips_only_that_group():
    report = load(TRN1N)
    report["system_data"]["memory_info"]["error"] = "failed to read /proc/meminfo"
    report["neuron_runtime_data"][0]["report"]["neuroncore_counters"]["error"] = "runtime went away"
    snap = parse_report(report).snapshot
    assert "system_data.memory_info: failed to read /proc/meminfo" in snap.errors
    assert "runtime[367].neuroncore_counters: runtime went away" in snap.errors
    assert snap.memory.host_total_bytes is None
    assert snap.memory.device_used_bytes == 2 * 3541303936  # memory_used still read
    cores = neuroncores(snap)
    assert cores[6].utilization == 0.0  # runtime 123 still reports core 6 (idle)
    assert len(snap.cores_of("vcpu")) == 128


def test_unreadable_counters_make_unlisted_cores_unknown_not_idle():
    report = load(V1)
    report["neuron_hardware_info"] = {"neuron_device_count": 2, "neuroncore_per_device_count": 4, "error": ""}
    snap = parse_report(report).snapshot
    assert neuroncores(snap)[7].utilization == 0.0  # nobody holds it: idle
    report["neuron_runtime_data"][0]["report"]["neuroncore_counters"]["error"] = "boom"
    snap = parse_report(report).snapshot
    assert len(neuroncores(snap)) == 8
    assert all(core.utilization is None for core in snap.cores_of("neuroncore"))


def test_nulls_everywhere_are_read_as_unknown():
    report = load(TRN1N)
    report["system_data"]["neuron_hw_counters"]["neuron_devices"] = None
    report["instance_info"] = None
    runtime = report["neuron_runtime_data"][0]
    runtime["pid"] = None
    runtime["report"]["memory_used"]["neuron_runtime_used_bytes"] = None
    runtime["report"]["execution_stats"]["execution_summary"] = None
    runtime["report"]["neuroncore_counters"]["neuroncores_in_use"]["6"]["neuroncore_utilization"] = None
    report["system_data"]["memory_info"]["memory_used_bytes"] = None
    snap = parse_report(report).snapshot
    assert snap.ecc == [] and snap.instance == {}
    assert snap.runtimes[0].pid is None and snap.runtimes[0].completed == 0
    assert snap.memory.device_used_bytes == 3541303936  # only the second runtime's
    assert neuroncores(snap)[6].utilization == 0.0
    assert snap.memory.host_used_bytes is None and snap.memory.host_total_bytes == 532523487232


def test_extra_and_missing_keys():
    report = load(V1)
    report["something_new"] = {"period": 1, "error": "", "values": [1, 2]}
    report["neuron_runtime_data"][0]["report"]["neuroncore_counters"]["neuroncores_in_use"]["0"]["v3d"] = {"x": 1}
    del report["system_data"]["memory_info"]
    del report["neuron_runtime_data"][0]["report"]["inference_stats"]
    result = parse_report(report)
    assert result.problems == []
    assert neuroncores(result.snapshot)[0].utilization == pytest.approx(0.4201)
    assert result.snapshot.memory.host_total_bytes is None
    assert result.snapshot.runtimes[0].completed == 0


@pytest.mark.parametrize("bad", ["12", [1], True, "NaN", None])
def test_wrong_types_for_values(bad):
    report = load(V1)
    report["neuron_runtime_data"][0]["report"]["neuroncore_counters"]["neuroncores_in_use"]["0"]["neuroncore_utilization"] = bad
    report["system_data"]["memory_info"]["memory_total_bytes"] = bad
    report["neuron_runtime_data"][0]["report"]["inference_stats"]["latency_stats"]["total_latency"]["p50"] = bad
    snap = parse_report(report).snapshot
    assert neuroncores(snap)[0].utilization == 0.0 and neuroncores(snap)[1].utilization == pytest.approx(0.4202)
    assert snap.memory.host_total_bytes is None
    assert "p50" not in snap.runtimes[0].latency_seconds and "p99" in snap.runtimes[0].latency_seconds


def test_wrong_types_for_groups_are_reported():
    report = load(TRN1N)
    report["system_data"]["vcpu_usage"] = "busy"
    report["neuron_runtime_data"][1] = 42
    report["neuron_runtime_data"][0]["report"]["memory_used"] = [1, 2]
    result = parse_report(report)
    assert "system_data.vcpu_usage: expected an object, got str" in result.problems
    assert "neuron_runtime_data[1]: expected an object, got int" in result.problems
    assert "runtime[367].memory_used: expected an object, got list" in result.problems
    assert [rt.key for rt in result.snapshot.runtimes] == ["367"]
    assert neuroncores(result.snapshot)[6].utilization == pytest.approx(0.414)


def test_nan_and_infinity_are_not_values():
    report = load(V1)
    counters = report["neuron_runtime_data"][0]["report"]["neuroncore_counters"]["neuroncores_in_use"]
    counters["0"]["neuroncore_utilization"] = float("nan")
    counters["1"]["neuroncore_utilization"] = float("inf")
    report["system_data"]["memory_info"]["memory_total_bytes"] = 10**400
    snap = parse_report(json.dumps(report)).snapshot  # json writes NaN/Infinity literals
    assert neuroncores(snap)[0].utilization == 0.0 and neuroncores(snap)[1].utilization == 0.0
    assert snap.memory.host_total_bytes is None


def test_64_cores_inf1_24xlarge():
    report = load(V1)
    report["instance_data"]["instance_type"] = "inf1.24xlarge"
    counters = report["neuron_runtime_data"][0]["report"]["neuroncore_counters"]
    counters["neuroncores_in_use"] = {str(i): {"neuroncore_utilization": i * 1.5} for i in range(64)}
    snap = parse_report(report).snapshot
    cores = neuroncores(snap)
    assert sorted(cores) == list(range(64))
    assert cores[10].utilization == pytest.approx(0.15)
    assert cores[63].utilization == 0.945
    assert snap.memory.device_total_bytes == 16 * 8 * 2**30


def test_empty_runtime_list_still_shows_idle_hardware():
    report = load(TRN1N)
    report["neuron_runtime_data"] = []
    result = parse_report(report)
    snap = result.snapshot
    assert result.problems == [] and snap.runtimes == []
    assert len(snap.cores_of("neuroncore")) == 32
    assert all(core.utilization == 0.0 for core in snap.cores_of("neuroncore"))
    assert snap.memory.device_used_bytes is None and snap.memory.device_total_bytes == 16 * 32 * 2**30


def test_a_json_object_that_is_no_report():
    result = parse_report({"hello": "world"})
    assert result.ok and result.problems == ["report: no neuron-monitor groups in it"]
    assert result.snapshot.cores == []


def test_json_dict_of_a_parsed_report_is_plain_json():
    snap = parse_report(TRN1N.read_text()).snapshot
    body = json.loads(json.dumps(snap.to_json_dict()))
    assert body["schema"] >= 1
    assert body["cores"][6] == {"kind": "neuroncore", "index": 6, "utilization": 0.414, "flops": None,
                                "memory_used_bytes": 2 * (100752896 + 9912852), "memory_total_bytes": None,
                                "name": "", "others_utilization": None}
