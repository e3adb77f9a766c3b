"""The real `python -m neurontui` command line: a bad flag value is one line on stderr, exit
status 2 and nothing on stdout (a script piping stdout gets no usage dump); --help works."""
import glob
import json
import subprocess
import sys

import pytest

from tests.conftest import ROOT


def neurontui(child_env, *argv, timeout=60):
    return subprocess.run([sys.executable, "-m", "neurontui", *argv], capture_output=True, text=True,
                          env=child_env, cwd=ROOT, stdin=subprocess.DEVNULL, timeout=timeout)


@pytest.mark.parametrize("argv,words", [
    (["--batch", "0"], "--batch: must be at least 1, got 0"),
    (["--batch", "x"], "--batch: expected a whole number, got 'x'"),
    (["--concurrency", "-1"], "--concurrency"),
    (["--model", "bogus"], "invalid choice: 'bogus'"),
    (["--backend", "tpu"], "invalid choice: 'tpu'"),
    (["--precision", "fp8"], "invalid choice: 'fp8'"),
    (["--duration", "-1"], "--duration: must be a positive number"),
    (["--window", "0"], "--window"),
    (["--scenario", "server"], "--scenario server needs --qps"),
    (["--monitor", "bogus"], "expected one of auto, neuron, host, none or replay:PATH, got 'bogus'"),
    (["--monitor", "replay:"], "replay:PATH"),
    (["--interval", "0"], "--interval"),
    (["--prometheus-port", "70000"], "port must be 0..65535, got 70000"),
    (["--prometheus-port", "http"], "expected a port number, got 'http'"),
    (["--tls-cert", "cert.pem"], "--tls-cert and --tls-key go together"),
    (["--tls-key", "key.pem"], "--tls-cert and --tls-key go together"),
    (["--tls-client-ca", "ca.pem"], "--tls-client-ca needs --tls-cert"),
    (["--json"], "--json goes with --once"),
    (["--monitor-cmd", 'neuron-monitor -c "monitor.conf'], "cannot split"),
    (["--monitor-cmd", ""], "empty command"),
    (["--sweep", "batch="], "batch has no values"),
    (["--sweep", "colour=red"], "cannot vary 'colour'"),
    (["--export", "/proc/no/such/dir/out.json", "--model", "cnn"], "does not exist"),
    (["--no-such-flag"], "unrecognized arguments: --no-such-flag"),
    (["--batch"], "expected one argument"),
    # what the workload child would refuse, refused by the parent first
    (["--model", "bert", "--seq-len", "100000"], "--seq-len must be between 1 and 512 for bert"),
    (["--model", "craft", "--image-size", "33"], "multiple of 32 for craft"),
    (["--model", "craft", "--image-size", "16", "--once"], "multiple of 32 for craft"),
    (["--model", "bert", "--channels-last"], "--channels-last is for convolutional models"),
    (["--cuda-graphs", "--backend", "cpu"], "--cuda-graphs needs --backend cuda"),
    (["--cuda-graphs", "--mode", "pipeline"], "--cuda-graphs captures one forward"),
    (["--backend", "neuron", "--precision", "bf16"], "--precision bf16 on Neuron"),
])
def test_a_bad_value_is_one_line_and_exit_2(child_env, argv, words):
    out = neurontui(child_env, *argv)
    assert out.returncode == 2, out
    assert out.stdout == ""
    lines = out.stderr.splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("neurontui") and words in lines[0], lines[0]


def test_report_without_files_is_one_line_and_exit_2(child_env):
    out = neurontui(child_env, "report")
    assert out.returncode == 2 and out.stdout == ""
    assert len(out.stderr.splitlines()) == 1, out.stderr


def test_help_lists_the_flags_and_exits_0(child_env):
    out = neurontui(child_env, "--help")
    assert out.returncode == 0 and out.stderr == ""
    for flag in ("--model", "--backend", "--mode", "--batch", "--monitor", "--monitor-cmd", "--record",
                 "--once", "--headless", "--export", "--sweep", "--prometheus-addr", "--prometheus-port",
                 "--tls-cert", "neurontui report"):
        assert flag in out.stdout, flag


