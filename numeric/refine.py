"""Adversarial refinement: scipy.optimize from the worst sampled instances.

Starting from an instance the sweep kept (smallest relative slack), the continuous inputs of a
BatchNorm-channel instance -- y, g, the upper triangle of H, log|gamma| (the sign is kept),
beta, log lambda; eps is the variant's scope and stays -- are moved by L-BFGS-B to minimise the
registry's relative slack, slack/(|LHS| + |RHS|) in [-1, 1].  The objective is evaluated by
theory.evaluate.evaluate_variant on a batch of 2p + 1 instances at once (the point and its
central finite differences), so one gradient is one vectorised call.  Where the variant has a
constraint, H is rebuilt at every point to satisfy it (families.preserve_relative_norms); points
where the variant does not apply score INAPPLICABLE.

Identities ('==') are not refined: their slack is rounding, and the exact decision is the
symbolic layer's.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize

from numeric import families
from numeric.quantities import bn_channel_quantities
from theory.evaluate import evaluate_variant
from theory.vocab import Relation, Setting

# Score of a point where the variant does not apply (relative slack lies in [-1, 1]).
INAPPLICABLE = 2.0
MAX_ITERATIONS = 25
# Central-difference step relative to the size of each coordinate: ~u^(1/3) balances the
# truncation error h^2 against the rounding error u/h of a difference quotient.
STEP = 6e-6
REFINE_MAX_M = 16


@dataclass(frozen=True)
class Refinement:
    start_rel_slack: float
    min_rel_slack: float
    evaluations: int
    inputs: dict


def _encode(inst):
    m = len(inst["y"])
    iu = np.triu_indices(m)
    H = np.asarray(inst["H"])
    theta = np.concatenate([inst["y"], inst["g"], H[iu],
                            [np.log(abs(inst["gamma"])), inst["beta"], np.log(inst["lam"])]])
    return theta, iu


def _decode(theta, inst, iu):
    """(N, p) parameters -> batched inputs (y, g, gamma, beta, eps, H, lam)."""
    m = len(inst["y"])
    n = theta.shape[0]
    y, g = theta[:, :m], theta[:, m:2 * m]
    k = len(iu[0])
    H = np.zeros((n, m, m))
    H[:, iu[0], iu[1]] = theta[:, 2 * m:2 * m + k]
    H = H + np.triu(H, 1).swapaxes(1, 2)
    sign = np.sign(inst["gamma"])
    gamma = sign * np.exp(theta[:, 2 * m + k])
    beta = theta[:, 2 * m + k + 1]
    lam = np.exp(theta[:, 2 * m + k + 2])
    return y, g, gamma, beta, np.full(n, inst["eps"]), H, lam


def _scores(statement, variant, inst, iu, theta):
    y, g, gamma, beta, eps, H, lam = _decode(theta, inst, iu)
    score = np.full(theta.shape[0], INAPPLICABLE)
    ok = (np.ptp(y, axis=1) > 0) | (eps > 0)
    ok &= np.isfinite(theta).all(axis=1)
    if not ok.any():
        return score
    idx = np.flatnonzero(ok)
    y, g, gamma, beta, eps, H, lam = (a[idx] for a in (y, g, gamma, beta, eps, H, lam))
    needs_maxima = "betaW_max" in variant.requires
    if variant.constraint is not None:
        q0 = bn_channel_quantities(y, g, gamma, beta, eps)
        H, _ = families.preserve_relative_norms(H, g, q0.grad_y_bn)
    q = bn_channel_quantities(y, g, gamma, beta, eps, H=H, lam=lam, full_matrices="hess_bn" in variant.requires
                              or "jac_z_y" in variant.requires, weight_space_maxima=needs_maxima)
    r = evaluate_variant(statement, variant, q)
    rel = np.where(r.applicable & np.isfinite(r.rel_slack), r.rel_slack, INAPPLICABLE)
    score[idx] = rel
    return score


def refine(statement, variant, inst: dict, max_iterations: int = MAX_ITERATIONS) -> Refinement:
    """Minimise the relative slack from one kept instance (a dict from numeric.sweep)."""
    theta0, iu = _encode(inst)
    p = len(theta0)
    count = [0]

    def fun(theta):
        h = STEP * (1 + np.abs(theta))
        batch = np.concatenate([theta[None], theta + np.diag(h), theta - np.diag(h)])
        s = _scores(statement, variant, inst, iu, batch)
        count[0] += len(batch)
        grad = (s[1:p + 1] - s[p + 1:]) / (2 * h)
        grad = np.where(np.isfinite(grad) & (np.abs(s[1:p + 1]) < INAPPLICABLE) & (np.abs(s[p + 1:]) < INAPPLICABLE),
                        grad, 0.0)
        return float(s[0]), grad

    start = float(_scores(statement, variant, inst, iu, theta0[None])[0])
    result = minimize(fun, theta0, jac=True, method="L-BFGS-B", options={"maxiter": max_iterations})
    best_theta = result.x if result.fun <= start else theta0
    best = min(float(result.fun), start)
    y, g, gamma, beta, eps, H, lam = (a[0] for a in _decode(best_theta[None], inst, iu))
    return Refinement(start, best, count[0], dict(inst, y=y, g=g, gamma=float(gamma), beta=float(beta), H=H,
                                                  lam=float(lam)))


def refine_variant(statement, variant, kept, starts: int = 2, max_iterations: int = MAX_ITERATIONS):
    """Smallest relative slack reached from the `starts` worst kept instances (m <= REFINE_MAX_M),
    or None for identities, definitions and settings other than the BatchNorm channel."""
    if not Relation(variant.relation).is_inequality:
        return None
    pool = [k for k in kept if k.setting == Setting.BN_CHANNEL and k.inputs["m"] <= REFINE_MAX_M][:starts]
    if not pool:
        return None
    results = [refine(statement, variant, k.inputs, max_iterations) for k in pool]
    return min(results, key=lambda r: r.min_rel_slack)
