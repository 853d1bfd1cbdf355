"""Minimised, certified counterexamples: smallest batch size, shortest rationals.

For a variant that the sweep finds violated, candidates are drawn at m = 2, 3, ... from the
quadratic-loss families (any pair g, H is the gradient and Hessian of a quadratic loss at z, so
a counterexample is stated by its inputs y, gamma, beta, eps, g, H, lambda alone), the most
violated ones are rounded to k = 1, 2, 3, ... significant decimal digits, and the first that
exact re-evaluation (numeric.certify) calls violated is kept; then gamma, beta and lambda are
tried at 1, 0 and 1.  Where the variant has an equation as extra hypothesis (a ``constraint``),
H is rebuilt after rounding, exactly over the rationals, so that the hypothesis holds exactly,
and instances where the BatchNorm gradient v vanishes (m = 2 with eps = 0) are skipped: the
hypothesis "H preserves the relative norms of g and v" is vacuous there.

Every counterexample is a plain dict (JSON) with every input by name as exact decimal or p/q
strings, the certified lhs, rhs and slack, and the method.
"""
from __future__ import annotations

import dataclasses
import time
from decimal import Decimal
from fractions import Fraction

import numpy as np
import sympy as sp

from numeric import certify, families
from theory.evaluate import evaluate_variant
from theory.ops import SympyOps

QUADRATIC_HEADS = ("quadratic-psd", "quadratic-indefinite", "quadratic-lowrank", "squared-error")
MAX_M = 8
CANDIDATES_PER_M = 96      # instances drawn per head and batch size
TRIED_PER_M = 3            # most violated candidates rounded and certified per batch size
DIGITS = (1, 2, 3, 4, 6, 17)
ROBUST_REL_SLACK = -1e-2
PLAIN_BATCHES = ("gaussian", "uniform", "integer")
PLAIN_GRADIENTS = ("generic", "one-hot", "head")


def short(x, digits: int) -> Fraction:
    """x rounded to `digits` significant decimal digits, as an exact Fraction (17 keeps a float exact
    enough that certification sees the float instance itself)."""
    if x == 0:
        return Fraction(0)
    return Fraction(Decimal(f"{float(x):.{digits - 1}e}"))


def _text(x) -> str:
    if isinstance(x, sp.Basic):
        x = Fraction(int(x.p), int(x.q)) if x.is_Rational else x
    if isinstance(x, Fraction):
        if x.denominator == 1:
            return str(x.numerator)
        d = Decimal(x.numerator) / Decimal(x.denominator)
        return str(d.normalize()) if Fraction(d) == x else f"{x.numerator}/{x.denominator}"
    return str(x)


# Theorem C.1 holds "under the same conditions as the previous theorem" (the registry lists it
# among the statement's hypotheses): its counterexamples get an H that preserves the relative
# norms of g and v exactly, like the variants whose constraint says so.
SAME_CONDITIONS = "conditions of Theorem 4.2"


def needs_relative_norm_H(statement, variant) -> bool:
    return variant.constraint is not None or (variant.epsilon == "zero" and SAME_CONDITIONS in statement.hypotheses)


def _groups(statement, variant):
    if variant.epsilon == "positive":
        return ("free-eps",)
    if needs_relative_norm_H(statement, variant):
        return ("relative-norm-eps0",)
    return ("free-eps0",)


def _rounded(inputs: dict, digits: int, constrained: bool):
    """Exact inputs with every number rounded; H rebuilt exactly when the variant is constrained."""
    ex = {"m": int(inputs["m"])}
    for name in ("gamma", "beta", "lam"):
        ex[name] = short(inputs[name], digits)
    ex["eps"] = certify.exact(inputs["eps"])   # eps is the variant's scope (0 or torch's 1e-5), kept as is
    if ex["eps"] > 0:
        ex["eps"] = Fraction(1, 100000)
    ex["y"] = [short(v, digits) for v in inputs["y"]]
    ex["g"] = [short(v, digits) for v in inputs["g"]]
    H = np.asarray(inputs["H"])
    sym = 0.5 * (H + H.T)
    ex["H"] = [[short(sym[i, j], digits) for j in range(len(H))] for i in range(len(H))]
    for i in range(len(H)):
        for j in range(i):
            ex["H"][i][j] = ex["H"][j][i]
    if constrained:
        ex = _preserve_relative_norms_exactly(ex)
    return ex


