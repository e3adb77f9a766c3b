"""`neurontui --once [--json]` as a user runs it: a real subprocess."""
import json
import os
import shlex
import subprocess
import sys

import psutil
import pytest

from tests.conftest import FIXTURES, ROOT

TRN1N = FIXTURES / "v2_trn1n_32xlarge_2runtimes.json"

# Run the CLI with torch and Textual made unimportable, and say what got imported.
WITHOUT_TORCH = r"""
import json, sys
class Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "torchvision", "torch_neuron", "torch_neuronx", "textual"):
            raise ImportError(f"blocked import of {name}")
sys.meta_path.insert(0, Blocker())
from neurontui.cli import main
code = main(sys.argv[1:])
loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "textual"))
print(json.dumps({"code": code, "loaded": loaded}), file=sys.stderr)
"""


def run(child_env, *argv, blocked=False):
    command = [sys.executable, "-c", WITHOUT_TORCH] if blocked else [sys.executable, "-m", "neurontui"]
    return subprocess.run([*command, *argv], capture_output=True, text=True, env=child_env, cwd=ROOT, timeout=60)


def test_once_json_shows_this_hosts_vcpus_and_memory(child_env):
    result = run(child_env, "--once", "--json", "--no-workload", "--monitor", "host")
    assert result.returncode == 0, result.stderr
    body = json.loads(result.stdout)
    assert body["schema"] == 1 and body["source"] == "host"
    vcpus = [core for core in body["cores"] if core["kind"] == "vcpu"]
    assert [core["index"] for core in vcpus] == list(range(os.cpu_count()))
    assert all(0.0 <= core["utilization"] <= 1.0 for core in vcpus)
    memory = body["memory"]
    assert memory["host_total_bytes"] == psutil.virtual_memory().total
    assert 0 < memory["host_used_bytes"] < memory["host_total_bytes"]
    assert body["runtimes"] == [] and isinstance(body["errors"], list) and "instance" in body


def test_once_works_without_torch_or_textual(child_env):
    result = run(child_env, "--once", "--json", "--monitor", "host", blocked=True)
    report = json.loads(result.stderr.strip().splitlines()[-1])
    assert report == {"code": 0, "loaded": []}
    assert len([c for c in json.loads(result.stdout)["cores"] if c["kind"] == "vcpu"]) == os.cpu_count()


def test_once_json_of_a_trn1n_replay(child_env):
    result = run(child_env, "--once", "--json", "--monitor", f"replay:{TRN1N}")
    assert result.returncode == 0, result.stderr
    body = json.loads(result.stdout)
    neuroncores = [core for core in body["cores"] if core["kind"] == "neuroncore"]
    assert len(neuroncores) == 32
    assert neuroncores[6]["utilization"] == pytest.approx(0.414)
    assert {c["utilization"] for i, c in enumerate(neuroncores) if i != 6} == {0.0}
    assert body["memory"]["device_used_bytes"] == 2 * 3541303936
    assert body["memory"]["device_total_bytes"] == 16 * 32 * 2**30
    first = body["runtimes"][0]
    assert (first["tag"], first["pid"], first["completed"], first["errors_total"]) == ("367", 457402, 2, 2)
    assert first["latency_seconds"] == {} and first["device_memory_bytes"] == 3541303936
    assert body["instance"]["instance_type"] == "trn1n.32xlarge"
    assert any("neuron_runtime_vcpu_usage" in error for error in body["errors"])


def test_once_table_for_people(child_env):
    result = run(child_env, "--once", "--monitor", f"replay:{TRN1N}")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "trn1n.32xlarge" in lines[0]
    assert "NeuronCore ×32" in result.stdout and "vCPU ×128" in result.stdout
    assert "    6:  41%" in result.stdout
    assert any(line.startswith("runtime 367 pid 457402") for line in lines)
    assert "device 6.6 GiB / 512.0 GiB" in result.stdout


def test_contract_once_through_a_fake_neuron_monitor(child_env):
    """Stand-in neuron-monitor (no Neuron hardware here) given with --monitor-cmd."""
    fake = shlex.join([sys.executable, str(ROOT / "tests" / "fake_neuron_monitor.py"), str(FIXTURES / "v1_from_docs.json")])
    result = run(child_env, "--once", "--json", "--monitor-cmd", fake)
    assert result.returncode == 0, result.stderr
    body = json.loads(result.stdout)
    assert body["source"] == "neuron-monitor"
    assert [c["utilization"] for c in body["cores"] if c["kind"] == "neuroncore"] == [0.4201, 0.4202, 0.4203, 0.4204]


@pytest.mark.parametrize("argv,message", [
    (["--monitor", "none"], "--monitor none gives none"),
    # an absent replay file or monitor command is refused before the start (test_cli.py: exit 2)
])
def test_once_without_telemetry_fails_in_one_line(child_env, argv, message):
    result = run(child_env, "--once", "--json", *argv)
    assert result.returncode == 1 and result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1 and message in result.stderr
