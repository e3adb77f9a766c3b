"""`neurontui report`: exports from several hosts side by side, with the seed's numbers as a valid input."""
import json
import re
import subprocess


from neurontui.export.schema import new_document
from neurontui.export.writers import render
from tests.conftest import ROOT
from tests.test_export import HOST, measured_store, row_of

SEED = str(ROOT / "docs" / "seed-measurements.json")


def export_file(tmp_path, name, host, rows):
    document = new_document(host, [])
    document["rows"], document["complete"] = rows, True
    path = tmp_path / name
    path.write_text(render(document, str(path)))
    return str(path)


def my_export(tmp_path):
    """A CPU host's export: cnn at batch 1 (2000 samples/s) and batch 8 (6000 samples/s)."""
    rows = [row_of(measured_store([2000, 2000, 2000], latency=0.0005)),
            row_of(measured_store([6000, 6000, 6000], latency=0.00133, batch=8), batch=8)]
    for row in rows:
        row.update(host_label="dev-box", hostname="dev-box", host_instance_type=None)
    return export_file(tmp_path, "mine.json", dict(HOST, instance_type=None, hostname="dev-box"), rows)


def run_report(python, child_env, *argv):
    return subprocess.run([python, "-m", "neurontui", "report", *argv], capture_output=True, text=True,
                          env=child_env, timeout=60)


def table_rows(markdown, model):
    section = markdown.split(f"## {model}\n", 1)[1].split("\n## ", 1)[0]
    return [[c.strip() for c in line.strip("|").split("|")] for line in section.splitlines()
            if line.startswith("|")][2:]


def test_my_numbers_next_to_the_seeds(python, child_env, tmp_path):
    out = run_report(python, child_env, SEED, my_export(tmp_path), "-o", str(tmp_path / "report.md"))
    assert out.returncode == 0, out.stderr
    markdown = (tmp_path / "report.md").read_text()
    cnn = table_rows(markdown, "cnn")
    # seed first (g4dn cpu, g4dn cuda, inf1 neuron), then mine at batch 1 and 8
    assert [(r[0], r[1], r[4], r[-1]) for r in cnn] == [
        ("g4dn.xlarge", "cpu", "1", "seed*"), ("g4dn.xlarge", "cuda", "1", "seed*"),
        ("inf1.xlarge", "neuron", "1", "seed*"),
        ("dev-box", "cpu", "1", "measured"), ("dev-box", "cpu", "8", "measured")]
    seed_neuron, mine_b1, mine_b8 = cnn[2], cnn[3], cnn[4]
    assert seed_neuron[7] == "282 us (mean)" and seed_neuron[8] == "-"  # the seed has a mean, no p99
    assert seed_neuron[9] == "2.65x"  # 3540 / 1337 samples/s, against the seed's CPU
    assert mine_b1[7] == "500 us" and mine_b1[9] == "1.00x"  # my CPU row is its own baseline
    assert mine_b8[9] == "1.00x", "batch 8 compares with the CPU baseline at batch 8"
    assert "seed*: the seed's hand-timed numbers, mean of a loop incl. first call, no percentiles" in markdown
    # the terminal chart goes to stdout, plain text when stdout is not a terminal
    assert "cnn: samples per second" in out.stdout and "cnn: p99 latency in ms (seed: mean)" in out.stdout
    assert "\x1b[" not in out.stdout
    assert re.search(r"dev-box cpu single b8 c1\s+▇+ 6000", out.stdout)


def test_baseline_can_be_a_host(python, child_env, tmp_path):
    out = run_report(python, child_env, SEED, "--baseline", "inf1.xlarge", "--no-chart")
    assert out.returncode == 0, out.stderr
    resnet = {(r[0], r[1], r[3]): r for r in table_rows(out.stdout, "resnet50")}
    assert resnet[("inf1.xlarge", "neuron", "dp")][9] == "1.83x"  # 547 / 300: DataParallel vs one core
    assert resnet[("g4dn.xlarge", "cuda", "single")][9] == "0.15x"  # 45 / 300: the seed's "8.7x" inverted
    assert "Inferentia" in resnet[("inf1.xlarge", "neuron", "single")][2]


