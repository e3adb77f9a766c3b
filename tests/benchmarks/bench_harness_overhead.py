"""What the harness costs: neurontui --export vs an independent bare PyTorch loop, same run.

    python3 tests/benchmarks/bench_harness_overhead.py [--rounds 3] [--seconds 3] [--threads 1]

Alternates bare loop and harness runs (cnn, batch 1, CPU, single-stream, same thread count)
and prints ratios harness/bare for p50 latency and throughput, per round and best-of-rounds.
Ratios, not times: the machine is shared and absolute figures drift between runs.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def bare(seconds, threads, env):
    out = subprocess.run([sys.executable, str(ROOT / "tests" / "bare_loop.py"), str(seconds), "1", str(threads)],
                         capture_output=True, text=True, env=env, check=True)
    result = json.loads(out.stdout)
    return result["p50"], result["throughput"]


def harness(seconds, threads, env, directory):
    target = os.path.join(directory, "bench.json")
    subprocess.run([sys.executable, "-m", "neurontui", "--export", target, "--model", "cnn", "--backend", "cpu",
                    "--batch", "1", "--cores", str(threads), "--duration", str(seconds), "--monitor", "none"],
                   capture_output=True, text=True, env=env, check=True, cwd=ROOT)
    row = json.loads(Path(target).read_text())["rows"][0]
    return row["latency_p50_seconds"], row["throughput_per_second"]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    rounds = []
    with tempfile.TemporaryDirectory() as directory:
        for n in range(args.rounds):
            b = bare(args.seconds, args.threads, env)
            h = harness(args.seconds, args.threads, env, directory)
            rounds.append((b, h))
            print(f"round {n + 1}: p50 ratio {h[0] / b[0]:.3f}, throughput ratio {h[1] / b[1]:.3f}")
    best_bare_p50 = min(b[0] for b, _ in rounds)
    best_harness_p50 = min(h[0] for _, h in rounds)
    best_bare_rate = max(b[1] for b, _ in rounds)
    best_harness_rate = max(h[1] for _, h in rounds)
    print(f"best of {args.rounds}: harness/bare p50 {best_harness_p50 / best_bare_p50:.3f}, "
          f"throughput {best_harness_rate / best_bare_rate:.3f} (1.000 = no cost; threads {args.threads})")


if __name__ == "__main__":
    main()
