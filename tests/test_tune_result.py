"""The tune result document (docs/tune-schema.json) and its hints, from tunes of simulated queues
whose knees are known exactly."""
from __future__ import annotations

import json
import re

import jsonschema
import pytest

from neurontui.format import format_bound
from neurontui.tune.cost import Price, dollars_per_million
from neurontui.tune.decide import Point, run_tune
from neurontui.tune.hints import tune_hints
from neurontui.tune.peaks import Device
from neurontui.tune.result import TuneContext, tune_document
from neurontui.tune.search import Budget
from neurontui.tune.slo import parse_slo
from tests.conftest import ROOT
from tests.queue_sim import QueueService, mm1_knee

SCHEMA = json.loads((ROOT / "docs" / "tune-schema.json").read_text())
P99_15MS = parse_slo("p99=15ms")


def tune(services, slo=P99_15MS, budget=Budget()):
    return run_tune(list(services), lambda p, left: services[p].offline_step(left),
                    lambda p, rate, left: services[p].server_step(rate, left), slo, budget)


def single_and_dp():
    """single batch 1: 1 ms a request; dp batch 4: 4 samples in 1.5 ms (M/M/1 each)."""
    return {Point("single", 1): QueueService(0.001, 99.0, step_seconds=20.0),
            Point("dp", 4): QueueService(0.0015, 99.0, batch=4, step_seconds=20.0, seed=3)}


def test_the_winner_hint_says_how_many_times_single_s_rate_it_serves_within_the_bound():
    result = tune(single_and_dp())
    (line,) = [h for h in tune_hints(result) if "single's rate" in h]
    match = re.fullmatch(r"dp batch 4 serves ([0-9.]+)x single's rate within p99 15 ms", line)
    exact = 4 * mm1_knee(1 / 0.0015, 99.0, 0.015) / mm1_knee(1 / 0.001, 99.0, 0.015)
    assert match and float(match[1]) == pytest.approx(exact, rel=0.1)


def test_a_point_that_never_meets_the_bound_says_its_floor():
    services = {Point("single", 1): QueueService(0.003, 99.0, exponential=False, step_seconds=20.0)}
    result = tune(services, slo=parse_slo("p99=2ms"))
    hints = tune_hints(result, "the GPU")
    assert hints[0].startswith("no configuration meets p99 2 ms; the lowest p99 measured is ")
    (line,) = [h for h in hints if "never meets" in h]
    match = re.fullmatch(r"the GPU never meets p99 2 ms at batch 1: its floor is ([0-9.]+) ms", line)
    assert match and float(match[1]) >= 3.0  # no request is quicker than its 3 ms of service


def test_a_bound_looser_than_the_queue_ever_gets_is_limited_by_throughput():
    services = {Point("dp", 2): QueueService(0.001, 99.0, batch=2, exponential=False, step_seconds=20.0)}
    result = tune(services, slo=parse_slo("p99=1s"))
    assert any("holds up to the offline maximum" in h and "throughput, not latency, is the limit" in h
               for h in tune_hints(result))


def test_a_short_budget_is_said_and_marked_in_the_document():
    result = tune(single_and_dp(), budget=Budget(seconds=120.0))
    doc = tune_document(result, TuneContext("cnn", "cpu", "fp32"), Budget(seconds=120.0))
    assert doc["budget"]["short"] and doc["budget"]["spent_seconds"] <= 120.0
    assert any(h.startswith("the budget ran out:") and "raise --budget" in h for h in doc["hints"])
    assert any(p["budget_short"] for p in doc["points"])


def test_the_document_follows_its_schema_and_each_figure_is_the_step_s_own():
    result = tune(single_and_dp())
    price = Price(3.6, "--price-per-hour")
    context = TuneContext("cnn", "cpu", "fp32", Device("cpu", units=2), flops_per_sample=13_968_928, price=price)
    doc = json.loads(json.dumps(tune_document(result, context, Budget()), allow_nan=False))
    jsonschema.validate(doc, SCHEMA)
    rows = [row for point in doc["points"] for row in point["steps"]]
    assert len(rows) == result.spent_steps
    assert [r["scenario"] for r in doc["points"][0]["steps"]][:2] == ["offline", "server"]
    for row in rows:
        assert row["dollars_per_million"] == pytest.approx(dollars_per_million(3.6, row["throughput"]))
        assert row["joules"] is None  # the simulated queue has no energy counter
    winner = doc["winner"]
    assert winner in rows and winner["verdict"] == "within"
    assert (winner["mode"], winner["batch"]) == (result.winner.point.mode, result.winner.point.batch)
    assert doc["hints"][0].startswith(f"winner: {result.winner.point.label} at ")
    assert f"(p99 {format_bound(winner['latency_at_bound'])})" in doc["hints"][0]
    # On a frontier, more throughput costs tail latency: both climb together.
    frontier = [(f["throughput"], f["latency_at_bound"]) for f in doc["frontier"]]
    assert len(frontier) >= 2 and frontier == sorted(frontier)
    assert all(a[1] < b[1] for a, b in zip(frontier, frontier[1:]))


def test_unknown_price_and_device_are_nulls_with_their_reasons():
    result = tune(single_and_dp())
    doc = tune_document(result, TuneContext("cnn", "cpu", "fp32", price_reason="no price for x9.huge"), Budget())
    jsonschema.validate(doc, SCHEMA)
    assert doc["price"] is None and doc["price_reason"] == "no price for x9.huge"
    assert doc["peak"] is None and doc["peak_reason"] == "device not known"
    assert all(r["dollars_per_million"] is None and r["share_of_peak_reason"] == "device not known"
               for p in doc["points"] for r in p["steps"])
    assert "per million" not in doc["hints"][0]
