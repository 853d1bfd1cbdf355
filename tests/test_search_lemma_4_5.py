"""Adversarial search on Lemma 4.5 over the toy model of theory.lemma45 (exact optimum sets)."""
import numpy as np
from hypothesis import assume, example, given, target

from tests import strategies as S
from theory import lemma45, statements as registry
from theory.evaluate import evaluate_variant
from theory.vocab import Setting, Verdict

STATEMENT = registry.get("lemma-4.5")


def _float(inst):
    return lemma45.toy_quantities_numpy(inst["X"][None], inst["t"][None], inst["W0"][None])


def _evaluate(variant, inst):
    """(verdict, relative slack); NOT_APPLICABLE where the toy model has no unique optima
    (singular X^T X raises in the float solve), UNDEFINED where the BN optimum direction is 0
    (targets uncorrelated with the inputs: the distance is 0/0)."""
    try:
        with np.errstate(divide="ignore", invalid="ignore"):
            r = evaluate_variant(STATEMENT, STATEMENT.variant(variant), _float(inst))
    except np.linalg.LinAlgError:
        return Verdict.NOT_APPLICABLE, float("nan")
    return Verdict(r.verdicts[0]), float(r.rel_slack[0])


@S.SEARCH
@given(S.toy_instances())
@example({k: np.array(v, float) for k, v in S.PINNED_TOY[("lemma-4.5", "printed")].items()})
@example({k: np.array(v, float) for k, v in S.EARLIER_TOY[("lemma-4.5", "printed")].items()})
def test_lemma_4_5_printed_search_finds_only_certified_violations(inst):
    verdict, rel = _evaluate("printed", inst)
    assume(verdict in (Verdict.HOLDS, Verdict.EQUALITY, Verdict.VIOLATED))
    target(-rel, label="lemma-4.5/printed: -relative slack")
    if verdict == Verdict.VIOLATED and rel < -S.ROBUST:
        assert S.certified_verdict("lemma-4.5", "printed", Setting.TOY_REGRESSION, inst) == Verdict.VIOLATED


@S.SEARCH
@given(S.toy_instances())
def test_lemma_4_5_ray_has_no_certified_counterexample(inst):
    verdict, rel = _evaluate("ray", inst)
    assume(verdict in (Verdict.HOLDS, Verdict.EQUALITY, Verdict.VIOLATED))
    target(-rel, label="lemma-4.5/ray: -relative slack")
    if verdict == Verdict.VIOLATED:
        assert S.certified_verdict("lemma-4.5", "ray", Setting.TOY_REGRESSION, inst) != Verdict.VIOLATED


def _toy_holds(statement_id, variant, inst):
    statement = registry.get(statement_id)
    try:
        with np.errstate(divide="ignore", invalid="ignore"):
            r = evaluate_variant(statement, statement.variant(variant), _float(inst))
    except np.linalg.LinAlgError:
        return Verdict.NOT_APPLICABLE, float("nan")
    return Verdict(r.verdicts[0]), float(r.rel_slack[0])


@S.SEARCH
@given(S.toy_instances())
def test_lemma_4_5_with_bias_has_no_certified_counterexample(inst):
    verdict, rel = _toy_holds("lemma-4.5", "with-bias", inst)
    assume(verdict in (Verdict.HOLDS, Verdict.EQUALITY, Verdict.VIOLATED))
    target(-rel, label="lemma-4.5/with-bias: -relative slack")
    if verdict == Verdict.VIOLATED:
        assert S.certified_verdict("lemma-4.5", "with-bias", Setting.TOY_REGRESSION, inst) != Verdict.VIOLATED


@S.SEARCH
@given(S.toy_instances())
def test_lemma_4_5_centred_inputs_has_no_certified_counterexample(inst):
    verdict, rel = _toy_holds("lemma-4.5", "centred-inputs", inst)
    assume(verdict in (Verdict.HOLDS, Verdict.EQUALITY, Verdict.VIOLATED))
    target(-rel, label="lemma-4.5/centred-inputs: -relative slack")
    if verdict == Verdict.VIOLATED:
        assert S.certified_verdict("lemma-4.5", "centred-inputs", Setting.TOY_REGRESSION, inst) != Verdict.VIOLATED


@S.SEARCH
@given(S.toy_instances())
@example({"X": np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0]]), "t": np.array([1.0, 0.0, 1.0]),
          "W0": np.array([1.0, 0.0])})
def test_obs_4_3_minima_preserved_search_finds_only_certified_violations(inst):
    # the second sentence of Observation 4.3, evaluated on the Lemma 4.5 toy model
    verdict, rel = _toy_holds("obs-4.3", "minima-preserved", inst)
    assume(verdict in (Verdict.HOLDS, Verdict.EQUALITY, Verdict.VIOLATED))
    target(-rel, label="obs-4.3/minima-preserved: -relative slack")
    if verdict == Verdict.VIOLATED and rel < -S.ROBUST:
        assert S.certified_verdict("obs-4.3", "minima-preserved", Setting.TOY_REGRESSION, inst) == Verdict.VIOLATED
