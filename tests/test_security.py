"""Security: children start from argument lists (never a shell), `--monitor-cmd` is split with
shlex and its shell syntax stays literal, the exporter listens on loopback unless told otherwise,
weights load with weights_only (a hostile pickle runs no code), and the compile cache is a
private (0700) per-user directory."""
import ast
import json
import os
import site
import shlex
import socket
import stat
import subprocess
import sys
import tempfile
import time

import psutil
import pytest

from tests.conftest import FIXTURES, ROOT
from workloads.protocol import Error, decode

TRN1N = FIXTURES / "v2_trn1n_32xlarge_2runtimes.json"

# Stands in for neuron-monitor: writes the arguments it received to a file, prints one report.
ARGV_RECORDER = """
import json, sys
with open(sys.argv[1], "w") as out:
    json.dump(sys.argv[3:], out)
with open(sys.argv[2]) as report:
    print(json.dumps(json.load(report)), flush=True)
"""


def test_monitor_cmd_shell_syntax_reaches_the_program_as_plain_words(python, child_env, tmp_path):
    script = tmp_path / "monitor.py"
    script.write_text(ARGV_RECORDER)
    argv_file = tmp_path / "argv.json"
    markers = [tmp_path / name for name in ("semicolon", "dollar", "backtick", "and", "pipe")]
    tail = (f"; touch {markers[0]} $(touch {markers[1]}) `touch {markers[2]}` && touch {markers[3]} "
            f"| touch {markers[4]} > {tmp_path / 'redirected'}")
    command = shlex.join([python, str(script), str(argv_file), str(TRN1N)]) + " " + tail
    out = subprocess.run([python, "-m", "neurontui", "--once", "--json", "--monitor-cmd", command],
                         capture_output=True, text=True, env=child_env, cwd=tmp_path, timeout=60)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["cores"], "the report was read"
    assert not [m.name for m in markers if m.exists()] and not (tmp_path / "redirected").exists()
    assert json.loads(argv_file.read_text()) == shlex.split(tail)  # every metacharacter arrived as a word


def call_name(node: ast.Call) -> str:
    func = node.func
    parts = []
    while isinstance(func, ast.Attribute):
        parts.append(func.attr)
        func = func.value
    if isinstance(func, ast.Name):
        parts.append(func.id)
    return ".".join(reversed(parts))


def test_no_code_path_starts_a_shell():
    shell_calls = ("os.system", "os.popen", "subprocess.getoutput", "subprocess.getstatusoutput",
                   "os.execl", "os.spawnl", "pty.spawn")
    found = []
    for path in sorted([*(ROOT / "neurontui").rglob("*.py"), *(ROOT / "workloads").rglob("*.py")]):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.Call):
                continue
            name = call_name(node)
            where = f"{path.relative_to(ROOT)}:{node.lineno}"
            if name in shell_calls:
                found.append(f"{where}: {name}")
            for keyword in node.keywords:
                if keyword.arg == "shell" and not (isinstance(keyword.value, ast.Constant) and not keyword.value.value):
                    found.append(f"{where}: shell={ast.unparse(keyword.value)}")
    assert not found, found


