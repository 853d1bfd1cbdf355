"""Adversarial search on Theorem 4.2 (smoothness): one property per variant, steered by target() toward small
relative slack, with every counterexample ever found pinned by @example."""
from hypothesis import example, given  # noqa: F401

from tests import strategies as S
from theory import statements as registry


@S.SEARCH
@given(S.instance_for(registry.get("thm-4.2").variant("printed")))
def test_thm_4_2_printed_has_no_certified_counterexample(inst):
    S.search_bn("thm-4.2", "printed", inst, must_hold=True)


@S.SEARCH
@given(S.instance_for(registry.get("thm-4.2").variant("printed-part2")))
@example(S.as_float_instance(S.PINNED[("thm-4.2", "printed-part2")]))
def test_thm_4_2_printed_part2_search_finds_only_certified_violations(inst):
    S.search_bn("thm-4.2", "printed-part2", inst, must_hold=False)


@S.SEARCH
@given(S.instance_for(registry.get("thm-4.2").variant("part2-exact")))
def test_thm_4_2_part2_exact_has_no_certified_counterexample(inst):
    S.search_bn("thm-4.2", "part2-exact", inst, must_hold=True)


@S.SEARCH
@given(S.instance_for(registry.get("thm-4.2").variant("epsilon")))
@example(S.as_float_instance(S.PINNED[("thm-4.2", "epsilon")]))
def test_thm_4_2_epsilon_search_finds_only_certified_violations(inst):
    S.search_bn("thm-4.2", "epsilon", inst, must_hold=False)


@S.SEARCH
@given(S.instance_for(registry.get("thm-4.2").variant("part2-quadratic-form")))
def test_thm_4_2_part2_quadratic_form_has_no_certified_counterexample(inst):
    S.search_bn("thm-4.2", "part2-quadratic-form", inst, must_hold=True)


@S.SEARCH
@given(S.instance_for(registry.get("thm-4.2").variant("part2-main-text")))
def test_thm_4_2_part2_main_text_search_finds_only_certified_violations(inst):
    S.search_bn("thm-4.2", "part2-main-text", inst, must_hold=False)


@S.SEARCH
@given(S.instance_for(registry.get("thm-4.2").variant("exact")))
def test_thm_4_2_exact_has_no_certified_counterexample(inst):
    S.search_bn("thm-4.2", "exact", inst, must_hold=True)


@S.SEARCH
@given(S.instance_for(registry.get("thm-4.2").variant("exact-epsilon")))
def test_thm_4_2_exact_epsilon_has_no_certified_counterexample(inst):
    S.search_bn("thm-4.2", "exact-epsilon", inst, must_hold=True)
