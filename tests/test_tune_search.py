"""The tune search on a simulated service whose knee is known exactly, the bound's parsing,
the budget, the winner and the frontier."""
from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neurontui.tune.decide import (CONFIRM_STEP_DOWN, MAX_CONFIRMATIONS, Point, PointResult, choose_winner,
                                   pareto_frontier, run_tune)
from neurontui.tune.hints import winner_summary
from neurontui.tune.search import (DEFAULT_TOLERANCE, Budget, SearchResult, StepFailed, StepResult, check_budget,
                                   is_saturated, samples_needed, search_peak, verdict)
from neurontui.tune.slo import Slo, TuneUsageError, parse_slo
from tests.queue_sim import QueueService, mm1_knee

SERVICE_SECONDS = 0.001  # M/M/1 at mu = 1000 requests/s


# --- the bound ---------------------------------------------------------------------------------

@pytest.mark.parametrize("text,percentile,seconds", [
    ("p99=15ms", 99.0, 0.015), ("p99.9=2ms", 99.9, 0.002), ("p50=500us", 50.0, 0.0005),
    ("p95=0.2s", 95.0, 0.2), ("p90=1", 90.0, 1.0), ("P99 = 15 ms", 99.0, 0.015),
])
def test_slo_parses_the_percentiles_we_measure_in_base_units(text, percentile, seconds):
    slo = parse_slo(text)
    assert (slo.percentile, slo.bound_seconds) == (percentile, pytest.approx(seconds))


@pytest.mark.parametrize("text,said", [
    ("p99=abc", "not a latency"), ("p42=1ms", "not a percentile we measure"), ("p99=0ms", "positive"),
    ("p99=-3ms", "positive"), ("99=15ms", "expected PERCENTILE=BOUND"), ("p99=15mss", "not a latency"),
    ("p99=", "not a latency"), ("p99=1e999s", "positive"),
])
def test_a_bad_slo_is_one_line_the_cli_can_print(text, said):
    with pytest.raises(TuneUsageError) as caught:
        parse_slo(text)
    message = str(caught.value)
    assert said in message and "\n" not in message and message.startswith("--slo:")
    assert isinstance(caught.value, ValueError)


# --- the search on a queue with a known knee ----------------------------------------------------

@pytest.mark.parametrize("percentile,bound", [(99.0, 0.015), (50.0, 0.002), (95.0, 0.010), (99.9, 0.030)])
def test_search_finds_the_exact_mm1_knee_within_5_percent(percentile, bound):
    service = QueueService(SERVICE_SECONDS, percentile)
    slo = Slo(percentile, bound)
    offline = service.offline_step()
    result = search_peak(service.server_step, slo, Budget(), ceiling_rate=offline.rate)
    knee = mm1_knee(1 / SERVICE_SECONDS, percentile, bound)
    assert result.limit == "latency" and result.converged and not result.budget_short
    assert result.best.rate == pytest.approx(knee, rel=0.05)
    assert verdict(result.best, slo) == "within"
    assert result.ceiling_rate / result.best.rate - 1 <= DEFAULT_TOLERANCE


def test_a_service_slower_than_the_bound_never_meets_it_and_the_floor_is_reported():
    # M/D/1, 3 ms per request, bound p99 2 ms: no arrival rate helps.
    service = QueueService(0.003, 99.0, exponential=False)
    offline = service.offline_step()
    result = search_peak(service.server_step, Slo(99.0, 0.002), Budget(), ceiling_rate=offline.rate)
    assert result.best is None and result.limit == "floor"
    assert result.floor_latency >= 0.003  # a request takes at least its service time
    assert len(result.steps) < 6  # it stops once lower rates cannot help, before trying 1/64 of the ceiling


def test_a_loose_bound_is_limited_by_throughput_at_the_offline_maximum():
    """A bound looser than anything the queue does short of saturation: the offline maximum is
    served and the search says throughput, not latency, is what limits."""
    def measure(rate, seconds_left):
        return StepResult(rate=rate, throughput=rate, latency=0.001, saturated=False, seconds=1.0)

    result = search_peak(measure, Slo(99.0, 1.0), Budget(), ceiling_rate=500.0)
    assert result.limit == "throughput" and result.best.rate == 500.0
    assert [s.rate for s in result.steps] == [250.0, 500.0]


def test_a_saturated_step_counts_as_over_the_bound_whatever_its_percentiles_say():
    """Above 300/s the queue grows, but the requests that finished were quick."""
    def measure(rate, seconds_left):
        completed = min(rate, 300.0)
        return StepResult(rate=rate, throughput=completed, latency=0.001, seconds=1.0,
                          saturated=is_saturated(rate, completed))

    result = search_peak(measure, Slo(99.0, 0.015), Budget(), ceiling_rate=1000.0)
    assert result.best.rate <= 300.0 / (1 - 0.05)
    assert result.best.rate == pytest.approx(300.0 / (1 - 0.05), rel=0.05)
    assert all(s.saturated for s in result.steps if s.rate > result.best.rate)


