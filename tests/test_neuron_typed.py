"""The typed fast path (neuron_typed.py) against the tolerant parser: whenever the typed path
accepts a line, its Snapshot equals the tolerant parser's; what it refuses goes the old way."""
import copy
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from neurontui.sources.neuron_parser import _loads, _Parser
from neurontui.sources.neuron_report import parse_report
from neurontui.sources.neuron_typed import decode_report
from tests.conftest import FIXTURES, SHARED_FIXTURES, json_paths
from tests.test_parser_fuzz import FUZZ, JSON, TRN1N

WHEN = 1_700_000_000.0
REPORTS = sorted({p.name: p for folder in (SHARED_FIXTURES, FIXTURES) if folder.is_dir()
                  for p in folder.glob("*.json")}.values())
TRN1N_PATHS = [path for path in json_paths(TRN1N, max_items=3) if path][:3000]
NUMBERS = (st.integers(-10**20, 10**20) | st.integers(10**300, 10**400) | st.floats(allow_nan=False)
           | st.floats(-1e3, 1e3) | st.none())


def tolerant(line: str | bytes):
    text = line.decode("utf-8", "replace") if isinstance(line, bytes) else line
    return _Parser(WHEN).parse(_loads(text))


def same_when_typed(line: str | bytes) -> bool:
    """Assert the two paths agree; True when the typed path read the line."""
    typed = decode_report(line, WHEN)
    if typed is None:
        return False
    assert typed == tolerant(line)
    return True


@pytest.mark.parametrize("path", REPORTS, ids=lambda p: p.name)
def test_every_fixture_reads_the_same_through_parse_report(path):
    line = path.read_bytes()
    same_when_typed(line)
    result = parse_report(line, WHEN)
    assert result.snapshot == tolerant(line) and result.problems == result.snapshot.errors


def test_the_trn1n_capture_takes_the_typed_path_with_its_group_errors():
    line = json.dumps(TRN1N)
    assert same_when_typed(line)
    assert decode_report(line, WHEN).errors == [  # a runtime's vCPU group failed on the real host
        "runtime[367].neuron_runtime_vcpu_usage: open/proc/457402/stat:nosuchfileordirectory",
        "runtime[123].neuron_runtime_vcpu_usage: open/proc/457402/stat:nosuchfileordirectory"]


def test_gen1_and_broken_lines_go_the_tolerant_way():
    assert decode_report((FIXTURES / "v1_from_docs.json").read_text(), WHEN) is None
    for line in ('{"neuron_runtime_data": "x"}', "[]", "{}", '{"system_data": {"memory_info": NaN}}',
                 edited(lambda r: r["neuron_runtime_data"][0]["report"]["neuroncore_counters"].update(error="boom"))):
        assert decode_report(line, WHEN) is None
        assert parse_report(line, WHEN).snapshot == (tolerant(line) if line.startswith("{") else None)


def edited(edit) -> str:
    report = copy.deepcopy(TRN1N)
    edit(report)
    return json.dumps(report)


def first_core(report):
    return report["neuron_runtime_data"][0]["report"]["neuroncore_counters"]["neuroncores_in_use"]["6"]


@pytest.mark.parametrize("edit", [
    lambda r: first_core(r).update(neuroncore_utilization=250),  # clamped to 1.0
    lambda r: first_core(r).update(neuroncore_utilization=-3.5, flops=-1, loaded_models=["m", 3, "m"]),
    lambda r: first_core(r).update(extra={"unknown": [1, 2]}),
    lambda r: r["neuron_runtime_data"][1].update(neuron_runtime_tag="367"),  # repeated tag: key "367#2"
    lambda r: r["neuron_runtime_data"][0]["report"].pop("neuroncore_counters"),
    lambda r: r["neuron_runtime_data"][0]["report"].update(neuroncore_counters=None),  # idle unknown, not 0
    lambda r: r["system_data"]["vcpu_usage"]["usage_data"].pop("5"),
    lambda r: r["system_data"]["memory_info"].update(memory_total_bytes=10**25),
    lambda r: r.pop("neuron_hardware_info"),
    lambda r: r["instance_info"].update(instance_id=12345, subnet_id=""),
], ids=range(10))
def test_edited_reports_take_the_typed_path_and_read_the_same(edit):
    assert same_when_typed(edited(edit))


def test_a_report_whose_memory_and_ecc_repeat_or_change_reads_its_own_figures():
    """The typed path builds a runtime's per-core memory and the ECC counts once per distinct
    JSON (a steady run repeats them); a report that changes them must still read its own."""
    def changed(report):
        breakdown = report["neuron_runtime_data"][0]["report"]["memory_used"]["neuron_runtime_used_bytes"]
        breakdown["usage_breakdown"]["neuroncore_memory_usage"]["0"]["tensors"] = 7
        report["system_data"]["neuron_hw_counters"]["neuron_devices"][1]["mem_ecc_uncorrected"] = 5
    steady, moved = json.dumps(TRN1N), edited(changed)
    for line in (steady, moved, steady, moved):
        assert same_when_typed(line)
    read = decode_report(moved, WHEN)
    assert read.runtimes[0].core_memory[0].tensors == 7
    # the all-cores view adds both runtimes' memory of core 0, as it is now
    assert read.memory.per_core[0].tensors == 7 + read.runtimes[1].core_memory[0].tensors
    assert read.cores_of("neuroncore")[0].memory_used_bytes == read.memory.per_core[0].total
    assert read.memory.per_core[0] != decode_report(steady, WHEN).memory.per_core[0]
    assert read.ecc[1].mem_ecc_uncorrected == 5
    mine = decode_report(steady, WHEN)  # a consumer changing its snapshot's maps changes no later report
    mine.runtimes[0].core_memory.clear()
    mine.memory.per_core.clear()
    mine.ecc.clear()
    assert same_when_typed(steady)


@FUZZ
@given(st.data())
def test_numbers_swapped_into_the_trn1n_capture(data):
    report = copy.deepcopy(TRN1N)
    for _ in range(data.draw(st.integers(1, 6))):
        path = data.draw(st.sampled_from(TRN1N_PATHS))
        parent = report
        try:
            for step in path[:-1]:
                parent = parent[step]
            if data.draw(st.booleans()) and isinstance(parent, dict):
                parent.pop(path[-1], None)
            else:
                parent[path[-1]] = data.draw(NUMBERS)
        except (KeyError, IndexError, TypeError):
            continue  # an earlier swap changed the shape above this path
    line = json.dumps(report)
    same_when_typed(line)
    same_when_typed(line.encode())


@FUZZ
@given(st.sampled_from(TRN1N_PATHS), JSON)
def test_any_value_swapped_into_the_trn1n_capture(path, value):
    report = copy.deepcopy(TRN1N)
    parent = report
    for step in path[:-1]:
        parent = parent[step]
    parent[path[-1]] = value
    same_when_typed(json.dumps(report))


def test_deep_nesting_inside_a_typed_report_is_a_bad_line_not_an_exception():
    line = edited(lambda r: r["neuron_runtime_data"][0]["report"]["memory_used"].update(loaded_models="NEST"))
    line = line.replace('"NEST"', "[" * 5000 + "]" * 5000)
    assert decode_report(line, WHEN) is None
    result = parse_report(line, WHEN)
    assert result.snapshot is None and result.problems[0].startswith("report: not JSON")
