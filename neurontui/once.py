"""`neurontui --once [--json]`: print the first complete snapshot and exit.

For scripts (`--json`: one object, `Snapshot.to_json_dict()`, versioned by `schema`) and
for checking a parser by eye (a short table). Never starts a workload and never
imports Textual or torch.
"""
from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from typing import TextIO

from workloads.text import clean_text

from .sources import open_source
from .store import Store
from .telemetry import Snapshot

FIRST_SNAPSHOT_TIMEOUT_SECONDS = 15.0  # neuron-monitor's first report can take a few seconds
GIVE_UP_AFTER_FAILURES = 2  # a monitor that cannot start will not start on the third try either
KIND_LABELS = {"neuroncore": "NeuronCore", "vcpu": "vCPU", "gpu": "GPU"}
PER_ROW = 8


def run_once(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    store = Store()
    source = open_source(args, store)
    if source is None:
        print("neurontui: --once needs telemetry; --monitor none gives none", file=sys.stderr)
        return 1
    arrived = threading.Event()
    store.subscribe(lambda what: what == "snapshot" and arrived.set())
    source.start()
    # wall time, not loop turns: under a flood of listener calls each wait() returns late
    deadline = time.monotonic() + max(FIRST_SNAPSHOT_TIMEOUT_SECONDS, 3 * getattr(args, "interval", 1.0))
    try:
        while not arrived.wait(0.05):
            health = store.health.get(source.name)
            failing = health is not None and health.samples == 0 and health.restarts >= GIVE_UP_AFTER_FAILURES
            if source.finished.is_set() or time.monotonic() >= deadline or failing:
                break
    finally:
        source.stop()
    snapshot = store.latest
    if snapshot is None:
        health = store.health.get(source.name)
        reason = health.last_error if health and health.last_error else "no sample arrived"
        print(f"neurontui: no snapshot from {source.name}: {clean_text(reason)}", file=sys.stderr)
        return 1
    snapshot.errors += [problem for problem in source.unavailable if problem not in snapshot.errors]
    if args.json:
        out.write(json.dumps(snapshot.to_json_dict(), allow_nan=False) + "\n")
    else:
        out.write(render_table(snapshot))
    return 0


def render_table(snap: Snapshot) -> str:
    lines = [f"neurontui · {snap.source}" + "".join(
        f" · {snap.instance[key]}" for key in ("instance_type", "instance_name") if snap.instance.get(key))]
    for kind in ("neuroncore", "gpu", "vcpu"):
        cores = snap.cores_of(kind)
        if not cores:
            continue
        known = [c.utilization for c in cores if c.utilization is not None]
        average = f"{sum(known) / len(known):5.1%}" if known else "    ?"
        lines.append(f"{KIND_LABELS[kind]} ×{len(cores)}  average {average}")
        for start in range(0, len(cores), PER_ROW):
            row = cores[start:start + PER_ROW]
            lines.append("  " + "  ".join(f"{c.index:>3}:{_percent(c.utilization)}" for c in row))
    memory = snap.memory
    lines.append("memory  host " + _used_of(memory.host_used_bytes, memory.host_total_bytes)
                 + "  swap " + _used_of(memory.swap_used_bytes, memory.swap_total_bytes)
                 + ("  device " + _used_of(memory.device_used_bytes, memory.device_total_bytes)
                    if memory.device_used_bytes is not None or memory.device_total_bytes is not None else ""))
    for runtime in snap.runtimes:
        latency = runtime.latency_seconds
        lines.append(f"runtime {runtime.key} pid {runtime.pid if runtime.pid is not None else '?'}  "
                     f"cores {len(runtime.cores)}  completed {runtime.completed}  "
                     f"errors {sum(runtime.errors.values())}  "
                     f"p50 {_ms(latency.get('p50'))}  p99 {_ms(latency.get('p99'))}  "
                     f"device {_bytes(runtime.device_memory_bytes)}")
    for error in snap.errors:
        lines.append(f"unreadable: {error}")
    # parsers clean what they read; this also covers any source that does not (a GPU's name)
    return "\n".join(clean_text(line) for line in lines) + "\n"


def _percent(ratio: float | None) -> str:
    return "    ?" if ratio is None else f"{ratio:5.0%}"


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1e3:.2f} ms"


def _bytes(count: int | None) -> str:
    if count is None:
        return "?"
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024:
            return f"{value:.1f} {unit}" if unit != "B" else f"{count} B"
        value /= 1024
    return f"{value:.1f} TiB"


def _used_of(used: int | None, total: int | None) -> str:
    return f"{_bytes(used)} / {_bytes(total)}"
