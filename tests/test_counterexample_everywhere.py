"""The docs, the errata and the report show one counterexample per variant: the one
numeric.counterexample finds, non-degenerate (m >= 3, LHS != 0, v != 0 exactly)."""
import json
import re
from fractions import Fraction
from pathlib import Path

import pytest

from numeric import counterexample as C
from numeric.report import NumericRequest, numeric_report
from theory import docs, statements as registry
from theory.report_rows import SymbolicSource
from theory.vocab import Verdict

ROOT = Path(__file__).resolve().parent.parent
ERRATA = ROOT / "docs" / "errata.md"


def _doc_variants():
    """(statement, variant) of every variant whose committed derivation doc shows a counterexample."""
    out = []
    for s in registry.STATEMENTS:
        text = (ROOT / "docs" / "derivations" / f"{s.id}.md").read_text()
        for section in text.split("\n### `")[1:]:
            name = section.split("`", 1)[0]
            if "Smallest counterexample" in section:
                out.append((s, s.variant(name), section))
    return out


DOC_VARIANTS = _doc_variants()


def _errata_blocks():
    return [json.loads(block) for block in re.findall(r"```json\n(.*?)\n```", ERRATA.read_text(), re.S)]


def _exact(ce):
    inp = ce.inputs
    ex = dict(m=ce.m, y=[Fraction(x) for x in inp["y"]], g=[Fraction(x) for x in inp["g"]],
              gamma=Fraction(inp["gamma"]), beta=Fraction(inp["beta"]), eps=Fraction(inp["eps"]),
              lam=Fraction(inp.get("lambda", "1")))
    ex["H"] = [[Fraction(x) for x in row] for row in inp["H"]] if "H" in inp else [[Fraction(0)] * ce.m] * ce.m
    return ex


def test_the_docs_show_counterexamples_for_every_violated_printed_form():
    shown = {(s.id, v.name) for s, v, _ in DOC_VARIANTS}
    assert {("thm-4.1", "printed"), ("thm-4.2", "printed-part2"), ("thm-4.4", "printed"),
            ("lemma-4.5", "printed")} <= shown


@pytest.mark.parametrize("s, v, section", DOC_VARIANTS, ids=lambda x: getattr(x, "id", getattr(x, "name", "")))
def test_the_doc_shows_the_searchs_counterexample_and_it_is_non_degenerate(s, v, section):
    ce = C.smallest_counterexample(s, v)
    assert isinstance(ce, C.Counterexample), ce
    assert "\n".join(docs._counterexample_lines(s, v)).strip() in section
    assert ce.m >= C.MIN_M
    if ce.setting != "toy-regression":
        assert C.degeneracy(s, v, _exact(ce)) == ""          # v != 0 and LHS != 0 exactly
    else:
        assert Fraction(ce.exact["lhs"]) != 0


def test_the_errata_show_the_searchs_counterexample_for_each_printed_variant():
    blocks = _errata_blocks()
    assert blocks, "docs/errata.md shows no counterexample"
    for block in blocks:
        s = registry.get(block["id"])
        ce = C.smallest_counterexample(s, s.variant(block["variant"]))
        assert block == ce.to_dict()
        assert block["m"] >= C.MIN_M


def test_the_report_rows_carry_the_searchs_counterexample():
    statements = (registry.get("thm-4.1"), registry.get("obs-4.3"))
    rows = numeric_report(statements, NumericRequest(instances=200, seed=3, workers=1, symbolic=SymbolicSource.OFF))
    violated = [r for r in rows if r.verdict is Verdict.VIOLATED]
    assert {(r.id, r.variant) for r in violated} == {("thm-4.1", "printed"), ("thm-4.1", "epsilon"),
                                                     ("obs-4.3", "epsilon-batch-std"), ("obs-4.3", "minima-preserved")}
    for r in violated:
        s = registry.get(r.id)
        assert r.counterexample == C.smallest_counterexample(s, s.variant(r.variant)).to_dict()
