"""The canonical SymPy symbols of the BatchNorm setting, built once and imported everywhere.

Batch-level symbols (a fully symbolic batch of size m, for m = 2..6) come from
``batch_symbols(m)``; the invariants of a general batch size come from ``INVARIANTS``.
"""
from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from theory.ops import BASIS, InvariantOps, SymbolicHessian

# Scalars of the setting.
m = sp.Symbol("m", integer=True, positive=True)              # batch size (general m)
gamma = sp.Symbol("gamma", real=True, nonzero=True)          # BN scale
beta = sp.Symbol("beta", real=True)                          # BN shift
eps = sp.Symbol("epsilon", nonnegative=True)                 # BN epsilon
sigma = sp.Symbol("sigma", positive=True)                    # sqrt(Var(y) + eps)
lam = sp.Symbol("lambda", positive=True)                     # bound on ||X||_2

# Invariants of a batch (general m): inner products among 1, y_hat and g.
g_sq = sp.Symbol("g_sq", nonnegative=True)                   # ||g||^2
g_one = sp.Symbol("g_one", real=True)                        # <1, g>
g_yhat = sp.Symbol("g_yhat", real=True)                      # <g, y_hat>
rho = sp.Symbol("rho", positive=True)                        # ||y_hat||^2/m = Var/(Var+eps); 1 when eps = 0

# Quadratic forms of H = d^2L/dz^2 on the basis {1, y_hat, g}.
H_forms = {(a, b): sp.Symbol(f"H_{a}_{b}", real=True)
           for i, a in enumerate(BASIS) for b in BASIS[i:]}

# Lemma 4.5 (Gram of W_0 and W*).
w0_sq = sp.Symbol("W0_sq", positive=True)
ws_sq = sp.Symbol("Wstar_sq", positive=True)
w0_ws = sp.Symbol("W0_dot_Wstar", real=True)


def invariant_gram(with_epsilon: bool) -> dict:
    """<a, b> for a, b in {1, y_hat, g}: <1,1> = m, <1,y_hat> = 0, <y_hat,y_hat> = m rho."""
    return {("one", "one"): m, ("one", "yhat"): sp.Integer(0), ("one", "g"): g_one,
            ("yhat", "yhat"): m * (rho if with_epsilon else 1), ("yhat", "g"): g_yhat, ("g", "g"): g_sq}


def invariant_ops(with_epsilon: bool) -> InvariantOps:
    return InvariantOps(invariant_gram(with_epsilon))


SYMBOLIC_H = SymbolicHessian(H_forms)


@dataclass(frozen=True)
class BatchSymbols:
    """A fully symbolic batch of size m: y_1..y_m, g_1..g_m and a symmetric H."""

    m: int
    y: sp.Matrix
    g: sp.Matrix
    H: sp.Matrix
    h: tuple  # the independent entries of H


def batch_symbols(size: int) -> BatchSymbols:
    y = sp.Matrix(sp.symbols(f"y1:{size + 1}", real=True))
    g = sp.Matrix(sp.symbols(f"g1:{size + 1}", real=True))
    h = {}
    for i in range(size):
        for j in range(i, size):
            h[(i, j)] = sp.Symbol(f"h{i + 1}{j + 1}", real=True)
    H = sp.Matrix(size, size, lambda i, j: h[(min(i, j), max(i, j))])
    return BatchSymbols(size, y, g, H, tuple(h.values()))
