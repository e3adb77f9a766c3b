"""A scripted workload child: the protocol events of a run with known figures, fast.

Stands in for `python -m workloads` where a test needs figures no real model gives on
demand: thousands of windows in a second, errors in every window, latencies that change
mid-run. It ignores the flags it is started with and speaks the real protocol
(workloads/protocol.py), so the parent's whole reading path is the one a real child meets.

    scripted_workload.py  (SCRIPTED_WINDOWS, SCRIPTED_ERRORS from the environment)
First half of the windows: 10 samples of 1 ms; second half: 10 samples of 10 ms.
"""
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from workloads.protocol import Bye, Hello, LatencyHistogram, Phase, Ready, Window  # noqa: E402

WINDOW_SECONDS = 0.5
SAMPLES_PER_WINDOW = 10


def main() -> int:
    windows = int(os.environ.get("SCRIPTED_WINDOWS", "100"))
    errors = int(os.environ.get("SCRIPTED_ERRORS", "0"))
    out = sys.stdout
    lines = [Hello(pid=os.getpid(), model="cnn", backend="cpu", mode="single").to_json(),
             Ready(params=3_165_826, cores_used=1).to_json(), Phase(phase="running").to_json()]
    start = 1_000_000.0
    for index in range(windows):
        hist = LatencyHistogram()
        hist.record(0.001 if index < windows // 2 else 0.010, SAMPLES_PER_WINDOW)
        lines.append(Window.from_histogram(start, start + WINDOW_SECONDS, hist, errors, [hist.count]).to_json())
        start += WINDOW_SECONDS
    lines.append(Bye(reason="duration", completed=windows * SAMPLES_PER_WINDOW, errors=windows * errors).to_json())
    out.write("\n".join(lines) + "\n")
    out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