def test_is_saturated_is_completions_below_arrivals():
    assert is_saturated(100.0, 90.0) and not is_saturated(100.0, 99.0)


def test_against_a_nominal_rate_a_short_step_s_chance_shortfall_is_not_saturation():
    """49/s nominal for 3 s: ~147 arrivals, give or take 12; 45/s completed is chance (seen on this box)."""
    assert is_saturated(49.0, 45.0) and not is_saturated(49.0, 45.0, seconds=3.0)
    assert is_saturated(49.0, 30.0, seconds=3.0)  # 90 of ~147: a queue
    assert is_saturated(1000.0, 900.0, seconds=60.0)  # 60,000 arrivals: chance is 0.4%, the 5% rule holds


@settings(max_examples=60, deadline=None)
@given(service=st.floats(0.0005, 0.02), capacity=st.floats(10.0, 5000.0), ratio=st.floats(1.05, 50.0))
def test_search_brackets_the_knee_of_any_monotone_latency_curve(service, capacity, ratio):
    """latency(rate) = s / (1 - rate / c) below c, saturated above: the knee is c (1 - s / b)."""
    bound = service * ratio

    def measure(rate, seconds_left):
        saturated = rate >= capacity
        latency = None if saturated else service / (1 - rate / capacity)
        return StepResult(rate=rate, throughput=min(rate, capacity), latency=latency, saturated=saturated,
                          seconds=1.0)

    knee = capacity * (1 - service / bound)
    result = search_peak(measure, Slo(99.0, bound), Budget(), ceiling_rate=capacity)
    if knee < capacity / 64:  # out of reach by the search's own rule
        assert result.best is None or result.best.rate <= knee
        return
    assert result.best.rate <= knee <= result.ceiling_rate
    assert result.ceiling_rate / result.best.rate - 1 <= DEFAULT_TOLERANCE


# --- the budget --------------------------------------------------------------------------------

def test_a_short_budget_stops_the_search_and_says_so_keeping_the_best_so_far():
    service = QueueService(SERVICE_SECONDS, 99.0, step_seconds=10.0)
    slo = Slo(99.0, 0.015)
    offline = service.offline_step()
    result = search_peak(service.server_step, slo, Budget(seconds=30.0), ceiling_rate=offline.rate)
    assert result.budget_short and not result.converged
    assert len(result.steps) == 3 == service.steps_run - 1
    assert result.best is not None and verdict(result.best, slo) == "within"


def test_a_step_budget_counts_steps():
    service = QueueService(SERVICE_SECONDS, 99.0, step_seconds=10.0)
    result = search_peak(service.server_step, Slo(99.0, 0.015), Budget(steps=2), ceiling_rate=1000.0)
    assert len(result.steps) == 2 and result.budget_short


@pytest.mark.parametrize("budget,said", [(Budget(seconds=10.0), "10 s cannot search 2 point(s)"),
                                         (Budget(steps=5), "5 steps cannot search 2 point(s)")])
def test_a_budget_too_small_for_the_points_is_refused_in_one_line(budget, said):
    with pytest.raises(TuneUsageError, match=re.escape(said)):
        check_budget(budget, points=2, min_step_seconds=3.0)
    check_budget(Budget(seconds=18.0, steps=6), points=2, min_step_seconds=3.0)


def test_the_budget_is_split_over_the_points_and_what_one_leaves_goes_to_the_next():
    assert Budget(seconds=120.0, steps=30).split(3) == Budget(40.0, 10)
    assert Budget(seconds=120.0).split(2, spent_seconds=20.0) == Budget(50.0, None)


# --- several points: the winner and the frontier ------------------------------------------------

def _services():
    """single batch 1 serves 1 sample per 1 ms request; dp batch 4 serves 4 samples per 2.5 ms."""
    return {Point("single", 1): QueueService(SERVICE_SECONDS, 99.0, batch=1, step_seconds=20.0),
            Point("dp", 4): QueueService(0.0025, 99.0, batch=4, step_seconds=20.0, seed=2)}


def test_run_tune_searches_every_point_and_the_winner_serves_the_most_samples_within_the_bound():
    services = _services()
    seen = []
    result = run_tune(list(services), lambda p, left: services[p].offline_step(left),
                      lambda p, rate, left: services[p].server_step(rate, left), Slo(99.0, 0.015), Budget(),
                      on_step=lambda p, s: seen.append(p))
    by_point = {r.point: r for r in result.points}
    for point, service in services.items():
        knee = mm1_knee(1 / service.service_seconds, 99.0, 0.015)
        assert by_point[point].sustainable.rate == pytest.approx(knee, rel=0.05)
    # dp batch 4: (400 - 307) requests/s x 4 = ~372 samples/s, single: ~693 samples/s.
    assert result.winner.point == Point("single", 1)
    assert len(seen) == result.spent_steps == sum(s.steps_run for s in services.values())
    assert not result.budget_short


