"""Lemma 4.5 on the one-neuron toy model, exactly."""
import numpy as np
import sympy as sp

from theory import lemma45
from theory.statements import get


def test_bn_optimum_direction_maximises_the_correlation_exactly():
    opt = lemma45.exact_optima([[1, 0], [0, 1], [1, 1]], [1, 0, 0])
    assert list(opt.W_star) == [sp.Rational(2, 3), sp.Rational(-1, 3)]
    assert list(opt.bn_direction) == [0, -1]


def test_minimal_counterexample_starts_at_the_standard_optimum():
    cx = lemma45.minimal_counterexample()
    assert cx.rhs == 0 and cx.lhs > 0
    assert list(cx.W0) == list(cx.W_star)


def test_lemma_holds_when_the_standard_optimum_lies_on_the_bn_ray():
    # centred data (column means 0) and centred targets: both least-squares directions coincide
    X, t = [[1, 0], [-1, 1], [0, -1]], [1, 0, -1]
    opt = lemma45.exact_optima(X, t)
    assert sp.Matrix.hstack(opt.W_star, opt.bn_direction).det() == 0
    v = get("lemma-4.5").variant("printed")
    for W0 in ([1, 0], [2, 3], [sp.Rational(1, 2), 5]):
        q = lemma45.exact_quantities(X, t, W0)
        if v.condition(q) > 0:
            assert v.rhs(q) - v.lhs(q) >= 0


def test_numpy_and_exact_toy_quantities_agree():
    X = np.array([[[1.0, 0], [0, 1], [1, 1]]])
    q = lemma45.toy_quantities_numpy(X, np.array([[1.0, 0, 0]]), np.array([[0.5, 0.5]]))
    e = lemma45.exact_quantities(X[0].astype(int).tolist(), [1, 0, 0], [sp.Rational(1, 2), sp.Rational(1, 2)])
    assert abs(q.bn_opt_dist_sq[0] - float(e.bn_opt_dist_sq)) < 1e-14
