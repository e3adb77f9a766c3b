"""A stand-in for `neuron-monitor` (no Neuron hardware here): prints fixture reports, then dies.

    python tests/fake_neuron_monitor.py [--count N] [--interval S] [--exit-code C]
        [--hang] [--garbage] [--pad-bytes B] [FIXTURE ...]

Each FIXTURE (default: the trn1n capture) is printed as one JSON line, in turn, every
`--interval` seconds; after `--count` reports (0: never) it exits with `--exit-code`, or with `--hang`
goes silent without exiting (so only a parent-death signal can end it).
`--garbage` prints a non-JSON line before each report; `--pad-bytes` adds a key of that
many bytes to each report (for line-length tests).
"""
import argparse
import json
import sys
import time
from pathlib import Path

DEFAULT = Path(__file__).resolve().parent / "fixtures" / "v2_trn1n_32xlarge_2runtimes.json"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("fixtures", nargs="*", default=[str(DEFAULT)])
    parser.add_argument("--count", type=int, default=3)
    parser.add_argument("--interval", type=float, default=0.1)
    parser.add_argument("--exit-code", type=int, default=3)
    parser.add_argument("--hang", action="store_true")
    parser.add_argument("--garbage", action="store_true")
    parser.add_argument("--pad-bytes", type=int, default=0)
    args = parser.parse_args()
    reports = [json.loads(Path(path).read_text()) for path in args.fixtures]
    if args.pad_bytes:
        for report in reports:
            report["padding"] = "x" * args.pad_bytes
    lines = [json.dumps(report, separators=(",", ":")) + "\n" for report in reports]
    printed = 0
    while args.count == 0 or printed < args.count:
        if args.garbage:
            sys.stdout.write("\x00not json {\n")
        sys.stdout.write(lines[printed % len(lines)])
        sys.stdout.flush()
        printed += 1
        time.sleep(args.interval)
    while args.hang:
        time.sleep(1)
    print("fake neuron-monitor: done", file=sys.stderr)
    return args.exit_code


if __name__ == "__main__":
    sys.exit(main())