def test_run_tune_splits_a_budget_and_reports_it_ran_short():
    services = _services()
    result = run_tune(list(services), lambda p, left: services[p].offline_step(left),
                      lambda p, rate, left: services[p].server_step(rate, left), Slo(99.0, 0.015),
                      Budget(seconds=200.0))
    assert result.budget_short
    assert result.spent_seconds <= 200.0
    assert all(r.search is not None and r.search.steps for r in result.points)  # both points got a share


def test_a_failed_step_skips_its_point_with_the_reason_and_the_tune_goes_on():
    services = _services()

    def offline(point, left):
        if point.mode == "dp":
            raise StepFailed("out of memory at batch 4")
        return services[point].offline_step(left)

    result = run_tune(list(services), offline, lambda p, rate, left: services[p].server_step(rate, left),
                      Slo(99.0, 0.015), Budget())
    assert result.points[1].skipped == "out of memory at batch 4" and result.points[1].search is None
    assert result.winner.point == Point("single", 1)


def test_the_time_a_failed_step_took_counts_against_the_budget_of_the_points_after_it():
    services = _services()
    shares = []

    def offline(point, left):
        shares.append(left)
        if point.mode == "single":
            raise StepFailed("the child crashed: signal 9", seconds=30.0)
        return services[point].offline_step(left)

    result = run_tune(list(services), offline, lambda p, rate, left: services[p].server_step(rate, left),
                      Slo(99.0, 0.015), Budget(seconds=200.0))
    assert shares[:2] == [100.0, 170.0]  # the second point gets what is left after the failed 30 s
    assert result.spent_seconds >= 30.0


def test_a_step_failing_mid_search_keeps_what_the_point_had_found_and_its_cost():
    services = _services()
    runs = []

    def server(point, rate, left):
        if point.mode == "single" and len(runs) == 2:
            raise StepFailed("the child crashed: signal 9")
        runs.append(rate)
        return services[point].server_step(rate, left)

    result = run_tune(list(services), lambda p, left: services[p].offline_step(left), server, Slo(99.0, 0.015),
                      Budget())
    single = result.points[0]
    assert single.skipped == "the child crashed: signal 9" and len(single.search.steps) == 2
    assert single.search.limit == "unknown" and single.sustainable is not None
    assert result.spent_seconds == sum(s.seconds for r in result.points for s in [r.offline, *r.search.steps])


def _step(throughput, latency, saturated=False):
    return StepResult(rate=throughput, throughput=throughput, latency=latency, saturated=saturated, seconds=1.0)


def _point_result(point, *steps, best=None):
    return PointResult(point, search=SearchResult(list(steps), best, None, "latency", True, False))


def test_the_frontier_keeps_only_steps_nothing_beats_on_both_throughput_and_latency():
    a, b = Point("single", 1), Point("dp", 4)
    fast, slow_small, busy, dominated, saturated = (_step(100, 0.002), _step(50, 0.003), _step(400, 0.012),
                                                    _step(300, 0.013), _step(900, 0.001, saturated=True))
    frontier = pareto_frontier([_point_result(a, fast, slow_small), _point_result(b, busy, dominated, saturated)],
                               Slo(99.0, 0.015))
    assert frontier == [(a, fast), (b, busy)]


def test_a_near_tie_in_throughput_goes_to_the_lower_tail_latency():
    a, b, c = Point("single", 1), Point("dp", 4), Point("dp", 8)
    results = [_point_result(a, best=_step(100, 0.002)), _point_result(b, best=_step(1000, 0.012)),
               _point_result(c, best=_step(1010, 0.014)), PointResult(Point("pipeline", 1), skipped="failed")]
    assert choose_winner(results).point == b
    assert choose_winner([PointResult(a, skipped="failed")]) is None


def test_a_step_needs_enough_samples_beyond_the_percentile_to_trust_it():
    needed = {q: samples_needed(Slo(q, 0.01)) for q in (50.0, 99.0, 99.9)}
    assert needed == {50.0: 40, 99.0: 2000, 99.9: 20000}  # 20 samples beyond each percentile


def test_a_latency_that_rises_as_the_rate_falls_is_noise_not_a_floor():
    """A busy host's spike at 250/s: halving the rate again must still be tried (and meets the bound)."""
    latencies = {500.0: 0.030, 250.0: 0.080, 125.0: 0.010}

    def measure(rate, seconds_left):
        latency = latencies.get(rate, 0.010 if rate < 250 else 0.030)
        return StepResult(rate=rate, throughput=rate, latency=latency, saturated=False, seconds=1.0)

    result = search_peak(measure, Slo(99.0, 0.015), Budget(), ceiling_rate=1000.0)
    assert result.limit == "latency" and result.best is not None and result.best.rate >= 125.0


