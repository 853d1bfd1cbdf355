"""numeric.quantities: the vectorised quantities against torch autograd, the structured Hessian
against the dense one, and every registry variant's numeric sides against SymPy at exact points."""
from fractions import Fraction

import numpy as np
import pytest
import sympy as sp

from numeric import certify
from numeric.hessians import DiagLowRank
from numeric.quantities import bn_channel_quantities
from theory import statements as registry
from theory.bn import BatchNormInputError
from theory.ops import SympyOps

torch = pytest.importorskip("torch")


def _instance(n, m, seed=0, eps=0.0):
    rng = np.random.default_rng(seed)
    B = rng.standard_normal((n, m, m))
    return (rng.standard_normal((n, m)), rng.standard_normal((n, m)), rng.uniform(0.5, 2, n), rng.standard_normal(n),
            eps, 0.5 * (B + np.swapaxes(B, 1, 2)))


@pytest.mark.parametrize("eps", [0.0, 1e-5])
@pytest.mark.parametrize("m", [2, 7, 64])
def test_hessian_form_through_batchnorm_matches_torch_autograd(m, eps):
    y, g0, gamma, beta, _, H = _instance(3, m, seed=m)
    for i in range(3):
        ty = torch.tensor(y[i], dtype=torch.float64, requires_grad=True)
        tH, tb = torch.from_numpy(H[i]), torch.from_numpy(g0[i])

        def loss(x):
            mu = x.mean()
            z = gamma[i] * (x - mu) / torch.sqrt(((x - mu) ** 2).mean() + eps) + beta[i]
            return 0.5 * z @ tH @ z + tb @ z
        v = torch.autograd.grad(loss(ty), ty)[0].numpy()
        hess = torch.autograd.functional.hessian(loss, ty).numpy()
        mu = y[i].mean()
        z = gamma[i] * (y[i] - mu) / np.sqrt(((y[i] - mu) ** 2).mean() + eps) + beta[i]
        g = H[i] @ z + g0[i]                                     # dL/dz of the quadratic
        q = bn_channel_quantities(y[i:i + 1], g[None], gamma[i], beta[i], eps, H=H[i:i + 1])
        # v is 0 exactly at m = 2, eps = 0: compare on the scale (|gamma|/sigma)||g|| of its terms
        scale = gamma[i] / q.sigma[0] * np.linalg.norm(g)
        np.testing.assert_allclose(q.grad_y_bn[0], v, rtol=1e-9, atol=1e-12 * scale)
        assert q.hess_bn_vv[0] == pytest.approx(v @ hess @ v, rel=1e-8, abs=1e-10 * scale**2 * np.abs(H[i]).max())


def test_diagonal_plus_low_rank_h_gives_the_dense_forms():
    rng = np.random.default_rng(1)
    n, m = 5, 9
    S = DiagLowRank(rng.standard_normal((n, m)), rng.standard_normal((n, m, 3)), rng.standard_normal((n, 3)))
    y, g = rng.standard_normal((n, m)), rng.standard_normal((n, m))
    a = bn_channel_quantities(y, g, 1.3, 0.2, 0.0, H=S, lam=2.0)
    b = bn_channel_quantities(y, g, 1.3, 0.2, 0.0, H=S.dense(), lam=2.0)
    for name in ("H_gg", "H_vv", "hess_bn_vv", "H_frob"):
        np.testing.assert_allclose(a.values[name], b.values[name], rtol=1e-11)
    assert "H" not in a.values      # the structured H is not handed to dense formulas


def test_theorem_c1_maxima_are_wired_to_g_h_and_v_hess_bn():
    from numeric.maxima import max_weight_space_smoothness
    y, g, gamma, beta, eps, H = _instance(4, 5, seed=2)
    q = bn_channel_quantities(y, g, gamma, beta, eps, H=H, lam=0.7, full_matrices=True, weight_space_maxima=True)
    np.testing.assert_allclose(q.betaW_max, max_weight_space_smoothness(g, H, 0.7))
    np.testing.assert_allclose(q.betaW_hat_max, max_weight_space_smoothness(q.grad_y_bn, q.hess_bn, 0.7))


