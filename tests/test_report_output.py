"""What a reader sees: the text report and the statement list fit 100 columns unless asked for
their full width (--wide), the verdict words are explained in --help and under the table, every
format carries the counterexamples, the notes and the footer, and an ID named twice is reported
once (issue 13, items 10 and 13)."""
import dataclasses
import io
import json

import pytest

from numeric.report import NumericRequest, numeric_report
from theory import report, statements
from theory.report_formats import TEXT_WIDTH, format_latex, format_markdown, format_text
from theory.report_rows import SymbolicSource
from theory.statements import resolve
from theory.vocab import VERDICT_LEGEND

META = {"seed": 0, "instances": 60, "versions": {}, "git_revision": "abc", "seconds": 1.0}


def _run(*argv):
    out, err = io.StringIO(), io.StringIO()
    code = report.run(list(argv), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def rows():
    rows = numeric_report(resolve(["thm-4.1", "lemma-4.5"]), NumericRequest(instances=30, seed=0,
                                                                             symbolic=SymbolicSource.CACHED))
    # a measured row has a long name: a variant at a layer of a network
    return rows + [dataclasses.replace(rows[0], layer="features.12.batch_norm_of_a_long_module_name",
                                       note="a note long enough to need wrapping " * 4)]


def test_the_text_report_fits_100_columns_and_wide_keeps_every_column(rows):
    narrow = format_text(rows, META)
    assert max(len(line) for line in narrow.splitlines()) <= TEXT_WIDTH
    wide = format_text(rows, META, width=None)
    assert max(len(line) for line in wide.splitlines()) > TEXT_WIDTH
    assert "median slack" in wide and "max slack" in wide
    # nothing is lost in the narrow form but the optional columns: every counterexample and note is there
    assert narrow.replace("\n", " ").split().count("counterexample:") == wide.count("counterexample:")


def test_the_verdicts_are_explained_under_the_table_and_in_help(rows, capsys):
    text = format_text(rows, META)
    code = report.main(["--help"])
    out = capsys.readouterr().out
    for verdict, meaning in VERDICT_LEGEND.items():
        assert meaning in text and meaning in out
    assert code == 0


def test_the_statement_list_fits_100_columns_unless_wide(capsys):
    assert statements.main([]) == 0
    narrow = capsys.readouterr().out
    assert max(len(line) for line in narrow.splitlines()) <= 100
    assert statements.main(["--wide"]) == 0
    assert max(len(line) for line in capsys.readouterr().out.splitlines()) > 100


def test_latex_keeps_the_counterexamples_and_the_footer_and_markdown_the_notes(rows):
    tex = format_latex(rows, META)
    assert "counterexample: \\texttt{m=3" in tex and "seed 0, >= 60 instances per group" in tex
    md = format_markdown(rows, META)
    assert all(r.note[:30] in md for r in rows if r.note)


def test_an_id_named_twice_is_reported_once():
    code, out, _ = _run("--only", "obs-4.3", "obs-4.3", "--instances", "5", "--counterexamples", "skip",
                        "--format", "json")
    ids = [(r["id"], r["variant"]) for r in json.loads(out)["rows"]]
    assert code == 0 and len(ids) == len(set(ids)) == len(statements.get("obs-4.3").variants)
