"""The CUDA backend on a real NVIDIA GPU: every model, single and dp, fp32 and bf16, plus the two
figures the reference table sets as targets (bf16 big-batch throughput, CUDA-graph batch-1 latency).

    PYTHONPATH=. python3 tests/benchmarks/gpu_check.py [--seconds 2] [--budget 320] [--models ...]

Every run goes through the real `python -m workloads` child, as the dashboard starts it. Prints
a table next to the H200 rows of reference/models-and-baselines.md (plain PyTorch loops, p50)
and writes JSON to $OUT/gpu_check.json when OUT is set (or --json PATH). Runs are ordered by
importance and skipped, with a note, once --budget seconds are spent. Needs torch with CUDA;
textual is not needed. Exits 2 with one line when there is no GPU.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from child_runs import run_workload  # noqa: E402

# H200, torch 2.11, plain PyTorch loops (reference/models-and-baselines.md).
REFERENCE = {
    "cnn": {"eager_fp32_bs1_ms": 0.184, "graph_bf16_bs1_ms": 0.062, "big_bf16_per_s": 2.30e6, "big_batch": 4096},
    "resnet50": {"eager_fp32_bs1_ms": 4.37, "graph_bf16_bs1_ms": 0.90, "big_bf16_per_s": 15288, "big_batch": 256},
    "bert": {"eager_fp32_bs1_ms": 4.60, "graph_bf16_bs1_ms": 0.77, "big_bf16_per_s": 18010, "big_batch": 256},
    "craft": {"eager_fp32_bs1_ms": 6.51, "graph_bf16_bs1_ms": 2.96, "big_bf16_per_s": 382, "big_batch": 8},
}
CONVOLUTIONAL = {"cnn", "resnet50", "craft"}
SIZES = {"bert": ["--seq-len", "128"], "craft": ["--image-size", "800"]}


def plan(models: list[str]) -> list[tuple[str, str, list[str], str | None]]:
    """(model, label, flags, reference key) in order of importance: the target figures first."""
    runs = []
    for model in models:
        ref = REFERENCE[model]
        big = ["--precision", "bf16", "--batch", str(ref["big_batch"]), "--scenario", "offline"]
        if model in CONVOLUTIONAL:
            big.append("--channels-last")
        graphs = ["--precision", "bf16", "--cuda-graphs"] + (["--channels-last"] if model in CONVOLUTIONAL else [])
        runs.append((model, f"cuda-graphs bf16{' channels-last' if model in CONVOLUTIONAL else ''} bs1 p50", graphs,
                     "graph_bf16_bs1_ms"))
        runs.append((model, f"bf16{' channels-last' if model in CONVOLUTIONAL else ''} bs{ref['big_batch']} per s",
                     big, "big_bf16_per_s"))
        if model in CONVOLUTIONAL:  # at batch 1 NCHW kernels may beat channels-last: measure both layouts
            runs.append((model, "cuda-graphs bf16 NCHW bs1 p50", ["--precision", "bf16", "--cuda-graphs"],
                         "graph_bf16_bs1_ms"))
    for model in models:
        for mode in ("single", "dp"):
            for precision in ("fp32", "bf16"):
                flags = ["--mode", mode, "--precision", precision]
                if mode == "dp":
                    flags += ["--concurrency", "4"]
                key = "eager_fp32_bs1_ms" if (mode, precision) == ("single", "fp32") else None
                runs.append((model, f"{mode} {precision} bs1{' c4' if mode == 'dp' else ''}", flags, key))
    return runs


def figure(result: dict, key: str | None) -> float | None:
    if "throughput" not in result:
        return None
    if key and key.endswith("_ms"):
        return result["p50"] * 1e3
    return result["throughput"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="measured seconds per run")
    parser.add_argument("--budget", type=float, default=320.0,
                        help="seconds for all runs (the last one may overrun by 20 s)")
    parser.add_argument("--models", default="cnn,resnet50,bert,craft")
    parser.add_argument("--json", default=None, metavar="PATH", help="default: $OUT/gpu_check.json when OUT is set")
    args = parser.parse_args()
    models = args.models.split(",")
    unknown = [m for m in models if m not in REFERENCE]
    if unknown:
        parser.error(f"unknown model(s) {', '.join(unknown)}: choose from {', '.join(REFERENCE)}")

    import torch

    if not torch.cuda.is_available():
        print("gpu_check: no CUDA GPU here (torch.cuda.is_available() is False); run it on a machine with an "
              "NVIDIA GPU and a CUDA build of torch", file=sys.stderr)
        return 2
    device = torch.cuda.get_device_name(0)
    print(f"{device}, torch {torch.__version__}, {args.seconds:g} s per run")
    started, rows = time.monotonic(), []
    header = f"{'model':9} {'run':34} {'ours':>12} {'reference':>12} {'ours/ref':>12}  notes"
    print(header)
    with tempfile.TemporaryDirectory() as cache_dir:
        for model, label, flags, key in plan(models):
            row = {"model": model, "run": label, "flags": flags, "reference_key": key}
            left = args.budget - (time.monotonic() - started)
            if left < 10:
                row["skipped"] = "time budget spent"
            else:
                row["result"] = run_workload(["--model", model, "--backend", "cuda", *SIZES.get(model, []), *flags,
                                              "--duration", str(args.seconds), "--warmup", "1"],
                                             cache_dir, timeout=min(120.0, left + 20))
            rows.append(row)
            print_row(row)
    out_path = args.json or (os.path.join(os.environ["OUT"], "gpu_check.json") if os.environ.get("OUT") else None)
    if out_path:
        with open(out_path, "w", encoding="utf-8") as out:
            json.dump({"device": device, "torch": torch.__version__, "seconds_per_run": args.seconds,
                       "reference": REFERENCE, "runs": rows}, out, indent=1)
        print(f"wrote {out_path}")
    failed = [r for r in rows if "error" in r.get("result", {})]
    print(f"{len(rows) - len(failed)} of {len(rows)} runs without error in {time.monotonic() - started:.0f} s")
    return 1 if failed else 0


def print_row(row: dict) -> None:
    result, key = row.get("result", {}), row["reference_key"]
    latency = bool(key and key.endswith("_ms"))
    show = (lambda v: f"{v:.3f} ms") if latency else (lambda v: f"{v:,.0f}/s")
    ours = figure(result, key)
    ref = REFERENCE[row["model"]].get(key) if key else None
    compared = ""
    if ours is not None and ref:
        beats = ours <= ref if latency else ours >= ref  # lower latency, higher throughput
        compared = f"{ours / ref:.2f} {'beats' if beats else 'misses'}"
    notes = [row.get("skipped") or result.get("error") or ""]
    if key is None and "p50" in result:
        notes.append(f"p50 {result['p50'] * 1e3:.3f} ms")
    if result.get("device_memory_bytes"):
        notes.append(f"device memory {result['device_memory_bytes'] / 2**20:.0f} MiB")
    print(f"{row['model']:9} {row['run']:34} {show(ours) if ours is not None else '-':>12} "
          f"{show(ref) if ref else '':>12} {compared:>12}  {' '.join(n for n in notes if n)}".rstrip())


if __name__ == "__main__":
    sys.exit(main())
