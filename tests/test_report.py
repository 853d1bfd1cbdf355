"""theory.report: the formats, the JSON shape, reproducibility, the loud disagreement banner,
bad input (exit 2, one line, no traceback) and the atomic --out."""
import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from numeric.report import NumericRequest, errata, numeric_report
from theory import report
from theory.report_formats import FORMATS, errata_markdown, format_csv, format_latex, format_markdown, format_text
from theory.report_rows import Agreement, SymbolicSource, attach_symbolic
from theory.statements import STATEMENTS, all_variants, resolve
from theory.vocab import Verdict

ROOT = Path(__file__).resolve().parent.parent
ARGS = ["--instances", "200", "--seed", "3"]


def _run(*argv):
    out, err = io.StringIO(), io.StringIO()
    code = report.run(list(argv), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def json_report():
    code, out, err = _run(*ARGS, "--format", "json")
    assert code == 0, err
    return json.loads(out)


def test_json_has_the_documented_shape(json_report):
    assert set(json_report) == {"meta", "rows"}
    assert {"seed", "instances", "versions", "git_revision", "seconds"} <= set(json_report["meta"])
    keys = {"id", "variant", "verdict", "symbolic_verdict", "instances", "violations", "min_slack", "median_slack",
            "max_slack", "min_rel_slack", "counterexample"}
    assert all(keys <= set(row) for row in json_report["rows"])
    assert [(r["id"], r["variant"]) for r in json_report["rows"]] == [(s.id, v.name) for s, v in all_variants()]


def test_verdicts_are_the_vocabulary_and_printed_theorem_4_1_is_violated(json_report):
    rows = {(r["id"], r["variant"]): r for r in json_report["rows"]}
    assert {r["verdict"] for r in json_report["rows"]} <= {v.value for v in Verdict}
    assert {r["symbolic_verdict"] for r in json_report["rows"]} <= {v.value for v in Verdict}
    bad = rows[("thm-4.1", "printed")]
    assert bad["verdict"] == "violated" and bad["counterexample"]["m"] == 3 and bad["min_rel_slack"] < 0
    assert rows[("thm-4.1", "exact")]["verdict"] == "equality"
    assert rows[("thm-4.1", "drop-correlation")]["verdict"] == "holds"


def test_same_seed_gives_the_same_rows(json_report):
    code, out, _ = _run(*ARGS, "--format", "json")
    strip = (lambda rows: [{k: v for k, v in r.items()} for r in rows])
    assert strip(json.loads(out)["rows"]) == strip(json_report["rows"])


def test_only_selects_statements():
    code, out, _ = _run("--instances", "50", "--only", "obs-4.3", "--format", "json")
    assert code == 0 and {r["id"] for r in json.loads(out)["rows"]} == {"obs-4.3"}


@pytest.fixture(scope="module")
def rows():
    return numeric_report(resolve(["thm-4.1", "def-2.1"]), NumericRequest(instances=60, seed=0,
                                                                           symbolic=SymbolicSource.OFF))


META = {"seed": 0, "instances": 60, "versions": {}, "git_revision": "abc", "seconds": 1.0}


def test_text_is_an_aligned_table_with_counterexamples(rows):
    text = format_text(rows, META)
    header = text.splitlines()[0]
    assert header.startswith("id") and "min rel" in header
    assert "counterexample: m=3" in text


def test_markdown_is_a_github_table(rows):
    lines = format_markdown(rows, META).splitlines()
    assert lines[0].startswith("| id |") and set(lines[1]) <= set("|-")
    assert all(line.count("|") == lines[0].count("|") for line in lines[2:2 + len(rows)])


def test_csv_has_one_header_line_and_one_row_per_variant(rows):
    parsed = list(csv.reader(io.StringIO(format_csv(rows, META))))
    assert parsed[0][:3] == ["id", "variant", "verdict"] and len(parsed) == len(rows) + 1


def test_latex_uses_booktabs(rows):
    tex = format_latex(rows, META)
    assert "\\toprule" in tex and "\\midrule" in tex and "\\bottomrule" in tex and "thm-4.1" in tex


def test_disagreeing_symbolic_and_numeric_verdicts_are_flagged_loudly(rows):
    table = {(r.id, r.variant): (r.verdict, "the row's own verdict") for r in rows}
    table[("thm-4.1", "printed")] = (Verdict.HOLDS, "pretend")
    attach_symbolic(rows, table)
    try:
        row = next(r for r in rows if (r.id, r.variant) == ("thm-4.1", "printed"))
        assert row.verdict is Verdict.VIOLATED and row.agreement is Agreement.DISAGREE
        assert [r for r in rows if r.agreement is Agreement.DISAGREE] == [row]
        assert format_text(rows, META).startswith("!!! SYMBOLIC AND NUMERIC VERDICTS DISAGREE")
        assert "**DISAGREE**" in format_markdown(rows, META)
    finally:
        attach_symbolic(rows, None)
    assert not format_text(rows, META).startswith("!!!")


@pytest.mark.parametrize("argv, message", [
    (["--only", "thm-9.9"], "unknown statement ID 'thm-9.9'"),
    (["--instances", "0"], "argument --instances: must be a positive integer, got 0"),
    (["--instances", "-5"], "argument --instances: must be a positive integer, got -5"),
    (["--instances", "many"], "argument --instances: must be an integer, got 'many'"),
    (["--seed", "-1"], "argument --seed: must be an integer in [0, 2^32), got -1"),
    (["--format", "xml"], "invalid choice: 'xml'"),
    (["--counterexamples", "maybe"], "invalid choice: 'maybe'"),
    (["--no-minimise"], "unrecognized arguments: --no-minimise"),
    (["--out", "/nonexistent-dir/r.txt"], "cannot write '/nonexistent-dir/r.txt'"),
    (["--trajectory", "/nonexistent-run"], "no such directory"),
])
def test_bad_input_exits_2_with_one_line_and_no_traceback(argv, message):
    code, out, err = _run(*argv)
    assert code == 2 and out == ""
    assert err.startswith("error: ") and err.endswith("\n") and err.count("\n") == 1
    assert message in err and "Traceback" not in err


def test_command_line_bad_input_exits_2_without_traceback():
    p = subprocess.run([sys.executable, "-m", "theory.report", "--only", "nope"], cwd=ROOT, capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 2 and p.stderr.startswith("error: unknown statement ID 'nope'")
    assert p.stderr.count("\n") == 1 and p.stderr.endswith("\n")


def test_out_is_written_atomically_or_not_at_all(tmp_path, monkeypatch):
    target = tmp_path / "report.json"
    target.write_text("previous")

    def boom(rows, meta):
        raise OSError(28, "No space left on device")
    monkeypatch.setitem(FORMATS, "json", boom)
    code, _, err = _run("--instances", "20", "--only", "obs-4.3", "--format", "json", "--out", str(target))
    assert code == 2 and target.read_text() == "previous"
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]


def test_out_file_receives_the_report(tmp_path):
    target = tmp_path / "r.csv"
    code, out, _ = _run("--instances", "20", "--only", "obs-4.3", "--format", "csv", "--out", str(target))
    assert code == 0 and out == "" and target.read_text().startswith("id,variant,verdict")


def test_long_runs_show_progress_on_stderr(monkeypatch):
    monkeypatch.setattr(report, "PROGRESS_AFTER_S", 0.0)
    code, _, err = _run("--instances", "20", "--only", "obs-4.3", "--format", "json")
    assert code == 0 and "report:" in err and "instances" in err


def test_errata_document_is_fresh():
    committed = (ROOT / "docs" / "errata.md").read_text()
    assert committed == errata_markdown(errata(STATEMENTS)), \
        "regenerate: python -m theory.report --errata docs/errata.md"


@pytest.mark.slow
def test_default_run_evaluates_10000_instances_per_variant_and_records_its_time():
    # The run's time is recorded (meta.seconds), not asserted: a wall-clock assertion would fail
    # on a loaded machine without saying anything about the code.
    p = subprocess.run([sys.executable, "-m", "theory.report", "--format", "json"], cwd=ROOT, capture_output=True,
                       text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    data = json.loads(p.stdout)
    applicable = [r for r in data["rows"] if r["verdict"] not in (Verdict.DEFINITION, Verdict.UNDETERMINED)]
    assert all(r["instances"] >= 10_000 for r in applicable)
    assert data["meta"]["seconds"] > 0
