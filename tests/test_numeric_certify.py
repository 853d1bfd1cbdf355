"""numeric.certify: exact re-evaluation says 'violated' only for real violations."""
from fractions import Fraction

import numpy as np
import pytest

from numeric import certify
from numeric.maxima import max_weight_space_smoothness
from tests.strategies import EARLIER, PINNED
from theory import statements as registry
from theory.ops import IntervalOps
from theory.vocab import Verdict


def _get(sid, v):
    s = registry.get(sid)
    return s, s.variant(v)


def test_interval_back_end_encloses_the_float_value():
    ops = IntervalOps()
    x = ops.vector([0.1, 0.2, 0.3])
    total = ops.total(x)
    assert total.a <= 0.6000000000000001 and total.b >= 0.6
    assert ops.number(Fraction(1, 3)).delta < 1e-59


def test_interval_back_end_refuses_fewer_than_50_digits():
    with pytest.raises(ValueError, match=">= 50 digits"):
        IntervalOps(30)


def test_printed_theorem_4_1_at_m_equal_2_is_certified_violated_in_intervals():
    s, v = _get("thm-4.1", "printed")
    cert = certify.certify_bn(s, v, EARLIER[("thm-4.1", "printed")])
    assert cert.verdict is Verdict.VIOLATED and cert.method == certify.INTERVAL and float(cert.slack_upper) < -3


def test_exact_theorem_4_1_on_the_same_batch_is_undetermined_in_intervals_and_equality_exactly():
    s, v = _get("thm-4.1", "exact")
    assert certify.certify_bn(s, v, EARLIER[("thm-4.1", "printed")]).verdict is Verdict.UNDETERMINED
    assert certify.certify_bn(s, v, PINNED[("thm-4.1", "printed")], exact_first=True).verdict is Verdict.EQUALITY


def test_an_identity_on_a_float_instance_is_never_certified_violated():
    s, v = _get("hessian-c", "printed")
    rng = np.random.default_rng(0)
    H = rng.standard_normal((4, 4))
    inst = dict(m=4, y=rng.standard_normal(4), g=rng.standard_normal(4), gamma=1.5, beta=0.1, eps=0.0,
                H=H + H.T, lam=1.0)
    assert certify.certify_bn(s, v, inst).verdict is Verdict.UNDETERMINED


def test_a_constraint_met_only_in_float_is_not_applicable():
    s, v = _get("thm-4.2", "printed-part2")
    inst = dict(m=3, y=[0.0, 1.0, 3.0], g=[1.0, -2.0, 0.5], gamma=1.0, beta=0.0, eps=0.0,
                H=[[1.0, 0.1, 0.0], [0.1, 2.0, 0.0], [0.0, 0.0, 3.0]], lam=1.0)
    assert certify.certify_bn(s, v, inst).verdict is Verdict.NOT_APPLICABLE


def test_constrained_counterexample_is_decided_exactly():
    s, v = _get("thm-c1", "proof-eq58")
    for inst in (PINNED[("thm-c1", "proof-eq58")], EARLIER[("thm-c1", "proof-eq58")]):
        cert = certify.certify_bn(s, v, inst)
        assert cert.verdict is Verdict.VIOLATED and cert.method == certify.EXACT


def test_exact_zero_slack_is_equality_for_le_and_a_violation_of_a_strict_lt():
    import dataclasses
    s, v = _get("thm-4.2", "printed")          # eps = 0: v^T H_hat v equals the printed right side
    inst = dict(m=3, y=["0", "1", "3"], g=["1", "-2", "1/2"], gamma="2", beta="0", eps="0",
                H=[["1", "0", "1"], ["0", "2", "0"], ["1", "0", "-1"]], lam="1")
    assert certify.certify_bn(s, v, inst, exact_first=True).verdict is Verdict.EQUALITY
    strict = dataclasses.replace(v, relation="<")
    assert certify.certify_bn(s, strict, inst, exact_first=True).verdict is Verdict.VIOLATED
    assert certify.certify_bn(s, v, inst).verdict is Verdict.UNDETERMINED     # intervals cannot see an exact 0


