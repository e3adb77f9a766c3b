"""Run `python -m workloads` as the dashboard does and summarise what it reported (for the benchmarks)."""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import psutil  # noqa: E402

from workloads.protocol import Bye, Error, LatencyHistogram, Ready, Window, decode  # noqa: E402


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def workload_child(root: psutil.Process) -> psutil.Process | None:
    """The `python -m workloads` process under `root` (neurontui, or the terminal it runs in), if any."""
    for child in root.children(recursive=True):
        try:
            if "workloads" in child.cmdline():
                return child
        except psutil.Error:
            pass
    return None


def run_workload(args: list[str], cache_dir: str, timeout: float = 300) -> dict:
    """Events of one child run (stdin held open as its lifeline), summarised: throughput over the
    measured windows, merged latency percentiles, ready figures, and the error if it failed."""
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen([sys.executable, "-m", "workloads", *args, "--cache-dir", cache_dir],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, env=child_env(), cwd=ROOT)
        try:
            out, _ = proc.stdout.read(), proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            return {"error": f"timed out after {timeout} s"}
        finally:
            proc.kill()
            proc.stdin.close()
        err.seek(0)
        stderr_tail = err.read().decode(errors="replace").strip().splitlines()[-3:]
    events = [decode(line) for line in out.splitlines() if line.strip()]
    summary: dict = {"exit": proc.returncode}
    errors = [e for e in events if isinstance(e, Error)]
    if errors:
        summary["error"] = f"{errors[0].kind}: {errors[0].message}"
    if proc.returncode and not errors:
        summary["error"] = f"exit {proc.returncode}: {' | '.join(stderr_tail)}"
    ready = next((e for e in events if isinstance(e, Ready)), None)
    if ready:
        summary.update(device=ready.device_name, cores_used=ready.cores_used, compile_s=ready.compile_seconds,
                       load_s=ready.load_seconds, cached=ready.cached, device_memory_bytes=ready.device_memory_bytes)
        summary.update(copies=ready.copies, bytes_per_copy=ready.bytes_per_copy, copies_fit=ready.copies_fit)
    windows = [e for e in events if isinstance(e, Window)]
    if windows:
        hist = LatencyHistogram()
        for w in windows:
            hist.merge(w.histogram())
        seconds = sum(w.duration for w in windows)
        summary.update(completed=hist.count, seconds=seconds, throughput=hist.count / seconds if seconds else 0.0,
                       **{k: v for k, v in hist.summary().items() if k != "count"})
        real = sum(w.real_tokens for w in windows)
        if real:
            summary["padding_ratio"] = sum(w.pad_tokens for w in windows) / real
    bye = next((e for e in events if isinstance(e, Bye)), None)
    summary["reason"] = bye.reason if bye else None
    return summary
