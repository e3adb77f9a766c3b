"""Cost of one neuron-monitor report, raw line -> updated Store, against json.loads alone.

    python3 tests/benchmarks/bench_parse.py [--seconds S]

Uses the trn1n.32xlarge capture (2 runtimes x 32 NeuronCores, 128 vCPUs, ~90 KB).
Timings on a shared machine are noisy: read the ratio, measured in the same run.
"""
import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from neurontui.sources.base import Source  # noqa: E402
from neurontui.sources.neuron_report import parse_report  # noqa: E402
from neurontui.store import Store  # noqa: E402

FIXTURE = ROOT / "tests" / "fixtures" / "v2_trn1n_32xlarge_2runtimes.json"


def per_call_us(functions, seconds, rounds=7, clock=time.perf_counter):
    """Microseconds per call of each function: the best of `rounds` interleaved rounds,
    so that load from other processes hits every candidate alike. With clock=time.thread_time
    it counts CPU time, which a busy machine disturbs less than wall time."""
    calls = {name: 1 for name in functions}
    for name, function in functions.items():  # size a round to about seconds / rounds
        while True:
            started = clock()
            for _ in range(calls[name]):
                function()
            if clock() - started >= seconds / rounds / len(functions):
                break
            calls[name] *= 2
    best = {name: float("inf") for name in functions}
    for _ in range(rounds):
        for name, function in functions.items():
            started = clock()
            for _ in range(calls[name]):
                function()
            best[name] = min(best[name], (clock() - started) / calls[name])
    return {name: value * 1e6 for name, value in best.items()}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=3.0, help="time spent measuring, in all")
    args = parser.parse_args()
    line = json.dumps(json.loads(FIXTURE.read_text()), separators=(",", ":")).encode()
    store = Store()
    source = Source(store)  # publish(): group errors logged once, then the Store update

    def line_to_store():
        source.publish(parse_report(line).snapshot)

    timings = per_call_us({"loads": lambda: json.loads(line), "parse": lambda: parse_report(line),
                           "full": line_to_store}, args.seconds)
    loads, parse, full = timings["loads"], timings["parse"], timings["full"]
    print(f"report: {len(line)} bytes, 2 runtimes x 32 NeuronCores, 128 vCPUs")
    print(f"json.loads alone          {loads:8.0f} us")
    print(f"parse_report              {parse:8.0f} us   {parse / loads:4.2f}x json.loads")
    print(f"raw line -> updated Store {full:8.0f} us   {full / loads:4.2f}x json.loads")
    print(f"at neuron-monitor's 1 s period: {full / 1e4:.3f}% of one core")


if __name__ == "__main__":
    main()
