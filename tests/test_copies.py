"""`--copies`, torch-free: the loading loop, the slope of memory over the loads, what fits."""
from __future__ import annotations

import pytest

from workloads.config import WorkloadConfig
from workloads.copies import HEADROOM, MAX_COPIES, LoadedCopies, load_copies, parse_copies, slope

MB = 1 << 20


class Memory:
    """A device whose memory grows by `per_copy` per load (plus `first_extra` on the first one)."""

    def __init__(self, total, per_copy, base=100 * MB, first_extra=0, refuse_after=None):
        self.total, self.per_copy, self.used, self.first_extra = total, per_copy, base, first_extra
        self.refuse_after = refuse_after
        self.loads = 0

    def load(self, i):
        if self.refuse_after is not None and self.loads >= self.refuse_after:
            raise MemoryError("out of memory")
        self.used += self.per_copy + (self.first_extra if self.loads == 0 else 0)
        self.loads += 1
        return f"copy-{i}"

    def free(self):
        return self.total - self.used


def test_bytes_per_copy_is_the_slope_not_the_first_load():
    device = Memory(total=10_000 * MB, per_copy=50 * MB, first_extra=300 * MB)  # a first load that pays start-up
    loaded = load_copies(device.load, 4, measure=lambda: device.used, total=device.total)
    assert loaded.loaded == ["copy-0", "copy-1", "copy-2", "copy-3"] and loaded.stopped == ""
    assert len(loaded.memory_after_each_load) == 4
    assert loaded.bytes_per_copy == 50 * MB  # the first copy alone would say 350 MB
    assert loaded.copies_fit == (10_000 - 100) // 50


def test_one_copy_is_measured_against_the_memory_before_it():
    device = Memory(total=1000 * MB, per_copy=30 * MB)
    loaded = load_copies(device.load, 1, measure=lambda: device.used, total=device.total)
    assert loaded.bytes_per_copy == 30 * MB
    assert loaded.ready_fields("process resident")["memory_before_copies"] == 100 * MB


def test_max_stops_before_the_next_copy_would_eat_the_headroom():
    device = Memory(total=1000 * MB, per_copy=100 * MB)
    loaded = load_copies(device.load, None, measure=lambda: device.used, free=device.free, total=device.total)
    # 100 MB before, 100 MB per copy; the next copy must leave HEADROOM (100 MB) of the 1000 free.
    assert len(loaded.loaded) == 8 and device.free() - 100 * MB < HEADROOM * device.total
    assert "less than 10% of memory free" in loaded.stopped


def test_max_stops_when_the_backend_refuses_a_copy_and_keeps_the_loaded_ones():
    device = Memory(total=10**15, per_copy=MB, refuse_after=3)
    loaded = load_copies(device.load, None)  # nothing measured (Neuron in the child): refusal ends it
    assert loaded.loaded == ["copy-0", "copy-1", "copy-2"] and "copy 4 did not load: out of memory" in loaded.stopped
    assert loaded.bytes_per_copy is None and loaded.ready_fields("")["memory_source"] == ""


def test_max_never_loads_more_than_the_cap():
    device = Memory(total=10**15, per_copy=1)
    assert len(load_copies(device.load, None).loaded) == MAX_COPIES


def test_a_count_cut_short_by_out_of_memory_keeps_what_loaded():
    device = Memory(total=10**15, per_copy=MB, refuse_after=2)
    loaded = load_copies(device.load, 5, measure=lambda: device.used)
    assert len(loaded.loaded) == 2 and loaded.stopped.startswith("copy 3 did not load")


def test_a_first_copy_that_fails_or_a_failure_that_is_not_memory_raises():
    with pytest.raises(MemoryError):
        load_copies(Memory(total=1, per_copy=1, refuse_after=0).load, 3)

    def broken(i):
        if i == 1:
            raise ValueError("corrupt artifact")
        return i
    with pytest.raises(ValueError, match="corrupt"):
        load_copies(broken, 3)


def test_slope_and_what_fits_without_enough_points():
    assert slope([(1, 10), (2, 30), (3, 50)]) == pytest.approx(20)
    assert slope([(1, 10)]) is None and slope([(2, 1), (2, 5)]) is None
    assert LoadedCopies(loaded=[1]).copies_fit is None


@pytest.mark.parametrize("text, words", [("0", "between 1 and 256"), ("-2", "between 1 and 256"),
                                         ("257", "between 1 and 256"), ("many", "whole number or max")])
def test_bad_copy_counts_are_one_line(text, words):
    with pytest.raises(ValueError, match=words):
        parse_copies(text)
    (problem,) = WorkloadConfig(copies=text).value_problems()
    assert words in problem


def test_copies_and_pipeline_mode_do_not_combine():
    assert parse_copies("MAX") is None and parse_copies("3") == 3
    (problem,) = WorkloadConfig(copies="2", mode="pipeline").validate()
    assert "pipeline mode" in problem
