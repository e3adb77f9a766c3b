"""Bucketed variable-length BERT against padding every request to the largest length, same run.

    python3 tests/benchmarks/bench_buckets.py [--seconds 10] [--rounds 2] [--mix uniform:16-128]
        [--buckets 32,64,128] [--backend cpu]

Both runs draw the same seeded length mix (--seq-len-dist); one pads every request to the
largest bucket (--buckets LARGEST, today's behaviour), the other to the smallest of --buckets.
Runs alternate within a round so drift hits them alike; the throughput ratio uses medians.
Printed: the padding ratio each run measured next to the one workloads.buckets.padding_ratio
predicts from the mix alone, and the bucketed/padded throughput ratio.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from child_runs import run_workload  # noqa: E402

from workloads.buckets import padding_ratio, parse_buckets, parse_seq_len_dist  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--mix", default="uniform:16-128")
    parser.add_argument("--buckets", default="32,64,128")
    parser.add_argument("--backend", default="cpu")
    args = parser.parse_args()
    buckets = parse_buckets(args.buckets)
    sets = {"padded": str(buckets[-1]), "bucketed": args.buckets}
    mix = parse_seq_len_dist(args.mix)
    results: dict[str, list[dict]] = {name: [] for name in sets}
    with tempfile.TemporaryDirectory() as cache_dir:
        for _ in range(args.rounds):
            for name, bucket_set in sets.items():
                result = run_workload(["--model", "bert", "--backend", args.backend, "--seq-len-dist", args.mix,
                                       "--buckets", bucket_set, "--duration", str(args.seconds), "--warmup", "2"],
                                      cache_dir, timeout=1800)
                if "error" in result:
                    print(f"{name}: {result['error']}")
                    return 1
                results[name].append(result)
    for name, bucket_set in sets.items():
        measured = statistics.median(r["padding_ratio"] for r in results[name])
        throughput = statistics.median(r["throughput"] for r in results[name])
        predicted = padding_ratio(mix, parse_buckets(bucket_set))
        print(f"{name:>8} buckets {bucket_set:<12} padding {measured:6.1%} (predicted {predicted:6.1%})  "
              f"{throughput:8.2f} samples/s")
    ratio = (statistics.median(r["throughput"] for r in results["bucketed"])
             / statistics.median(r["throughput"] for r in results["padded"]))
    print(f"throughput bucketed / padded: {ratio:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
