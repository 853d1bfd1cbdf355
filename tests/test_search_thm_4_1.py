"""Adversarial search on Theorem 4.1 (Lipschitzness): one property per variant, steered by
target() toward small relative slack, with every counterexample ever found pinned by @example."""
from hypothesis import example, given

from tests import strategies as S
from theory import statements as registry

STATEMENT = registry.get("thm-4.1")


@S.SEARCH
@given(S.instance_for(STATEMENT.variant("printed")))
@example(S.as_float_instance(S.PINNED[("thm-4.1", "printed")]))
def test_thm_4_1_printed_search_finds_only_certified_violations(inst):
    S.search_bn(STATEMENT.id, "printed", inst, must_hold=False)


@S.SEARCH
@given(S.instance_for(STATEMENT.variant("exact")))
def test_thm_4_1_exact_has_no_certified_counterexample(inst):
    S.search_bn(STATEMENT.id, "exact", inst, must_hold=True)


@S.SEARCH
@given(S.instance_for(STATEMENT.variant("drop-correlation")))
def test_thm_4_1_drop_correlation_has_no_certified_counterexample(inst):
    S.search_bn(STATEMENT.id, "drop-correlation", inst, must_hold=True)


@S.SEARCH
@given(S.instance_for(STATEMENT.variant("epsilon")))
@example(S.as_float_instance(S.PINNED[("thm-4.1", "epsilon")]))
def test_thm_4_1_epsilon_search_finds_only_certified_violations(inst):
    S.search_bn(STATEMENT.id, "epsilon", inst, must_hold=False)


@S.SEARCH
@given(S.instance_for(STATEMENT.variant("exact-epsilon")))
def test_thm_4_1_exact_epsilon_has_no_certified_counterexample(inst):
    S.search_bn(STATEMENT.id, "exact-epsilon", inst, must_hold=True)
