"""Soak: does neurontui's memory level off over a long run? Run on demand, not by pytest.

    python3 tests/benchmarks/soak.py [--simulated-minutes 30] [--speed 20] [--window 0.5]
                                     [--max-growth-mb 4] [--skip-rings]

1. In process: a Store fed twice past its ring sizes (history, workload windows, event log);
   tracemalloc shows each ring's size when full and that further inserts add ~nothing.
2. Real processes: `neurontui --headless` replaying a 64-NeuronCore trn1 session (the trn1n
   capture relabelled: 2 runtimes x 32 cores, 32 devices, a new utilization pattern per report,
   1 s periods) at --speed x with --loop, recording everything with --record, plus a live CPU cnn
   workload child; Prometheus /metrics scraped every second from here. The RSS of neurontui and
   of the workload child is sampled every few seconds.

Exit status 1 if, over the second half, the child's RSS grows by more than --max-growth-mb, or
neurontui's by more than --max-growth-mb plus what its history and window rings may still add
by design while not yet full (phase 1's bytes per entry x the entries added before they fill:
the default 30 simulated minutes at 20x are 90 s of wall time and 1800 snapshots, half of the
3600-point history); or if a scrape failed or neurontui did not end cleanly.
To see RSS flatten once every ring is full: --speed 40 --window 0.025 --simulated-minutes 200.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import psutil  # noqa: E402

from neurontui.sources.neuron_report import parse_report  # noqa: E402
from neurontui.store import EVENT_LINES, HISTORY_POINTS, WINDOW_POINTS, Store  # noqa: E402
from workloads.protocol import LatencyHistogram, Window, decode  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from child_runs import workload_child  # noqa: E402

FIXTURE = ROOT / "tests" / "fixtures" / "v2_trn1n_32xlarge_2runtimes.json"
CORES_PER_RUNTIME, DEVICES, DISTINCT_REPORTS = 32, 32, 120
MB = 1024 * 1024


def relabelled_report(k: int) -> dict:
    """Report number k of a 64-core session: runtime r owns cores 32r..32r+31, 1 s periods."""
    report = json.loads(FIXTURE.read_text())
    for r, runtime in enumerate(report["neuron_runtime_data"]):
        runtime["neuron_runtime_tag"] = str(2000 + r)
        runtime["pid"] = 4000 + r
        body = runtime["report"]
        for group in body.values():
            if isinstance(group, dict) and "period" in group:
                group["period"] = 1.0
        in_use = body["neuroncore_counters"]["neuroncores_in_use"]
        template = in_use["0"]
        body["neuroncore_counters"]["neuroncores_in_use"] = {
            str(32 * r + c): dict(template, neuroncore_utilization=((32 * r + c) * 7 + k * 13) % 100)
            for c in range(CORES_PER_RUNTIME)}
        usage = body["memory_used"]["neuron_runtime_used_bytes"]["usage_breakdown"]["neuroncore_memory_usage"]
        core0 = usage["0"]
        usage.clear()
        for c in range(CORES_PER_RUNTIME):
            usage[str(32 * r + c)] = dict(core0, tensors=core0["tensors"] + 4096 * ((k + c) % 50))
    system = report["system_data"]
    for group in system.values():
        if isinstance(group, dict) and "period" in group:
            group["period"] = 1.0
    device0 = system["neuron_hw_counters"]["neuron_devices"][0]
    system["neuron_hw_counters"]["neuron_devices"] = [dict(device0, neuron_device_index=d, mem_ecc_corrected=0)
                                                      for d in range(DEVICES)]
    report["neuron_hardware_info"]["neuron_device_count"] = DEVICES
    return report


# -- phase 1: the rings, in process ------------------------------------------------------------------
def store_rings_are_bounded() -> tuple[bool, dict[str, float]]:
    """(rings stop growing once full, bytes per history point / window / event while filling)."""
    snapshot = parse_report(relabelled_report(0), time=0.0).snapshot
    assert len(snapshot.cores_of("neuroncore")) == 64, "the relabelled report must show 64 NeuronCores"
    hist = LatencyHistogram()
    for i in range(200):
        hist.record(0.0003 * (1 + i / 50))
    line = Window.from_histogram(0.0, 0.5, hist, errors=0, per_core_completed=[100] * 8).to_json()
    inserts = 2 * max(HISTORY_POINTS, WINDOW_POINTS, EVENT_LINES)
    store = Store()
    rings = {
        "history": lambda i: store.publish_snapshot(snapshot),
        "windows": lambda i: store.workload_event(decode(line)),  # a fresh event per line, as the reader makes
        "events": lambda i: store.log("info", "soak", f"event {i}"),
    }
    tracemalloc.start()
    size_when_full, grown = {}, 0
    for name, insert in rings.items():
        before = tracemalloc.get_traced_memory()[0]
        for i in range(inserts):  # twice the ring size: full from half-way on
            insert(i)
        size_when_full[name] = tracemalloc.get_traced_memory()[0] - before
        full = tracemalloc.take_snapshot()
        for i in range(inserts):
            insert(i)
        grown += sum(stat.size_diff for stat in tracemalloc.take_snapshot().compare_to(full, "filename"))
    tracemalloc.stop()
    print(f"phase 1: rings filled by {inserts} inserts each: "
          + ", ".join(f"{name} {size / MB:.1f} MB" for name, size in size_when_full.items())
          + f" (64-core snapshots; windows of a ~110-bucket histogram); {inserts} more of each add "
          f"{grown / 1024:+.1f} KiB (history {len(store.history)}/{HISTORY_POINTS}, "
          f"windows {len(store.workload.windows)}/{WINDOW_POINTS}, events {len(store.events)}/{EVENT_LINES})")
    per_insert = {name: size / min(inserts, ring) for (name, size), ring
                  in zip(size_when_full.items(), (HISTORY_POINTS, WINDOW_POINTS, EVENT_LINES))}
    return abs(grown) < 256 * 1024, per_insert


# -- phase 2: real processes ---------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss(process: psutil.Process | None) -> float | None:
    try:
        return process.memory_info().rss / MB if process else None
    except psutil.Error:
        return None


def samples_total(body: bytes) -> int | None:
    """Snapshots the replay has published so far, from the scraped exposition."""
    match = re.search(rb'^neurontui_source_samples_total\{source="replay"\} (\S+)$', body, re.MULTILINE)
    return int(float(match.group(1))) if match else None


def ring_growth(before: int, after: int, ring: int, per_insert: float) -> float:
    """MB the inserts between two counts add to a ring of `ring` entries (nothing once it is full)."""
    return max(min(after, ring) - min(before, ring), 0) * per_insert / MB


def growth(series: list[float]) -> float:
    """Mean of the last 3 samples minus the mean of the 3 around the middle: the second half's growth."""
    mid = len(series) // 2
    return statistics.fmean(series[-3:]) - statistics.fmean(series[max(mid - 1, 0):mid + 2])