def _preserve_relative_norms_exactly(ex):
    """H + t v v^T with t from families.relative_norm_shift, over the rationals (None if degenerate)."""
    if ex is None:
        return None
    ops = SympyOps()
    try:
        q = certify.bn_quantities(ex, ops)
    except Exception:
        return None
    v, g = q.grad_y_bn, q.g
    vv, gg, gv = ops.dot(v, v), ops.dot(g, g), ops.dot(g, v)
    if vv == 0 or sp.simplify(vv * gg - gv**2) == 0:
        return None
    t = families.relative_norm_shift(ops, q.H_gg, q.H_vv, g, v)
    H = q.H + (v * v.T) * t
    entries = [[sp.radsimp(sp.expand(H[i, j])) for j in range(H.cols)] for i in range(H.rows)]
    if not all(e.is_Rational for row in entries for e in row):
        return None
    out = dict(ex)
    out["H"] = [[Fraction(int(e.p), int(e.q)) for e in row] for row in entries]
    return out


def _candidates(statement, variant, m, seed):
    """Float instances at batch size m, most violated first (registry verdict 'violated')."""
    v = variant
    found = []
    for group in _groups(statement, variant):
        if group == "relative-norm-eps0" and m < 3:
            continue
        chunks = [families.sample_chunk(seed + 1000, group, head, m, CANDIDATES_PER_M) for head in QUADRATIC_HEADS]
        chunk = families.merge_chunks(chunks)
        if isinstance(chunk.H, families.DiagLowRank):
            chunk = dataclasses.replace(chunk, H=chunk.H.dense())
        r = evaluate_variant(statement, v, chunk.quantities())
        idx = np.flatnonzero(r.verdicts == "violated")
        found += [(float(r.rel_slack[i]), chunk.instance(int(i))) for i in idx]
    # robust violations of plain-looking instances first (they survive rounding to few digits),
    # then by relative slack
    found.sort(key=lambda c: (c[0] > ROBUST_REL_SLACK, c[1]["y_kind"] not in PLAIN_BATCHES,
                              c[1]["g_mode"] not in PLAIN_GRADIENTS, c[0]))
    return [inst for _, inst in found]


def _certified(statement, variant, ex):
    if ex is None:
        return None
    try:
        cert = certify.certify_bn(statement, variant, ex)
    except Exception:
        return None
    return cert if cert.verdict == "violated" else None


def _nondegenerate(statement, variant, ex) -> bool:
    """Under the relative-norm hypothesis, v = grad_y_bn must not vanish (else it is vacuous)."""
    if not needs_relative_norm_H(statement, variant):
        return True
    q = certify.bn_quantities(ex, SympyOps())
    return q.ops.dot(q.grad_y_bn, q.grad_y_bn) != 0


def _simplify(statement, variant, ex, cert):
    """Try gamma = 1 (or -1), beta = 0, lambda = 1, one at a time, keeping what stays violated."""
    for name, values in (("beta", (Fraction(0),)), ("gamma", (Fraction(1), Fraction(-1))), ("lam", (Fraction(1),))):
        for value in values:
            if ex.get(name) == value:
                break
            trial = dict(ex, **{name: value})
            if needs_relative_norm_H(statement, variant):
                trial = _preserve_relative_norms_exactly(trial)
            c = _certified(statement, variant, trial)
            if c is not None and _nondegenerate(statement, variant, trial):
                ex, cert = trial, c
                break
    return ex, cert


# Quantities computed from H (resp. lambda): a variant that needs none of them does not show H
# (resp. lambda) in its counterexample.
USES_H = {"H", "H_frob", "H_gg", "H_vv", "hess_bn_vv", "hess_bn", "betaW_max", "betaW_hat_max"}
USES_LAMBDA = {"lam", "gW_max", "gW_hat_max", "betaW_max", "betaW_hat_max"}


