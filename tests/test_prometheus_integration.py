"""A real Prometheus server scrapes neurontui and answers queries about it.

Prometheus (Debian package `prometheus`, installed by .ci/run) runs on loopback with a
temporary config and storage, scraping every second; the test asks its HTTP API.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.conftest import FIXTURES, ROOT
from tests.test_exporter import dashboard_queries, free_port

pytestmark = pytest.mark.slow
TRN1N = FIXTURES / "v2_trn1n_32xlarge_2runtimes.json"


class Prometheus:
    def __init__(self, tmp: Path, target_port: int) -> None:
        binary = shutil.which("prometheus")
        assert binary, "prometheus not found: install the Debian package 'prometheus' (CI's .ci/run does)"
        self.port = free_port()
        config = tmp / "prometheus.yml"
        config.write_text(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
            "scrape_configs:\n  - job_name: neurontui\n"
            f"    static_configs:\n      - targets: ['127.0.0.1:{target_port}']\n")
        self.log = (tmp / "prometheus.log").open("wb")
        self.proc = subprocess.Popen(
            [binary, f"--config.file={config}", f"--storage.tsdb.path={tmp / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{self.port}"],
            stdout=self.log, stderr=subprocess.STDOUT)

    def query(self, promql: str) -> list[dict]:
        url = f"http://127.0.0.1:{self.port}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        with urllib.request.urlopen(url, timeout=5) as response:
            body = json.load(response)
        assert body["status"] == "success", body
        return body["data"]["result"]

    def wait_for(self, promql: str, accept=lambda result: bool(result), timeout: float = 60.0) -> list[dict]:
        """Poll a query until `accept(result)`; fail with what Prometheus last said."""
        deadline = time.monotonic() + timeout
        last: object = None
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"prometheus exited: {self.log_tail()}"
            try:
                last = self.query(promql)
                if accept(last):
                    return last
            except OSError as exc:  # not listening yet
                last = exc
            time.sleep(0.5)
        targets = self._targets()
        pytest.fail(f"{promql}: no acceptable answer in {timeout:.0f} s; last {last!r}; targets {targets}")

    def _targets(self) -> object:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/api/v1/targets", timeout=5) as response:
                return [(t["health"], t["lastError"]) for t in json.load(response)["data"]["activeTargets"]]
        except OSError as exc:
            return exc

    def log_tail(self) -> str:
        self.log.flush()
        return Path(self.log.name).read_bytes()[-2000:].decode(errors="replace")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def values(result: list[dict]) -> dict[tuple, float]:
    return {tuple(sorted(r["metric"].items())): float(r["value"][1]) for r in result}


class Neurontui:
    """`python -m neurontui ...` as a real subprocess, stopped with SIGINT like Ctrl-C."""

    def __init__(self, argv: list[str], env: dict, tmp: Path, python: str) -> None:
        self.log = (tmp / "neurontui.log").open("wb")
        self.proc = subprocess.Popen([python, "-m", "neurontui", *argv], cwd=ROOT, env=env,
                                     stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT)

    def alive(self) -> None:
        assert self.proc.poll() is None, f"neurontui exited with {self.proc.returncode}: {self.output()}"

    def output(self) -> str:
        self.log.flush()
        return Path(self.log.name).read_bytes()[-3000:].decode(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(2)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def test_prometheus_scrapes_headless_replay(tmp_path, child_env, python):
    port = free_port()
    app = Neurontui(["--headless", "--no-workload", "--monitor", f"replay:{TRN1N.relative_to(ROOT)}", "--loop",
                     "--prometheus-port", str(port)], child_env, tmp_path, python)
    prometheus = Prometheus(tmp_path, port)
    try:
        up = prometheus.wait_for('up{job="neurontui"}', lambda r: r and float(r[0]["value"][1]) == 1.0)
        assert up, prometheus.log_tail()
        app.alive()
        util = values(prometheus.wait_for("neuroncore_utilization_ratio", lambda r: len(r) == 64))
        busy = {key: v for key, v in util.items() if v > 0}
        assert len(busy) == 1
        labels = dict(next(iter(busy)))
        assert (labels["runtime_tag"], labels["neuroncore"], next(iter(busy.values()))) == ("367", "6", 0.414)
        # AWS's dashboard queries, unchanged
        by_core = values(prometheus.query("avg by (neuroncore) (neuroncore_utilization_ratio)"))
        assert by_core[(("neuroncore", "6"),)] == pytest.approx(0.207)
        memory = values(prometheus.query('sum by (memory_location) (neuron_runtime_memory_used_bytes)'))
        assert memory[(("memory_location", "neuron_device"),)] == 2 * 3541303936
        info = prometheus.query("instance_info")
        assert info and info[0]["metric"]["instance_type"] == "trn1n.32xlarge"
        # execution_status_total only moves forward while the replay loops
        completed = 'sum(execution_status_total{status_type="completed"})'
        first = float(prometheus.wait_for(completed)[0]["value"][1])
        prometheus.wait_for(completed, lambda r: r and float(r[0]["value"][1]) > first, timeout=30)
        prometheus.wait_for('sum(rate(execution_status_total{status_type="completed"}[15s]))',
                            lambda r: r and float(r[0]["value"][1]) > 0, timeout=30)
        assert float(prometheus.query("neurontui_up")[0]["value"][1]) == 1.0
        # every query of the shipped Grafana dashboard is valid PromQL; the Neuron ones have data
        for query in dashboard_queries():
            result = prometheus.query(query.replace("$instance", ".*"))
            if "neuroncore_utilization_ratio" in query or "execution_status_total" in query:
                assert result, query
        # the prometheus-adapter rule behind the HPA example yields the mean utilization of tag 367's cores
        rule = adapter_rule("neuroncore_utilization")
        series = re.match(r"\w+", rule["seriesQuery"]).group(0)
        query = rule["metricsQuery"].replace("<<.Series>>", series).replace("<<.LabelMatchers>>", 'runtime_tag="367"')
        assert float(prometheus.query(query)[0]["value"][1]) == pytest.approx(0.414 / 32)
        app.alive()
    finally:
        app.stop()
        prometheus.stop()


def adapter_rule(name: str) -> dict:
    text = (ROOT / "deploy" / "kubernetes" / "prometheus-adapter-rules.yaml").read_text()
    config = yaml.safe_load(yaml.safe_load(text)["data"]["config.yaml"])
    return next(rule for rule in config["externalRules"] if rule["name"]["as"] == name)


def test_prometheus_rates_and_quantiles_of_a_live_cpu_workload(tmp_path, child_env, python):
    port = free_port()
    app = Neurontui(["--headless", "--monitor", "host", "--model", "cnn", "--backend", "cpu", "--batch", "1",
                     "--prometheus-port", str(port)], child_env, tmp_path, python)
    prometheus = Prometheus(tmp_path, port)
    try:
        rate = prometheus.wait_for("rate(neurontui_workload_requests_total[5s])",
                                   lambda r: r and float(r[0]["value"][1]) > 0, timeout=180)
        assert float(rate[0]["value"][1]) > 0, app.output()
        p50 = prometheus.wait_for("histogram_quantile(0.5, rate(neurontui_workload_latency_seconds_bucket[5s]))",
                                  lambda r: r and r[0]["value"][1] not in ("NaN", "+Inf"), timeout=60)
        median = float(p50[0]["value"][1])
        # a small CNN at batch 1 on a CPU: somewhere between 50 us and 1 s per inference
        assert 50e-6 <= median <= 1.0, median
        info = prometheus.query("neurontui_workload_info")
        assert info and info[0]["metric"]["model"] == "cnn" and info[0]["metric"]["backend"] == "cpu"
        cores = prometheus.wait_for('neurontui_core_utilization_ratio{kind="vcpu"}')
        assert all(0.0 <= float(r["value"][1]) <= 1.0 for r in cores)
        app.alive()
    finally:
        app.stop()
        prometheus.stop()


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return response.read().decode()


def test_dying_neuron_monitor_shows_in_health_while_the_endpoint_keeps_serving(tmp_path, child_env, python):
    # A stand-in for neuron-monitor (no Neuron hardware here): its first run prints the trn1n
    # report and dies, every restart dies at once.
    marker = tmp_path / "ran-once"
    script = ("import json, pathlib, sys\n"
              f"marker = pathlib.Path({str(marker)!r})\n"
              "if not marker.exists():\n"
              "    marker.touch()\n"
              f"    print(json.dumps(json.load(open({str(TRN1N)!r}))), flush=True)\n"
              "sys.exit(3)\n")
    (tmp_path / "fake_monitor.py").write_text(script)
    port = free_port()
    app = Neurontui(["--headless", "--no-workload", "--monitor", "neuron",
                     "--monitor-cmd", f"{python} {tmp_path / 'fake_monitor.py'}", "--prometheus-port", str(port)],
                     child_env, tmp_path, python)
    try:
        deadline = time.monotonic() + 60
        text = ""
        while time.monotonic() < deadline:
            app.alive()
            try:
                text = scrape(port)
            except OSError:
                time.sleep(0.3)
                continue
            restarts = re.search(r'neurontui_source_restarts_total\{source="neuron-monitor"\} (\S+)', text)
            if restarts and float(restarts.group(1)) >= 2:
                break
            time.sleep(0.3)
        assert 'neurontui_source_up{source="neuron-monitor"} 0.0' in text, text
        assert "neurontui_up 0.0" in text
        assert 'neurontui_source_samples_total{source="neuron-monitor"} 1.0' in text
        # the one report's figures are stale now: left out, not served as if current
        assert "neuroncore_utilization_ratio{" not in text
        app.alive()
    finally:
        app.stop()


def test_headless_exits_nonzero_with_one_line_when_the_port_is_taken(child_env, python, busy_port):
    port = busy_port
    result = subprocess.run([python, "-m", "neurontui", "--headless", "--no-workload", "--monitor", "none",
                             "--prometheus-port", str(port)], cwd=ROOT, env=child_env,
                            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if "in use" in line]
    assert len(lines) == 1 and f"127.0.0.1:{port}" in lines[0], result.stderr
    assert "Traceback" not in result.stderr