def _exact_point(m, seed):
    rng = np.random.default_rng(seed)
    rat = (lambda: Fraction(int(rng.integers(-9, 10)), int(rng.integers(1, 5))))
    y = [Fraction(k) for k in rng.permutation(m)] if True else None
    H = [[rat() for _ in range(m)] for _ in range(m)]
    H = [[H[min(i, j)][max(i, j)] for j in range(m)] for i in range(m)]
    return dict(m=m, y=y, g=[rat() for _ in range(m)], gamma=Fraction(3, 2), beta=Fraction(-1, 3), eps=Fraction(0),
                H=H, lam=Fraction(2))


@pytest.mark.parametrize("m", [2, 3, 4])
def test_every_variant_numeric_sides_equal_sympy_at_exact_rational_points(m):
    ex = _exact_point(m, seed=m)
    flt = {k: (np.array([[float(x) for x in r] for r in v]) if k == "H" else
               np.array([float(x) for x in v]) if isinstance(v, list) else float(v) if k != "m" else v)
           for k, v in ex.items()}
    q_num = bn_channel_quantities(flt["y"][None], flt["g"][None], flt["gamma"], flt["beta"], 0.0, H=flt["H"][None],
                                  lam=flt["lam"], full_matrices=True)
    q_exact = certify.bn_quantities(ex, SympyOps(), ("hess_bn", "jac_z_y"))
    checked = 0
    for s, v in registry.all_variants():
        if s.setting not in ("bn-channel", "weight-space") or v.rhs is None or not q_num.has(v.requires) \
                or "betaW_max" in v.requires or v.epsilon == "positive":
            continue
        for side in (v.lhs, v.rhs):
            num = np.asarray(side(q_num), dtype=float).ravel()
            ex_val = side(q_exact)
            ex_arr = np.array([float(sp.N(e, 30)) for e in (ex_val if hasattr(ex_val, "rows") else [ex_val])])
            np.testing.assert_allclose(num, ex_arr, rtol=1e-9, atol=1e-9 * (np.abs(ex_arr).max() + 1),
                                       err_msg=f"{s.id}/{v.name}")
        checked += 1
    assert checked >= 15


@pytest.mark.parametrize("kwargs, message", [
    (dict(H=np.ones((1, 3, 3))), "H has shape"),
    (dict(H=np.full((1, 2, 2), np.nan)), "NaN"),
    (dict(lam=-1.0), "lambda must be > 0"),
    (dict(H=DiagLowRank(np.ones((1, 3)), np.ones((1, 3, 1)), np.ones((1, 1)))), "H has shape"),
])
def test_bad_input_names_the_problem(kwargs, message):
    with pytest.raises(BatchNormInputError, match=message):
        bn_channel_quantities(np.array([[1.0, 2.0]]), np.array([[0.5, -1.0]]), 1.0, 0.0, 0.0, **kwargs)


def test_weight_space_maxima_without_h_is_refused():
    with pytest.raises(BatchNormInputError, match="need H"):
        bn_channel_quantities(np.array([[1.0, 2.0]]), np.array([[0.5, -1.0]]), 1.0, lam=1.0, weight_space_maxima=True)


def test_frobenius_norm_of_a_cancelling_diagonal_plus_low_rank_h_is_zero_to_rounding():
    # H = diag(-a^2 e_1) + a e_1 (a e_1)^T is exactly 0; the three terms of ||H||_F^2 cancel
    a = np.array([0.1, 0.3, 1 / 3, 7.0])
    n, m = a.size, 5
    diag = np.zeros((n, m))
    diag[:, 0] = -a * a
    U = np.zeros((n, m, 1))
    U[:, 0, 0] = a
    H = DiagLowRank(diag, U, np.ones((n, 1)))
    frob = H.frob()
    # the terms have magnitude <= 4 a^4, so the computed sum is within the rounding budget of 0
    from numeric.hessians import FROB_ROUNDING_SAFETY
    from theory.vocab import UNIT_ROUNDOFF
    assert np.all(np.isfinite(frob)) and np.all(frob <= np.sqrt(FROB_ROUNDING_SAFETY * m * UNIT_ROUNDOFF * 4) * a**2)
    np.testing.assert_array_equal(H.dense(), np.zeros((n, m, m)))
