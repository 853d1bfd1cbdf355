"""Evaluate registry variants on a ``Quantities`` bundle of N float64 instances.

This is the one place that turns the two sides of a variant into slack, relative slack, a
rounding tolerance and a per-instance verdict; the numeric report, the hypothesis tests and
the trajectory probes all call it.

Sign convention (as in the report): for ``<=`` and ``<``, slack = RHS - LHS (negative means
violated); for ``==`` the slack is -|LHS - RHS| (Frobenius norm for vectors and matrices), so
that it is never positive and 0 means exact agreement.  Relative slack = slack/(|LHS| + |RHS|).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from theory.statements import STATEMENTS, Statement, Variant

# Unit roundoff of IEEE float64.
UNIT_ROUNDOFF = np.finfo(np.float64).eps / 2
# Rounding budget.  Every quantity is a short chain (at most ~10) of products and inner products
# of length <= m; an inner product of length m carries a relative error <= m u (Higham, gamma_m),
# so the error of a slack is bounded by about 10 m u times the magnitude of the terms that cancel
# in it.  ROUNDING_SAFETY = 64 covers that chain with margin, and no more: a violation smaller than
# 64 m u x scale is reported as 'equality' and must be decided exactly (certification).
ROUNDING_SAFETY = 64.0


@dataclass(frozen=True)
class VariantResult:
    statement_id: str
    variant: str
    relation: str
    applicable: object      # bool (N,): the instance meets the variant's hypotheses
    lhs: object             # (N,) value (norm for vectors/matrices)
    rhs: object             # (N,) value (norm for vectors/matrices); nan for definitions
    slack: object           # (N,)
    rel_slack: object       # (N,)
    tolerance: object       # (N,) float64 rounding tolerance on the slack
    verdicts: object        # (N,) str: 'holds' | 'equality' | 'violated' | 'undefined' | 'n/a'

    @property
    def n_applicable(self) -> int:
        return int(np.sum(self.applicable))

    @property
    def n_violated(self) -> int:
        return int(np.sum(self.verdicts == "violated"))


def _is_tensor(x, n):
    return isinstance(x, np.ndarray) and x.ndim >= 2 and x.shape[0] == n


def _flat_norm(x):
    return np.sqrt(np.sum(np.reshape(x, (x.shape[0], -1)) ** 2, axis=1))


def _instances(q) -> int:
    for v in q.values.values():
        if isinstance(v, np.ndarray) and v.ndim >= 1:
            return v.shape[0]
    return 1


def _broadcast(x, n):
    return np.broadcast_to(np.asarray(x, dtype=np.float64), (n,)).copy()


def _size_m(q, n):
    return _broadcast(q.values.get("m", 1), n)


def _scope_mask(q, variant: Variant, n):
    eps = _broadcast(q.values.get("eps", 0.0), n)
    if variant.epsilon == "zero":
        return eps == 0
    if variant.epsilon == "positive":
        return eps > 0
    return np.ones(n, dtype=bool)


def classify(slack, tolerance, relation):
    """Per-instance verdict from float64 slack and its rounding tolerance."""
    slack = np.asarray(slack)
    verdict = np.where(np.abs(slack) <= tolerance, "equality",
                       np.where(slack > 0, "holds", "violated")).astype(object)
    if relation == "==":
        verdict = np.where(np.abs(slack) <= tolerance, "equality", "violated").astype(object)
    # A strict inequality ('<') is not established by a slack within rounding of 0: that case
    # stays 'equality' and only exact arithmetic can say on which side of 0 it lies.
    # A formula undefined at the instance (0/0, e.g. a ratio with ||g|| = 0) is 'undefined',
    # never 'violated'.
    return np.where(np.isnan(slack), "undefined", verdict).astype(object)


def evaluate_variant(statement: Statement, variant: Variant, q) -> VariantResult:
    """Both sides of one variant on N instances, with slack, tolerance and verdicts."""
    n = _instances(q)
    if not q.has(variant.requires):
        nan = np.full(n, np.nan)
        return VariantResult(statement.id, variant.name, variant.relation, np.zeros(n, bool),
                             nan, nan, nan, nan, nan, np.full(n, "n/a", dtype=object))
    with np.errstate(divide="ignore", invalid="ignore"):
        lhs = variant.lhs(q)
        rhs = variant.rhs(q) if variant.rhs is not None else None
        applicable = _scope_mask(q, variant, n)
        if variant.condition is not None:
            applicable &= _broadcast(variant.condition(q), n) > 0
        m = _size_m(q, n)
        if variant.relation == "definition":
            lhs_v = _flat_norm(lhs) if _is_tensor(lhs, n) else _broadcast(lhs, n)
            nan = np.full(n, np.nan)
            return VariantResult(statement.id, variant.name, variant.relation, applicable,
                                 lhs_v, nan, nan, nan, nan,
                                 np.where(applicable, "n/a", "n/a").astype(object))
        if _is_tensor(lhs, n) or _is_tensor(rhs, n):
            lhs_t = np.broadcast_to(lhs, np.shape(rhs)) if not _is_tensor(lhs, n) else lhs
            rhs_t = np.broadcast_to(rhs, np.shape(lhs_t)) if not _is_tensor(rhs, n) else rhs
            lhs_v, rhs_v = _flat_norm(lhs_t), _flat_norm(rhs_t)
            slack = -_flat_norm(lhs_t - rhs_t)
        else:
            lhs_v, rhs_v = _broadcast(lhs, n), _broadcast(rhs, n)
            slack = rhs_v - lhs_v if variant.relation in ("<=", "<") else -np.abs(lhs_v - rhs_v)
        scale = np.abs(lhs_v) + np.abs(rhs_v)
        if variant.scale is not None:
            scale = np.maximum(scale, np.abs(_broadcast(variant.scale(q), n)))
        tolerance = ROUNDING_SAFETY * np.maximum(m, 1) * UNIT_ROUNDOFF * scale
        if variant.constraint is not None:
            residual = np.abs(_broadcast(variant.constraint(q), n))
            constraint_scale = np.abs(_broadcast(variant.constraint_scale(q), n)) \
                if variant.constraint_scale is not None else residual
            applicable &= residual <= ROUNDING_SAFETY * np.maximum(m, 1) * UNIT_ROUNDOFF * constraint_scale
        rel = np.where(scale > 0, slack / np.where(scale > 0, scale, 1), 0.0)
    verdicts = classify(slack, tolerance, variant.relation)
    verdicts = np.where(applicable, verdicts, "n/a").astype(object)
    return VariantResult(statement.id, variant.name, variant.relation, applicable,
                         lhs_v, rhs_v, slack, rel, tolerance, verdicts)


def evaluate_all(q, statements=STATEMENTS) -> list:
    """Every variant of every statement on q; those whose quantities are absent are n/a."""
    return [evaluate_variant(s, v, q) for s in statements for v in s.variants]