def test_bad_inputs_are_named_and_the_rest_is_kept(python, child_env, tmp_path):
    (tmp_path / "broken.json").write_text("{not json")
    (tmp_path / "other.json").write_text(json.dumps({"hello": 1}))
    newer = json.loads(open(SEED).read()) | {"schema": 99}
    (tmp_path / "newer.json").write_text(json.dumps(newer))
    out = run_report(python, child_env, str(tmp_path / "broken.json"), str(tmp_path / "missing.json"),
                     str(tmp_path / "other.json"), str(tmp_path / "newer.json"), SEED, "--no-chart")
    assert out.returncode == 0
    problems = out.stderr.strip().splitlines()
    assert len(problems) == 4
    assert "broken.json: not JSON" in problems[0] and "missing.json: No such file" in problems[1]
    assert "not a neurontui export" in problems[2] and "schema 99 is newer" in problems[3]
    assert "## resnet50" in out.stdout


def test_nothing_to_compare_is_an_error(python, child_env, tmp_path):
    out = run_report(python, child_env, str(tmp_path / "missing.json"))
    assert out.returncode == 1 and "no rows to compare" in out.stderr


def test_failed_and_skipped_rows_are_listed_apart(python, child_env, tmp_path):
    skipped = row_of(measured_store([]), mode="pipeline")
    skipped.update(status="skipped", reason="unsupported: pipeline needs several NeuronCores")
    path = export_file(tmp_path, "s.json", HOST, [row_of(measured_store([100, 100, 100])), skipped])
    out = run_report(python, child_env, path, "--no-chart")
    assert out.returncode == 0
    assert "## Not measured" in out.stdout and "unsupported: pipeline needs several NeuronCores" in out.stdout
    assert len(table_rows(out.stdout, "cnn")) == 1


def test_a_csv_export_compares_like_its_json(python, child_env, tmp_path):
    """The README's sweep example writes CSV; report reads it (it used to skip it as "not JSON")."""
    document = new_document(HOST, [])
    document["rows"], document["complete"] = [row_of(measured_store([2000, 2000, 2000], latency=0.0005))], True
    (tmp_path / "sweep.csv").write_text(render(document, "sweep.csv"))
    out = run_report(python, child_env, str(tmp_path / "sweep.csv"), "--no-chart")
    assert out.returncode == 0 and out.stderr == ""
    row = table_rows(out.stdout, "cnn")[0]
    assert (row[1], row[4], row[6], row[7]) == ("cpu", "1", "2,000", "500 us")


def test_with_an_output_file_the_tables_go_there_not_to_stdout(python, child_env, tmp_path):
    out = run_report(python, child_env, SEED, "-o", str(tmp_path / "compare.md"), "--no-chart")
    assert out.returncode == 0 and "## resnet50" not in out.stdout
    assert "## resnet50" in (tmp_path / "compare.md").read_text()
    assert "wrote the tables to" in out.stderr


def test_capacity_section_only_for_rows_with_copies_or_buckets_and_odd_cells_do_not_stop_it(python, child_env,
                                                                                          tmp_path):
    plain = row_of(measured_store([2000, 2000]))
    copies = dict(row_of(measured_store([4000, 4000])), copies=4, bytes_per_copy=12 << 20, copies_fit=1900)
    odd = dict(row_of(measured_store([1000, 1000])), copies="four", buckets=None)  # a hand-edited file
    path = export_file(tmp_path, "mine.json", HOST, [plain, copies, odd])
    out = run_report(python, child_env, path, "--no-chart")
    assert out.returncode == 0, out.stderr
    section = out.stdout.split("## cnn: copies and padding\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("|")][2:]
    assert len(rows) == 1 and "| 4 | 12.0 MiB | 1900 |" in rows[0]
    assert len(table_rows(out.stdout, "cnn")) == 3  # the main table keeps every row
