"""The registry: stable IDs, literal printed forms, JSON listing, unknown IDs."""
import json
import subprocess
import sys

import pytest

from theory import statements as st
from theory.vocab import EpsilonScope, Kind, Relation, Setting

REQUIRED_IDS = {"fact-c1", "fact-c2", "hessian-c", "thm-4.1", "thm-4.2", "obs-4.3", "thm-4.4",
                "thm-c1", "lemma-4.5", "def-2.1"}
PAPER_NAME = "santurkar2018-how-does-batchnorm-help-optimization.txt"


def test_registry_has_exactly_the_stable_ids():
    assert {s.id for s in st.STATEMENTS} == REQUIRED_IDS


@pytest.mark.parametrize("statement", st.STATEMENTS, ids=lambda s: s.id)
def test_every_statement_has_a_printed_variant_and_named_notes(statement):
    names = [v.name for v in statement.variants]
    assert names[0] == "printed"
    assert len(set(names)) == len(names)
    assert all(v.note for v in statement.variants)
    assert isinstance(statement.kind, Kind) and isinstance(statement.setting, Setting)
    assert statement.hypotheses and statement.reading
    assert all(isinstance(v.relation, Relation) and isinstance(v.epsilon, EpsilonScope) for v in statement.variants)


def test_a_variant_rejects_an_unknown_relation_or_epsilon_scope():
    base = st.get("thm-4.1").variant("printed")
    from dataclasses import replace
    with pytest.raises(ValueError, match="'=<' is not a valid Relation"):
        replace(base, relation="=<")
    with pytest.raises(ValueError, match="'small' is not a valid EpsilonScope"):
        replace(base, epsilon="small")


@pytest.mark.parametrize("statement,variant", [(s, v) for s, v in st.all_variants() if v.epsilon is EpsilonScope.POSITIVE],
                         ids=lambda x: getattr(x, "id", getattr(x, "name", "")))
def test_every_epsilon_variant_is_derived_from_an_eps_zero_variant_by_the_factory(statement, variant):
    base = statement.variant(variant.derived_from)
    assert base.epsilon is EpsilonScope.ZERO
    assert (variant.requires, variant.relation, variant.scale, variant.condition, variant.constraint) == \
        (base.requires, base.relation, base.scale, base.condition, base.constraint)
    # the same two sides unless the restatement says which side it changes (its own LaTeX)
    if variant.lhs is base.lhs and variant.rhs is base.rhs:
        assert variant.latex == base.latex + r",\quad " + st.EPSILON_SIGMA


def test_violated_printed_variants_name_the_likely_cause_of_the_misprint():
    with_cause = {(s.id, v.name) for s, v in st.all_variants() if v.cause}
    assert with_cause == {("thm-4.1", "printed"), ("thm-4.2", "printed-part2"), ("thm-4.4", "printed"),
                          ("thm-c1", "printed"), ("lemma-4.5", "printed"), ("obs-4.3", "epsilon-batch-std"),
                          # readings of the paper's own wording that fail (issue 10)
                          ("thm-4.2", "part2-main-text"), ("obs-4.3", "minima-preserved")}


def _paper_text() -> str:
    """The specification: ../shared/paper when the checkout sits beside it, else the copy kept in
    tests/data (identical; the test below fails if they ever differ)."""
    from pathlib import Path
    here = Path(__file__).resolve().parent
    shared = here.parents[1] / "shared" / "paper" / PAPER_NAME
    copy = here / "data" / PAPER_NAME
    if shared.exists():
        assert shared.read_text() == copy.read_text(), "tests/data holds a stale copy of the paper"
    return copy.read_text()


@pytest.mark.parametrize("statement", st.STATEMENTS, ids=lambda s: s.id)
def test_every_excerpt_of_the_printed_statement_is_in_the_paper_in_full(statement):
    text = _paper_text()
    assert statement.excerpts, "a statement quotes the paper"
    for excerpt in statement.excerpts:
        assert excerpt.text in text, f"not verbatim in the paper: {excerpt.text!r}"
    # the printed LaTeX is the excerpts plus the labelled connecting text, nothing else
    assert statement.printed_latex == "".join(part.latex for part in statement.printed)
    assert all(isinstance(part, (st.Excerpt, st.Connecting)) for part in statement.printed)


def test_the_excerpt_check_fails_on_a_changed_character():
    text = _paper_text()
    excerpt = st.get("obs-4.3").excerpts[0].text
    assert excerpt in text and excerpt.replace("minima", "maxima") not in text
    assert excerpt[:-1] + "!" not in text     # the end of the excerpt is compared too


def test_statements_cli_json_lists_every_id():
    out = subprocess.run([sys.executable, "-m", "theory.statements", "--format", "json"],
                         capture_output=True, text=True, check=True).stdout
    data = json.loads(out)
    assert {s["id"] for s in data["statements"]} == REQUIRED_IDS
    for s in data["statements"]:
        assert set(s) >= {"id", "title", "source", "kind", "hypotheses", "variants"}
        assert all(set(v) >= {"name", "latex", "note"} for v in s["variants"])


def test_unknown_id_is_an_error_listing_the_valid_ones():
    with pytest.raises(st.UnknownStatementError, match="valid IDs: fact-c1, fact-c2"):
        st.get("thm-9.9")
    result = subprocess.run([sys.executable, "-m", "theory.statements", "thm-9.9"], capture_output=True, text=True)
    assert result.returncode == 2
    assert "unknown statement ID 'thm-9.9'" in result.stderr and "Traceback" not in result.stderr


def test_unknown_variant_is_an_error_listing_the_variants():
    with pytest.raises(st.UnknownStatementError, match="printed, exact"):
        st.get("thm-4.1").variant("nope")
