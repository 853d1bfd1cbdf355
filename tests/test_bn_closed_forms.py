"""The derived closed forms of theory.bn against torch.autograd (float64) and SymPy."""
import numpy as np
import pytest
import torch

from theory import bn, derive, symbols as S
from theory.ops import NumpyOps, TorchOps

OPS = NumpyOps()
# float64 closed form vs autograd: both round at ~m u per inner product; 1e3 m u x scale covers it.
AUTOGRAD_AGREEMENT = 1e3 * np.finfo(np.float64).eps


def _bn_loss_torch(y, gamma, beta, eps, c, H):
    """L_hat(y) = c.z + z^T H z / 2 for z = training-mode BN(y): g = c + H z, d2L/dz2 = H."""
    mu = y.mean()
    sigma = torch.sqrt(((y - mu) ** 2).mean() + eps)
    z = gamma * (y - mu) / sigma + beta
    return c @ z + 0.5 * z @ H @ z


@pytest.mark.parametrize("m", [2, 3, 5, 16, 64])
@pytest.mark.parametrize("eps", [0.0, 1e-5, 0.5])
def test_closed_form_gradient_and_hessian_match_autograd(m, eps):
    rng = np.random.default_rng(m * 7 + int(eps * 1e5))
    y = rng.normal(size=m) * rng.uniform(0.1, 10)
    gamma, beta = rng.normal(), rng.normal()
    A = rng.normal(size=(m, m))
    H, c = A + A.T, rng.normal(size=m)
    yt = torch.tensor(y)
    grad = torch.autograd.functional.jacobian(
        lambda t: _bn_loss_torch(t, gamma, beta, eps, torch.tensor(c), torch.tensor(H)), yt).numpy()
    hess = torch.autograd.functional.hessian(
        lambda t: _bn_loss_torch(t, gamma, beta, eps, torch.tensor(c), torch.tensor(H)), yt).numpy()
    _, sigma, y_hat = bn.batch_statistics(OPS, y[None], m, eps)
    z = bn.bn_forward(OPS, y[None], m, np.array([gamma]), np.array([beta]), eps)
    g = c[None] + z @ H
    ours_grad = bn.grad_y_bn(OPS, g, y_hat, sigma, np.array([gamma]), m)[0]
    ours_hess = bn.hessian_bn_matrix(OPS, H[None], g, y_hat, sigma, np.array([gamma]), m)[0]
    scale_g = np.abs(gamma) / sigma[0] * np.linalg.norm(g) + 1
    scale_h = gamma**2 / sigma[0] ** 2 * np.linalg.norm(H) + np.abs(gamma) / sigma[0] ** 2 * np.linalg.norm(g) + 1
    assert np.max(np.abs(ours_grad - grad)) <= AUTOGRAD_AGREEMENT * m * scale_g
    assert np.max(np.abs(ours_hess - hess)) <= AUTOGRAD_AGREEMENT * m * scale_h
    v = ours_grad[None]
    form = bn.hessian_bn_bilinear(OPS, H[None], g, y_hat, sigma, np.array([gamma]), m, v, v)[0]
    assert abs(form - v[0] @ hess @ v[0]) <= AUTOGRAD_AGREEMENT * m * scale_h * (v[0] @ v[0] + 1)


def test_closed_forms_run_on_torch_tensors_too():
    ops = TorchOps()
    y = torch.tensor([[0.0, 1.0, 3.0]], dtype=torch.float64)
    _, sigma, y_hat = bn.batch_statistics(ops, y, 3, 0.0)
    v = bn.grad_y_bn(ops, torch.ones_like(y), y_hat, sigma, torch.tensor([2.0], dtype=torch.float64), 3)
    assert torch.allclose(v, torch.zeros_like(v), atol=1e-15)  # a constant g is projected out


@pytest.mark.parametrize("size", [2, 3, 4, 5, 6])
@pytest.mark.parametrize("with_epsilon", [False, True])
def test_sympy_derivatives_of_the_definition_equal_the_closed_forms(size, with_epsilon):
    from theory.ops import SympyOps
    import sympy as sp
    ops, calc = SympyOps(), derive.derive_calculus(size, with_epsilon)
    m = sp.Integer(size)
    assert derive.matrices_agree(calc.jacobian, bn.jacobian_z_y(ops, calc.y_hat, S.sigma, S.gamma, m), calc)
    assert derive.matrices_agree(calc.gradient, bn.grad_y_bn(ops, calc.g, calc.y_hat, S.sigma, S.gamma, m), calc)
    curvature = bn.hessian_bn_matrix(ops, sp.zeros(size, size), calc.g, calc.y_hat, S.sigma, S.gamma, m)
    assert derive.matrices_agree(calc.curvature, curvature, calc)


def test_exact_equality_test_rejects_a_wrong_jacobian():
    import sympy as sp
    calc = derive.derive_calculus(3, False)
    wrong = calc.jacobian.copy()
    wrong[0, 1] += S.gamma / (3 * S.sigma) * calc.y_hat[0] * calc.y_hat[1] / 3  # off by a y_hat term
    assert not derive.matrices_agree(calc.jacobian, wrong, calc)
    assert not derive.vanishes(S.sigma - sp.sqrt(calc.variance) * 2, calc)


def _general_path(monkeypatch):
    """vanishes() with its polynomial-ring path refused, so that it takes the expression path."""
    def refuse(expr, calc):
        raise derive.NotAMonomialFraction("refused by the test")
    monkeypatch.setattr(derive, "_vanishes_in_polynomial_ring", refuse)


