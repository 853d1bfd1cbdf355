"""Definition 2.1 (internal covariate shift) on deep linear networks (numeric.dln)."""
from hypothesis import given, strategies as st, target

from numeric import dln
from tests import strategies as S
from theory import statements as registry
from theory.evaluate import evaluate_variant
from theory.vocab import Verdict

STATEMENT = registry.get("def-2.1")
networks = st.builds(lambda seed, depth, width: dln.sample_dln(seed, 3, depth, width),
                     st.integers(0, 10_000), st.sampled_from(dln.DEPTHS), st.sampled_from(dln.WIDTHS))


@S.SEARCH
@given(networks)
def test_def_2_1_first_layer_zero_holds_exactly_on_every_network(inst):
    r = evaluate_variant(STATEMENT, STATEMENT.variant("first-layer-zero"), dln.dln_quantities(inst))
    target(float(r.lhs.max()), label="def-2.1/first-layer-zero: ICS of layer 1")
    assert (r.lhs == 0).all() and (r.verdicts == Verdict.EQUALITY).all()


@S.SEARCH
@given(networks)
def test_def_2_1_printed_measures_a_positive_shift_at_a_deeper_layer(inst):
    r = evaluate_variant(STATEMENT, STATEMENT.variant("printed"), dln.dln_quantities(inst))
    target(float(-r.lhs.min()), label="def-2.1/printed: -ICS")
    # the checker must be able to see a violation of 'G' = G': at layer >= 2 with a step, G' differs
    assert inst.layer >= 2 and (r.lhs > 0).all()
    assert (r.verdicts == Verdict.NOT_APPLICABLE).all()
