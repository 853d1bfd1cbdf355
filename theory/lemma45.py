"""Lemma 4.5 on a model whose optimum sets are known exactly.

The model (the smallest that tests the lemma's scope): one neuron with identity activation,
inputs x_i in R^d, targets t_i, i = 1..n (n = 3, d = 2 by default), squared loss.

* standard network  f(x) = w^T x,  L(w) = sum_i (w^T x_i - t_i)^2.  With X of full column rank
  the only optimum is W* = (X^T X)^{-1} X^T t, so the closest standard optimum is W*.
* BN network  f(x) = gamma * (w^T x - mean_i w^T x_i)/std_i(w^T x_i) + beta, with gamma > 0 and beta
  constants (the paper's Section 4.1 assumption).  L_hat depends on w only through its direction
  and equals const - 2 gamma <y_hat(w), t_c>, so its optima are the points where the normalised,
  centred output is most correlated with the centred targets t_c:  the open ray
  {a d : a > 0}, d = (X_c^T X_c)^{-1} X_c^T t_c  (X_c: centred inputs), the only local optima since
  the correlation, as a function of the direction, has one local maximum.
* distance from W_0 to that optimum set: ||W_0||^2 - max(<W_0, d>, 0)^2/||d||^2 (an infimum when
  <W_0, d> <= 0, where the closest point would be w = 0, at which BatchNorm is undefined).

The lemma's proof needs k W* to be a BN optimum; here it is one only if W* is parallel to d, i.e.
when the uncentred and centred least-squares directions agree.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import sympy as sp

from theory import symbols as S
from theory.ops import InvariantOps, NumpyOps, SympyOps
from theory.quantities import Quantities
from theory.vocab import Verdict


class ToyModelError(ValueError):
    pass


# ---------------------------------------------------------------------------------------------
# The optimum sets, once over ops (SymPy rationals: one model; NumPy: N models)
# ---------------------------------------------------------------------------------------------

def optima(ops, X, t, n):
    """(W*, d) of n data points: the standard optimum W* = (X^T X)^{-1} X^T t and the direction d
    = (X_c^T X_c)^{-1} X_c^T t_c of the BN optima {a d : a > 0} (X_c, t_c centred over the data)."""
    W_star = ops.solve(ops.gram(X), ops.rmatvec(X, t))
    Xc = ops.centre_rows(X, n)
    tc = t - ops.scale(ops.total(t) / n, ops.ones_like(t))
    return W_star, ops.solve(ops.gram(Xc), ops.rmatvec(Xc, tc))


def distance_sq_to_bn_optima(ops, W0, direction):
    """dist(W_0, {a d : a > 0})^2 = ||W_0||^2 - max(<W_0, d>, 0)^2/||d||^2 (an infimum when <W_0, d> <= 0)."""
    along = ops.positive_part(ops.dot(W0, direction))
    return ops.dot(W0, W0) - along**2 / ops.dot(direction, direction)


# ---------------------------------------------------------------------------------------------
# Exact (SymPy rationals)
# ---------------------------------------------------------------------------------------------

EXACT_OPS = SympyOps()

@dataclass(frozen=True)
class ToyOptima:
    X: sp.Matrix          # (n, d) inputs
    t: sp.Matrix          # (n, 1) targets
    W_star: sp.Matrix     # standard optimum
    bn_direction: sp.Matrix  # d: the BN optima are {a d : a > 0}


def exact_optima(X, t) -> ToyOptima:
    X, t = sp.Matrix(X), sp.Matrix(t)
    n, d = X.shape
    if n < 2:
        raise ToyModelError(f"{n} data point(s): BatchNorm over the data needs n >= 2")
    if EXACT_OPS.gram(X).det() == 0:
        raise ToyModelError("X^T X is singular: the standard optimum is not unique")
    try:
        W_star, direction = optima(EXACT_OPS, X, t, n)
    except sp.matrices.exceptions.NonInvertibleMatrixError:
        raise ToyModelError("the centred inputs are rank deficient: the BN optimum direction is not unique") from None
    if all(e == 0 for e in direction):
        raise ToyModelError("targets uncorrelated with the inputs: every direction is optimal for BN")
    return ToyOptima(X, t, W_star, direction)


def exact_quantities(X, t, W0) -> Quantities:
    opt = exact_optima(X, t)
    W0 = sp.Matrix(W0)
    return Quantities(EXACT_OPS, dict(W0=W0, W_star=opt.W_star,
                                      bn_opt_dist_sq=distance_sq_to_bn_optima(EXACT_OPS, W0, opt.bn_direction)))


@dataclass(frozen=True)
class Counterexample:
    X: sp.Matrix
    t: sp.Matrix
    W0: sp.Matrix
    W_star: sp.Matrix
    bn_direction: sp.Matrix
    lhs: sp.Expr
    rhs: sp.Expr
    slack: sp.Expr        # the variant's slack (theory.vocab.Relation.slack)

    def as_witness(self) -> dict:
        return {"X": self.X.tolist(), "t": list(self.t), "W0": list(self.W0), "W_star": list(self.W_star),
                "bn_optimum_direction": list(self.bn_direction), "lhs": self.lhs, "rhs": self.rhs}


def minimal_counterexample(variant=None):
    """The first violated instance (None if there is none in the range), in order of growing integer size, with W_0 = W*.

    X ranges over 3 x 2 matrices with entries in {0, 1}, t over {0, 1}^3; W_0 = W* satisfies
    <W_0, W*> > 0 and makes the right side 0, so any W* off the BN ray is a counterexample.
    """
    from theory.statements import get
    variant = variant or get("lemma-4.5").variant("printed")
    for entries in itertools.product((0, 1), repeat=6):
        X = sp.Matrix(3, 2, entries)
        for targets in itertools.product((0, 1), repeat=3):
            try:
                opt = exact_optima(X, targets)
            except ToyModelError:
                continue
            q = exact_quantities(X, targets, opt.W_star)
            if variant.condition(q) <= 0:
                continue
            lhs, rhs = variant.lhs(q), variant.rhs(q)
            slack = variant.relation.slack(lhs, rhs)
            if variant.relation.verdict_of_sign(int(sp.sign(slack))) is Verdict.VIOLATED:
                return Counterexample(X, sp.Matrix(targets), opt.W_star, opt.W_star, opt.bn_direction, lhs, rhs, slack)
    return None


# ---------------------------------------------------------------------------------------------
# Gram invariants (the proof's ray algebra, any dimension)
# ---------------------------------------------------------------------------------------------

GRAM_OPS = InvariantOps({("W0", "W0"): S.w0_sq, ("W0", "Wstar"): S.w0_ws, ("Wstar", "Wstar"): S.ws_sq},
                        basis=("W0", "Wstar"))


def gram_quantities() -> Quantities:
    return Quantities(GRAM_OPS, dict(W0=GRAM_OPS.basis("W0"), W_star=GRAM_OPS.basis("Wstar")))


# ---------------------------------------------------------------------------------------------
# Vectorised float64 (numeric layer)
# ---------------------------------------------------------------------------------------------

def toy_quantities_numpy(X, t, W0) -> Quantities:
    """X (N, n, d), t (N, n), W0 (N, d) -> Quantities with W0, W_star, bn_opt_dist_sq (N,)."""
    X, t, W0 = (np.asarray(a, dtype=np.float64) for a in (X, t, W0))
    if X.ndim != 3 or t.shape != X.shape[:2] or W0.shape != (X.shape[0], X.shape[2]):
        raise ToyModelError(f"shapes X {X.shape}, t {t.shape}, W0 {W0.shape}: expected (N,n,d), (N,n), (N,d)")
    if X.shape[1] < 2:
        raise ToyModelError(f"{X.shape[1]} data point(s): BatchNorm over the data needs n >= 2")
    for name, a in (("X", X), ("t", t), ("W0", W0)):
        if not np.isfinite(a).all():
            raise ToyModelError(f"{name} contains NaN or Inf")
    ops = NumpyOps()
    W_star, direction = optima(ops, X, t, X.shape[1])                        # (N, d), (N, d)
    return Quantities(ops, dict(W0=W0, W_star=W_star, bn_opt_dist_sq=distance_sq_to_bn_optima(ops, W0, direction),
                                bn_direction=direction))