def test_without_an_offline_maximum_the_search_doubles_from_the_start_rate_and_stops_somewhere():
    def measure(rate, seconds_left):  # a service that is never over the bound
        return StepResult(rate=rate, throughput=rate, latency=0.001, saturated=False, seconds=1.0)

    result = search_peak(measure, Slo(99.0, 0.015), Budget(), start_rate=10.0)
    assert result.limit == "unknown" and result.best.rate == 10.0 * 2 ** 20
    service = QueueService(SERVICE_SECONDS, 99.0)
    found = search_peak(service.server_step, Slo(99.0, 0.015), Budget(), start_rate=50.0)
    assert found.best.rate == pytest.approx(mm1_knee(1 / SERVICE_SECONDS, 99.0, 0.015), rel=0.05)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 50), st.integers(1, 50), st.booleans()), min_size=1, max_size=12))
def test_every_step_off_the_frontier_is_beaten_by_one_on_it(measured):
    steps = [_step(float(throughput), latency / 1000, saturated) for throughput, latency, saturated in measured]
    frontier = [s for _, s in pareto_frontier([_point_result(Point("dp", 1), *steps)], Slo(99.0, 0.025))]
    candidates = [s for s in steps if not s.saturated]
    for step in candidates:
        beaten = any(other.throughput >= step.throughput and other.latency <= step.latency
                     and (other.throughput, other.latency) != (step.throughput, step.latency) for other in frontier)
        assert (step in frontier) != beaten
    assert not any(s.saturated for s in frontier)


# --- the winner's confirmation ----------------------------------------------------------------------

def test_the_winner_is_confirmed_by_a_longer_run_from_the_budget_set_aside_for_it():
    services = _services()
    confirmations = []

    def confirm(point, rate, left):
        confirmations.append((point, rate, left))
        return services[point].server_step(rate, left)

    result = run_tune(list(services), lambda p, left: services[p].offline_step(left),
                      lambda p, rate, left: services[p].server_step(rate, left), Slo(99.0, 0.015),
                      Budget(seconds=400.0), measure_confirm=confirm, confirm_seconds=60.0)
    winner = result.winner
    ((point, rate, left),) = confirmations
    assert point == winner.point and rate == winner.search.best.rate
    searched = sum(s.seconds for r in result.points for s in [r.offline, *r.search.steps])
    assert searched <= 340.0 and left == pytest.approx(400.0 - searched)  # the points left the 60 s alone
    assert winner.confirmed is winner.confirmations[0] and winner.sustainable is winner.confirmed
    assert result.spent_steps == sum(s.steps_run for s in services.values())


def test_a_confirmation_that_misses_steps_the_rate_down_until_the_bound_holds():
    services = _services()
    # The longer run meets a slower service than the search steps did (a busier host, a colder cache).
    truth = QueueService(1.15 * SERVICE_SECONDS, 99.0, step_seconds=20.0)
    result = run_tune(list(services), lambda p, left: services[p].offline_step(left),
                      lambda p, rate, left: services[p].server_step(rate, left), Slo(99.0, 0.015), Budget(),
                      measure_confirm=lambda p, rate, left: truth.server_step(rate, left))
    winner = result.winner
    slo = Slo(99.0, 0.015)
    rates = [s.rate for s in winner.confirmations]
    assert len(rates) >= 2 and verdict(winner.confirmations[0], slo) == "over"
    assert rates[1] == pytest.approx(rates[0] * CONFIRM_STEP_DOWN)
    assert winner.confirmed is winner.confirmations[-1] and verdict(winner.confirmed, slo) == "within"
    assert winner.confirmed.rate <= mm1_knee(1 / truth.service_seconds, 99.0, 0.015) * 1.05
    assert "confirmed over" in winner_summary(result)


def test_a_winner_no_confirmation_holds_is_reported_unconfirmed():
    services = _services()

    def always_over(point, rate, left):
        return StepResult(rate=rate, throughput=rate, latency=1.0, saturated=False, seconds=10.0)

    result = run_tune(list(services), lambda p, left: services[p].offline_step(left),
                      lambda p, rate, left: services[p].server_step(rate, left), Slo(99.0, 0.015), Budget(),
                      measure_confirm=always_over)
    winner = result.winner
    assert winner.confirmed is None and len(winner.confirmations) == MAX_CONFIRMATIONS
    assert winner.sustainable is winner.search.best
    assert "not confirmed: 3 longer run(s) missed p99 15 ms" in winner_summary(result)