@pytest.mark.parametrize("size", [2, 3])
@pytest.mark.parametrize("with_epsilon", [False, True])
def test_the_polynomial_ring_path_decides_as_the_expression_path(size, with_epsilon, monkeypatch):
    import sympy as sp
    from theory.ops import SympyOps
    ops, calc = SympyOps(), derive.derive_calculus(size, with_epsilon)
    m = sp.Integer(size)
    curvature = bn.hessian_bn_matrix(ops, sp.zeros(size, size), calc.g, calc.y_hat, S.sigma, S.gamma, m)
    jacobian = bn.jacobian_z_y(ops, calc.y_hat, S.sigma, S.gamma, m)
    zero = [a - b for a, b in zip(calc.curvature, curvature)] + [a - b for a, b in zip(calc.jacobian, jacobian)]
    # off by a term of the same kind (a monomial over a power of sigma), or by sigma^2 - Var (zero)
    off = [e + S.gamma * calc.y[0] * calc.g[-1] / (m * S.sigma**3) for e in zero[:4]]
    relation = [e * S.gamma + calc.sigma_relation * calc.y[-1] / S.sigma for e in zero[:4]]
    cases = zero + off + relation
    ring = [derive._vanishes_in_polynomial_ring(e, calc) for e in cases]
    _general_path(monkeypatch)
    assert ring == [derive.vanishes(e, calc) for e in cases]
    assert ring == [True] * len(zero) + [False] * len(off) + [True] * len(relation)


def test_a_denominator_of_two_terms_or_a_radical_is_left_to_the_expression_path():
    import sympy as sp
    calc = derive.derive_calculus(2, True)
    y1, y2 = calc.y
    quotient = (y1**2 - y2**2) / (y1 + y2) - (y1 - y2)                 # zero, over y1 + y2
    for expr in (quotient, sp.sqrt(2) * S.sigma + y1):
        with pytest.raises(derive.NotAMonomialFraction):
            derive._vanishes_in_polynomial_ring(expr, calc)
    assert derive.vanishes(quotient, calc)
    assert not derive.vanishes(quotient + S.gamma / S.sigma, calc)
    assert derive.vanishes(sp.sqrt(2) * (S.sigma**2 - calc.variance - S.eps), calc)
    assert not derive.vanishes(sp.sqrt(2) * S.sigma + y1, calc)
    # a denominator with a coefficient, which SymPy's evaluation would have split off
    half_over_y1 = sp.Pow(sp.Mul(2, y1, evaluate=False), -1, evaluate=False)
    assert derive._vanishes_in_polynomial_ring(half_over_y1 + S.sigma - 1 / (2 * y1) - S.sigma, calc)
    assert not derive._vanishes_in_polynomial_ring(half_over_y1 + S.sigma / y2 - 1 / y1, calc)


@pytest.mark.parametrize("path", ["ring", "expression"])
def test_at_eps_0_and_m_2_where_the_relation_factors_sigma_is_still_not_a_polynomial_in_y(path, monkeypatch):
    """sigma^2 - Var = (sigma - s)(sigma + s) with s = (y1 - y2)/2 at eps = 0, m = 2: sigma = |s|
    on the batches, so sigma - s does not vanish on every batch, and (sigma - s)(sigma + s) does."""
    calc = derive.derive_calculus(2, False)
    s = (calc.y[0] - calc.y[1]) / 2
    if path == "expression":
        _general_path(monkeypatch)
    assert not derive.vanishes(S.sigma - s, calc)
    assert not derive.vanishes((S.sigma - s) / S.sigma**2, calc)
    assert derive.vanishes((S.sigma - s) * (S.sigma + s) / S.sigma, calc)


def _random_monomial_fractions():
    """Sums of rational multiples of monomials in y1..y3, g1, gamma, eps and sigma, each variable
    with an exponent in -2..2 (so every denominator is a monomial), optionally plus a polynomial
    multiple of the relation sigma^2 - Var - eps (which changes nothing on a batch)."""
    from hypothesis import strategies as st
    import sympy as sp
    calc = derive.derive_calculus(3, True)
    variables = list(calc.y) + [calc.g[0], S.gamma, S.eps, S.sigma]
    monomial = st.tuples(st.integers(-5, 5), st.integers(1, 4),
                         st.lists(st.integers(-2, 2), min_size=len(variables), max_size=len(variables)))
    terms = st.lists(monomial, min_size=1, max_size=5)
    as_expr = lambda ts: sp.Add(*(sp.Rational(p, q) * sp.Mul(*(v**e for v, e in zip(variables, es)))  # noqa: E731
                                  for p, q, es in ts))
    return st.tuples(terms, st.lists(monomial, max_size=3)).map(
        lambda pair: (as_expr(pair[0]), as_expr(pair[1]) * calc.sigma_relation if pair[1] else sp.Integer(0)))


def test_the_two_paths_agree_on_random_monomial_fractions_and_a_multiple_of_the_relation_changes_nothing(monkeypatch):
    from hypothesis import given, settings
    calc = derive.derive_calculus(3, True)

    @settings(max_examples=30, deadline=None, derandomize=True, database=None)
    @given(_random_monomial_fractions())
    def check(case):
        expr, multiple = case
        ring = derive._vanishes_in_polynomial_ring(expr, calc)
        assert derive._vanishes_in_polynomial_ring(expr + multiple, calc) == ring
        assert derive._vanishes_in_polynomial_ring(multiple, calc)          # a vanishing case every time
        with monkeypatch.context() as patched:
            _general_path(patched)
            assert derive.vanishes(expr + multiple, calc) == ring
            assert derive.vanishes(multiple, calc)
    check()
