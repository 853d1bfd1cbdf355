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
from functools import lru_cache

import numpy as np
import sympy as sp

from theory import bn, symbols as S
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


def standard_optimum_with_bias(ops, X, t):
    """The weights of the optimum of y = W x + b: the least-squares solution of [X, 1] (W, b) = t, its
    first d entries.  By the normal equation of b they solve the centred problem: they equal d."""
    Xa = ops.with_ones_column(X)
    return ops.leading(ops.solve(ops.gram(Xa), ops.rmatvec(Xa, t)), X.shape[-1])


def standard_optimum_centred_inputs(ops, X, t, n):
    """The optimum of y = W x (no bias) on the centred inputs x_i - mean_j x_j, against the
    uncentred targets: (X_c^T X_c)^{-1} X_c^T t, equal to d since X_c^T 1 = 0."""
    Xc = ops.centre_rows(X, n)
    return ops.solve(ops.gram(Xc), ops.rmatvec(Xc, t))


def bn_gradient_at_standard_optimum(ops, X, t, n, W_star):
    """nabla_{(W, gamma, beta)} L_hat at (W*, gamma = sigma(W* X), beta = mu(W* X)), as (dW, dgamma, dbeta).

    L_hat(W, gamma, beta) = sum_i (gamma y_hat_i + beta - t_i)^2, y = X W, y_hat = (y - mu)/sigma
    (eps = 0).  At the witness of Observation 4.3 z = y* = X W*, so with r = y* - t:
        dbeta = 2 <1, r>,  dgamma = 2 <y_hat, r>,  dW = 2 (gamma/sigma) X^T P r = 2 X^T P r,
    P r = r - 1<1,r>/n - y_hat<y_hat,r>/n (Fact C.2 over the n data points)."""
    y = ops.matvec(X, W_star)                                              # (N, n) standard outputs
    _, sigma, y_hat = bn.batch_statistics(ops, y, n, 0)
    r = y - t                                                              # (N, n) residual (z = y)
    Pr = bn.project_out_mean_and_yhat(ops, r, y_hat, n)
    return ops.append_scalars(ops.scale(2, ops.rmatvec(X, Pr)), 2 * ops.dot(y_hat, r), 2 * ops.total(r))


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
    """The toy model's quantities, exactly.  ``bn_grad_at_w_star`` is absent where W* X is constant
    (BatchNorm is undefined there); ``gram_condition`` is 1 (exact arithmetic has no rounding to scale)."""
    X, t, W0 = sp.Matrix(X), sp.Matrix(t), sp.Matrix(W0)
    direction, of_the_data = _quantities_of_the_data(X.shape, tuple(X), tuple(t))
    return Quantities(EXACT_OPS, dict(
        of_the_data, W0=W0, bn_opt_dist_sq=distance_sq_to_bn_optima(EXACT_OPS, W0, direction)))


@lru_cache(maxsize=None)
def _quantities_of_the_data(shape, X_entries, t_entries) -> tuple:
    """(BN optimum direction, the quantities that do not depend on W_0) of one data set, cached:
    exact_verdicts evaluates every instance of the exhaustive range at several W_0 and for every
    variant of Lemma 4.5.  The values are SymPy matrices and numbers that no caller modifies."""
    opt = exact_optima(sp.Matrix(*shape, X_entries), list(t_entries))
    n = opt.X.shape[0]
    y_star = opt.X * opt.W_star
    grad = None
    if any(e != y_star[0] for e in y_star):
        grad = bn_gradient_at_standard_optimum(EXACT_OPS, opt.X, opt.t, n, opt.W_star).applyfunc(sp.radsimp)
    return opt.bn_direction, dict(
        W_star=opt.W_star,
        W_star_bias=standard_optimum_with_bias(EXACT_OPS, opt.X, opt.t),
        W_star_centred=standard_optimum_centred_inputs(EXACT_OPS, opt.X, opt.t, n),
        bn_grad_at_w_star=grad, bn_grad_scale=sp.Integer(1), gram_condition=sp.Integer(1))


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


@lru_cache(maxsize=1)
def small_instances() -> tuple:
    """(X, t, optima) of the exhaustive range, in order of growing integer size: X over 3 x 2 matrices
    with entries in {0, 1}, t over {0, 1}^3; models without unique optima, or with W* = 0 (where
    BatchNorm of W* X is undefined), are left out.  Computed once (a tuple, which no caller modifies):
    every variant of Lemma 4.5 and every W_0 runs over the same range."""
    out = []
    for entries in itertools.product((0, 1), repeat=6):
        X = sp.Matrix(3, 2, entries)
        for targets in itertools.product((0, 1), repeat=3):
            try:
                opt = exact_optima(X, targets)
            except ToyModelError:
                continue
            if all(e == 0 for e in opt.W_star):
                continue
            out.append((X, targets, opt))
    return tuple(out)