# -- a source or backend asked for by name and absent: one line, exit 2 ---------------------------
def without_neuron_monitor(child_env, tmp_path):
    """PATH holds nothing, so no neuron-monitor (the interpreter is started by its full path)."""
    (tmp_path / "bin").mkdir()
    return dict(child_env, PATH=str(tmp_path / "bin"))


@pytest.mark.parametrize("argv,words", [
    (["--monitor", "neuron", "--once"], "--monitor neuron: neuron-monitor is not on PATH"),
    (["--monitor", "neuron", "--headless", "--no-workload", "--duration", "3"], "neuron-monitor is not on PATH"),
    (["--monitor", "replay:/nonexistent/file.jsonl", "--headless"], "cannot replay /nonexistent/file.jsonl: no such"),
    (["--monitor", "replay:/", "--once", "--json"], "cannot replay /: it is a directory"),
    (["--monitor-cmd", "neurontui-no-such-monitor --flag", "--once"], "cannot run neurontui-no-such-monitor"),
])
def test_an_absent_source_asked_for_by_name_is_one_line_and_exit_2(child_env, tmp_path, argv, words):
    out = neurontui(without_neuron_monitor(child_env, tmp_path), *argv)
    assert out.returncode == 2 and out.stdout == "", out
    assert out.stderr.count("\n") == 1 and out.stderr.startswith("neurontui: error: ") and words in out.stderr, out


def test_auto_falls_back_to_the_host_quietly(child_env, tmp_path):
    out = neurontui(without_neuron_monitor(child_env, tmp_path), "--once", "--json", "--monitor", "auto")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["source"] == "host"


def test_neuron_on_path_passes_the_check_with_stand_in_neuron_monitor(child_env, tmp_path):
    env = without_neuron_monitor(child_env, tmp_path)
    stand_in = tmp_path / "bin" / "neuron-monitor"  # takes `-c monitor.conf` like the real one, prints reports
    stand_in.write_text(f"#!{sys.executable}\nimport runpy, sys\nsys.argv = [sys.argv[0]]\n"
                        f"runpy.run_path({str(ROOT / 'tests' / 'fake_neuron_monitor.py')!r}, run_name='__main__')\n")
    stand_in.chmod(0o755)
    out = neurontui(env, "--once", "--json", "--monitor", "neuron")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["source"] == "neuron-monitor"


@pytest.mark.skipif(bool(glob.glob("/dev/nvidia[0-9]*")), reason="this host has an NVIDIA GPU")
def test_backend_cuda_without_a_gpu_is_one_line_and_exit_2(child_env, tmp_path):
    out = neurontui(child_env, "--backend", "cuda", "--model", "cnn", "--export", str(tmp_path / "c.json"))
    assert out.returncode == 2 and out.stdout == "", out
    assert out.stderr.count("\n") == 1 and "--backend cuda: no NVIDIA GPU here" in out.stderr, out.stderr
    assert not (tmp_path / "c.json").exists()


@pytest.mark.skipif(bool(glob.glob("/dev/neuron*")), reason="this host has Neuron devices")
def test_backend_neuron_without_a_device_is_one_line_and_exit_2(child_env):
    out = neurontui(child_env, "--backend", "neuron", "--headless", "--duration", "1")
    assert out.returncode == 2 and "--backend neuron: no Neuron device here" in out.stderr, out.stderr


def test_weights_that_are_not_a_pytorch_file_are_refused_before_the_start(child_env, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("101 things to try\n")
    out = neurontui(child_env, "--model", "cnn", "--weights", str(notes), "--headless", "--duration", "1")
    assert out.returncode == 2 and out.stdout == "", out
    assert out.stderr.count("\n") == 1 and "notes.txt is not a PyTorch file (torch.save" in out.stderr, out.stderr