def test_ball_maximum_enclosure_contains_the_float_maximum_and_is_narrow():
    ops = IntervalOps()
    rng = np.random.default_rng(1)
    B = rng.standard_normal((4, 4))
    A, u = B + B.T, rng.standard_normal(4)
    enc = certify.ball_max_enclosure(ops, ops.vector(u), ops.matrix(A), ops.number(0.8))
    best = max_weight_space_smoothness(u[None], A[None], 0.8)[0]
    assert enc.a <= best <= enc.b and (enc.b - enc.a) < 1e-8 * abs(best)


def test_interval_cholesky_tells_definite_from_indefinite():
    ops = IntervalOps()
    assert certify._interval_cholesky_pd(ops, ops.matrix([[2, 1], [1, 2]]))
    assert not certify._interval_cholesky_pd(ops, ops.matrix([[1, 2], [2, 1]]))


def test_lemma_4_5_counterexample_is_certified_exactly():
    s, v = _get("lemma-4.5", "printed")
    cert = certify.certify_toy(s, v, dict(X=np.array([[0, 0], [0, 1], [1, 0]]), t=np.array([1, 0, 1]),
                                          W0=np.array([1, 0])))
    assert cert.verdict is Verdict.VIOLATED and cert.method == certify.EXACT and cert.slack_upper == "-1"


@pytest.mark.parametrize("inst, message", [
    (dict(m=1, y=[1.0], g=[1.0], gamma=1.0, beta=0.0, eps=0.0), "m >= 2"),
    (dict(m=2, y=[1.0, 1.0], g=[1.0, 0.0], gamma=1.0, beta=0.0, eps=0.0), "constant batch"),
    (dict(m=2, y=[1.0, float("nan")], g=[1.0, 0.0], gamma=1.0, beta=0.0, eps=0.0), "non-finite"),
])
def test_bad_input_names_the_problem(inst, message):
    s, v = _get("thm-4.1", "printed")
    with pytest.raises(ValueError, match=message):
        certify.certify_bn(s, v, inst)


def test_a_held_bound_is_certified_holds():
    s, v = _get("thm-4.1", "drop-correlation")
    cert = certify.certify_bn(s, v, PINNED[("thm-4.1", "printed")], exact_first=True)
    assert cert.verdict is Verdict.HOLDS and cert.method == certify.EXACT


@pytest.mark.parametrize("H, expected", [
    ([[1, 0], [0, 1]], "positive definite"), ([[1, 1], [1, 1]], "positive semidefinite"),
    ([[1, 2], [2, 1]], "indefinite"), ([[0, 0], [0, 0]], "zero"), ([[-1, 0], [0, -3]], "negative definite"),
    ([["-381/2", "1"], ["1", "463"]], "indefinite"),
])
def test_hessian_inertia_is_exact(H, expected):
    assert certify.hessian_inertia(H).label == expected


def test_hessian_inertia_rejects_a_non_symmetric_matrix():
    with pytest.raises(ValueError, match="symmetric"):
        certify.hessian_inertia([[1, 2], [0, 1]])


def _kept(inputs, verdict):
    from numeric.sweep import KeptInstance
    return KeptInstance("bn-channel", inputs, -1.0, -0.5, verdict)


def test_certify_kept_reports_each_failure_with_its_message():
    s, v = _get("thm-4.1", "printed")
    bad = dict(m=3, y=[1.0, 1.0, 1.0], g=[1.0, 0.0, 0.0], gamma=1.0, beta=0.0, eps=0.0)     # constant batch
    good = PINNED[("thm-4.1", "printed")]
    result = certify.certify_kept(s, v, [_kept(bad, Verdict.VIOLATED), _kept(good, Verdict.VIOLATED)],
                                  Verdict.VIOLATED, tries=4, enough=2)
    assert [c.verdict for c in result.certificates] == [Verdict.VIOLATED]
    assert len(result.failures) == 1 and "constant batch" in result.failures[0].message


def test_certify_kept_stops_after_enough_certificates():
    s, v = _get("thm-4.1", "printed")
    kept = [_kept(PINNED[("thm-4.1", "printed")], Verdict.VIOLATED)] * 5
    result = certify.certify_kept(s, v, kept, Verdict.VIOLATED, tries=4, enough=2)
    assert len(result.certificates) == 2 and not result.failures
