"""The training-mode BatchNorm map of one channel and its derivatives, derived in closed form.

Setting (Section 4.1 and Appendix C of the paper): a batch y in R^m of one channel,

    mu = <1, y> / m,   sigma = sqrt(<y - mu, y - mu> / m + eps),   y_hat = (y - mu) / sigma,
    z = gamma * y_hat + beta,

with sigma the *biased* batch standard deviation (what training-mode BatchNorm uses) and eps
the epsilon of BatchNorm (0 in the paper, 1e-5 in torch).  L_hat(y) = L(z(y)), g = dL/dz and
H = d^2 L / dz^2 at z(y).

The closed forms here are *our* derivation (the differentials d sigma = <y_hat, dy>/m and
d y_hat = (dy - 1<1,dy>/m - y_hat <y_hat,dy>/m)/sigma, valid for every eps >= 0); they are
checked against SymPy differentiation of the definition for m = 2..6 (theory.derive) and
against torch.autograd for m up to 64 (tests).  They are not the paper's printed formulas:
those live, literally, in theory.statements and are compared with these.

Every function takes an ``ops`` back-end (theory.ops) so that the one formula serves NumPy
(N instances), SymPy (exact) and torch.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


class BatchNormInputError(ValueError):
    """An input outside the domain of the training-mode BatchNorm map."""


# ---------------------------------------------------------------------------------------------
# Input validation (NumPy edge of the toolkit)
# ---------------------------------------------------------------------------------------------

def validate_batch(y, eps=0.0, name="y"):
    """Check a batch array (N, m) (or (m,)) and return it as float64 (N, m).

    Errors name the problem and the value: m < 2, NaN/Inf, a constant batch with eps = 0.
    """
    y = np.asarray(y, dtype=np.float64)
    if y.ndim == 1:
        y = y[None, :]
    if y.ndim != 2:
        raise BatchNormInputError(f"{name} must have shape (N, m) or (m,), got shape {y.shape}")
    m = y.shape[-1]
    if m < 2:
        raise BatchNormInputError(f"batch of size {m}: BatchNorm needs m >= 2")
    bad = ~np.isfinite(y)
    if bad.any():
        n, k = np.argwhere(bad)[0]
        raise BatchNormInputError(f"{name}[{n}, {k}] = {y[n, k]!r}: inputs must be finite")
    eps = np.broadcast_to(np.asarray(eps, dtype=np.float64), y.shape[:1])
    if (eps < 0).any() or not np.isfinite(eps).all():
        raise BatchNormInputError(f"epsilon must be finite and >= 0, got {eps[(eps < 0) | ~np.isfinite(eps)][0]!r}")
    var = y.var(axis=-1)
    zero = (var == 0) & (eps == 0)
    if zero.any():
        n = int(np.argmax(zero))
        raise BatchNormInputError(
            f"instance {n} is a constant batch (every entry {y[n, 0]!r}) with epsilon = 0: "
            "its variance is 0 and y_hat = (y - mu)/sigma is undefined")
    return y, eps


def validate_same_shape(reference, other, name):
    other = np.asarray(other, dtype=np.float64)
    if other.ndim == reference.ndim - 1:
        other = other[None]
    if other.shape != reference.shape:
        raise BatchNormInputError(f"{name} has shape {other.shape}, expected {reference.shape}")
    if not np.isfinite(other).all():
        raise BatchNormInputError(f"{name} contains NaN or Inf")
    return other


# ---------------------------------------------------------------------------------------------
# The forward map (definition)
# ---------------------------------------------------------------------------------------------

def batch_moments(ops, y, m):
    """mu, y - mu and the biased variance of a batch.  y (N, m) -> (N,), (N, m), (N,)."""
    mu = ops.total(y) / m                                    # (N,)
    centred = y - ops.scale(mu, ops.ones_like(y))            # (N, m)
    return mu, centred, ops.vec_sq(centred) / m              # biased variance (N,)


def batch_statistics(ops, y, m, eps):
    """mu, sigma, y_hat of the training-mode map.  y (N, m) -> (N,), (N,), (N, m)."""
    mu, centred, variance = batch_moments(ops, y, m)
    sigma = ops.sqrt(variance + eps)                         # (N,)  biased std (+ eps)
    y_hat = ops.scale(1 / sigma, centred)                    # (N, m)
    return mu, sigma, y_hat


def bn_forward(ops, y, m, gamma, beta, eps):
    """z = gamma * (y - mu)/sigma + beta."""
    _, _, y_hat = batch_statistics(ops, y, m, eps)
    return ops.scale(gamma, y_hat) + ops.scale(beta, ops.ones_like(y))


# ---------------------------------------------------------------------------------------------
# Derived calculus
# ---------------------------------------------------------------------------------------------

def project_out_mean_and_yhat(ops, u, y_hat, m):
    """P u = u - 1<1,u>/m - y_hat<y_hat,u>/m.  For eps = 0 this is the orthogonal projector
    onto {1, y_hat}^perp (||y_hat||^2 = m); for eps > 0 it is not a projector."""
    return (u - ops.scale(ops.total(u) / m, ops.ones_like(u))
            - ops.scale(ops.dot(y_hat, u) / m, y_hat))


def jacobian_z_y(ops, y_hat, sigma, gamma, m):
    """dz/dy = (gamma/sigma)(I - 11^T/m - y_hat y_hat^T/m), (N, m, m); symmetric."""
    ones = ops.ones_like(y_hat)
    P = ops.eye_like(y_hat) - ops.scale_matrix(1 / m, ops.outer(ones, ones)) \
        - ops.scale_matrix(1 / m, ops.outer(y_hat, y_hat))
    return ops.scale_matrix(gamma / sigma, P)


def grad_y_bn(ops, g, y_hat, sigma, gamma, m):
    """nabla_y L_hat = J^T g = (gamma/sigma) P g, (N, m).  O(m) per instance."""
    return ops.scale(gamma / sigma, project_out_mean_and_yhat(ops, g, y_hat, m))


def bn_curvature_bilinear(ops, g, y_hat, sigma, gamma, m, a, b):
    """sum_b g_b a^T (d^2 z_b/dy^2) b in O(m) per instance, valid for eps >= 0:

        - gamma/(m sigma^2) [ <g_bar,a><y_hat,b> + <y_hat,a><g_bar,b>
                              + <g,y_hat>(<a,b> - <1,a><1,b>/m) - 3/m <g,y_hat><y_hat,a><y_hat,b> ]

    with g_bar = g - 1<1,g>/m: BatchNorm's own curvature, the part of d^2 L_hat/dy^2 that does not
    involve H (hessian_bn_bilinear, hessian_bn_matrix)."""
    g_sum = ops.total(g)
    g_yhat = ops.dot(g, y_hat)
    a_sum, b_sum = ops.total(a), ops.total(b)
    gbar_a = ops.dot(g, a) - g_sum * a_sum / m
    gbar_b = ops.dot(g, b) - g_sum * b_sum / m
    ya, yb = ops.dot(y_hat, a), ops.dot(y_hat, b)
    curvature = (gbar_a * yb + ya * gbar_b + g_yhat * (ops.dot(a, b) - a_sum * b_sum / m)
                 - 3 * g_yhat * ya * yb / m)
    return -gamma / (m * sigma**2) * curvature


def hessian_bn_bilinear(ops, H, g, y_hat, sigma, gamma, m, a, b):
    """a^T (d^2 L_hat / dy^2) b in O(m^2) per instance (one H mat-vec), valid for eps >= 0:

        (gamma^2/sigma^2) (Pa)^T H (Pb)
        - gamma/(m sigma^2) [ <g_bar,a><y_hat,b> + <y_hat,a><g_bar,b>
                              + <g,y_hat>(<a,b> - <1,a><1,b>/m) - 3/m <g,y_hat><y_hat,a><y_hat,b> ]

    with g_bar = g - 1<1,g>/m.  The second line is sum_b g_b d^2 z_b/dy^2 (bn_curvature_bilinear).
    """
    Pa = project_out_mean_and_yhat(ops, a, y_hat, m)
    Pb = project_out_mean_and_yhat(ops, b, y_hat, m)
    return ((gamma**2 / sigma**2) * ops.bilinear(H, Pa, Pb)
            + bn_curvature_bilinear(ops, g, y_hat, sigma, gamma, m, a, b))


# ---------------------------------------------------------------------------------------------
# Theorem 4.2's forms from the Gram matrix of H on span{g, 1, y_hat}
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SpanGram:
    """K = B^T H B for B = [g, 1, y_hat] (m x 3) and a symmetric H: its six entries, each (N,).

    H must be symmetric (a Hessian d^2 L/dz^2 is; every statement assumes it): then K is
    symmetric and these six numbers are all of it."""

    gg: Any          # g^T H g
    g1: Any          # 1^T H g
    gy: Any          # y_hat^T H g
    one_one: Any     # 1^T H 1
    one_y: Any       # 1^T H y_hat
    yy: Any          # y_hat^T H y_hat

    def form(self, c_g, c_1, c_y):
        """u^T H u for u = c_g g + c_1 1 + c_y y_hat: c^T K c."""
        return (c_g * c_g * self.gg + c_1 * c_1 * self.one_one + c_y * c_y * self.yy
                + 2 * (c_g * c_1 * self.g1 + c_g * c_y * self.gy + c_1 * c_y * self.one_y))


def hessian_forms_from_gram(ops, gram, g, y_hat, sigma, gamma, m):
    """(v^T (d^2 L_hat/dy^2) v, v^T H v) with v = nabla_y L_hat, from K = B^T H B, B = [g, 1, y_hat]
    (SpanGram), in O(m) per instance once K is known; valid for eps >= 0 and a symmetric H.

    Both forms are forms of H on vectors of span{g, 1, y_hat}.  With k = gamma/sigma,

        v  = k P g = k (g - 1<1,g>/m - y_hat<y_hat,g>/m)         = B c_v,
             c_v  = (k, -k<1,g>/m, -k<y_hat,g>/m),
        Pv = v - 1<1,v>/m - y_hat<y_hat,v>/m                      = B c_Pv,
             c_Pv = c_v - (0, <1,v>/m, <y_hat,v>/m)

    (P as project_out_mean_and_yhat; <1,v> = 0 in exact arithmetic, kept as computed), so

        v^T H v       = c_v^T K c_v,
        (Pv)^T H (Pv) = c_Pv^T K c_Pv,
        v^T (d^2 L_hat/dy^2) v = k^2 c_Pv^T K c_Pv + bn_curvature_bilinear(v, v)

    -- hessian_bn_bilinear at a = b = v with its one H form replaced by the same number from K.
    In exact arithmetic the two are equal for every symmetric H.  In float64 c^T K c adds terms
    of the size of k^2 g^T H g: when g lies close to span{1, y_hat} (||Pg|| << ||g||) they cancel
    and the result carries an absolute error of about m u k^2 |g|^T|H||g| rather than m u |v|^T|H||v|.
    """
    k = gamma / sigma
    v = grad_y_bn(ops, g, y_hat, sigma, gamma, m)
    c_g, c_1, c_y = k, -k * ops.total(g) / m, -k * ops.dot(y_hat, g) / m
    H_vv = gram.form(c_g, c_1, c_y)
    H_PvPv = gram.form(c_g, c_1 - ops.total(v) / m, c_y - ops.dot(y_hat, v) / m)
    hess_bn_vv = k**2 * H_PvPv + bn_curvature_bilinear(ops, g, y_hat, sigma, gamma, m, v, v)
    return hess_bn_vv, H_vv


def hessian_bn_matrix(ops, H, g, y_hat, sigma, gamma, m):
    """The full m x m Hessian of L_hat w.r.t. y, (N, m, m): J^T H J + sum_b g_b d^2 z_b/dy^2."""
    J = jacobian_z_y(ops, y_hat, sigma, gamma, m)
    ones = ops.ones_like(y_hat)
    g_bar = g - ops.scale(ops.total(g) / m, ones)
    g_yhat = ops.dot(g, y_hat)
    centring = ops.eye_like(y_hat) - ops.scale_matrix(1 / m, ops.outer(ones, ones))
    curvature = (ops.outer(g_bar, y_hat) + ops.outer(y_hat, g_bar)
                 + ops.scale_matrix(g_yhat, centring)
                 - ops.scale_matrix(3 * g_yhat / m, ops.outer(y_hat, y_hat)))
    return ops.matmul(ops.matmul(J, H), J) - ops.scale_matrix(gamma / (m * sigma**2), curvature)
