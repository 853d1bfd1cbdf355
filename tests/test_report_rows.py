"""The report's verdict merging: a row's numeric verdict from its sweep summary and certificates
(numeric.report.numeric_verdict), and its agreement with the symbolic verdict
(theory.report_rows.agreement), both in theory.vocab's Verdict vocabulary."""
from dataclasses import dataclass

import pytest

from numeric.report import numeric_verdict
from theory.report_rows import (Agreement, MissingSymbolicVerdictError, Row, Source, SymbolicSource, agreement,
                                attach_symbolic, symbolic_table)
from theory.statements import STATEMENTS, get
from theory.vocab import Verdict

V = Verdict
DECIDED = (V.HOLDS, V.EQUALITY, V.VIOLATED)


@dataclass
class Summary:          # the fields of numeric.sweep.VariantSweep that numeric_verdict reads
    instances: int = 100
    violations: int = 0
    holds: int = 0


@dataclass
class Cert:             # numeric.certify.Certificate's verdict
    verdict: Verdict


def variant(statement_id, name):
    return next(v for v in get(statement_id).variants if v.name == name)


LE = variant("thm-4.1", "drop-correlation")      # <=
EQ = variant("thm-4.1", "exact")                 # ==
DEF = variant("def-2.1", "printed")              # definition


# --- numeric verdict: each test pins one verdict, so it fails on every other -------------------

def test_numeric_verdict_is_violated_when_a_kept_violation_is_certified():
    verdict, note = numeric_verdict(LE, Summary(violations=3, holds=97), [Cert(V.VIOLATED)], [])
    assert verdict is V.VIOLATED and note == ""


def test_numeric_verdict_is_holds_when_no_violation_and_a_positive_slack_is_certified():
    assert numeric_verdict(LE, Summary(holds=100), [], [Cert(V.HOLDS)]) == (V.HOLDS, "")


def test_numeric_verdict_is_equality_for_an_identity_without_violations():
    assert numeric_verdict(EQ, Summary(), [], []) == (V.EQUALITY, "")


def test_numeric_verdict_is_equality_when_holding_instances_are_not_certified():
    assert numeric_verdict(LE, Summary(holds=100), [], [Cert(V.EQUALITY)])[0] is V.EQUALITY


def test_numeric_verdict_is_holds_when_exact_arithmetic_refutes_every_float_violation():
    verdict, note = numeric_verdict(LE, Summary(violations=2, holds=98), [Cert(V.HOLDS), Cert(V.EQUALITY)], [])
    assert verdict is V.HOLDS and "not confirmed by exact re-evaluation" in note


def test_numeric_verdict_is_undetermined_when_float_violations_are_neither_certified_nor_refuted():
    verdict, note = numeric_verdict(LE, Summary(violations=5, holds=95), [Cert(V.HOLDS), Cert(V.UNDEFINED)], [])
    assert verdict is V.UNDETERMINED and note == ("5 float violation(s), none certified (1/2 re-evaluated exactly "
                                                  "were not violations)")


def test_numeric_verdict_is_undetermined_when_no_instance_applies():
    assert numeric_verdict(LE, Summary(instances=0), [], [])[0] is V.UNDETERMINED


def test_numeric_verdict_of_a_definition_is_definition():
    assert numeric_verdict(DEF, Summary(), [], []) == (V.DEFINITION, "")


# --- agreement -------------------------------------------------------------------------------

@pytest.mark.parametrize("symbolic", DECIDED + (V.DEFINITION,))
@pytest.mark.parametrize("numeric", DECIDED + (V.DEFINITION,))
def test_on_random_instances_verdicts_agree_exactly_when_they_are_compatible(symbolic, numeric):
    compatible = {(V.HOLDS, V.HOLDS), (V.HOLDS, V.EQUALITY), (V.EQUALITY, V.EQUALITY), (V.VIOLATED, V.VIOLATED),
                  (V.HOLDS, V.DEFINITION), (V.EQUALITY, V.DEFINITION), (V.VIOLATED, V.DEFINITION),
                  (V.DEFINITION, V.DEFINITION)}
    expected = Agreement.AGREE if (symbolic, numeric) in compatible else Agreement.DISAGREE
    assert agreement(symbolic, numeric) is expected


