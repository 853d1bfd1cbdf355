"""numeric.maxima: the exact trust-region maxima of Theorem C.1, against brute force and an
explicit input X that attains them."""
import numpy as np
import pytest

from numeric.maxima import max_weight_space_smoothness, solve_ball_quadratic_max
from theory.bn import BatchNormInputError


def _random(n, m, seed=0):
    rng = np.random.default_rng(seed)
    B = rng.standard_normal((n, m, m))
    return rng.standard_normal((n, m)), 0.5 * (B + np.swapaxes(B, 1, 2)), np.exp(rng.standard_normal(n))


def _beta(X, u, A):
    """(X^T u)^T (X^T A X) (X^T u), eqs. (52)-(57)."""
    w = X.T @ u
    return w @ (X.T @ A @ X) @ w


def _attaining_input(u, w, lam):
    """X with ||X||_2 <= lam and X X^T u = w, for w on the boundary of the ball (a reflection)."""
    m = len(u)
    t = 2 * w / lam**2 - u                        # K u = t, ||t|| = ||u||
    e = u - t
    K = np.eye(m) - 2 * np.outer(e, e) / (e @ e) if e @ e > 0 else np.eye(m)
    S = 0.5 * lam**2 * (np.eye(m) + K)
    vals, vecs = np.linalg.eigh(S)
    return vecs @ np.diag(np.sqrt(np.clip(vals, 0, None))) @ vecs.T


@pytest.mark.parametrize("m", [2, 3, 5])
def test_maximum_is_attained_by_an_input_of_spectral_norm_at_most_lambda(m):
    u, A, lam = _random(20, m, seed=m)
    sol = solve_ball_quadratic_max(u, A, lam)
    for i in range(20):
        if sol.value[i] <= 0:
            continue
        X = _attaining_input(u[i], sol.maximiser[i], lam[i])
        assert np.linalg.norm(X, 2) <= lam[i] * (1 + 1e-12)
        assert _beta(X, u[i], A[i]) == pytest.approx(sol.value[i], rel=1e-9)


@pytest.mark.parametrize("m", [2, 3, 4])
def test_no_input_of_spectral_norm_lambda_beats_the_maximum(m):
    u, A, lam = _random(10, m, seed=10 + m)
    best = max_weight_space_smoothness(u, A, lam)
    rng = np.random.default_rng(m)
    for i in range(10):
        X = rng.standard_normal((400, m, m + 1))
        X *= lam[i] / np.linalg.norm(X, 2, axis=(1, 2))[:, None, None]
        w = np.einsum("kji,j->ki", X, u[i])
        vals = np.einsum("ki,kji,jl,klp,kp->k", w, X, A[i], X, w)
        assert vals.max() <= best[i] * (1 + 1e-9) + 1e-12


def test_every_solution_is_certified_by_the_global_optimality_conditions():
    u, A, lam = _random(500, 8, seed=3)
    sol = solve_ball_quadratic_max(u, A, lam)
    assert sol.certified.all()
    assert (sol.dual_bound >= sol.value - sol.gap_tolerance).all()


def test_hard_case_fills_the_top_eigenvector():
    # c has no component on the top eigenvector e_1: the root sits at nu = a_max (hard case)
    sol = solve_ball_quadratic_max(np.array([[0, 1.0, 1.0, 1.0]]), np.diag([3.0, 1.0, -1.0, -2.0])[None], 1.0)
    assert sol.hard_case[0] and sol.multiplier[0] == 3.0
    assert sol.value[0] == pytest.approx(2.1375, rel=1e-12)   # 3 * 0.6319 + 0.5625 - 0.140625 - 0.18
    assert sol.certified[0]


def test_negative_semidefinite_a_has_maximum_zero_at_w_equal_zero():
    sol = solve_ball_quadratic_max(np.array([[1.0, -2.0]]), -np.eye(2)[None], 2.0)
    assert sol.value[0] == 0 and np.all(sol.maximiser[0] == 0) and sol.certified[0]


def test_the_proofs_choice_x_xt_equal_lambda_squared_identity_is_not_the_maximiser():
    # eq. (58) evaluates beta at S = lam^2 I; the true maximum is larger on a generic instance
    u, A, lam = _random(50, 4, seed=7)
    proof_value = lam**4 * np.einsum("ni,nij,nj->n", u, A, u)
    true_max = max_weight_space_smoothness(u, A, lam)
    assert (true_max >= proof_value - 1e-9 * np.abs(proof_value)).all()
    assert (true_max > proof_value * (1 + 1e-3) + 1e-12).any()


def test_a_tampered_value_fails_the_certificate():
    u, A, lam = _random(5, 3, seed=1)
    sol = solve_ball_quadratic_max(u, A, lam)
    import dataclasses
    bad = dataclasses.replace(sol, value=sol.value * 0.9)
    assert not bad.certified[sol.value > 0].any()


def test_vectorised_equals_one_instance_at_a_time():
    u, A, lam = _random(30, 5, seed=9)
    batch = max_weight_space_smoothness(u, A, lam)
    single = [max_weight_space_smoothness(u[i:i + 1], A[i:i + 1], lam[i:i + 1])[0] for i in range(30)]
    assert np.allclose(batch, single, rtol=1e-13, atol=0)


@pytest.mark.parametrize("A, lam, message", [
    (np.array([[[1.0, 2.0], [0.0, 1.0]]]), 1.0, "not symmetric"),
    (np.eye(2)[None], 0.0, "lambda must be > 0"),
    (np.eye(2)[None] * np.nan, 1.0, "NaN"),
    (np.eye(3)[None], 1.0, "expected"),
])
def test_bad_input_names_the_problem(A, lam, message):
    with pytest.raises(BatchNormInputError, match=message):
        solve_ball_quadratic_max(np.ones((1, 2)), A, lam)
