"""The device's peak FLOP rate and a run's share of it: the datasheet table by GPU name and
Neuron instance type, and the labelled CPU estimate read from /proc/cpuinfo and cpufreq."""
from __future__ import annotations

import os

import pytest

from neurontui.format import format_flops
from neurontui.tune.peaks import (Device, cpu_peak, gpu_peak, neuron_peak, peak_flops, rate_share_of_peak,
                                  read_cpu_facts, share_of_peak)


def _cpuinfo(path, sockets, cores, threads, flags, mhz="2900.000"):
    blocks = []
    for socket in range(sockets):
        for core in range(cores):
            for _ in range(threads):
                blocks.append(f"processor\t: {len(blocks)}\nmodel name\t: Test CPU\nphysical id\t: {socket}\n"
                              f"core id\t\t: {core}\ncpu MHz\t\t: {mhz}\nflags\t\t: {flags}\n")
    path.write_text("\n".join(blocks) + "\n")
    return str(path)


def test_the_cpu_estimate_counts_physical_cores_frequency_and_vector_width(tmp_path):
    info = _cpuinfo(tmp_path / "cpuinfo", sockets=2, cores=2, threads=2, flags="fpu sse avx2 fma avx512f avx512_bf16")
    (tmp_path / "max_freq").write_text("3500000\n")  # kHz
    facts = read_cpu_facts(info, str(tmp_path / "max_freq"))
    assert (facts.physical_cores, facts.logical_cpus, facts.ghz) == (4, 8, 3.5)
    fp32, _ = cpu_peak("fp32", facts=facts)
    bf16, _ = cpu_peak("bf16", facts=facts)
    fp16, _ = cpu_peak("fp16", facts=facts)  # no avx512_fp16: no faster than fp32
    half, _ = cpu_peak("fp32", cpus_used=4, facts=facts)
    assert fp32.flops_per_second == pytest.approx(4 * 3.5e9 * 16 * 2 * 2)  # AVX-512: 16 fp32 lanes
    assert bf16.flops_per_second == 2 * fp32.flops_per_second == 2 * fp16.flops_per_second
    assert half.flops_per_second == fp32.flops_per_second / 2
    assert fp32.estimate and fp32.label.startswith("estimate: 4 core(s) x 3.50 GHz x 16 fp32 lanes (AVX-512)")


def test_without_cpufreq_the_fastest_cpu_mhz_is_the_frequency(tmp_path):
    info = _cpuinfo(tmp_path / "cpuinfo", sockets=1, cores=4, threads=1, flags="sse avx avx2", mhz="2000.000")
    facts = read_cpu_facts(info, str(tmp_path / "absent"))
    peak, _ = cpu_peak("fp32", facts=facts)
    assert facts.ghz == 2.0 and peak.flops_per_second == pytest.approx(4 * 2e9 * 8 * 2 * 2)


def test_an_unreadable_cpuinfo_falls_back_to_the_cpu_count_and_says_the_frequency_is_unknown(tmp_path):
    facts = read_cpu_facts(str(tmp_path / "absent"), str(tmp_path / "absent"))
    assert facts.logical_cpus == facts.physical_cores == (os.cpu_count() or 1)
    peak, reason = cpu_peak("fp32", facts=facts)
    assert peak is None and "CPU frequency not known" in reason


def test_an_arm_cpuinfo_without_frequency_has_no_estimate(tmp_path):
    path = tmp_path / "cpuinfo"
    path.write_text("processor\t: 0\nBogoMIPS\t: 243.75\nFeatures\t: fp asimd evtstrm aes\n\n"
                    "processor\t: 1\nBogoMIPS\t: 243.75\nFeatures\t: fp asimd evtstrm aes\n\n")
    facts = read_cpu_facts(str(path), str(tmp_path / "absent"))
    assert facts.logical_cpus == 2 and "asimd" in facts.flags
    assert cpu_peak("fp32", facts=facts)[0] is None


def test_this_hosts_cpu_estimate_reads_safely():
    facts = read_cpu_facts()
    assert 1 <= facts.physical_cores <= facts.logical_cpus
    peak, reason = peak_flops(Device("cpu", units=1), "fp32")
    assert (peak is not None and peak.estimate and "estimate" in peak.label) or "frequency" in reason


@pytest.mark.parametrize("name,expected", [
    ("Tesla T4", "NVIDIA T4"), ("NVIDIA A10G", "NVIDIA A10G"), ("NVIDIA A100-SXM4-40GB", "NVIDIA A100"),
    ("NVIDIA H100 80GB HBM3", "NVIDIA H100 SXM"), ("NVIDIA H100 PCIe", "NVIDIA H100 PCIe"),
    ("NVIDIA L4", "NVIDIA L4"), ("NVIDIA L40S", "NVIDIA L40S"), ("NVIDIA H200", "NVIDIA H200 SXM"),
])
def test_gpus_are_found_by_nvml_product_name(name, expected):
    peak, _ = gpu_peak(name, "fp16")
    assert peak.label.startswith(expected + " ") and not peak.estimate


def test_a_gpu_peak_scales_with_the_gpus_used_and_a_missing_precision_says_so():
    one, _ = gpu_peak("NVIDIA A100-SXM4-40GB", "bf16")
    four, _ = peak_flops(Device("gpu", "NVIDIA A100-SXM4-40GB", units=4), "bf16")
    assert four.flops_per_second == 4 * one.flops_per_second
    assert gpu_peak("Tesla T4", "bf16") == (None, "NVIDIA T4 has no bf16 peak (not supported)")
    assert gpu_peak("Radeon Pro", "fp32")[0] is None


def test_neuron_peaks_are_per_core_of_the_instance_and_fp32_is_compared_with_bf16():
    two, _ = neuron_peak("inf2.48xlarge", "bf16", cores=2)
    all_cores, _ = neuron_peak("inf2.48xlarge", "bf16")
    assert all_cores.flops_per_second == 12 * two.flops_per_second  # 12 chips of 2 cores
    fp32, _ = neuron_peak("inf2.xlarge", "fp32", cores=2)
    assert fp32.flops_per_second == two.flops_per_second and "run as bf16" in fp32.label
    assert neuron_peak("c6i.large", "bf16")[0] is None


def test_share_of_peak_is_the_counted_flops_rate_over_the_peak():
    device = Device("neuron", "inf2.xlarge", units=2)
    peak, _ = peak_flops(device, "bf16")
    ratio, label = share_of_peak(4_000_000_000, 5_000.0, device, "bf16")
    assert ratio == pytest.approx(4e9 * 5e3 / peak.flops_per_second) and label == peak.label
    assert rate_share_of_peak(peak.flops_per_second / 4, device, "bf16")[0] == pytest.approx(0.25)
    assert share_of_peak(None, 5_000.0, device, "bf16") == (None, "FLOPs per sample not counted")
    assert share_of_peak(10, 0.0, device, "bf16") == (None, "no throughput")
    assert share_of_peak(10, 1.0, Device("gpu", "Radeon"), "bf16")[0] is None


def test_flop_rates_are_formatted_with_three_significant_digits():
    assert [format_flops(x) for x in (8.1e12, 3.3216e11, 9.89e14, 1.25e15, None)] == [
        "8.1 TFLOP/s", "332 GFLOP/s", "989 TFLOP/s", "1.25 PFLOP/s", "-"]
