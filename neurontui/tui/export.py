"""`e`: write the current run as an export document (the same writer as `--export`)."""
from __future__ import annotations

import sys
import time
from pathlib import Path

from workloads.config import WorkloadConfig

from ..host_info import describe_host
from ..report import new_document, render, write_atomic
from ..results import TelemetryStats, build_row
from ..store import Store, WorkloadState


def export_path(directory: Path, config: WorkloadConfig, now: float) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
    return directory / f"neurontui-{config.model}-{config.backend}-{config.mode}-b{config.batch}-{stamp}.json"


def verdict(workload: WorkloadState) -> tuple[str, str | None]:
    """The row's status and reason, in the export schema's terms."""
    if workload.state == "crashed":
        error = workload.last_error
        return "failed", error.message if error else f"the workload exited with status {workload.exit_code}"
    if workload.state == "exited":
        return "ok", None
    return "ok", f"exported from the dashboard while {workload.state}: figures so far"


def write_run_export(store: Store, stats: TelemetryStats, config: WorkloadConfig, workload: WorkloadState,
                     directory: Path) -> Path:
    """One row for the run on screen (telemetry from `stats`); raises OSError when it cannot be written."""
    host = describe_host(store)
    document = new_document(host, ["neurontui", *sys.argv[1:]])
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(workload.windows[0].start)) if workload.windows else None
    document["rows"].append(build_row(workload, config, host, stats, *verdict(workload), started))
    document["telemetry"] = stats.summary()
    document["complete"] = True
    path = export_path(directory, config, time.time())
    write_atomic(str(path), render(document, str(path)))
    return path
