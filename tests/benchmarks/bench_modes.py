"""Parallel modes on this machine's CPUs: dp and pipeline throughput relative to single, same run.

    python3 tests/benchmarks/bench_modes.py [--seconds 4] [--models cnn,resnet50] [--rounds 2]

Batch 1, concurrency 2, single-stream, through the real `python -m workloads` child:
single (one replica on all CPUs; the two requests queue and merge into batches of up to 2),
dp (one pinned worker process per CPU; requests travel over pipes) and pipeline (stages in
pinned workers). Modes alternate within a round so drift hits them alike; ratios use medians.
Then the cost of dp's inter-process hop, from p50 latencies at one request in flight.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from child_runs import run_workload  # noqa: E402

MODES = ("single", "dp", "pipeline")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--models", default="cnn,resnet50")
    args = parser.parse_args()
    print(f"CPUs: {len(os.sched_getaffinity(0))}; batch 1, concurrency 2, single-stream")
    with tempfile.TemporaryDirectory() as cache_dir:
        for model in args.models.split(","):
            results: dict[str, list[dict]] = {mode: [] for mode in MODES}
            for _ in range(args.rounds):
                for mode in MODES:
                    result = run_workload(["--model", model, "--backend", "cpu", "--mode", mode, "--batch", "1",
                                           "--concurrency", "2", "--duration", str(args.seconds),
                                           "--warmup", "1"], cache_dir)
                    if "error" in result:
                        print(f"{model} {mode}: {result['error']}")
                    elif not result.get("completed"):
                        print(f"{model} {mode}: nothing completed in {args.seconds:g} s (machine too busy?)")
                    else:
                        results[mode].append(result)
            base = statistics.median(r["throughput"] for r in results["single"]) if results["single"] else None
            for mode in MODES:
                if not results[mode]:
                    continue
                throughput = statistics.median(r["throughput"] for r in results[mode])
                p50 = statistics.median(r["p50"] for r in results[mode])
                ratio = f"{throughput / base:.2f}x single" if base else ""
                print(f"{model:9} {mode:9} {throughput:9.1f}/s  p50 {p50 * 1e3:8.2f} ms  {ratio}")
            ipc_overhead(model, cache_dir, args.seconds)
    return 0


def ipc_overhead(model: str, cache_dir: str, seconds: float) -> None:
    """What a dp request pays to travel to a worker and back: p50 of dp at one request in flight
    minus p50 of single on one thread (each dp worker runs one thread), same model and batch."""
    common = ["--model", model, "--backend", "cpu", "--batch", "1", "--concurrency", "1",
              "--duration", str(seconds), "--warmup", "1"]
    local = run_workload([*common, "--mode", "single", "--cores", "1"], cache_dir)
    remote = run_workload([*common, "--mode", "dp"], cache_dir)
    if "p50" in local and "p50" in remote:
        print(f"{model:9} dp round trip (dispatch + pipe + copy), p50 difference at 1 in flight: "
              f"{(remote['p50'] - local['p50']) * 1e6:.0f} us on {local['p50'] * 1e3:.2f} ms per call")


if __name__ == "__main__":
    sys.exit(main())
