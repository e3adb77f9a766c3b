"""Dollars per million inferences and joules per inference, from fixed inputs: the shipped and
overriding price tables, fake powercap trees whose counters wrap, a missing NVML and a stand-in
one following nvidia-ml-py's API (no GPU here)."""
from __future__ import annotations

import json
import sys
import types

import pytest

from neurontui.tune.cost import Price, PricesError, dollars_per_million, load_prices, resolve_price, shipped_table
from neurontui.tune.energy import NEURON_NO_POWER, EnergyReading, NvmlMeter, RaplMeter, meter_for

# --- cost --------------------------------------------------------------------------------------


def test_dollars_per_million_is_the_hourly_price_spread_over_the_inferences_of_an_hour():
    price, throughput = 3.6, 250.0  # $/h, samples/s
    inferences_per_hour = throughput * 3600
    assert dollars_per_million(price, throughput) == pytest.approx(price / inferences_per_hour * 1e6)
    assert dollars_per_million(price, 0.0) is None and dollars_per_million(None, 10.0) is None


def test_the_shipped_table_is_dated_sourced_and_covers_the_families_this_tool_targets():
    table = shipped_table()
    assert table.date and "approximate" in table.source and "us-east-1" in table.source
    families = {name.split(".")[0] for name in table.prices}
    assert {"inf1", "inf2", "trn1", "trn1n", "g4dn", "g5", "p4d", "p5", "c6i", "c7i", "m6i"} <= families
    price, reason = table.lookup("INF2.xlarge")
    assert price.per_hour > 0 and price.instance_type == "inf2.xlarge" and table.date in price.source
    assert reason == ""


def test_trn2_is_in_the_table_without_an_on_demand_price_and_a_prices_file_can_give_it_one(tmp_path):
    price, reason = resolve_price(instance_type="trn2.48xlarge")
    assert price is None and "Capacity Blocks" in reason and "pass --price-per-hour USD" in reason
    prices = tmp_path / "prices.json"
    prices.write_text('{"date": "2026-11-01", "prices_per_hour": {"trn2.48xlarge": 40.0}}')
    price, reason = resolve_price(instance_type="trn2.48xlarge", prices_file=str(prices))
    assert price.per_hour == 40.0 and "prices.json (2026-11-01)" in price.source and reason == ""


@pytest.mark.parametrize("instance_type,said", [("x9.huge", "no price for x9.huge"), (None, "instance type not known"),
                                                ("trn2.48xlarge", "pass --price-per-hour")])
def test_an_unknown_instance_type_has_no_price_and_says_why(instance_type, said):
    price, reason = resolve_price(instance_type=instance_type)
    assert price is None and said in reason


def test_price_per_hour_wins_over_the_table():
    price, _ = resolve_price(price_per_hour=2.5, instance_type="inf2.xlarge")
    assert (price.per_hour, price.source) == (2.5, "--price-per-hour")


def test_a_prices_file_overrides_the_entries_it_names_and_keeps_the_rest(tmp_path):
    path = tmp_path / "negotiated.json"
    path.write_text(json.dumps({"date": "2026-11-01", "prices_per_hour": {"inf2.xlarge": 0.5, "My.Type": 1.25}}))
    table = load_prices(str(path))
    mine, _ = table.lookup("inf2.xlarge")
    other, _ = table.lookup("g5.xlarge")
    new, _ = table.lookup("my.type")
    assert (mine.per_hour, mine.source) == (0.5, "negotiated.json (2026-11-01)")
    assert other.per_hour == shipped_table().prices["g5.xlarge"] and "approximate" in other.source
    assert new.per_hour == 1.25
    _, reason = table.lookup("x9.huge")
    assert "negotiated.json or the shipped table" in reason