# -- the exporter's address ---------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening_addresses(python, child_env, tmp_path, *extra):
    """Start a headless replay serving metrics; the addresses its process listens on."""
    port = free_port()
    proc = subprocess.Popen([python, "-m", "neurontui", "--headless", "--no-workload", "--monitor",
                             f"replay:{TRN1N}", "--loop", "--prometheus-port", str(port), *extra],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=child_env, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            listening = [c.laddr.ip for c in psutil.Process(proc.pid).net_connections(kind="inet")
                         if c.status == psutil.CONN_LISTEN and c.laddr.port == port]
            if listening:
                return listening
            assert proc.poll() is None, "neurontui exited"
            time.sleep(0.2)
        raise AssertionError("the exporter never listened")
    finally:
        proc.terminate()
        proc.wait(30)


@pytest.mark.slow
def test_exporter_listens_on_loopback_by_default(python, child_env, tmp_path):
    assert listening_addresses(python, child_env, tmp_path) == ["127.0.0.1"]


@pytest.mark.slow
def test_exporter_listens_on_all_interfaces_only_when_told(python, child_env, tmp_path):
    assert listening_addresses(python, child_env, tmp_path, "--prometheus-addr", "0.0.0.0") == ["0.0.0.0"]


# -- weights --------------------------------------------------------------------------------------
class CreatesAFile:
    """Unpickled, this opens (creates) a file: what a hostile checkpoint does, harmlessly."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return open, (self.path, "w")


def run_workload(child_env, *args, timeout=180):
    """Run the real child to its end; stdin (its lifeline: EOF means "parent gone") stays open meanwhile."""
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen([sys.executable, "-m", "workloads", "--model", "cnn", "--backend", "cpu",
                                 "--duration", "0.3", "--warmup", "0.1", "--window", "0.1", *map(str, args)],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, env=child_env)
        try:
            out = proc.stdout.read()
            proc.wait(timeout)
        finally:
            proc.kill()
            proc.stdin.close()
            proc.stdout.close()
        err.seek(0)
        return proc.returncode, [decode(line) for line in out.splitlines()], err.read().decode()


@pytest.mark.slow
def test_a_hostile_pickle_is_refused_in_one_line_and_runs_no_code(child_env, tmp_path):
    torch = pytest.importorskip("torch")
    marker = tmp_path / "pwned"
    weights = tmp_path / "evil.pt"
    torch.save({"conv.weight": CreatesAFile(str(marker))}, weights)
    torch.load(weights, weights_only=False)  # proof that the file is hostile: a full unpickle runs it
    assert marker.exists()
    marker.unlink()

    code, events, err = run_workload(child_env, "--weights", weights, "--cache-dir", tmp_path / "cache")
    errors = [e for e in events if isinstance(e, Error)]
    assert code != 0 and len(errors) == 1 and errors[0].kind == "weights", (events, err)
    assert "\n" not in errors[0].message and str(weights) in errors[0].message
    assert "Traceback" not in err
    assert not marker.exists(), "unpickling the weights ran code"


def refusal_of_a_pickled_full_model(child_env, tmp_path) -> Error:
    torch = pytest.importorskip("torch")
    from workloads.config import WorkloadConfig
    from workloads.models import get_model

    model = get_model("cnn").build(WorkloadConfig(model="cnn", backend="cpu"))
    weights = tmp_path / "model.pt"
    torch.save(model, weights)  # the whole module pickled, not its state_dict()
    code, events, err = run_workload(child_env, "--weights", weights, "--cache-dir", tmp_path / "cache")
    [error] = [e for e in events if isinstance(e, Error)]
    assert code != 0 and error.kind == "weights" and "Traceback" not in err
    return error


@pytest.mark.slow
def test_a_pickled_full_model_is_refused_in_one_line(child_env, tmp_path):
    error = refusal_of_a_pickled_full_model(child_env, tmp_path)
    assert "\n" not in error.message and "cannot read weights file" in error.message


@pytest.mark.slow
def test_a_pickled_full_model_refusal_names_the_fix_in_plain_text(child_env, tmp_path):
    error = refusal_of_a_pickled_full_model(child_env, tmp_path)
    assert "\x1b" not in error.message and "state_dict()" in error.message


# -- the compile cache ------------------------------------------------------------------------------
def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.slow
def test_the_cache_is_a_private_per_user_directory(child_env, tmp_path):
    env = dict(child_env, XDG_CACHE_HOME=str(tmp_path / "xdg"))
    code, events, err = run_workload(env)
    assert code == 0, err
    cache = tmp_path / "xdg" / "neurontui"
    assert mode(cache) == 0o700
    assert list(cache.glob("cnn-*.pt")), "the traced artifact was saved there"

    os.chmod(cache, 0o755)  # loosened by hand (or created by an older version): tightened again
    code, events, err = run_workload(env)
    assert code == 0, err
    assert mode(cache) == 0o700


@pytest.mark.slow
def test_a_cache_directory_of_another_user_is_refused(child_env, tmp_path):
    if os.getuid() == 0:
        foreign = tmp_path / "theirs"
        foreign.mkdir(mode=0o700)
        os.chown(foreign, 4242, 4242)
    else:
        foreign = "/"  # root's
    code, events, err = run_workload(child_env, "--cache-dir", foreign)
    [error] = [e for e in events if isinstance(e, Error)]
    assert code != 0 and "belongs to another user" in error.message and str(foreign) in error.message


# -- code from the working directory --------------------------------------------------------------
def plant_package(directory, name, marker):
    package = directory / name
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "__main__.py").write_text(f"open({str(marker)!r}, 'w').close()\n")


@pytest.mark.slow
@pytest.mark.skipif(sys.version_info < (3, 11), reason="-P (how the console script starts: no cwd) is 3.11+")
def test_a_workloads_package_planted_in_the_working_directory_does_not_run(child_env, tmp_path):
    marker = tmp_path / "PWNED"
    plant_package(tmp_path, "workloads", marker)
    out = subprocess.run([sys.executable, "-P", "-m", "neurontui", "--export", "o.json", "--model", "cnn",
                          "--backend", "cpu", "--duration", "1", "--warmup", "0.2", "--monitor", "none",
                          "--cache-dir", str(tmp_path / "cache")],
                         capture_output=True, text=True, env=child_env, cwd=tmp_path, timeout=300)
    assert not marker.exists(), "the child ran the working directory's workloads/__main__.py"
    assert out.returncode == 0, out.stderr
    assert json.loads((tmp_path / "o.json").read_text()), "the real workload ran and was exported"


def test_the_monitor_wrapper_does_not_import_from_the_working_directory(child_env, tmp_path):
    from neurontui.store import Store
    from neurontui.sources.neuron_monitor import NeuronMonitorSource

    marker = tmp_path / "PWNED"
    plant_package(tmp_path / "neurontui" / "sources", "parent_death_exec", marker)  # shadows the real module
    (tmp_path / "neurontui" / "__init__.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    (tmp_path / "neurontui" / "sources" / "__init__.py").write_text("")
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        source = NeuronMonitorSource(Store(), [sys.executable, "-c", "print('{}')"])
        reports, reason = source._run_once()
    finally:
        os.chdir(cwd)
    assert not marker.exists(), "the wrapper imported the working directory's neurontui"
    assert "exited with status 0" in reason, reason


# -- recordings --------------------------------------------------------------------------------------
def test_a_recording_never_writes_through_a_planted_symbolic_link(tmp_path):
    from neurontui.sources.recorder import Recorder
    from neurontui.store import Store

    target = tmp_path / "precious"
    target.write_text("untouched\n")
    (tmp_path / "rec.jsonl").symlink_to(target)  # what another user can plant in a sticky /tmp
    store = Store()
    recorder = Recorder(str(tmp_path / "rec.jsonl"), store)
    recorder.report(b'{"system_data": {}}', 1.0, "neuron-monitor")
    assert target.read_text() == "untouched\n"
    assert recorder.failed and [e.level for e in store.events] == ["error"]


@pytest.mark.skipif(os.getuid() != 0, reason="a file of another user needs root to make")
def test_a_recording_file_of_another_user_is_refused(tmp_path):
    from neurontui.sources.recorder import Recorder, check_recording_path
    from neurontui.store import Store

    theirs = tmp_path / "rec.jsonl"
    theirs.write_text("their line\n")
    os.chown(theirs, 4242, 4242)
    assert "belongs to another user" in check_recording_path(str(theirs))
    recorder = Recorder(str(theirs), Store())
    recorder.report(b'{"system_data": {}}', 1.0, "neuron-monitor")
    assert theirs.read_text() == "their line\n" and recorder.failed


@pytest.mark.parametrize("mode", [["--once"], ["--headless", "--duration", "1"]])
def test_an_unusable_recording_path_is_one_line_and_exit_2_before_starting(python, child_env, tmp_path, mode):
    (tmp_path / "link.jsonl").symlink_to(tmp_path / "elsewhere")
    for path in ("/nonexistent/r.jsonl", str(tmp_path / "link.jsonl")):
        out = subprocess.run([python, "-m", "neurontui", *mode, "--no-workload", "--monitor", f"replay:{TRN1N}",
                              "--record", path], capture_output=True, text=True, env=child_env, timeout=60)
        assert out.returncode == 2 and out.stdout == "", out
        assert out.stderr.count("\n") == 1 and f"cannot record to {path}" in out.stderr, out.stderr
    assert not (tmp_path / "elsewhere").exists()


def test_a_usable_recording_path_is_checked_without_leaving_a_file(tmp_path):
    from neurontui.sources.recorder import check_recording_path

    assert check_recording_path(str(tmp_path / "new.jsonl")) is None
    assert not (tmp_path / "new.jsonl").exists()


# -- the exporter under held connections ------------------------------------------------------------
def exporter_args(port):
    from argparse import Namespace

    return Namespace(prometheus_addr="127.0.0.1", prometheus_port=port, tls_cert=None, tls_key=None,
                     tls_client_ca=None, aws_labels=False)


@pytest.mark.slow
def test_250_half_open_sockets_leave_20_concurrent_scrapers_answered_and_are_dropped_later():
    import threading
    import urllib.request

    from neurontui.exporter import READ_TIMEOUT_SECONDS, start_exporter
    from neurontui.sources.neuron_report import parse_report
    from neurontui.store import Store

    store = Store()
    store.publish_snapshot(parse_report(TRN1N.read_text()).snapshot)
    exporter = start_exporter(store, exporter_args(free_port()))
    held = []
    try:
        for _ in range(250):  # half a request each, then silence
            sock = socket.create_connection(("127.0.0.1", exporter.port), timeout=30)
            sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x")
            held.append(sock)
        answers, failures = [], []

        def scrape():
            for _ in range(5):
                try:
                    with urllib.request.urlopen(exporter.url, timeout=60) as response:
                        answers.append(response.status)
                except OSError as exc:
                    failures.append(repr(exc))

        scrapers = [threading.Thread(target=scrape) for _ in range(20)]
        for thread in scrapers:
            thread.start()
        for thread in scrapers:
            thread.join(120)
        assert not failures and answers == [200] * 100, failures[:3]
        # the server gives up on every silent client (each read waits READ_TIMEOUT_SECONDS at most)
        for sock in held:
            sock.settimeout(READ_TIMEOUT_SECONDS * 6)
            assert sock.recv(100) == b"", "a half-open connection was kept open"
    finally:
        for sock in held:
            sock.close()
        exporter.close()


# -- hostile strings from a report -----------------------------------------------------------------
def hostile_report(tmp_path, **instance) -> str:
    report = json.loads(TRN1N.read_text())
    report["instance_info"].update(instance)
    path = tmp_path / "hostile.jsonl"
    path.write_text(json.dumps(report) + "\n")  # json escapes a lone surrogate as \udc80
    return f"replay:{path}"


@pytest.mark.slow
def test_a_lone_surrogate_in_the_instance_type_still_gives_a_valid_csv_export(python, child_env, tmp_path):
    monitor = hostile_report(tmp_path, instance_type="trn1n\udc80")
    out = subprocess.run([python, "-m", "neurontui", "--monitor", monitor, "--loop", "--model", "cnn", "--backend",
                          "cpu", "--duration", "1", "--warmup", "0.2", "--cache-dir", str(tmp_path / "cache"),
                          "--export", str(tmp_path / "o.csv")], capture_output=True, text=True, env=child_env,
                         timeout=300)
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr
    import csv

    [row] = list(csv.DictReader((tmp_path / "o.csv").open(encoding="utf-8")))
    assert row["host_instance_type"] == "trn1n\ufffd"


def test_terminal_escapes_in_a_report_are_printed_escaped_by_once(python, child_env, tmp_path):
    monitor = hostile_report(tmp_path, instance_type="\x1b]2;pwned\x07", instance_name="two\nlines\ud800")
    out = subprocess.run([python, "-m", "neurontui", "--once", "--monitor", monitor], capture_output=True,
                         env=child_env, timeout=60)
    assert out.returncode == 0, out.stderr
    first = out.stdout.decode("utf-8").splitlines()[0]  # valid UTF-8: no surrogate reached it
    assert b"\x1b" not in out.stdout and b"\x07" not in out.stdout
    assert first.endswith("\\x1b]2;pwned\\x07 · two\\x0alines\ufffd")


def test_an_escape_among_names_seen_clean_in_earlier_reports_is_still_escaped():
    """Names already seen clean are kept as they are, a map at a time: one new hostile name
    among them must still be cleaned, in every kind of name a report carries."""
    from neurontui.sources.neuron_report import parse_report

    def line(extra: str) -> str:
        report = json.loads((FIXTURES / "v2_trn1n_32xlarge_2runtimes.json").read_text())
        runtime = report["neuron_runtime_data"][0]["report"]
        stats = runtime["execution_stats"]
        if extra:
            stats["execution_summary"][extra] = 1
            stats["error_summary"][extra] = 1
            stats["latency_stats"]["total_latency"] = {"p50": 0.01, extra: 0.02}
            runtime["memory_used"]["loaded_models"].append({"name": extra})
            report["instance_info"]["instance_name"] = extra
        return json.dumps(report)

    for _ in range(3):
        parse_report(line(""))
    snapshot = parse_report(line("evil\x1b]2;pwned\x07")).snapshot
    runtime = snapshot.runtimes[0]
    names = [*runtime.status, *runtime.errors, *runtime.latency_seconds, *runtime.loaded_models,
             *snapshot.instance.values()]
    assert "completed" in runtime.status and "p50" in runtime.latency_seconds
    hostile = [name for name in names if "evil" in name]
    assert len(hostile) == 5 and all(name == "evil\\x1b]2;pwned\\x07" for name in hostile), hostile


def test_a_lone_surrogate_in_a_label_does_not_take_metrics_down():
    import urllib.request

    from neurontui.exporter import start_exporter
    from neurontui.sources.neuron_report import parse_report
    from neurontui.store import Store

    report = json.loads(TRN1N.read_text())
    report["instance_info"]["instance_type"] = "trn1n\ud800"
    report["neuron_runtime_data"][0]["neuron_runtime_tag"] = "tag\udc80"
    report["neuron_runtime_data"][0]["report"]["execution_stats"]["error_summary"]["bad\ud800"] = 1
    store = Store()
    store.publish_snapshot(parse_report(json.dumps(report)).snapshot)
    exporter = start_exporter(store, exporter_args(free_port()))
    try:
        with urllib.request.urlopen(exporter.url, timeout=30) as response:
            text = response.read().decode("utf-8")
            assert response.status == 200
    finally:
        exporter.close()
    assert 'runtime_tag="tag\ufffd"' in text or 'tag\ufffd' in text


# -- nothing accumulates without bound -----------------------------------------------------------------
def test_ecc_totals_of_devices_that_leave_the_report_are_dropped():
    from neurontui.store import ECC_EVENT_TYPES, Store
    from neurontui.telemetry import EccCounters, Snapshot

    store = Store()
    for index in range(200):  # a new device index in every report
        store.publish_snapshot(Snapshot(time=float(index), source="neuron-monitor",
                                        ecc=[EccCounters(0, mem_ecc_corrected=1), EccCounters(1000 + index)]))
    assert sorted(store.ecc_totals) == sorted((i, t) for i in (0, 1199) for t in ECC_EVENT_TYPES)
    assert store.ecc_totals[(0, "mem_ecc_corrected")] == 200
    store.publish_snapshot(Snapshot(time=201.0, source="neuron-monitor"))  # no ECC data: nothing is forgotten
    assert store.ecc_totals[(0, "mem_ecc_corrected")] == 200


def test_status_and_error_names_per_runtime_are_bounded_with_one_warning():
    from neurontui.store import MAX_NAMES_PER_RUNTIME, Store
    from neurontui.telemetry import Runtime, Snapshot

    store = Store()
    for n in range(500):  # a new error name in every report
        runtime = Runtime(tag="1", key="1", errors={f"error_{n}": 1}, status={"completed": 1, f"status_{n}": 1})
        store.publish_snapshot(Snapshot(time=float(n), source="neuron-monitor", runtimes=[runtime]))
    totals = store.runtime_totals["1"]
    assert len(totals.errors) == MAX_NAMES_PER_RUNTIME and len(totals.status) == MAX_NAMES_PER_RUNTIME
    assert totals.status["completed"] == 500  # names already counted keep counting
    assert [e.level for e in store.events] == ["warning"]


def test_an_expired_server_certificate_starts_with_a_one_line_warning(tmp_path):
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    from neurontui.exporter import start_exporter
    from neurontui.store import Store

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=30))
            .not_valid_after(now - datetime.timedelta(days=1)).sign(key, hashes.SHA256()))
    (tmp_path / "s.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "s.key").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                       serialization.NoEncryption()))
    args = exporter_args(free_port())
    args.tls_cert, args.tls_key = str(tmp_path / "s.crt"), str(tmp_path / "s.key")
    store = Store()
    exporter = start_exporter(store, args)
    exporter.close()
    [warning] = [e.text for e in store.events if e.level == "warning"]
    assert "expired on" in warning and str(tmp_path / "s.crt") in warning and "\n" not in warning


def test_out_of_file_descriptors_the_exporter_pauses_on_accept_instead_of_spinning(monkeypatch):
    import errno

    from neurontui import exporter as exporter_module
    from neurontui.store import Store

    exporter = exporter_module.start_exporter(Store(), exporter_args(free_port()))
    pauses = []
    try:
        class OutOfDescriptors:  # stands in for the listening socket only while get_request() runs
            def accept(self):
                raise OSError(errno.EMFILE, "Too many open files")

        monkeypatch.setattr(exporter._server, "socket", OutOfDescriptors())
        monkeypatch.setattr(exporter_module.time, "sleep", pauses.append)
        with pytest.raises(OSError):
            exporter._server.get_request()  # what serve_forever calls while the socket stays readable
    finally:
        monkeypatch.undo()
        exporter.close()
    assert pauses == [exporter_module.ACCEPT_ERROR_PAUSE_SECONDS]


def test_an_isolated_child_imports_from_the_parents_path_without_the_working_directory(child_env, tmp_path):
    from neurontui import child_python

    argv = child_python.module_argv(sys.executable, "site")  # `python -m site` prints its sys.path
    out = subprocess.run(argv, capture_output=True, text=True, cwd=tmp_path, timeout=60,
                         env=child_python.child_env(child_env))
    path = ast.literal_eval(out.stdout.split("sys.path = ")[1].split("]")[0] + "]")
    assert path[:len(child_python.package_roots())] == child_python.package_roots() == [str(ROOT)]
    assert str(tmp_path) not in path and "" not in path
    parent = [p for p in sys.path if os.path.isabs(p) and p != os.getcwd()]
    assert set(parent) <= set(path)  # a venv, PYTHONPATH entries: whatever the parent could import


# A parent that starts an isolated child importing a module only the user site has.
USER_SITE_PARENT = """
import subprocess, sys
from neurontui import child_python
env = child_python.child_env({"PATH": "/usr/bin:/bin"})
sys.exit(subprocess.run(child_python.module_argv(sys.executable, "user_installed"), env=env).returncode)
"""


@pytest.mark.skipif(not site.ENABLE_USER_SITE, reason="user site-packages are off here (a virtual environment)")
def test_an_isolated_child_still_imports_pip_user_installs(child_env, tmp_path):
    user_base = tmp_path / "userbase"
    env = dict(child_env, PYTHONUSERBASE=str(user_base))
    user_site = subprocess.run([sys.executable, "-c", "import site; print(site.getusersitepackages())"],
                               capture_output=True, text=True, env=env, check=True).stdout.strip()
    os.makedirs(user_site)
    with open(os.path.join(user_site, "user_installed.py"), "w") as module:
        module.write(f"open({str(tmp_path / 'marker')!r}, 'w').close()\n")
    out = subprocess.run([sys.executable, "-c", USER_SITE_PARENT], capture_output=True, text=True, env=env,
                         cwd=tmp_path, timeout=60)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "marker").exists(), "the child could not import a pip --user install"
