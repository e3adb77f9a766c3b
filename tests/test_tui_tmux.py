"""The real `neurontui` binary in a real terminal (tmux): it starts, shows live numbers,
takes keys, serves Prometheus, and however it is ended (q, Ctrl-C, SIGTERM, SIGHUP, even
SIGKILL) leaves no process behind."""
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import psutil
import pytest

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")]

LIVE_NUMBERS = re.compile(r"[\d.]+[kM]?/s  run p50 [\d.]+")  # the workload panel, not a plot title


class Terminal:
    """A private tmux server (its own socket) running one command in a 100x30 pane."""

    def __init__(self, command: list[str], env: dict[str, str], tmp_path, size=(100, 30)) -> None:
        self.socket = f"neurontui-test-{os.getpid()}-{id(self)}"
        exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
        line = f"cd {shlex.quote(str(tmp_path))} && exec env {exports} {shlex.join(command)}"
        self.tmux("new-session", "-d", "-s", "main", "-x", str(size[0]), "-y", str(size[1]), line)
        self.pid = int(self.tmux("display-message", "-p", "-t", "main", "#{pane_pid}").strip())

    def tmux(self, *args: str) -> str:
        return subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True, text=True, check=True).stdout

    def screen(self, escapes: bool = False) -> str:
        try:
            return self.tmux("capture-pane", "-p", *(["-e"] if escapes else []), "-t", "main")
        except subprocess.CalledProcessError:
            return ""  # the pane closed with the app

    def keys(self, *keys: str) -> None:
        self.tmux("send-keys", "-t", "main", *keys)

    def wait_screen(self, predicate, timeout: float = 90.0, what: str = "") -> str:
        deadline = time.monotonic() + timeout
        while True:
            text = self.screen()
            if predicate(text):
                return text
            assert time.monotonic() < deadline, f"timed out waiting for {what}; screen:\n{text}"
            time.sleep(0.3)

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def alive(pids: list[int]) -> list[int]:
    left = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                left.append(pid)
        except psutil.NoSuchProcess:
            pass
    return left


def neurontui(port: int = 0) -> list[str]:
    return [sys.executable, "-m", "neurontui", "--model", "cnn", "--backend", "cpu", "--monitor", "host",
            "--prometheus-port", str(port), "--warmup", "0.2", "--window", "0.25"]


@pytest.fixture
def metrics_port():
    return free_port()


@pytest.fixture
def dashboard(child_env, tmp_path, metrics_port):
    terminal = Terminal(neurontui(metrics_port), {"PYTHONPATH": child_env["PYTHONPATH"], "TERM": "xterm-256color"},
                        tmp_path)
    yield terminal
    terminal.close()


def ended_cleanly(terminal: Terminal, descendants: list[int], timeout: float = 30.0, by_themselves: bool = False) -> None:
    """neurontui exits and its descendants are gone: stopped by it, or (after SIGKILL, which no
    process can handle) by their own parent-death watch."""
    deadline = time.monotonic() + timeout
    while alive([terminal.pid]) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not alive([terminal.pid]), "neurontui did not exit"
    while by_themselves and alive(descendants) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert alive(descendants) == [], "processes outlived neurontui"


def test_live_numbers_metrics_keys_and_quit_leave_no_process(dashboard, metrics_port):
    screen = dashboard.wait_screen(lambda s: LIVE_NUMBERS.search(s), what="live throughput")
    assert "cnn · cpu · single · batch 1" in screen and "vCPUs" in screen
    assert f"127.0.0.1:{metrics_port}/metrics" in screen  # the TUI serves Prometheus too
    metrics = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).read().decode()
    assert "neurontui_" in metrics
    descendants = [p.pid for p in psutil.Process(dashboard.pid).children(recursive=True)]
    assert descendants, "the workload child should be running"
    dashboard.keys("+")
    dashboard.wait_screen(lambda s: "batch 2" in s, timeout=10, what="the batch switch in the header")
    dashboard.wait_screen(lambda s: "switching to batch 2" in s, timeout=10, what="the switch in the events")
    dashboard.keys("?")
    dashboard.wait_screen(lambda s: "double / halve the batch" in s, timeout=10, what="the help screen")
    dashboard.keys("Escape")
    dashboard.wait_screen(lambda s: "double / halve" not in s, timeout=10, what="the help screen to close")
    descendants += [p.pid for p in psutil.Process(dashboard.pid).children(recursive=True)]
    dashboard.keys("q")
    ended_cleanly(dashboard, descendants)


@pytest.mark.parametrize("ending", ["C-c", "terminal-gone", signal.SIGTERM, signal.SIGHUP, signal.SIGKILL],
                         ids=["ctrl-c", "terminal-gone", "SIGTERM", "SIGHUP", "SIGKILL"])
def test_ctrl_c_and_signals_end_it_without_orphans(dashboard, ending):
    dashboard.wait_screen(lambda s: LIVE_NUMBERS.search(s), what="live throughput")
    descendants = [p.pid for p in psutil.Process(dashboard.pid).children(recursive=True)]
    assert descendants, "the workload child should be running"
    if ending == "terminal-gone":  # the SSH connection drops: the pty closes under the app
        dashboard.close()
    elif isinstance(ending, str):
        dashboard.keys(ending)
    else:
        os.kill(dashboard.pid, ending)
    ended_cleanly(dashboard, descendants, by_themselves=ending == signal.SIGKILL)


@pytest.mark.parametrize("env", [{"TERM": "xterm"}, {"TERM": "xterm", "NO_COLOR": "1"}], ids=["16-colours", "NO_COLOR"])
def test_usable_over_ssh_at_80x24_with_16_colours_or_none(child_env, tmp_path, env):
    terminal = Terminal(neurontui(), {"PYTHONPATH": child_env["PYTHONPATH"], **env}, tmp_path, size=(80, 24))
    try:
        screen = terminal.wait_screen(lambda s: LIVE_NUMBERS.search(s), what="live throughput")
        footer = screen.rstrip().splitlines()[-1]
        # every key the footer shows fits, uncut; `?` lists the rest
        assert footer.split() == "? help q quit s single d dp p pipe m model + batch+ space pause e export".split()
        assert re.search(r"p99 [\d.]+ (us|ms|s)", screen)
        # a 16-colour terminal gets only its own colours: no 256-colour or 24-bit sequences
        assert not re.search(r"\x1b\[[0-9;]*[34]8;[25];", terminal.screen(escapes=True))
        terminal.keys("q")
        ended_cleanly(terminal, [])
    finally:
        terminal.close()


def test_a_busy_metrics_port_is_an_event_and_the_dashboard_keeps_running(child_env, tmp_path, busy_port):
    terminal = Terminal(neurontui(busy_port), {"PYTHONPATH": child_env["PYTHONPATH"], "TERM": "xterm-256color"},
                        tmp_path)
    try:
        screen = terminal.wait_screen(lambda s: LIVE_NUMBERS.search(s), what="live throughput")
        assert "metrics off: address already in use" in screen  # the header says it; the event has details
        terminal.keys("q")
        ended_cleanly(terminal, [])
    finally:
        terminal.close()
