#!/usr/bin/env python3
"""Make the README screenshots (SVG) of the main screen:

    python3 scripts/make_screenshots.py [--out screenshots] [--size 120x36] [--no-live]

- neuron-inf1.svg, neuron-trn1.svg: recorded neuron-monitor reports (inf1.xlarge, trn1n.32xlarge)
  through the real parser and Store, with a fixed clock (the same scenes as the snapshot tests);
- cpu-live.svg: a live run of the small CNN on this machine's CPU, telemetry from psutil.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from neurontui.cli import parse  # noqa: E402
from neurontui.sources import open_source  # noqa: E402
from neurontui.store import Store  # noqa: E402
from neurontui.tui import scenes  # noqa: E402
from neurontui.session import Session  # noqa: E402
from neurontui.tui.app import NeuronTUI  # noqa: E402
from neurontui.workload import WorkloadProcess  # noqa: E402

LIVE_WINDOWS = 40  # about 20 s of measured load: the plots have a shape


async def shoot(app: NeuronTUI, size: tuple[int, int], path: Path, ready=lambda: True, timeout: float = 180) -> None:
    async with app.run_test(size=size) as pilot:
        deadline = time.monotonic() + timeout
        while not ready():
            if time.monotonic() > deadline:
                raise SystemExit(f"{path.name}: timed out waiting for the run")
            await pilot.pause(0.5)
        await pilot.pause(0.5)
        app.save_screenshot(filename=path.name, path=str(path.parent))
    print(f"wrote {path}")


def neuron_screens(out: Path, size: tuple[int, int]) -> None:
    os.environ["TZ"] = "UTC"
    time.tzset()
    for name, store in (("neuron-inf1.svg", scenes.inf1_scene()), ("neuron-trn1.svg", scenes.trn1_scene())):
        app = NeuronTUI(Session(store, scenes.scene_config(store), None), host="ip-10-0-0-1", backends=["cpu", "neuron"])
        with scenes.frozen_store_clock():
            asyncio.run(shoot(app, size, out / name))


def live_cpu_screen(out: Path, size: tuple[int, int]) -> None:
    args, config = parse(["--model", "cnn", "--backend", "cpu", "--monitor", "host", "--prometheus-port", "0"])
    store = Store()
    source = open_source(args, store)
    workload = WorkloadProcess(store)
    app = NeuronTUI(Session(store, config, workload), host="cpu-host")
    try:
        if source is not None:
            source.start()
        asyncio.run(shoot(app, size, out / "cpu-live.svg", ready=lambda: len(store.workload.windows) >= LIVE_WINDOWS))
    finally:
        app.shutdown()
        if source is not None:
            source.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "screenshots"))
    parser.add_argument("--size", default="128x42", help="terminal WIDTHxHEIGHT")
    parser.add_argument("--no-live", action="store_true", help="skip the live CPU run")
    options = parser.parse_args()
    width, height = (int(v) for v in options.size.split("x"))
    out = Path(options.out)
    out.mkdir(parents=True, exist_ok=True)
    neuron_screens(out, (width, height))
    if not options.no_live:
        live_cpu_screen(out, (width, height))
    return 0


if __name__ == "__main__":
    sys.exit(main())