def exact_verdicts(variant, W0_of=lambda opt: opt.W_star):
    """(instance, q, verdict) over the exhaustive range, exactly; W_0 = W* unless ``W0_of`` says otherwise.
    Instances where the variant's quantities are absent or its condition fails are skipped."""
    for X, targets, opt in small_instances():
        q = exact_quantities(X, targets, W0_of(opt))
        if not q.has(variant.requires):
            continue
        if variant.condition is not None:
            c = sp.sign(variant.condition(q))
            if c < 0 or (c == 0 and not variant.condition_allows_zero):
                continue
        slack = variant.relation.slack(variant.lhs(q), variant.rhs(q))
        yield (X, targets, opt), q, variant.relation.verdict_of_sign(int(sp.sign(sp.radsimp(slack))))


def minimal_counterexample(variant=None):
    """The first violated instance of the exhaustive range (``small_instances``; None if there is none),
    with W_0 = W*: W_0 = W* satisfies <W_0, W*> > 0 and makes Lemma 4.5's right side 0, so any W* off
    the BN ray is a counterexample there."""
    from theory.statements import get
    variant = variant or get("lemma-4.5").variant("printed")
    for (X, targets, opt), q, verdict in exact_verdicts(variant):
        if verdict is Verdict.VIOLATED:
            lhs, rhs = variant.lhs(q), variant.rhs(q)
            return Counterexample(X, sp.Matrix(targets), opt.W_star, opt.W_star, opt.bn_direction, lhs, rhs,
                                  variant.relation.slack(lhs, rhs))
    return None


def bias_weights_solve_the_centred_problem(n: int, d: int) -> bool:
    """Exact, for a symbolic X (n x d), t and any w: the normal equations of y = W x + b at
    (w, b = mean(t) - mean(x)^T w) are those of the centred problem, X_c^T (X_c w - t_c) = 0,
    and the bias equation holds identically.  So the weights of the with-bias optimum (and the
    no-bias optimum on centred inputs, X_c^T t = X_c^T t_c) are the BN optimum direction d."""
    X = sp.Matrix(n, d, lambda i, j: sp.Symbol(f"x{i}{j}", real=True))
    t = sp.Matrix(sp.symbols(f"t0:{n}", real=True))
    w = sp.Matrix(sp.symbols(f"w0:{d}", real=True))
    ops = EXACT_OPS
    Xc = ops.centre_rows(X, n)
    tc = t - sp.ones(n, 1) * sum(t) / n
    mean_x = (sp.ones(1, n) * X).T / n
    b = sum(t) / n - (mean_x.T * w)[0, 0]
    residual = ops.with_ones_column(X).T * (X * w + sp.ones(n, 1) * b - t)   # normal equations of [X, 1]
    centred = Xc.T * (Xc * w - tc)
    centred_no_bias = Xc.T * (Xc * w - t)                                     # centred inputs, raw targets
    return all(sp.expand(e) == 0 for e in list(residual[:d, :] - centred) + [residual[d, 0]]
               + list(centred_no_bias - centred))


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
    n = X.shape[1]
    W_star, direction = optima(ops, X, t, n)                                 # (N, d), (N, d)
    Xc = ops.centre_rows(X, n)
    cond = np.linalg.cond(ops.gram(Xc))                                      # (N,) of the centred Gram matrix
    with np.errstate(divide="ignore", invalid="ignore"):                     # a constant W* X gives NaN: undefined
        grad = bn_gradient_at_standard_optimum(ops, X, t, n, W_star)        # (N, d + 2)
    y_star = ops.matvec(X, W_star)
    # |terms| of the gradient: residual sizes times (sqrt(n) + 3 ||X||_F) (the sums and X^T P r), squared
    # for the squared norm, times the conditioning of the solve that produced W*
    grad_size = 2 * (np.sqrt(ops.vec_sq(y_star)) + np.sqrt(ops.vec_sq(t))) * (np.sqrt(n) + 3 * np.sqrt(ops.frob_sq(X)))
    return Quantities(ops, dict(
        W0=W0, W_star=W_star, W_star_bias=standard_optimum_with_bias(ops, X, t),
        W_star_centred=standard_optimum_centred_inputs(ops, X, t, n),
        bn_opt_dist_sq=distance_sq_to_bn_optima(ops, W0, direction), bn_direction=direction,
        bn_grad_at_w_star=grad, bn_grad_scale=grad_size**2 * cond, gram_condition=cond))
