"""Adversarial search on Theorems 4.4 and C.1 (maxima over ||X|| <= lambda): one property per variant, steered by target() toward small
relative slack, with every counterexample ever found pinned by @example."""
from hypothesis import example, given  # noqa: F401

from tests import strategies as S
from theory import statements as registry


@S.SEARCH
@given(S.instance_for(registry.get("thm-4.4").variant("printed")))
@example(S.as_float_instance(S.PINNED[("thm-4.4", "printed")]))
def test_thm_4_4_printed_search_finds_only_certified_violations(inst):
    S.search_bn("thm-4.4", "printed", inst, must_hold=False)


@S.SEARCH
@given(S.instance_for(registry.get("thm-4.4").variant("unsquared")))
@example(S.as_float_instance(S.PINNED[("thm-4.4", "unsquared")]))
def test_thm_4_4_unsquared_search_finds_only_certified_violations(inst):
    S.search_bn("thm-4.4", "unsquared", inst, must_hold=False)


@S.SEARCH
@given(S.instance_for(registry.get("thm-4.4").variant("proof-eq17")))
@example(S.as_float_instance(S.PINNED[("thm-4.4", "proof-eq17")]))
def test_thm_4_4_proof_eq17_search_finds_only_certified_violations(inst):
    S.search_bn("thm-4.4", "proof-eq17", inst, must_hold=False)


@S.SEARCH
@given(S.instance_for(registry.get("thm-4.4").variant("exact")))
def test_thm_4_4_exact_has_no_certified_counterexample(inst):
    S.search_bn("thm-4.4", "exact", inst, must_hold=True)


@S.SEARCH
@given(S.instance_for(registry.get("thm-c1").variant("printed")))
@example(S.as_float_instance(S.PINNED[("thm-c1", "printed")]))
def test_thm_c1_printed_search_finds_only_certified_violations(inst):
    S.search_bn("thm-c1", "printed", inst, must_hold=False)


@S.SEARCH
@given(S.instance_for(registry.get("thm-c1").variant("proof-eq58")))
@example(S.as_float_instance(S.PINNED[("thm-c1", "proof-eq58")]))
def test_thm_c1_proof_eq58_search_finds_only_certified_violations(inst):
    S.search_bn("thm-c1", "proof-eq58", inst, must_hold=False)


@S.SEARCH
@given(S.instance_for(registry.get("thm-4.4").variant("epsilon")))
@example(S.as_float_instance(S.PINNED[("thm-4.4", "epsilon")]))
def test_thm_4_4_epsilon_search_finds_only_certified_violations(inst):
    S.search_bn("thm-4.4", "epsilon", inst, must_hold=False)


@S.SEARCH
@given(S.instance_for(registry.get("thm-4.4").variant("exact-epsilon")))
def test_thm_4_4_exact_epsilon_has_no_certified_counterexample(inst):
    S.search_bn("thm-4.4", "exact-epsilon", inst, must_hold=True)


@S.SEARCH
@given(S.instance_for(registry.get("thm-c1").variant("split-bound")))
def test_thm_c1_split_bound_has_no_certified_counterexample(inst):
    S.search_bn("thm-c1", "split-bound", inst, must_hold=True)
