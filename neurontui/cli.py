"""Command line: flags -> what to run (TUI, --once, --headless/--export, report).

Each path imports only what it needs: --once, --headless and --export never import
Textual, and nothing in `neurontui` imports torch.
"""
from __future__ import annotations

import argparse
import sys

from workloads.config import WorkloadConfig, add_workload_arguments, positive_float

from .args import OneLineParser, monitor_command, monitor_spec, port
from .backend_presence import requested_backend_problem
from .sources import requested_source_problem


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="neurontui",
        description="Run a PyTorch inference workload and watch NeuronCores, GPUs or CPUs serve it.",
        epilog="Compare exports: neurontui report A.json B.json [-o report.md] [--baseline cpu]; "
               "find the best configuration within a latency bound: neurontui tune --model M --slo p99=15ms",
    )
    add_workload_arguments(parser)
    parser.add_argument("--no-workload", action="store_true", help="watch the hardware only (like neuron-top)")

    mon = parser.add_argument_group("telemetry")
    mon.add_argument("--monitor", type=monitor_spec, default="auto", metavar="auto|neuron|host|replay:PATH|none",
                     help="telemetry source (auto: neuron-monitor when present, else psutil/NVML)")
    mon.add_argument("--monitor-cmd", type=monitor_command, default=None, metavar="CMD",
                     help="command that prints neuron-monitor reports (split like a shell, never run by one)")
    mon.add_argument("--monitor-config", default=None, metavar="PATH", help="neuron-monitor config (monitor.conf)")
    mon.add_argument("--interval", type=positive_float, default=1.0, metavar="S", help="host sampling period")
    mon.add_argument("--replay-speed", type=positive_float, default=1.0, metavar="N")
    mon.add_argument("--loop", action="store_true", help="replay: start over at the end")
    mon.add_argument("--record", default=None, metavar="PATH", help="append raw reports and snapshots (JSONL)")

    out = parser.add_argument_group("output")
    out.add_argument("--once", action="store_true", help="print the first complete snapshot and exit")
    out.add_argument("--json", action="store_true", help="with --once: one JSON object")
    out.add_argument("--headless", action="store_true", help="no screen: serve metrics until Ctrl-C or --duration")
    out.add_argument("--export", default=None, metavar="PATH", help="run headless, then write .json/.csv/.md")
    out.add_argument("--sweep", default=None, metavar="SPEC",
                     help='cross product, e.g. "model=cnn,resnet50 mode=single,dp batch=1,4"')

    prom = parser.add_argument_group("prometheus")
    prom.add_argument("--prometheus-addr", default="127.0.0.1", metavar="ADDR")
    prom.add_argument("--prometheus-port", type=port, default=9000, metavar="PORT", help="0 turns it off")
    prom.add_argument("--tls-cert", default=None, metavar="PATH")
    prom.add_argument("--tls-key", default=None, metavar="PATH")
    prom.add_argument("--tls-client-ca", default=None, metavar="PATH", help="require client certificates")
    prom.add_argument("--aws-labels", action="store_true", help="instance labels on every series, as AWS's bridge")
    return parser


def parse(argv: list[str]) -> tuple[argparse.Namespace, WorkloadConfig]:
    parser = build_parser()
    args = parser.parse_args(argv)
    config = WorkloadConfig.from_namespace(args)
    for problem in config.validate():
        parser.error(problem)
    if bool(args.tls_cert) != bool(args.tls_key):
        parser.error("--tls-cert and --tls-key go together")
    if args.tls_client_ca and not args.tls_cert:
        parser.error("--tls-client-ca needs --tls-cert and --tls-key")
    if args.json and not args.once:
        parser.error("--json goes with --once")
    return args, config


def preflight(args: argparse.Namespace, config: WorkloadConfig) -> str | None:
    """Why this run cannot start as asked, in one line, before anything starts: a recording path we
    must not write, a source or backend named explicitly but absent (`auto` falls back quietly)."""
    if args.record:
        from .sources.recorder import check_recording_path

        if problem := check_recording_path(args.record):
            return problem
    return requested_source_problem(args) or (
        None if args.once or args.no_workload else requested_backend_problem(config.backend))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["report"]:
        from .export.compare import main as report_main

        return report_main(argv[1:])
    if argv[:1] == ["tune"]:
        from .tune_run import main as tune_main

        return tune_main(argv[1:])
    args, config = parse(argv)
    problem = preflight(args, config)
    if problem:  # asked for by name and absent or unusable: say so now rather than run without it
        print(f"neurontui: error: {problem}", file=sys.stderr)
        return 2
    if args.once:
        from .once import run_once

        return run_once(args)
    if args.headless or args.export or args.sweep:
        from .headless import run_headless

        return run_headless(args, config)
    from .tui.app import run_tui

    return run_tui(args, config)


if __name__ == "__main__":
    sys.exit(main())