@pytest.mark.parametrize("content,said", [
    ("{not json", "not JSON"),
    ('{"prices": {}}', 'expected an object with "prices_per_hour"'),
    ('{"prices_per_hour": {"inf2.xlarge": -1}}', "not a positive number"),
    ('{"prices_per_hour": {"inf2.xlarge": "cheap"}}', "not a positive number"),
    ('{"prices_per_hour": {"inf2.xlarge": true}}', "not a positive number"),
    ('{"prices_per_hour": {" ": 1}}', "empty instance type"),
    ("[1, 2]", 'expected an object with "prices_per_hour"'),
])
def test_a_bad_prices_file_is_one_line(tmp_path, content, said):
    path = tmp_path / "prices.json"
    path.write_text(content)
    with pytest.raises(PricesError) as caught:
        load_prices(str(path))
    message = str(caught.value)
    assert said in message and message.startswith(f"--prices {path}") and "\n" not in message


def test_a_missing_or_huge_prices_file_is_one_line(tmp_path):
    with pytest.raises(PricesError, match="cannot read: No such file"):
        load_prices(str(tmp_path / "absent.json"))
    huge = tmp_path / "huge.json"
    huge.write_bytes(b" " * (2 << 20))
    with pytest.raises(PricesError, match="not a prices file"):
        load_prices(str(huge))


# --- RAPL --------------------------------------------------------------------------------------

def _zone(root, directory, name, energy_uj, max_range=None):
    zone = root / directory
    zone.mkdir(parents=True)
    (zone / "name").write_text(name + "\n")
    (zone / "energy_uj").write_text(f"{energy_uj}\n")
    if max_range is not None:
        (zone / "max_energy_range_uj").write_text(f"{max_range}\n")
    return zone


def _set(zone, energy_uj):
    (zone / "energy_uj").write_text(f"{energy_uj}\n")


MAX_RANGE = 262143328850  # a real package's max_energy_range_uj


@pytest.fixture
def powercap(tmp_path):
    """Two packages, a DRAM subzone (not added: the package counter is the figure) and the mmio
    twin of package 0 (the same energy again)."""
    root = tmp_path / "powercap"
    (root / "intel-rapl").mkdir(parents=True)  # the control type's own directory has no counter
    zones = {
        "package-0": _zone(root, "intel-rapl:0", "package-0", 1_000_000, MAX_RANGE),
        "dram": _zone(root, "intel-rapl:0:0", "dram", 5_000_000, MAX_RANGE),
        "package-1": _zone(root, "intel-rapl:1", "package-1", 7_000_000, MAX_RANGE),
        "mmio": _zone(root, "intel-rapl-mmio:0", "package-0", 1_000_000, MAX_RANGE),
    }
    return root, zones


def test_rapl_adds_the_packages_energy_over_a_step(powercap):
    root, zones = powercap
    meter = RaplMeter(str(root))
    meter.start()
    _set(zones["package-0"], 1_000_000 + 12_500_000)
    _set(zones["package-1"], 7_000_000 + 2_500_000)
    _set(zones["dram"], 99_000_000)
    _set(zones["mmio"], 99_000_000)
    reading = meter.stop()
    assert reading.joules == pytest.approx(15.0)
    assert "package-0" in reading.source and "package-1" in reading.source and "dram" not in reading.source
    assert reading.per_inference(1000) == pytest.approx(0.015)


def test_a_rapl_counter_that_wraps_is_counted_through_the_wrap(powercap):
    root, zones = powercap
    _set(zones["package-0"], MAX_RANGE - 2_000_000)
    meter = RaplMeter(str(root))
    meter.start()
    _set(zones["package-0"], 3_000_000)  # wrapped: 2 J to the top, then 3 J
    assert meter.stop().joules == pytest.approx(5.0)


def test_sampling_between_start_and_stop_catches_a_counter_that_wraps_twice(powercap):
    root, zones = powercap
    meter = RaplMeter(str(root))
    meter.start()
    for _ in range(2):
        _set(zones["package-0"], MAX_RANGE - 1)  # nearly one whole range ...
        meter.sample()
        _set(zones["package-0"], 1_000_000)  # ... and through the wrap
        meter.sample()
    assert meter.stop().joules == pytest.approx(2 * MAX_RANGE / 1e6)


def test_a_wrap_without_its_range_is_no_figure_and_says_why(tmp_path):
    zone = _zone(tmp_path, "intel-rapl:0", "package-0", 5_000_000)
    meter = RaplMeter(str(tmp_path))
    meter.start()
    _set(zone, 1_000)
    reading = meter.stop()
    assert reading.joules is None and "max_energy_range_uj cannot be read" in reading.reason


