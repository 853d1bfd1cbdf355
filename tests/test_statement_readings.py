"""The readings added by issue 10: each holds where it must and fails where it must.

thm-4.2/part2-quadratic-form, part2-main-text, exact-epsilon (and the 1 - rho formula of the
first display for eps > 0), obs-4.3/minima-preserved, lemma-4.5/with-bias and centred-inputs,
thm-c1/split-bound and the symbolic decision of thm-c1/printed.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import sympy as sp

from numeric.maxima import max_weight_space_smoothness
from numeric.quantities import bn_channel_quantities
from theory import bn, derive, lemma45, statements as st, verdicts
from theory.evaluate import evaluate_variant
from theory.ops import NumpyOps, SympyOps, TorchOps
from theory.quantities import channel_quantities
from theory.vocab import Verdict

THM42 = st.get("thm-4.2")
SYM = SympyOps()


def exact_channel(y, g, H, gamma, eps=0):
    m = len(y)
    return channel_quantities(SYM, sp.Integer(m), sp.nsimplify(gamma), sp.Matrix(g), y=sp.Matrix(y),
                              beta=sp.Integer(0), eps=sp.nsimplify(eps), H=sp.Matrix(H))


def exact_slack(statement, name, q):
    variant = statement.variant(name)
    return sp.radsimp(variant.relation.slack(variant.lhs(q), variant.rhs(q)))


# The PSD example of the issue: m = 3, y = (0, 0, 1), g = (-1, 0, -1), H = I, gamma = 1.
PSD_EXAMPLE = dict(y=[0, 0, 1], g=[-1, 0, -1], H=sp.eye(3), gamma=1)


# ---------------------------------------------------------------------------------------------
# Theorem 4.2, second display
# ---------------------------------------------------------------------------------------------

def test_thm_4_2_main_text_reading_is_violated_on_the_psd_example_with_slack_minus_9_8():
    q = exact_channel(**PSD_EXAMPLE)
    assert exact_slack(THM42, "part2-main-text", q) == sp.Rational(-9, 8)


def test_thm_4_2_quadratic_form_reading_does_not_apply_to_the_psd_example():
    # there ||v|| > ||g|| with H = I: v^T H v > g^T H g, so the hypothesis fails
    q = exact_channel(**PSD_EXAMPLE)
    assert THM42.variant("part2-quadratic-form").condition(q) < 0


def test_thm_4_2_quadratic_form_slack_is_the_hypothesis_gap_times_gamma_sq_over_sigma_sq():
    q = exact_channel(y=[0, 0, 1, 3], g=[2, -1, 0, 1], H=sp.diag(1, 2, 3, 4), gamma=sp.Rational(1, 3))
    gap = THM42.variant("part2-quadratic-form").condition(q)
    assert gap > 0
    slack = exact_slack(THM42, "part2-quadratic-form", q)
    assert sp.simplify(slack - q.gamma**2 / q.sigma**2 * gap) == 0
    assert slack > 0


def _random_channels(seed, n=400, m=6, eps=0.0):
    rng = np.random.default_rng(seed)
    y = rng.standard_normal((n, m))
    g = rng.standard_normal((n, m))
    A = rng.standard_normal((n, m, m))
    H = A + np.swapaxes(A, -1, -2)
    gamma = rng.uniform(0.2, 3.0, n)
    return bn_channel_quantities(y, g, gamma, 0.1, eps, H=H)


def test_thm_4_2_quadratic_form_reading_holds_on_every_random_instance_meeting_its_hypothesis():
    q = _random_channels(1)
    r = evaluate_variant(THM42, THM42.variant("part2-quadratic-form"), q)
    assert r.n_applicable > 100
    assert r.n_violated == 0
    assert set(r.verdicts[r.applicable]) <= {Verdict.HOLDS, Verdict.EQUALITY}


def test_thm_4_2_main_text_reading_is_violated_on_random_instances():
    r = evaluate_variant(THM42, THM42.variant("part2-main-text"), _random_channels(2))
    assert r.n_violated > 0


def test_thm_4_2_part2_symbolic_verdicts():
    table = verdicts.load_symbolic_verdicts()
    assert table[("thm-4.2", "part2-quadratic-form")].verdict is Verdict.HOLDS
    assert table[("thm-4.2", "part2-main-text")].verdict is Verdict.VIOLATED
    assert table[("thm-4.2", "exact-epsilon")].verdict is Verdict.EQUALITY


# ---------------------------------------------------------------------------------------------
# Theorem 4.2, exact identity for eps > 0
# ---------------------------------------------------------------------------------------------

def test_thm_4_2_exact_epsilon_identity_holds_on_random_instances_with_epsilon():
    for eps in (1e-5, 0.3, 5.0):
        r = evaluate_variant(THM42, THM42.variant("exact-epsilon"), _random_channels(3, eps=eps))
        assert r.n_applicable == 400
        assert set(r.verdicts) == {Verdict.EQUALITY}


def test_thm_4_2_exact_epsilon_identity_fails_with_a_wrong_y_hat_form():
    q = _random_channels(4, eps=0.5)
    wrong = q.with_values(H_yv=q.H_yv + 1.0)
    r = evaluate_variant(THM42, THM42.variant("exact-epsilon"), wrong)
    assert r.n_violated == 400


def test_thm_4_2_exact_epsilon_identity_against_torch_double_backward():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    m, eps, gamma, beta = 7, 0.25, 1.7, -0.3
    y = torch.randn(m, dtype=torch.float64)
    t = torch.randn(m, dtype=torch.float64)

    def loss_of_z(z):                       # a non-quadratic loss: H depends on z
        return (torch.log1p(torch.exp(z - t)) ** 2).sum() + (z**3).sum() / 6

    def loss_of_y(y):
        return loss_of_z(bn.bn_forward(TorchOps(), y[None], m, torch.tensor([gamma], dtype=torch.float64),
                                       torch.tensor([beta], dtype=torch.float64), eps)[0])

    z = bn.bn_forward(TorchOps(), y[None], m, torch.tensor([gamma], dtype=torch.float64),
                      torch.tensor([beta], dtype=torch.float64), eps)[0]
    g = torch.autograd.functional.jacobian(loss_of_z, z)
    H = torch.autograd.functional.hessian(loss_of_z, z)
    v = torch.autograd.functional.jacobian(loss_of_y, y)
    hess_bn = torch.autograd.functional.hessian(loss_of_y, y)
    q = bn_channel_quantities(y.numpy()[None], g.numpy()[None], gamma, beta, eps, H=H.numpy()[None],
                              grad_y_bn=v.numpy()[None], hess_bn_vv=[float(v @ hess_bn @ v)])
    r = evaluate_variant(THM42, THM42.variant("exact-epsilon"), q)
    assert r.verdicts[0] is Verdict.EQUALITY
    # the first display itself is off for this eps, by the 1 - rho formula
    first = evaluate_variant(THM42, THM42.variant("epsilon"), q)
    formula = st.thm42_first_display_epsilon_slack(q)
    assert abs(first.slack[0]) > 1e3 * first.tolerance[0]
    assert abs(first.slack[0] - formula[0]) <= 1e-9 * abs(formula[0])


@pytest.mark.parametrize("statement", [s for s in st.STATEMENTS if s.remarks], ids=lambda s: s.id)
def test_every_remark_formula_is_exact_in_the_invariant_algebra(statement):
    for remark in statement.remarks:
        q = derive.invariant_quantities(remark.with_epsilon)
        assert sp.expand(remark.formula(q) - remark.equals(q)) == 0


def test_a_wrong_remark_formula_is_caught():
    remark = st.THM42_EPSILON_REMARK
    q = derive.invariant_quantities(True)
    assert sp.expand(2 * remark.formula(q) - remark.equals(q)) != 0


def test_the_first_display_slack_vanishes_at_eps_zero():
    q = derive.invariant_quantities(False)
    assert sp.expand(st.thm42_first_display_epsilon_slack(q)) == 0


# ---------------------------------------------------------------------------------------------
# Observation 4.3, second sentence
# ---------------------------------------------------------------------------------------------

OBS43 = st.get("obs-4.3")
TOY_X = [[0, 0], [0, 1], [1, 0]]


def _bn_loss_gradient_by_sympy(X, t, W_star):
    """nabla of sum_i (gamma y_hat_i(W) + beta - t_i)^2 at (W*, sigma(W* X), mu(W* X)), by SymPy diff."""
    X, t = sp.Matrix(X), sp.Matrix(t)
    n, d = X.shape
    W = sp.Matrix(sp.symbols(f"w0:{d}", real=True))
    gamma, beta = sp.symbols("gamma beta", real=True)
    y = X * W
    mu = sum(y) / n
    sigma = sp.sqrt(sum((yi - mu) ** 2 for yi in y) / n)
    L = sum((gamma * (yi - mu) / sigma + beta - ti) ** 2 for yi, ti in zip(y, t))
    y_star = X * W_star
    mu_s = sum(y_star) / n
    sigma_s = sp.sqrt(sum((yi - mu_s) ** 2 for yi in y_star) / n)
    at = {**dict(zip(W, W_star)), gamma: sigma_s, beta: mu_s}
    return sp.Matrix([sp.radsimp(sp.simplify(sp.diff(L, x).subs(at))) for x in list(W) + [gamma, beta]])


def test_obs_4_3_gradient_closed_form_is_sympys_derivative():
    for t in ([1, 0, 1], [2, -1, 3]):
        q = lemma45.exact_quantities(TOY_X, t, [1, 1])
        assert (q.bn_grad_at_w_star - _bn_loss_gradient_by_sympy(TOY_X, t, q.W_star)).applyfunc(sp.simplify) \
            == sp.zeros(4, 1)


def test_obs_4_3_minima_preserved_is_violated_on_the_lemma_4_5_toy_with_gradient_0_1_sqrt2_minus2():
    q = lemma45.exact_quantities(TOY_X, [1, 0, 1], [1, 0])
    assert list(q.bn_grad_at_w_star) == [0, 1, sp.sqrt(2), -2]
    assert exact_slack(OBS43, "minima-preserved", q) == 7


def test_obs_4_3_minima_preserved_holds_where_the_standard_optimum_fits_exactly():
    # t = X W* exactly (residual 0): the witness is a critical point of the BN loss
    q = lemma45.exact_quantities(TOY_X, [0, 1, 1], [1, 0])
    assert exact_slack(OBS43, "minima-preserved", q) == 0


def test_obs_4_3_minima_preserved_is_evaluated_in_the_toy_setting():
    assert st.setting_of(OBS43, OBS43.variant("minima-preserved")).value == "toy-regression"
    assert st.setting_of(OBS43, OBS43.variant("printed")).value == "bn-channel"


# ---------------------------------------------------------------------------------------------
# Lemma 4.5 with a bias, or centred inputs
# ---------------------------------------------------------------------------------------------

LEMMA = st.get("lemma-4.5")


def test_lemma_4_5_printed_fails_and_the_bias_readings_are_tight_at_w0_1_minus_half():
    q = lemma45.exact_quantities(TOY_X, [1, 0, 1], [1, sp.Rational(-1, 2)])
    printed = LEMMA.variant("printed")
    assert (printed.lhs(q), printed.rhs(q)) == (1, sp.Rational(1, 4))
    for name in ("with-bias", "centred-inputs"):
        v = LEMMA.variant(name)
        assert v.condition(q) > 0
        assert (v.lhs(q), v.rhs(q)) == (1, 1)


def test_lemma_4_5_with_bias_weights_match_numpy_least_squares_with_a_bias_column():
    rng = np.random.default_rng(5)
    X, t, W0 = rng.standard_normal((20, 5, 3)), rng.standard_normal((20, 5)), rng.standard_normal((20, 3))
    q = lemma45.toy_quantities_numpy(X, t, W0)
    for i in range(20):
        sol = np.linalg.lstsq(np.column_stack([X[i], np.ones(5)]), t[i], rcond=None)[0]
        np.testing.assert_allclose(q.W_star_bias[i], sol[:3], rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(q.W_star_centred[i], sol[:3], rtol=1e-10, atol=1e-12)


def test_lemma_4_5_bias_readings_are_equalities_on_random_toy_models_and_printed_is_not():
    rng = np.random.default_rng(6)
    q = lemma45.toy_quantities_numpy(rng.standard_normal((500, 4, 2)), rng.standard_normal((500, 4)),
                                     rng.standard_normal((500, 2)))
    for name in ("with-bias", "centred-inputs"):
        r = evaluate_variant(LEMMA, LEMMA.variant(name), q)
        assert r.n_applicable > 100
        assert set(r.verdicts[r.applicable]) == {Verdict.EQUALITY}
    assert evaluate_variant(LEMMA, LEMMA.variant("printed"), q).n_violated > 0


def test_normal_equation_identity_fails_if_the_bias_is_dropped():
    # the check is not vacuous: without the bias the centred equations are not those of [X, 1]
    X = sp.Matrix(3, 2, lambda i, j: sp.Symbol(f"x{i}{j}"))
    t = sp.Matrix(sp.symbols("t0:3"))
    w = sp.Matrix(sp.symbols("w0:2"))
    Xc = SYM.centre_rows(X, 3)
    tc = t - sp.ones(3, 1) * sum(t) / 3
    assert any(sp.expand(e) != 0 for e in X.T * (X * w - t) - Xc.T * (Xc * w - tc))
    assert lemma45.bias_weights_solve_the_centred_problem(3, 2)


# ---------------------------------------------------------------------------------------------
# Theorem C.1
# ---------------------------------------------------------------------------------------------

THMC1 = st.get("thm-c1")


def test_thm_c1_printed_is_violated_symbolically_by_the_exact_bound_witness():
    sv = verdicts.decide(THMC1, THMC1.variant("printed"))
    assert sv.verdict is Verdict.VIOLATED
    assert sv.witness["slack_upper_bound"] == sp.Rational(-3, 8)


def test_thm_c1_bound_witness_right_side_is_minus_3_8_numerically():
    # the same instance through the numeric layer: max beta = 0 for H = -I, max beta_hat >= 0
    q = bn_channel_quantities([[-1, -1, 1, 1]], [[0, -1, 1, 1]], 1.0, 0.0, 0.0, H=-np.eye(4)[None], lam=1.0,
                              weight_space_maxima=True)
    assert q.betaW_max[0] == 0
    assert q.betaW_hat_max[0] >= 0
    assert abs(THMC1.variant("printed").rhs(q)[0] + 3 / 8) < 1e-14


def _weight_space(seed, n=300, m=5):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((n, m, m))
    return bn_channel_quantities(rng.standard_normal((n, m)), rng.standard_normal((n, m)),
                                 rng.uniform(0.3, 3, n), 0.0, 0.0, H=A + np.swapaxes(A, -1, -2),
                                 lam=rng.uniform(0.5, 2, n), weight_space_maxima=True)


def test_thm_c1_split_bound_holds_on_random_instances():
    r = evaluate_variant(THMC1, THMC1.variant("split-bound"), _weight_space(7))
    assert r.n_applicable == 300
    assert r.n_violated == 0


def test_thm_c1_split_bound_without_the_curvature_term_is_violated():
    split = THMC1.variant("split-bound")
    wrong = replace(split, rhs=lambda q: (q.gamma**4 / q.sigma**4) * q.betaW_max)
    assert evaluate_variant(THMC1, wrong, _weight_space(8)).n_violated > 0


def test_thm_c1_split_bound_is_an_equality_when_H_is_zero():
    q = _weight_space(9)
    zero = bn_channel_quantities(q.y, q.g, q.gamma, 0.0, 0.0, H=np.zeros_like(q.H), lam=q.lam,
                                 weight_space_maxima=True)
    r = evaluate_variant(THMC1, THMC1.variant("split-bound"), zero)
    assert set(r.verdicts) == {Verdict.EQUALITY}
    np.testing.assert_allclose(zero.betaW_hat0_max, max_weight_space_smoothness(
        zero.grad_y_bn, bn.hessian_bn_matrix(NumpyOps(), np.zeros_like(q.H), q.g, zero.y_hat, zero.sigma,
                                             q.gamma, 5), q.lam))