def counterexample_dict(statement, variant, ex, cert, origin) -> dict:
    mu = sum(ex["y"]) / ex["m"]
    var = sum((y - mu) ** 2 for y in ex["y"]) / ex["m"]
    inputs = {"y": [_text(v) for v in ex["y"]], "gamma": _text(ex["gamma"]), "beta": _text(ex["beta"]),
              "eps": _text(ex["eps"]), "g": [_text(v) for v in ex["g"]]}
    if USES_H & set(variant.requires):
        inputs["H"] = [[_text(v) for v in row] for row in ex["H"]]
    if USES_LAMBDA & set(variant.requires):
        inputs["lambda"] = _text(ex["lam"])
    return {
        "id": statement.id, "variant": variant.name, "setting": "bn-channel", "m": ex["m"],
        "inputs": inputs,
        "derived": {"mu": _text(mu), "sigma_squared": _text(var + ex["eps"]),
                    "note": "sigma = sqrt(sigma_squared); y_hat = (y - mu)/sigma; g, H: gradient and Hessian "
                            "of the loss at z = gamma y_hat + beta (a quadratic loss has any such pair)"},
        "lhs": cert.lhs, "rhs": cert.rhs,
        "slack": cert.slack_upper if cert.slack_lower == cert.slack_upper else f"[{cert.slack_lower}, {cert.slack_upper}]",
        "certified": cert.method, "exact": exact_sides(variant, ex), "origin": origin,
    }


def exact_sides(variant, ex) -> dict:
    """LHS, RHS and slack in closed form (SymPy, sigma an exact square root), where the variant's
    quantities have one (not the maxima of Theorem C.1); {} otherwise."""
    if {"betaW_max", "betaW_hat_max"} & set(variant.requires):
        return {}
    q = certify.bn_quantities(ex, SympyOps(), variant.requires)
    lhs, rhs = variant.lhs(q), variant.rhs(q)
    if hasattr(lhs, "rows"):
        diff = (lhs - rhs).applyfunc(lambda e: sp.radsimp(sp.expand(e)))
        return {"lhs_minus_rhs": [str(e) for e in diff]}
    return {"lhs": str(sp.radsimp(sp.expand(lhs))), "rhs": str(sp.radsimp(sp.expand(rhs))),
            "slack": str(sp.radsimp(sp.expand(rhs - lhs)))}


def minimal_counterexample(statement, variant, seed: int = 0, max_m: int = MAX_M, deadline: float = None):
    """The certified counterexample of smallest m and shortest rationals, as a dict; None if none
    was found up to max_m (or before the monotonic-clock `deadline`)."""
    from theory.statements import setting_of
    if setting_of(statement, variant) == "toy-regression":
        return toy_counterexample(statement, variant)
    if statement.setting not in ("bn-channel", "weight-space") or variant.relation == "definition":
        return None
    constrained = needs_relative_norm_H(statement, variant)
    for m in range(2, max_m + 1):
        if constrained and m < 3:
            continue
        for inst in _candidates(statement, variant, m, seed)[:TRIED_PER_M]:
            for digits in DIGITS:
                if deadline is not None and time.monotonic() > deadline:
                    return None
                ex = _rounded(inst, digits, constrained)
                cert = _certified(statement, variant, ex)
                if cert is None or not _nondegenerate(statement, variant, ex):
                    continue
                ex, cert = _simplify(statement, variant, ex, cert)
                origin = (f"seed {seed}: group {inst['group']}, head {inst['head']}, batch kind {inst['y_kind']}, "
                          f"g mode {inst['g_mode']}; rounded to {digits} significant digit(s)")
                return counterexample_dict(statement, variant, ex, cert, origin)
    return None


def toy_counterexample(statement, variant):
    """Lemma 4.5: theory.lemma45's exhaustive search over 0/1 data (smallest integers), certified."""
    try:
        from theory import lemma45
    except ImportError:
        return None
    ce = lemma45.minimal_counterexample(variant)
    if ce is None:
        return None
    cert = certify.certify_toy(statement, variant, {"X": np.array(ce.X.tolist(), dtype=object),
                                                    "t": np.array(list(ce.t), dtype=object),
                                                    "W0": np.array(list(ce.W0), dtype=object)})
    if cert.verdict != "violated":
        return None
    return {"id": statement.id, "variant": variant.name, "setting": "toy-regression", "m": ce.X.shape[0],
            "inputs": {"X": [[str(v) for v in row] for row in ce.X.tolist()], "t": [str(v) for v in ce.t],
                       "W0": [str(v) for v in ce.W0]},
            "derived": {"W_star": [str(v) for v in ce.W_star],
                        "bn_optimum_direction": [str(v) for v in ce.bn_direction]},
            "lhs": cert.lhs, "rhs": cert.rhs, "slack": cert.slack_upper, "certified": cert.method,
            "origin": "theory.lemma45.minimal_counterexample (0/1 data, W0 = W*)"}
