"""Adversarial search on Lemma 4.5 over the toy model of theory.lemma45 (exact optimum sets)."""
import math

import numpy as np
from hypothesis import example, given, target

from tests import strategies as S
from theory import lemma45, statements as registry

STATEMENT = registry.get("lemma-4.5")


def _float(inst):
    return lemma45.toy_quantities_numpy(inst["X"][None], inst["t"][None], inst["W0"][None])


def _evaluate(variant, inst):
    from theory.evaluate import evaluate_variant
    try:
        q = _float(inst)
        r = evaluate_variant(STATEMENT, STATEMENT.variant(variant), q)
    except (lemma45.ToyModelError, np.linalg.LinAlgError):
        return "n/a", float("nan")
    return str(r.verdicts[0]), float(r.rel_slack[0])


@S.SEARCH
@given(S.toy_instances())
@example({k: np.array(v, float) for k, v in S.PINNED_TOY[("lemma-4.5", "printed")].items()})
def test_lemma_4_5_printed_search_finds_only_certified_violations(inst):
    verdict, rel = _evaluate("printed", inst)
    if math.isfinite(rel):
        target(-rel, label="lemma-4.5/printed: -relative slack")
    if verdict == "violated" and rel < -S.ROBUST:
        assert S.certified_verdict("lemma-4.5", "printed", "toy-regression", inst) == "violated"


@S.SEARCH
@given(S.toy_instances())
def test_lemma_4_5_ray_has_no_certified_counterexample(inst):
    verdict, rel = _evaluate("ray", inst)
    if math.isfinite(rel):
        target(-rel, label="lemma-4.5/ray: -relative slack")
    if verdict == "violated":
        assert S.certified_verdict("lemma-4.5", "ray", "toy-regression", inst) != "violated"
