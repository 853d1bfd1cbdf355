"""Adversarial search on the identities: Facts C.1 and C.2, the Appendix C Hessian, Observation 4.3: one property per variant, steered by target() toward small
relative slack, with every counterexample ever found pinned by @example."""
from hypothesis import example, given  # noqa: F401

from tests import strategies as S
from theory import statements as registry


@S.SEARCH
@given(S.instance_for(registry.get("fact-c1").variant("printed")))
def test_fact_c1_printed_has_no_certified_counterexample(inst):
    S.search_bn("fact-c1", "printed", inst, must_hold=True)


@S.SEARCH
@given(S.instance_for(registry.get("fact-c1").variant("epsilon")))
def test_fact_c1_epsilon_has_no_certified_counterexample(inst):
    S.search_bn("fact-c1", "epsilon", inst, must_hold=True)


@S.SEARCH
@given(S.instance_for(registry.get("fact-c2").variant("printed")))
def test_fact_c2_printed_has_no_certified_counterexample(inst):
    S.search_bn("fact-c2", "printed", inst, must_hold=True)


@S.SEARCH
@given(S.instance_for(registry.get("fact-c2").variant("epsilon")))
def test_fact_c2_epsilon_has_no_certified_counterexample(inst):
    S.search_bn("fact-c2", "epsilon", inst, must_hold=True)


@S.SEARCH
@given(S.instance_for(registry.get("hessian-c").variant("printed")))
def test_hessian_c_printed_has_no_certified_counterexample(inst):
    S.search_bn("hessian-c", "printed", inst, must_hold=True)


@S.SEARCH
@given(S.instance_for(registry.get("hessian-c").variant("epsilon")))
def test_hessian_c_epsilon_has_no_certified_counterexample(inst):
    S.search_bn("hessian-c", "epsilon", inst, must_hold=True)


@S.SEARCH
@given(S.instance_for(registry.get("obs-4.3").variant("printed")))
def test_obs_4_3_printed_has_no_certified_counterexample(inst):
    S.search_bn("obs-4.3", "printed", inst, must_hold=True)


@S.SEARCH
@given(S.instance_for(registry.get("obs-4.3").variant("epsilon")))
def test_obs_4_3_epsilon_has_no_certified_counterexample(inst):
    S.search_bn("obs-4.3", "epsilon", inst, must_hold=True)


@S.SEARCH
@given(S.instance_for(registry.get("obs-4.3").variant("epsilon-batch-std")))
@example(S.as_float_instance(S.PINNED[("obs-4.3", "epsilon-batch-std")]))
def test_obs_4_3_epsilon_batch_std_search_finds_only_certified_violations(inst):
    S.search_bn("obs-4.3", "epsilon-batch-std", inst, must_hold=False)
