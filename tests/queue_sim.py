"""A simulated service for the tune search: a single-server FIFO queue with Poisson arrivals.

Discrete-event (Lindley's recursion), seeded, in simulated time: no wall clock anywhere. With
exponential service times (M/M/1) the sojourn time is exponential with rate mu - lambda, so the
highest arrival rate whose q-th percentile stays within a bound b is known in closed form:
lambda* = mu - ln(1 / (1 - q)) / b.
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass

from neurontui.tune.search import StepResult, is_saturated


def mm1_knee(service_rate: float, percentile: float, bound_seconds: float) -> float:
    """The exact M/M/1 arrival rate at which the sojourn time's percentile equals the bound."""
    return service_rate - math.log(1 / (1 - percentile / 100)) / bound_seconds


def nearest_rank(sorted_values: list[float], percentile: float) -> float:
    rank = max(1, math.ceil(percentile / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


@dataclass
class QueueService:
    """One replica serving requests of `batch` samples in `service_seconds` each (exponential
    with that mean when `exponential`, else exactly that long)."""

    service_seconds: float
    percentile: float
    batch: int = 1
    exponential: bool = True
    step_seconds: float = 100.0  # simulated seconds of load per step
    seed: int = 1
    steps_run: int = 0

    def _service(self, rng: random.Random) -> float:
        return rng.expovariate(1 / self.service_seconds) if self.exponential else self.service_seconds

    def server_step(self, rate: float, seconds_left: float | None = None) -> StepResult:
        self.steps_run += 1
        rng = random.Random(f"{self.seed}:{rate!r}")
        arrival = departure = 0.0
        sojourns = []
        arrivals = 0
        while True:
            arrival += rng.expovariate(rate)
            if arrival > self.step_seconds:
                break
            arrivals += 1
            departure = max(departure, arrival) + self._service(rng)
            if departure <= self.step_seconds:  # what finished while measured; the rest is still queued
                sojourns.append(departure - arrival)
        sojourns.sort()
        completed_rate = len(sojourns) / self.step_seconds
        latency = nearest_rank(sojourns, self.percentile) if sojourns else None
        return StepResult(rate=rate, throughput=completed_rate * self.batch, latency=latency,
                          saturated=is_saturated(arrivals / self.step_seconds, completed_rate),
                          seconds=self.step_seconds, completed=len(sojourns) * self.batch,
                          percentiles={"p50": nearest_rank(sojourns, 50) if sojourns else None})

    def offline_step(self, seconds_left: float | None = None) -> StepResult:
        """Requests back to back: the replica never idles."""
        self.steps_run += 1
        rng = random.Random(f"{self.seed}:offline")
        busy, done = 0.0, 0
        while True:
            busy += self._service(rng)
            if busy > self.step_seconds:
                break
            done += 1
        rate = done / self.step_seconds
        return StepResult(rate=rate, throughput=rate * self.batch, latency=None, saturated=True,
                          seconds=self.step_seconds, completed=done * self.batch)
