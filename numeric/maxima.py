"""The maxima over the input X of Theorem C.1, exactly, vectorised over N instances.

Theorem C.1 compares two maxima over ||X||_2 <= lambda of

    beta(X) = (X^T u)^T (X^T A X) (X^T u) = u^T S A S u,     S = X X^T,   (eqs. (52)-(57))

with u the y-gradient and A the y-Hessian of one network, both held fixed while X varies (the
registry's reading).  For an input width d >= m, S = X X^T ranges over every PSD matrix with
||S||_2 <= lambda^2, and S = (lambda^2/2)(I + K) with K symmetric, ||K||_2 <= 1; since
{K u : K symmetric, ||K|| <= 1} is the ball of radius ||u||, w = S u ranges over the ball

    B = { w : ||w - c|| <= r },    c = (lambda^2/2) u,   r = (lambda^2/2) ||u||  (= ||c||),

and the maximum is that of the quadratic w^T A w over B: a trust-region subproblem, solved
here *exactly* (not by a local optimiser):

* A = Q diag(a) Q^T (eigh).  In eigen-coordinates, with d_i = a_i <c, q_i>, the stationary
  points of the Lagrangian are w(nu) = nu (nu I - A)^{-1} c, i.e. w - c = x(nu) with
  x_i = d_i / (nu - a_i).
* Global optimality (More & Sorensen 1983, for the maximisation form): w* is a global
  maximiser iff there is nu >= 0 with (A - nu I)(w* - c) = -A c, nu I - A PSD (nu >= a_max),
  ||w* - c|| <= r and nu (r - ||w* - c||) = 0.
* If a_max <= 0, w^T A w <= 0 on R^m and w = 0 lies in B (||0 - c|| = r): the maximum is 0.
* Otherwise the maximum is on the boundary with nu = a_max + s, s >= 0 the root of the
  secular equation ||x(nu)|| = r, found by Newton's method on 1/||x|| - 1/r (concave and
  increasing in s) safeguarded by bisection; the shift s is the variable, so that
  nu - a_i = s + (a_max - a_i) is never formed by cancellation.  In the hard case (c has no
  component along the top eigenvector and ||x(a_max)|| < r) the root is s = 0 and the missing
  length is added along the top eigenvector.

Every solution carries a dual bound: for nu >= a_max and any feasible w,
w^T A w <= w^T A w - nu(||w - c||^2 - r^2) <= nu^2 c^T (nu I - A)^{-1} c (weak duality; the
last step uses ||c|| = r), so `dual_bound - value` >= 0 is a computed optimality gap.  The
certification in interval arithmetic (numeric.certify) uses the same two bounds rigorously.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from theory.bn import BatchNormInputError
from theory.vocab import UNIT_ROUNDOFF as _U

# Newton-with-bisection iterations: bisection alone halves the bracket's logarithmic width,
# which spans at most ~2100 binary orders of magnitude of float64 in the worst case, but it is
# only taken when Newton leaves the bracket; Newton on the concave secular function converges
# quadratically once on the left of the root.  200 steps bound the worst case; the loop stops
# as soon as every instance has converged.
_MAX_ITERATIONS = 200
# Convergence: relative bracket width at a few ulps of the shift.
_SHIFT_RTOL = 8 * _U
# Smallest shift tried relative to the upper end of the bracket (2^-200): below it, s is
# indistinguishable from 0 against any eigenvalue gap the data can carry (the hard case).
_SHIFT_FLOOR = 2.0 ** -200
# A computed solution is called certified when its duality gap is within rounding of the
# magnitude of the terms: the value and the bound are sums of m terms of size up to
# |a|_max (||c|| + r)^2, each carrying an error of a few m u (Higham's gamma_m for the
# eigen-coordinates and the sum), so 64 m u x that magnitude covers them with margin.
_GAP_SAFETY = 64.0
# A Hessian is symmetric; rounding in its assembly (a few products of length m) leaves an
# asymmetry of a few m u |A|; 1000 m u |A| is far above that and far below any real asymmetry.
_SYMMETRY_SAFETY = 1e3


@dataclass(frozen=True)
class BallQuadraticMax:
    """The maximum of w^T A w over ||w - c|| <= r, with its optimality certificate.  N instances."""

    value: np.ndarray          # (N,) max_w w^T A w
    maximiser: np.ndarray      # (N, m) w*
    multiplier: np.ndarray     # (N,) nu >= a_max, the Lagrange multiplier of the ball constraint
    a_max: np.ndarray          # (N,) largest eigenvalue of A
    dual_bound: np.ndarray     # (N,) nu^2 c^T (nu I - A)^{-1} c >= value (weak duality)
    boundary_residual: np.ndarray  # (N,) (||w* - c|| - r)/r when nu > 0, else 0
    hard_case: np.ndarray      # (N,) bool: the root is at nu = a_max
    gap_tolerance: np.ndarray  # (N,) rounding allowance for dual_bound - value
    boundary_tolerance: np.ndarray  # (N,) rounding allowance for the relative boundary residual

    @property
    def certified(self) -> np.ndarray:
        """(N,) bool: the float64 global optimality conditions hold within rounding."""
        gap = self.dual_bound - self.value
        return (self.multiplier >= self.a_max) & (self.multiplier >= 0) \
            & (np.abs(gap) <= self.gap_tolerance) & (np.abs(self.boundary_residual) <= self.boundary_tolerance)


def _validate(u, A, lam):
    u = np.asarray(u, dtype=np.float64)
    A = np.asarray(A, dtype=np.float64)
    lam = np.asarray(lam, dtype=np.float64)
    if u.ndim == 1:
        u = u[None]
    if A.ndim == 2:
        A = A[None]
    n, m = u.shape
    lam = np.broadcast_to(lam, (n,)) if lam.ndim == 0 else lam
    if A.shape != (n, m, m):
        raise BatchNormInputError(f"A has shape {A.shape}, expected {(n, m, m)} to match u {u.shape}")
    if lam.shape != (n,):
        raise BatchNormInputError(f"lam has shape {lam.shape}, expected ({n},)")
    for name, x in (("u", u), ("A", A), ("lam", lam)):
        if not np.isfinite(x).all():
            raise BatchNormInputError(f"{name} contains NaN or Inf")
    if (lam <= 0).any():
        raise BatchNormInputError(f"lambda must be > 0, got {lam[lam <= 0][0]!r}")
    asym = np.abs(A - np.swapaxes(A, -1, -2)).max(axis=(-1, -2))
    size = np.abs(A).max(axis=(-1, -2))
    bad = asym > _SYMMETRY_SAFETY * m * _U * np.maximum(size, np.finfo(np.float64).tiny)
    if bad.any():
        k = int(np.argmax(bad))
        raise BatchNormInputError(f"A[{k}] is not symmetric (max |A - A^T| = {asym[k]!r})")
    return u, 0.5 * (A + np.swapaxes(A, -1, -2)), lam


def _secular_shift(d_sq, gap, r):
    """Root s >= 0 of ||x(s)|| = r, x_i^2 = d_sq_i/(s + gap_i)^2, for K instances.

    d_sq, gap: (K, m); r: (K,).  Returns s (K,).  Newton on phi(s) = 1/||x(s)|| - 1/r, with
    the bracket [lo, hi] kept (phi(lo) < 0 < phi(hi)) and bisection in log-scale when Newton
    leaves it.
    """
    hi = np.sqrt(d_sq.sum(-1)) / r                    # ||x(hi)|| <= ||d||/hi = r
    lo = np.zeros_like(hi)
    s = hi.copy()
    active = np.ones_like(hi, dtype=bool)
    for _ in range(_MAX_ITERATIONS):
        if not active.any():
            break
        den = s[:, None] + gap                         # (K, m) nu - a_i
        with np.errstate(divide="ignore", invalid="ignore"):
            terms = np.where(d_sq > 0, d_sq / den**2, 0.0)
            psi_sq = terms.sum(-1)
            psi = np.sqrt(psi_sq)
            phi = 1 / psi - 1 / r                      # increasing and concave in s
            dpsi_sq = -2 * np.where(d_sq > 0, d_sq / den**3, 0.0).sum(-1)   # d(psi^2)/ds
            dphi = -dpsi_sq / (2 * psi**3)
            newton = s - phi / dphi
        right = phi >= 0                               # psi <= r: s at or right of the root
        hi = np.where(active & right, s, hi)
        lo = np.where(active & ~right, s, lo)
        low_end = np.maximum(lo, hi * _SHIFT_FLOOR)
        bisect = np.sqrt(low_end * hi)
        ok = np.isfinite(newton) & (newton > lo) & (newton < hi)
        s_new = np.where(ok, newton, bisect)
        converged = (hi - lo <= _SHIFT_RTOL * hi) | (hi <= _SHIFT_FLOOR * (np.sqrt(d_sq.sum(-1)) / r)) \
            | (phi == 0)
        s = np.where(active, s_new, s)
        active &= ~converged
    # choose the end of the bracket where ||x|| <= r (the hard case fills the rest below)
    return hi


def solve_ball_quadratic_max(u, A, lam) -> BallQuadraticMax:
    """max of w^T A w over ||w - (lam^2/2) u|| <= (lam^2/2)||u||, exactly (see module doc).

    u (N, m), A (N, m, m) symmetric, lam (N,) or scalar > 0.
    """
    u, A, lam = _validate(u, A, lam)
    n, m = u.shape
    c = 0.5 * lam[:, None] ** 2 * u                    # (N, m) centre
    r = np.sqrt(np.einsum("ni,ni->n", c, c))           # (N,)  radius = ||c||
    a, Q = np.linalg.eigh(A)                           # (N, m) ascending, (N, m, m)
    a_max = a[:, -1]
    cq = np.einsum("nji,nj->ni", Q, c)                 # (N, m) Q^T c
    d = a * cq                                         # (N, m) Q^T A c
    gap = a_max[:, None] - a                           # (N, m) >= 0

    value = np.zeros(n)
    wq = np.zeros((n, m))                              # maximiser in eigen-coordinates
    nu = np.zeros(n)
    hard = np.zeros(n, dtype=bool)
    boundary = np.zeros(n)
    top = (a_max > 0) & (r > 0)
    if top.any():
        s = _secular_shift(d[top] ** 2, gap[top], r[top])
        den = s[:, None] + gap[top]
        with np.errstate(divide="ignore", invalid="ignore"):
            x = np.where(d[top] != 0, d[top] / den, 0.0)      # (K, m) w - c
        short = r[top] ** 2 - np.einsum("ki,ki->k", x, x)
        # hard case: fill the remaining length along the top eigenvector (x_top has the
        # sign of c_top, or + when c_top = 0); the value only grows, by a_max * tau^2 terms.
        fill = short > 0
        tau = np.sqrt(np.where(fill, short, 0.0))
        sign_top = np.where(x[:, -1] < 0, -1.0, 1.0)
        x_top_new = sign_top * np.sqrt(x[:, -1] ** 2 + tau**2)
        x[:, -1] = np.where(fill, x_top_new, x[:, -1])
        w_top = cq[top] + x
        wq[top] = w_top
        value[top] = np.einsum("ki,ki->k", a[top], w_top**2)
        nu[top] = a_max[top] + s
        hard[top] = fill & (s <= _SHIFT_FLOOR * np.sqrt((d[top] ** 2).sum(-1)) / r[top] * 2 ** 10)
        boundary[top] = (np.sqrt(np.einsum("ki,ki->k", x, x)) - r[top]) / r[top]
    w = np.einsum("nij,nj->ni", Q, wq)
    # dual bound nu^2 sum_i cq_i^2/(nu - a_i) (terms with cq_i = 0 contribute 0, also at nu = a_i)
    with np.errstate(divide="ignore", invalid="ignore"):
        den = (nu - a_max)[:, None] + gap
        terms = np.where(cq != 0, cq**2 / den, 0.0)
        dual = np.where(top, nu**2 * terms.sum(-1), 0.0)
    magnitude = np.abs(a).max(-1) * (2 * r) ** 2
    gap_tol = _GAP_SAFETY * m * _U * np.maximum(magnitude, np.abs(value))
    return BallQuadraticMax(value=value, maximiser=w, multiplier=nu, a_max=a_max, dual_bound=dual,
                            boundary_residual=boundary, hard_case=hard, gap_tolerance=gap_tol,
                            boundary_tolerance=np.full(n, _GAP_SAFETY * m * _U))


def max_weight_space_smoothness(u, A, lam) -> np.ndarray:
    """max_{||X||_2 <= lam} (X^T u)^T (X^T A X)(X^T u) = max_{0 <= S <= lam^2 I} u^T S A S u, (N,).

    The quantity of Theorem C.1 (eqs. (52)-(57)), exact for input width d >= m: the
    trust-region maximum of w^T A w over ||w - (lam^2/2) u|| <= (lam^2/2)||u|| (module doc).
    u (N, m), A (N, m, m), lam (N,) -> (N,).
    """
    return solve_ball_quadratic_max(u, A, lam).value