@pytest.mark.parametrize("spoil", ["garbage", "directory"])
def test_an_unreadable_rapl_counter_is_no_figure_and_says_why(powercap, spoil):
    root, zones = powercap
    counter = zones["package-1"] / "energy_uj"
    counter.unlink()
    if spoil == "garbage":
        counter.write_text("n/a\n")
    else:
        counter.mkdir()
    meter = RaplMeter(str(root))
    meter.start()
    reading = meter.stop()
    assert reading == EnergyReading(None, reason=reading.reason)
    assert reading.reason.startswith(f"cannot read {counter}")


def test_psys_is_used_only_when_no_package_zone_exists(tmp_path):
    both = tmp_path / "both"
    package = _zone(both, "intel-rapl:0", "package-0", 0, MAX_RANGE)
    psys = _zone(both, "intel-rapl:1", "psys", 0, MAX_RANGE)  # the whole platform, package included
    meter = RaplMeter(str(both))
    meter.start()
    _set(package, 3_000_000)
    _set(psys, 9_000_000)
    assert meter.stop() == EnergyReading(3.0, "RAPL package-0 (whole CPU package)")
    alone = tmp_path / "alone"
    _zone(alone, "intel-rapl:0", "psys", 0, MAX_RANGE)
    meter = RaplMeter(str(alone))
    meter.start()
    _set(alone / "intel-rapl:0", 4_000_000)
    assert meter.stop().joules == pytest.approx(4.0)


def test_a_meter_stopped_without_a_start_has_no_figure(powercap):
    root, _ = powercap
    assert RaplMeter(str(root)).stop() == EnergyReading(None, reason="the energy meter was not started")
    assert NvmlMeter(nvml=stand_in_nvml(energy_mj=[5])).stop().joules is None


def test_no_powercap_is_no_figure_and_says_why(tmp_path):
    reading = RaplMeter(str(tmp_path / "absent")).stop()
    assert reading.joules is None and "no RAPL counters" in reading.reason


# --- NVML and Neuron ---------------------------------------------------------------------------

