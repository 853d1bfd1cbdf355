"""The registry: stable IDs, literal printed forms, JSON listing, unknown IDs."""
import json
import subprocess
import sys

import pytest

from theory import statements as st

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
    assert statement.kind in st.KINDS and statement.hypotheses and statement.reading


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


@pytest.mark.parametrize("statement", [s for s in st.STATEMENTS if s.id != "obs-4.3"], ids=lambda s: s.id)
def test_printed_latex_is_copied_from_the_paper(statement):
    text = _paper_text()
    # every display piece of the printed LaTeX (split at our joining \qquad / \quad) is in the paper
    pieces = [p for chunk in statement.printed_latex.split(r"\qquad") for p in chunk.split(r"\quad")]
    longest = max(pieces, key=len).strip()
    assert longest[:60] in text


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
