"""Evaluate registry variants on a ``Quantities`` bundle of N float64 instances.

This is the one place that turns the two sides of a variant into slack, relative slack, a
rounding tolerance and a per-instance verdict; the numeric report, the hypothesis tests and
the trajectory probes all call it.

The sign rule, the rounding budget and the per-instance verdict are theory.vocab's
(``Relation.float_slack``, ``rounding_tolerance``, ``Relation.classify``): for ``<=`` and ``<``,
slack = RHS - LHS (negative means violated); for ``==`` the slack is -|LHS - RHS| (Frobenius
norm for vectors and matrices).  Relative slack = slack/(|LHS| + |RHS|).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from theory.statements import STATEMENTS, Statement, Variant
# Re-exported: numeric.sweep and tests read the rounding budget here; it is defined in vocab.
from theory.vocab import ROUNDING_SAFETY, UNIT_ROUNDOFF, Relation, Verdict, rounding_tolerance  # noqa: F401


@dataclass(frozen=True)
class VariantResult:
    statement_id: str
    variant: str
    relation: Relation
    applicable: object      # bool (N,): the instance meets the variant's hypotheses
    lhs: object             # (N,) value (norm for vectors/matrices)
    rhs: object             # (N,) value (norm for vectors/matrices); nan for definitions
    slack: object           # (N,)
    rel_slack: object       # (N,)
    tolerance: object       # (N,) float64 rounding tolerance on the slack
    verdicts: object        # (N,) object array of Verdict: HOLDS, EQUALITY, VIOLATED, UNDEFINED, NOT_APPLICABLE

    @property
    def n_applicable(self) -> int:
        return int(np.sum(self.applicable))

    @property
    def n_violated(self) -> int:
        return int(np.sum(self.verdicts == Verdict.VIOLATED))


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


def _not_applicable(n):
    verdicts = np.empty(n, dtype=object)
    verdicts.fill(Verdict.NOT_APPLICABLE)
    return verdicts


def evaluate_variant(statement: Statement, variant: Variant, q) -> VariantResult:
    """Both sides of one variant on N instances, with slack, tolerance and verdicts."""
    n = _instances(q)
    relation = variant.relation
    if not q.has(variant.requires):
        nan = np.full(n, np.nan)
        return VariantResult(statement.id, variant.name, relation, np.zeros(n, bool),
                             nan, nan, nan, nan, nan, _not_applicable(n))
    with np.errstate(divide="ignore", invalid="ignore"):
        lhs = variant.lhs(q)
        rhs = variant.rhs(q) if variant.rhs is not None else None
        applicable = variant.epsilon.admits(_broadcast(q.values.get("eps", 0.0), n))
        if variant.condition is not None:
            condition = _broadcast(variant.condition(q), n)
            applicable &= (condition >= 0) if variant.condition_allows_zero else (condition > 0)
        m = _size_m(q, n)
        if relation is Relation.DEFINITION:
            lhs_v = _flat_norm(lhs) if _is_tensor(lhs, n) else _broadcast(lhs, n)
            nan = np.full(n, np.nan)
            return VariantResult(statement.id, variant.name, relation, applicable,
                                 lhs_v, nan, nan, nan, nan, _not_applicable(n))
        if _is_tensor(lhs, n) or _is_tensor(rhs, n):
            if relation is not Relation.EQ:
                raise ValueError(f"{statement.id}/{variant.name}: vector or matrix sides need relation '==', "
                                 f"got {relation.value!r}")
            lhs_t = np.broadcast_to(lhs, np.shape(rhs)) if not _is_tensor(lhs, n) else lhs
            rhs_t = np.broadcast_to(rhs, np.shape(lhs_t)) if not _is_tensor(rhs, n) else rhs
            lhs_v, rhs_v = _flat_norm(lhs_t), _flat_norm(rhs_t)
            # the identity's residual is the Frobenius norm of the difference
            slack = relation.float_slack(_flat_norm(lhs_t - rhs_t), 0.0)
        else:
            lhs_v, rhs_v = _broadcast(lhs, n), _broadcast(rhs, n)
            slack = relation.float_slack(lhs_v, rhs_v)
        scale = np.abs(lhs_v) + np.abs(rhs_v)
        if variant.scale is not None:
            scale = np.maximum(scale, np.abs(_broadcast(variant.scale(q), n)))
        tolerance = rounding_tolerance(m, scale)
        if variant.constraint is not None:
            residual = np.abs(_broadcast(variant.constraint(q), n))
            constraint_scale = np.abs(_broadcast(variant.constraint_scale(q), n)) \
                if variant.constraint_scale is not None else residual
            applicable &= residual <= rounding_tolerance(m, constraint_scale)
        rel = np.where(scale > 0, slack / np.where(scale > 0, scale, 1), 0.0)
    verdicts = relation.classify(slack, tolerance)
    verdicts[~applicable] = Verdict.NOT_APPLICABLE
    return VariantResult(statement.id, variant.name, relation, applicable,
                         lhs_v, rhs_v, slack, rel, tolerance, verdicts)


def evaluate_all(q, statements=STATEMENTS) -> list:
    """Every variant of every statement on q; those whose quantities are absent are n/a."""
    return [evaluate_variant(s, v, q) for s in statements for v in s.variants]
