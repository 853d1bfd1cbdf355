"""Adversarial search on Theorem 4.1 (Lipschitzness): one property per variant, steered by
target() toward small relative slack, with every counterexample ever found pinned by @example."""
import math

from hypothesis import example, given, target

from tests import strategies as S
from theory import statements as registry

STATEMENT = registry.get("thm-4.1")


def _search(variant, inst, must_hold):
    verdict, rel = S.evaluate_bn(STATEMENT.id, variant, inst)
    if math.isfinite(rel):
        target(-rel, label=f"{STATEMENT.id}/{variant}: -relative slack")
    if verdict != "violated":
        return
    certified = S.certified_verdict(STATEMENT.id, variant, "bn-channel", inst)
    if must_hold:
        assert certified != "violated", f"certified counterexample to {STATEMENT.id}/{variant}: {inst}"
    elif rel < -S.ROBUST:
        assert certified == "violated", f"float violation not confirmed exactly: {inst}"


@S.SEARCH
@given(S.instance_for(STATEMENT.variant("printed")))
@example(S.as_float_instance(S.PINNED[("thm-4.1", "printed")]))
def test_thm_4_1_printed_search_finds_only_certified_violations(inst):
    _search("printed", inst, must_hold=False)


@S.SEARCH
@given(S.instance_for(STATEMENT.variant("exact")))
def test_thm_4_1_exact_has_no_certified_counterexample(inst):
    _search("exact", inst, must_hold=True)


@S.SEARCH
@given(S.instance_for(STATEMENT.variant("drop-correlation")))
def test_thm_4_1_drop_correlation_has_no_certified_counterexample(inst):
    _search("drop-correlation", inst, must_hold=True)


@S.SEARCH
@given(S.instance_for(STATEMENT.variant("epsilon")))
@example(S.as_float_instance(S.PINNED[("thm-4.1", "epsilon")]))
def test_thm_4_1_epsilon_search_finds_only_certified_violations(inst):
    _search("epsilon", inst, must_hold=False)


@S.SEARCH
@given(S.instance_for(STATEMENT.variant("exact-epsilon")))
def test_thm_4_1_exact_epsilon_has_no_certified_counterexample(inst):
    _search("exact-epsilon", inst, must_hold=True)