def test_a_missing_nvml_module_is_no_figure_and_says_why(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # `import pynvml` raises ImportError
    meter = meter_for("cuda")
    meter.start()
    reading = meter.stop()
    assert reading.joules is None and "nvidia-ml-py is not installed" in reading.reason


def test_nvml_without_a_gpu_driver_is_no_figure_and_says_why():
    pynvml = pytest.importorskip("pynvml")
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        pass
    else:
        pynvml.nvmlShutdown()
        pytest.skip("this host has a working NVML")
    reading = NvmlMeter().stop()
    assert reading.joules is None and reading.reason.startswith("NVML: ")


class NVMLError(Exception):
    pass


def stand_in_nvml(energy_mj=None, power_mw=None):
    """The part of nvidia-ml-py's API the meter uses: per-GPU energy counters (millijoules since the
    driver loaded) and power (milliwatts); a None list means the call is not supported."""
    def energy(handle):
        if energy_mj is None:
            raise NVMLError("Not Supported")
        return energy_mj[handle]

    def power(handle):
        return power_mw[handle]

    count = len(energy_mj if energy_mj is not None else power_mw)
    return types.SimpleNamespace(NVMLError=NVMLError, nvmlInit=lambda: None, nvmlDeviceGetCount=lambda: count,
                                 nvmlDeviceGetHandleByIndex=lambda i: i,
                                 nvmlDeviceGetTotalEnergyConsumption=energy, nvmlDeviceGetPowerUsage=power)


def test_nvml_total_energy_counter_over_a_step_with_stand_in_nvml():
    counters = [10_000_000, 20_000_000]
    nvml = stand_in_nvml(energy_mj=counters)
    meter = NvmlMeter(nvml=nvml)
    meter.start()
    counters[0] += 150_000  # 150 J
    counters[1] += 50_500  # 50.5 J
    reading = meter.stop()
    assert reading.joules == pytest.approx(200.5) and "NVML total energy of 2 GPU(s)" in reading.source
    only_second = NvmlMeter(indices=[1], nvml=nvml)
    only_second.start()
    counters[1] += 1_000
    assert only_second.stop().joules == pytest.approx(1.0)


def test_nvml_falls_back_to_power_times_time_with_stand_in_nvml():
    power = [100_000]  # 100 W
    now = [0.0]
    meter = NvmlMeter(nvml=stand_in_nvml(power_mw=power), clock=lambda: now[0])
    meter.start()
    now[0], power[0] = 2.0, 200_000  # 2 s ramping 100 -> 200 W: 300 J
    meter.sample()
    now[0] = 3.0  # 1 s at 200 W: 200 J
    reading = meter.stop()
    assert reading.joules == pytest.approx(500.0) and "power x time over 3 readings" in reading.source


def test_neuron_energy_is_absent_with_the_reason_unless_the_telemetry_reports_power():
    reading = meter_for("neuron").stop()
    assert reading == EnergyReading(None, reason=NEURON_NO_POWER)
    now = [0.0]
    watts = [40.0]
    meter = meter_for("neuron", neuron_watts=lambda: watts[0])
    meter.clock = lambda: now[0]
    meter.start()
    now[0] = 10.0
    assert meter.stop().joules == pytest.approx(400.0)


# --- a live run's cost and share of peak (the TUI's workload panel) ------------------------------

def test_a_live_run_s_cost_and_share_of_peak_follow_the_tune_s_rules():
    from neurontui.tune.live import run_economy
    from neurontui.tune.peaks import gpu_peak
    from workloads.protocol import Ready

    ready = Ready(params=1, cores_used=1, device_name="Tesla T4", flops_per_sample=8_000_000_000)
    economy = run_economy(500.0, "cuda", ready, "fp16", "g4dn.xlarge")
    peak, _ = gpu_peak("Tesla T4", "fp16")
    assert economy.share_of_peak == pytest.approx(8e9 * 500.0 / peak.flops_per_second)
    assert economy.dollars_per_million == pytest.approx(dollars_per_million(0.526, 500.0))
    assert not economy.peak_estimate
    # Neither a price (no instance type) nor FLOPs (not counted): nothing is guessed.
    unknown = run_economy(500.0, "cuda", Ready(params=1, device_name="Tesla T4"), "fp16", None)
    assert (unknown.dollars_per_million, unknown.share_of_peak) == (None, None)
    # An explicit price wins over the table; no throughput yet means no cost.
    priced = run_economy(1000.0, "cuda", ready, "fp16", "g4dn.xlarge", Price(1.0, "--price-per-hour"))
    assert priced.dollars_per_million == pytest.approx(dollars_per_million(1.0, 1000.0))
    assert run_economy(None, "cuda", ready, "fp16", "g4dn.xlarge").dollars_per_million is None


def test_neuron_monitor_s_reported_flops_are_set_beside_the_counted_share_against_the_same_peak():
    from neurontui.tui.widgets.workload import economy_text
    from neurontui.tune.live import run_economy
    from neurontui.tune.peaks import Device, peak_flops
    from workloads.protocol import Ready

    ready = Ready(params=1, cores_used=2, flops_per_sample=1_000_000_000)
    peak, _ = peak_flops(Device("neuron", "inf2.xlarge", 2), "bf16")
    economy = run_economy(100.0, "neuron", ready, "bf16", "inf2.xlarge", reported_flops=peak.flops_per_second / 4)
    assert economy.reported_share_of_peak == pytest.approx(0.25)
    assert economy.share_of_peak == pytest.approx(1e9 * 100.0 / peak.flops_per_second)
    text = economy_text(economy)
    assert "of peak (monitor 25%)" in text and "/M" in text  # inf2.xlarge has a table price
    uncounted = Ready(params=1, cores_used=2)  # FLOPs not counted in the child: the monitor's share alone
    assert economy_text(run_economy(100.0, "neuron", uncounted, "bf16", "inf2.xlarge",
                                    reported_flops=peak.flops_per_second / 2)).startswith("monitor 50% of peak")
