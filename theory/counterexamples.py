"""Smallest concrete counterexamples in exact numbers, for the docs and the report.

A search in order of growing size (batch size m first, then the magnitude of the integers)
over batches y, upstream gradients g, Hessians H, gamma, epsilon and lambda, each candidate
evaluated exactly: the derivatives come from SymPy's differentiation of the definition
(theory.derive) evaluated at the point, sigma is an exact square root, and the sign of the
slack is decided at 60 digits.  Candidates with a zero BN gradient (every m = 2 batch) are
skipped as degenerate.  The first candidate with negative slack (non-zero residual
for an identity; slack <= 0 for a strict inequality) is returned.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from functools import lru_cache

import sympy as sp

from theory import derive, symbols as S

SIGN_DIGITS = 60
EPSILON_VALUE = sp.Rational(1, 10)   # the epsilon of 'positive' variants in the search


@dataclass(frozen=True)
class BatchCounterexample:
    statement_id: str
    variant: str
    inputs: dict        # name -> exact value (lists for vectors, nested lists for H)
    lhs: sp.Expr
    rhs: sp.Expr
    slack: sp.Expr

    def to_dict(self):
        return {"statement": self.statement_id, "variant": self.variant,
                "inputs": {k: _to_str(v) for k, v in self.inputs.items()},
                "lhs": str(self.lhs), "rhs": str(self.rhs), "slack": str(self.slack),
                "slack_float": float(sp.N(self.slack, 20))}


def _to_str(v):
    if isinstance(v, (list, tuple)):
        return [_to_str(x) for x in v]
    return str(v)


def _norm(x):
    if isinstance(x, sp.MatrixBase):
        return sp.sqrt(sum(e**2 for e in x))
    return x


def _candidates(size, uses_H, uses_lam):
    ys = {2: [(0, 1), (0, 2)], 3: [(0, 0, 1), (0, 1, 2), (0, 1, 3)]}[size]
    gs = list(itertools.product((-1, 0, 1, 2), repeat=size))
    Hs = [sp.zeros(size, size)]
    if uses_H:
        # PSD first (the remark after Theorem 4.2 calls PSD a mild assumption), then indefinite
        Hs = [sp.eye(size), sp.zeros(size, size), sp.diag(*([1] + [0] * (size - 1))),
              sp.diag(*([0] * (size - 1) + [1])), sp.ones(size, size), sp.diag(1, -1, *([0] * (size - 2))),
              -sp.eye(size)]
    gammas = (1, 2, 3, sp.Rational(1, 2), -1)
    lams = (1, sp.Rational(1, 2), 2) if uses_lam else (1,)
    for gamma, y, g, H, lam in itertools.product(gammas, ys, gs, Hs, lams):
        yield y, g, H, gamma, lam


@lru_cache(maxsize=None)
def smallest_counterexample(statement_id: str, variant_name: str):
    """The first exact counterexample of a bn-channel or weight-space variant, or None."""
    from theory.statements import get
    statement = get(statement_id)
    variant = statement.variant(variant_name)
    if statement.setting not in ("bn-channel", "weight-space") or variant.relation == "definition":
        return None
    with_eps = variant.epsilon == "positive"
    uses_H = any(r in variant.requires for r in ("H", "H_vv", "H_gg", "hess_bn_vv", "hess_bn"))
    uses_lam = "lam" in variant.requires
    for size in (3,):
        calc = derive.derive_calculus(size, with_eps)
        for y, g, H, gamma, lam in _candidates(size, uses_H, uses_lam):
            if len(set(y)) == 1 or not any(g):
                continue
            point = dict(zip(calc.y, map(sp.Integer, y)))
            point.update(zip(calc.g, map(sp.Integer, g)))
            eps = EPSILON_VALUE if with_eps else sp.Integer(0)
            point[S.eps] = eps
            point[S.sigma] = sp.sqrt(calc.variance.xreplace(point) + eps)
            point.update({S.gamma: sp.sympify(gamma), S.beta: sp.Integer(0), S.lam: sp.sympify(lam)})
            hpoint = {sym: H[i, j] for (i, j), sym in
                      zip(((i, j) for i in range(size) for j in range(i, size)), S.batch_symbols(size).h)}
            point.update(hpoint)
            q = derive.symbolic_batch_quantities(calc, lam=S.lam, point=point)
            if not any(sp.radsimp(e) != 0 for e in q.grad_y_bn):
                # m = 2 always has nabla_y L_hat = 0 (P projects onto {1, y_hat}^perp = {0}):
                # valid but degenerate; prefer batches where the BN gradient is non-zero
                continue
            if variant.constraint is not None and sp.expand(sp.radsimp(variant.constraint(q))) != 0:
                continue
            if variant.condition is not None and not sp.N(variant.condition(q), SIGN_DIGITS) > 0:
                continue
            lhs, rhs = variant.lhs(q), variant.rhs(q)
            if variant.relation == "==":
                diff = lhs - rhs
                residual = _norm(diff) if isinstance(diff, sp.MatrixBase) else sp.Abs(diff)
                slack = -sp.nsimplify(sp.radsimp(residual))
                bad = sp.N(slack, SIGN_DIGITS) < 0
                lhs_v, rhs_v = lhs, rhs
            else:
                slack = sp.radsimp(sp.expand(rhs - lhs))
                value = sp.N(slack, SIGN_DIGITS)
                bad = value < 0 or (variant.relation == "<" and slack == 0)
                lhs_v, rhs_v = sp.radsimp(sp.expand(lhs)), sp.radsimp(sp.expand(rhs))
            if bad:
                inputs = {"m": size, "y": list(y), "g": list(g), "gamma": point[S.gamma], "beta": 0,
                          "epsilon": eps}
                if uses_H:
                    inputs["H"] = H.tolist()
                if uses_lam:
                    inputs["lambda"] = point[S.lam]
                inputs["sigma"] = point[S.sigma]
                return BatchCounterexample(statement_id, variant_name, inputs, lhs_v, rhs_v, slack)
    return None