@pytest.mark.parametrize("symbolic, trajectory, expected", [
    (V.HOLDS, V.VIOLATED, Agreement.DISAGREE),
    (V.EQUALITY, V.VIOLATED, Agreement.DISAGREE),
    (V.HOLDS, V.EQUALITY, Agreement.AGREE),
    (V.EQUALITY, V.HOLDS, Agreement.AGREE),          # probes record rounding; only violations contradict
    (V.VIOLATED, V.VIOLATED, Agreement.AGREE),
    (V.VIOLATED, V.HOLDS, Agreement.HOLDS_ON_RUN),
    (V.VIOLATED, V.EQUALITY, Agreement.HOLDS_ON_RUN),
])
def test_along_a_trajectory_only_a_measured_violation_of_a_proved_statement_disagrees(symbolic, trajectory,
                                                                                     expected):
    assert agreement(symbolic, trajectory, Source.TRAJECTORY) is expected


@pytest.mark.parametrize("undecided", [(V.UNDETERMINED, V.VIOLATED), (V.HOLDS, V.UNDETERMINED),
                                       (V.EQUALITY, V.NOT_APPLICABLE)])
def test_an_undetermined_side_is_not_comparable(undecided):
    assert agreement(*undecided) is Agreement.NOT_COMPARABLE


# --- the symbolic column ---------------------------------------------------------------------

def _row(statement_id="thm-4.1", name="printed", verdict=V.VIOLATED):
    return Row(statement_id, name, verdict, 1, 1, None, None, None, None, None)


def test_the_cached_symbolic_verdicts_cover_every_registry_variant_as_verdicts():
    table = symbolic_table(STATEMENTS, SymbolicSource.CACHED)
    assert len(table) == sum(len(s.variants) for s in STATEMENTS)
    assert all(isinstance(verdict, Verdict) and reason for verdict, reason in table.values())


def test_a_row_without_a_symbolic_verdict_is_an_error_not_pending():
    with pytest.raises(MissingSymbolicVerdictError, match="no symbolic verdict for thm-4.1/no-such-variant"):
        attach_symbolic([_row(name="no-such-variant")], symbolic_table([get("thm-4.1")], SymbolicSource.CACHED))


def test_with_the_symbolic_layer_off_the_column_is_undetermined_with_the_reason():
    row = _row()
    attach_symbolic([row], symbolic_table(STATEMENTS, SymbolicSource.OFF))
    assert (row.symbolic_verdict, row.agreement) == (V.UNDETERMINED, Agreement.NOT_COMPARABLE)
    assert "--symbolic off" in row.symbolic_reason


def test_a_failure_of_exact_re_evaluation_is_reported_in_the_note_and_warned_never_swallowed(monkeypatch):
    import numeric.certify
    import numeric.report as orchestration

    def broken(statement, variant, setting, inputs):
        raise ValueError("interval enclosure did not converge")
    monkeypatch.setattr(numeric.certify, "certify", broken)
    warned = []
    rows = orchestration.numeric_report([get("thm-4.1")], orchestration.NumericRequest(
        instances=40, seed=0, symbolic=SymbolicSource.OFF, counterexamples=False), warn=warned.append)
    printed = next(r for r in rows if r.variant == "printed")
    assert "exact re-evaluation failed: ValueError: interval enclosure did not converge" in printed.note
    assert any(w.startswith("thm-4.1/printed: exact re-evaluation failed") for w in warned)
    # with no certificate, float violations alone do not make the row violated
    assert printed.verdict is V.UNDETERMINED and printed.certified == ""
