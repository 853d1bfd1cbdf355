"""theory.report: the formats, the JSON shape, reproducibility, the loud disagreement banner,
bad input (exit 2, one line, no traceback) and the atomic --out."""
import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from theory import report

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
    from theory.statements import all_variants
    assert [(r["id"], r["variant"]) for r in json_report["rows"]] == [(s.id, v.name) for s, v in all_variants()]


def test_verdicts_are_the_documented_ones_and_printed_theorem_4_1_is_violated(json_report):
    rows = {(r["id"], r["variant"]): r for r in json_report["rows"]}
    assert {r["verdict"] for r in json_report["rows"]} <= {"holds", "equality", "violated", "conditional",
                                                          "undetermined", "definition"}
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
    from theory.statements import resolve
    r = report.numeric_rows(resolve(["thm-4.1", "def-2.1"]), 60, 0)
    report.attach_symbolic(r, {})
    return r


META = {"seed": 0, "instances": 60, "versions": {}, "git_revision": "abc", "seconds": 1.0}


def test_text_is_an_aligned_table_with_counterexamples(rows):
    text = report.format_text(rows, META)
    header = text.splitlines()[0]
    assert header.startswith("id") and "min rel" in header
    assert "counterexample: m=3" in text


def test_markdown_is_a_github_table(rows):
    lines = report.format_markdown(rows, META).splitlines()
    assert lines[0].startswith("| id |") and set(lines[1]) <= set("|-")
    assert all(line.count("|") == lines[0].count("|") for line in lines[2:2 + len(rows)])


def test_csv_has_one_header_line_and_one_row_per_variant(rows):
    parsed = list(csv.reader(io.StringIO(report.format_csv(rows, META))))
    assert parsed[0][:3] == ["id", "variant", "verdict"] and len(parsed) == len(rows) + 1


def test_latex_uses_booktabs(rows):
    tex = report.format_latex(rows, META)
    assert "\\toprule" in tex and "\\midrule" in tex and "\\bottomrule" in tex and "thm-4.1" in tex


def test_disagreeing_symbolic_and_numeric_verdicts_are_flagged_loudly(rows):
    report.attach_symbolic(rows, {("thm-4.1", "printed"): ("holds", "pretend")})
    try:
        row = next(r for r in rows if (r.id, r.variant) == ("thm-4.1", "printed"))
        assert row.agreement == "DISAGREE"
        assert report.format_text(rows, META).startswith("!!! SYMBOLIC AND NUMERIC VERDICTS DISAGREE")
        assert "**DISAGREE**" in report.format_markdown(rows, META)
    finally:
        report.attach_symbolic(rows, {})


def test_agreement_rules():
    assert report.agreement("violated", "violated") == "agree"
    assert report.agreement("equality", "holds") == "DISAGREE"
    assert report.agreement("holds", "equality") == "agree"
    assert report.agreement("pending", "violated") == "n/a"


@pytest.mark.parametrize("argv, message", [
    (["--only", "thm-9.9"], "unknown statement ID 'thm-9.9'"),
    (["--instances", "0"], "--instances must be a positive integer, got 0"),
    (["--instances", "-5"], "positive integer"),
    (["--format", "xml"], "invalid choice: 'xml'"),
    (["--out", "/nonexistent-dir/r.txt"], "cannot write '/nonexistent-dir/r.txt'"),
    (["--trajectory", "/nonexistent-run"], "no such directory"),
])
def test_bad_input_exits_2_with_one_line_and_no_traceback(argv, message):
    code, out, err = _run(*argv)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and message in err and "Traceback" not in err


def test_command_line_bad_input_exits_2_without_traceback():
    p = subprocess.run([sys.executable, "-m", "theory.report", "--only", "nope"], cwd=ROOT, capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and "Traceback" not in p.stderr


def test_out_is_written_atomically_or_not_at_all(tmp_path, monkeypatch):
    target = tmp_path / "report.json"
    target.write_text("previous")

    def boom(rows, meta):
        raise OSError(28, "No space left on device")
    monkeypatch.setitem(report.FORMATS, "json", boom)
    code, _, err = _run("--instances", "20", "--only", "obs-4.3", "--format", "json", "--out", str(target))
    assert code == 2 and target.read_text() == "previous"
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]


def test_out_file_receives_the_report(tmp_path):
    target = tmp_path / "r.csv"
    code, out, _ = _run("--instances", "20", "--only", "obs-4.3", "--format", "csv", "--out", str(target))
    assert code == 0 and out == "" and target.read_text().startswith("id,variant,verdict")


def test_long_runs_show_progress_on_stderr(monkeypatch):
    monkeypatch.setattr(report, "PROGRESS_AFTER_S", 0.0)
    monkeypatch.setattr(report._Progress, "__call__", report._Progress.__call__)
    code, _, err = _run("--instances", "20", "--only", "obs-4.3", "--format", "json")
    assert code == 0 and "report:" in err and "instances" in err


def test_errata_document_is_fresh():
    committed = (ROOT / "docs" / "errata.md").read_text()
    from theory.statements import STATEMENTS
    assert committed == report.errata_markdown(STATEMENTS, 0), \
        "regenerate: python -m theory.report --errata docs/errata.md"


@pytest.mark.slow
def test_default_run_evaluates_10000_instances_per_variant_and_records_its_time():
    # The 10 s target is measured (meta.seconds, reported in the issue note), not asserted: a
    # wall-clock assertion would fail on a loaded machine without saying anything about the code.
    env = dict(os.environ)
    p = subprocess.run([sys.executable, "-m", "theory.report", "--format", "json"], cwd=ROOT, capture_output=True,
                       text=True, timeout=300, env=env)
    assert p.returncode == 0, p.stderr
    data = json.loads(p.stdout)
    applicable = [r for r in data["rows"] if r["verdict"] not in ("definition", "undetermined")]
    assert all(r["instances"] >= 10_000 for r in applicable)
    assert data["meta"]["seconds"] > 0