def soak(args: argparse.Namespace, workdir: Path, per_insert: dict[str, float]) -> bool:
    replay = workdir / "trn1-64cores.jsonl"
    replay.write_text("".join(json.dumps(relabelled_report(k), separators=(",", ":")) + "\n"
                              for k in range(DISTINCT_REPORTS)))
    recording = workdir / "recording.jsonl"
    port = free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    argv = [sys.executable, "-m", "neurontui", "--headless", "--model", "cnn", "--backend", "cpu",
            "--warmup", "0.5", "--window", str(args.window), "--monitor", f"replay:{replay}", "--loop", "--replay-speed", str(args.speed),
            "--record", str(recording), "--prometheus-port", str(port), "--cache-dir", str(workdir / "cache")]
    wall = args.simulated_minutes * 60 / args.speed
    print(f"phase 2: {args.simulated_minutes:g} simulated minutes (one snapshot per simulated second) at "
          f"{args.speed:g}x: {wall:.0f} s wall if the replay keeps up; RSS sampled every {args.sample_every:g} s, "
          f"/metrics scraped every 1 s")
    stderr = open(workdir / "stderr.txt", "wb")
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr, env=env,
                            start_new_session=True)
    root = psutil.Process(proc.pid)
    url = f"http://127.0.0.1:{port}/metrics"
    rows, scrapes, failed_scrapes, samples = [], 0, 0, 0
    try:
        deadline = time.monotonic() + 180
        while (child := workload_child(root)) is None or "running:" not in (workdir / "stderr.txt").read_text():
            if time.monotonic() > deadline or proc.poll() is not None:
                print("neurontui did not get the workload running:", (workdir / "stderr.txt").read_text()[-2000:])
                return False
            time.sleep(0.5)
        started = time.monotonic()
        next_sample = started
        first_samples = None
        print(f"{'t (s)':>6} {'neurontui MB':>13} {'child MB':>9} {'recording MB':>13} {'scrape KB':>10} {'snapshots':>9}")
        # until the replay has played the simulated minutes (it may fall behind --speed), at most 3x the wall time
        while (elapsed := time.monotonic() - started) < 3 * wall and (
                first_samples is None or samples - first_samples < args.simulated_minutes * 60):
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    body = response.read()
                scrapes += 1
            except OSError as exc:
                failed_scrapes += 1
                print(f"scrape failed: {exc}")
                body = b""
            samples = samples_total(body) or samples
            first_samples = samples if first_samples is None else first_samples
            if time.monotonic() >= next_sample:
                next_sample += args.sample_every
                row = (elapsed, rss(root), rss(child), recording.stat().st_size / MB if recording.exists() else 0.0,
                       len(body) / 1024, samples)
                rows.append(row)
                print(f"{row[0]:6.0f} {row[1] or 0:13.1f} {row[2] or 0:9.1f} {row[3]:13.1f} {row[4]:10.1f} {row[5]:9d}",
                      flush=True)
            time.sleep(max(0.0, 1.0 - (time.monotonic() - started - elapsed)))
        proc.send_signal(signal.SIGINT)
        code = proc.wait(60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        stderr.close()
    parent = [r[1] for r in rows if r[1] is not None]
    child_rss = [r[2] for r in rows if r[2] is not None]
    parent_growth, child_growth = growth(parent), growth(child_rss)
    middle, last = rows[len(rows) // 2], rows[-1]
    # Rings still filling grow by design: history by one point per snapshot, windows by one per --window.
    filling = (ring_growth(middle[5], last[5], HISTORY_POINTS, per_insert["history"])
               + ring_growth(int(middle[0] / args.window), int(last[0] / args.window), WINDOW_POINTS,
                             per_insert["windows"]))
    bound = args.max_growth_mb + filling
    print(f"second half ({middle[0]:.0f}-{last[0]:.0f} s, snapshots {middle[5]}-{last[5]}): "
          f"neurontui {parent_growth:+.1f} MB (from {parent[len(parent) // 2]:.1f}), "
          f"workload child {child_growth:+.1f} MB (from {child_rss[len(child_rss) // 2]:.1f}), "
          f"recording file {last[3] - middle[3]:+.1f} MB")
    print(f"bound: {args.max_growth_mb:g} MB + {filling:.1f} MB that the history/window rings, not yet full, "
          f"may add by design = {bound:.1f} MB")
    print(f"replayed {(samples - first_samples) / 60:.1f} simulated minutes in {elapsed:.0f} s: "
          f"{(samples - first_samples) / elapsed:.1f}x (asked {args.speed:g}x)")
    print(f"scrapes: {scrapes} ok, {failed_scrapes} failed; neurontui exit status {code}")
    return parent_growth <= bound and child_growth <= args.max_growth_mb and not failed_scrapes and code == 0


# Per-insert ring costs when phase 1 is skipped: what it measured on a 64-core trn1 snapshot.
DEFAULT_PER_INSERT = {"history": 1.9e3, "windows": 12.7e3, "events": 0.2e3}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--simulated-minutes", type=float, default=30.0)
    parser.add_argument("--speed", type=float, default=20.0, help="replay speed (20: 30 minutes in 90 s)")
    parser.add_argument("--window", type=float, default=0.5, help="the workload's window seconds")
    parser.add_argument("--sample-every", type=float, default=3.0, help="seconds between RSS samples")
    parser.add_argument("--max-growth-mb", type=float, default=4.0,
                        help="allowed RSS growth of each process over the second half, beyond what rings "
                             "that are not yet full add by design")
    parser.add_argument("--skip-rings", action="store_true", help="skip phase 1 (use its usual figures)")
    args = parser.parse_args()
    rings_ok, per_insert = (True, DEFAULT_PER_INSERT) if args.skip_rings else store_rings_are_bounded()
    with tempfile.TemporaryDirectory(prefix="neurontui-soak-") as workdir:
        soak_ok = soak(args, Path(workdir), per_insert)
    print("verdict:", "memory levels off" if rings_ok and soak_ok else "FAILED")
    return 0 if rings_ok and soak_ok else 1


if __name__ == "__main__":
    sys.exit(main())
