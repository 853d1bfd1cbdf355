"""The counterexample search: one search and one degeneracy policy for the docs, the errata and
the report, so that a variant shows the same counterexample wherever one is shown.

A counterexample of a statement variant is the smallest non-degenerate certified instance:

* certified: exact re-evaluation (numeric.certify) says VIOLATED;
* non-degenerate: m >= MIN_M = 3, the BatchNorm gradient v = grad_y_bn is not exactly 0 and the
  left side is not exactly 0.  (At m = 2 with eps = 0 the BN output is the constant +-gamma + beta,
  so v = 0 and every left side built from v is 0: such an instance says nothing about the claim.)
  For the Lemma 4.5 toy model, m is the number of data points and the closest BN optimum must be
  attained (<W0, d> > 0), so LHS is a distance to a point of the optimum set, not an infimum;
* smallest: smallest m, then fewest total digits of the inputs it shows, then the smallest
  integers (sum of |numerator| + denominator), then the order of the grid.

The search is deterministic (no seed, no clock), so the docs are stable:

1. a grid of small exact inputs at m = 3 (GRID_*): every combination, screened in float64 by the
   registry (theory.evaluate, one vectorised call), the float violations sorted as above and
   certified in that order until one certifies and is non-degenerate;
2. where the grid has none: the sampled families (numeric.families, seed FAMILY_SEED) at
   m = 3..MAX_M, most robustly violated first, rounded to 1, 2, 3, ... significant digits (H rebuilt
   exactly over the rationals where the variant assumes that H preserves the relative norms of g
   and v).

Every label is checked on the exact instance: the class of H (positive definite, indefinite, ...)
is its exact inertia (numeric.certify.hessian_inertia), never the name of the family it was drawn
from.  A failure of the search (exact re-evaluation raising on an instance the search built) is
returned as a ``SearchFailure`` with its message, never as "no counterexample".

    smallest_counterexample(statement, variant) -> Counterexample | SearchFailure | None
"""
from __future__ import annotations

import dataclasses
import itertools
from decimal import Decimal
from fractions import Fraction
from functools import lru_cache

import numpy as np
import sympy as sp

from numeric import certify, families
from numeric.maxima import max_weight_space_smoothness
from numeric.quantities import bn_channel_quantities
from theory import bn, lemma45
from theory.evaluate import evaluate_variant
from theory.ops import IntervalOps, SympyOps
from theory.vocab import EpsilonScope, Relation, Setting, Verdict

MIN_M = 3
# The grid at m = 3 (the values a reader checks by hand).
GRID_Y = ((0, 0, 1), (0, 1, 1), (0, 1, 2), (0, 0, 2), (0, 2, 2), (1, 1, 2), (1, 2, 2))
GRID_G = tuple(g for g in itertools.product((-2, -1, 0, 1, 2), repeat=3) if any(g))
GRID_GAMMA = (Fraction(1), Fraction(-1), Fraction(2), Fraction(-2), Fraction(1, 2), Fraction(3))
GRID_EPS_POSITIVE = (Fraction(1), Fraction(2), Fraction(1, 10))
GRID_LAMBDA = (Fraction(1), Fraction(2), Fraction(1, 2))
GRID_H = (
    ("H = 0", ((0, 0, 0), (0, 0, 0), (0, 0, 0))),
    ("H = I", ((1, 0, 0), (0, 1, 0), (0, 0, 1))),
    ("H = -I", ((-1, 0, 0), (0, -1, 0), (0, 0, -1))),
    ("H = e1 e1^T", ((1, 0, 0), (0, 0, 0), (0, 0, 0))),
    ("H = e3 e3^T", ((0, 0, 0), (0, 0, 0), (0, 0, 1))),
    ("H = 1 1^T", ((1, 1, 1), (1, 1, 1), (1, 1, 1))),
    ("H = diag(1, -1, 0)", ((1, 0, 0), (0, -1, 0), (0, 0, 0))),
)
# Float violations of the grid certified per variant before the families are tried: each costs an
# exact (SymPy) or interval re-evaluation; the first robust violation almost always certifies.
MAX_CERTIFIED = 48
# A float v below this fraction of (|gamma|/sigma)||g|| is taken for an exact 0 in the screen
# (the float v of an exact 0 is a few m u (|gamma|/sigma)||g||, u = 1.1e-16); the exact check decides.
VANISHING_GRADIENT = 1e-9

# The sampled families (step 2).
FAMILY_SEED = 0
MAX_M = 8
QUADRATIC_HEADS = ("quadratic-psd", "quadratic-indefinite", "quadratic-lowrank", "squared-error")
CANDIDATES_PER_M = 96      # instances drawn per head and batch size
TRIED_PER_M = 3            # most violated candidates rounded and certified per batch size
DIGITS = (1, 2, 3, 4, 6, 17)
# A float violation this large relative to |LHS| + |RHS| survives rounding to one digit more often.
ROBUST_REL_SLACK = -1e-2
PLAIN_BATCHES = ("gaussian", "uniform", "integer")
PLAIN_GRADIENTS = ("generic", "one-hot", "head")
# The epsilon of an eps > 0 instance rounded from the families (torch's default, 1e-5).
FAMILY_EPS = Fraction(1, 100000)

# The Lemma 4.5 toy model: X (3 x 2) and t with 0/1 entries, W0 with small integer entries.
TOY_W0 = tuple(w for w in itertools.product((-2, -1, 0, 1, 2), repeat=2) if any(w))

# Theorem C.1 holds "under the same conditions as the previous theorem" (the registry lists it
# among the statement's hypotheses): its counterexamples must meet the hypothesis that H preserves
# the relative norms of g and v, stated by the statement's own constrained variant.
SAME_CONDITIONS = "conditions of Theorem 4.2"
MAXIMA = {"betaW_max", "betaW_hat_max"}
# Quantities computed from H (resp. lambda): a variant that needs none of them does not show H
# (resp. lambda) in its counterexample.
USES_H = {"H", "H_frob", "H_gg", "H_vv", "hess_bn_vv", "hess_bn", "betaW_max", "betaW_hat_max"}
USES_LAMBDA = {"lam", "gW_max", "gW_hat_max", "betaW_max", "betaW_hat_max"}


# ---------------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Counterexample:
    """A certified, non-degenerate counterexample; every number an exact decimal or p/q string."""
    statement_id: str
    variant: str
    setting: str
    m: int
    inputs: dict        # name -> exact text (vectors as lists, H as rows)
    derived: dict       # what follows from the inputs (mu, sigma^2; W*, the BN optimum direction)
    lhs: str
    rhs: str
    slack: str          # the certified slack (an enclosure [lo, hi] where only intervals decide)
    certified: str      # numeric.certify method: exact | interval-60
    exact: dict         # closed forms of LHS, RHS, slack where the quantities have one
    origin: str         # how the instance was found, with labels checked on the exact instance

    def to_dict(self) -> dict:
        return {"id": self.statement_id, "variant": self.variant, "setting": self.setting, "m": self.m,
                "inputs": self.inputs, "derived": self.derived, "lhs": self.lhs, "rhs": self.rhs,
                "slack": self.slack, "certified": self.certified, "exact": self.exact, "origin": self.origin}


@dataclasses.dataclass(frozen=True)
class SearchFailure:
    """The search could not run to its end: exact re-evaluation raised on an instance it built."""
    statement_id: str
    variant: str
    message: str

    def __str__(self) -> str:
        return f"counterexample search for {self.statement_id}/{self.variant} failed: {self.message}"


# ---------------------------------------------------------------------------------------------
# Numbers as text, and their size
# ---------------------------------------------------------------------------------------------

def short(x, digits: int) -> Fraction:
    """x rounded to `digits` significant decimal digits, as an exact Fraction (17 keeps a float
    exact enough that certification sees the float instance itself)."""
    if x == 0:
        return Fraction(0)
    return Fraction(Decimal(f"{float(x):.{digits - 1}e}"))


def text(x) -> str:
    """An exact number as a reader writes it: an integer, a terminating decimal, or p/q."""
    if isinstance(x, sp.Basic):
        if not x.is_Rational:
            return str(x)
        x = Fraction(int(x.p), int(x.q))
    x = Fraction(x)
    if x.denominator == 1:
        return str(x.numerator)
    d = Decimal(x.numerator) / Decimal(x.denominator)
    return str(d.normalize()) if Fraction(d) == x else f"{x.numerator}/{x.denominator}"


def _flat(values):
    for v in values:
        if isinstance(v, (list, tuple)):
            yield from _flat(v)
        else:
            yield v


def digits(values) -> int:
    """Total number of decimal digits of the exact numbers as `text` writes them."""
    return sum(sum(ch.isdigit() for ch in text(v)) for v in _flat(values))


def magnitude(values) -> int:
    """Sum of |numerator| + denominator: among inputs with as many digits, the smaller integers."""
    return sum(abs(Fraction(v).numerator) + Fraction(v).denominator for v in _flat(values))


# ---------------------------------------------------------------------------------------------
# What a variant's counterexample must satisfy
# ---------------------------------------------------------------------------------------------

def hypothesis_variant(statement, variant):
    """The variant whose ``constraint`` states the extra equation the counterexample must meet
    exactly: the variant itself, or, for a statement that holds 'under the same conditions' as
    Theorem 4.2, the statement's own constrained variant; None if there is no such equation."""
    if variant.constraint is not None:
        return variant
    if EpsilonScope(variant.epsilon) is EpsilonScope.ZERO and SAME_CONDITIONS in statement.hypotheses:
        for other in statement.variants:
            if other.constraint is not None:
                return other
        raise ValueError(f"{statement.id} assumes the {SAME_CONDITIONS} but none of its variants states them "
                         "as a constraint")
    return None


def degeneracy(statement, variant, ex) -> str:
    """Why an exact BatchNorm-channel instance is degenerate under the policy ('' if it is not)."""
    if ex["m"] < MIN_M:
        return f"m = {ex['m']} < {MIN_M}"
    exact_needs = tuple(r for r in variant.requires if r not in MAXIMA)
    qe = certify.bn_quantities(ex, SympyOps(), exact_needs)
    if not certify.certainly_nonzero(qe.grad_y_bn):
        return "the BatchNorm gradient v is exactly 0"
    if MAXIMA & set(variant.requires):
        lhs = variant.lhs(certify.bn_quantities(ex, IntervalOps(), variant.requires))
    else:
        lhs = variant.lhs(qe)
    if not certify.certainly_nonzero(lhs):
        return "the left side is exactly 0 (or not certainly non-zero)"
    hyp = hypothesis_variant(statement, variant)
    if hyp is not None and sp.simplify(hyp.constraint(qe)) != 0:
        return f"the hypothesis '{hyp.extra_hypotheses[0] if hyp.extra_hypotheses else 'constraint'}' fails"
    return ""


def exact_sides(variant, ex) -> dict:
    """LHS, RHS and slack in closed form (SymPy, sigma an exact square root), where the variant's
    quantities have one (not the maxima of Theorem C.1); {} otherwise."""
    if MAXIMA & set(variant.requires):
        return {}
    q = certify.bn_quantities(ex, SympyOps(), variant.requires)
    lhs, rhs = variant.lhs(q), variant.rhs(q)
    relation = Relation(variant.relation)
    if hasattr(lhs, "rows"):
        diff = Relation.EQ.slack(lhs, rhs).applyfunc(lambda e: sp.radsimp(sp.expand(e)))   # the residual
        return {"lhs_minus_rhs": [str(e) for e in diff]}
    return {"lhs": str(sp.radsimp(sp.expand(lhs))), "rhs": str(sp.radsimp(sp.expand(rhs))),
            "slack": str(sp.radsimp(sp.expand(relation.slack(lhs, rhs))))}


def _bn_counterexample(statement, variant, ex, cert, origin) -> Counterexample:
    m = ex["m"]
    mu = sum(ex["y"]) / m
    var = sum((y - mu) ** 2 for y in ex["y"]) / m
    requires = set(variant.requires)
    inputs = {"y": [text(v) for v in ex["y"]], "gamma": text(ex["gamma"]), "beta": text(ex["beta"]),
              "eps": text(ex["eps"]), "g": [text(v) for v in ex["g"]]}
    derived = {"mu": text(mu), "sigma_squared": text(var + ex["eps"])}
    if USES_H & requires:
        inputs["H"] = [[text(v) for v in row] for row in ex["H"]]
        derived["H"] = str(certify.hessian_inertia(ex["H"]))
    if USES_LAMBDA & requires:
        inputs["lambda"] = text(ex["lam"])
    derived["note"] = ("sigma = sqrt(sigma_squared); y_hat = (y - mu)/sigma; g, H: gradient and Hessian of the loss "
                       "at z = gamma y_hat + beta (a quadratic loss has any such pair)")
    slack = cert.slack_upper if cert.slack_lower == cert.slack_upper else f"[{cert.slack_lower}, {cert.slack_upper}]"
    return Counterexample(statement.id, variant.name, str(Setting(statement.setting)), m, inputs, derived,
                          cert.lhs, cert.rhs, slack, cert.method, exact_sides(variant, ex), origin)


# ---------------------------------------------------------------------------------------------
# Step 1: the grid at m = 3
# ---------------------------------------------------------------------------------------------

def _grid_axes(variant):
    requires = set(variant.requires)
    scope = EpsilonScope(variant.epsilon)
    eps = (Fraction(0),) if scope is EpsilonScope.ZERO else GRID_EPS_POSITIVE if scope is EpsilonScope.POSITIVE \
        else (Fraction(0),) + GRID_EPS_POSITIVE
    hs = GRID_H if USES_H & requires else GRID_H[:1]
    lams = GRID_LAMBDA if USES_LAMBDA & requires else GRID_LAMBDA[:1]
    return GRID_Y, GRID_G, GRID_GAMMA, eps, hs, lams


def _grid_instance(axes, index) -> dict:
    ys, gs, gammas, epss, hs, lams = axes
    iy, ig, igam, ieps, ih, ilam = (int(i) for i in index)
    return {"m": len(ys[iy]), "y": [Fraction(v) for v in ys[iy]], "g": [Fraction(v) for v in gs[ig]],
            "gamma": gammas[igam], "beta": Fraction(0), "eps": epss[ieps],
            "H": [[Fraction(v) for v in row] for row in hs[ih][1]], "lam": lams[ilam]}


def _grid_screen(statement, variant):
    """(axes, indices of the float violations in search order)."""
    axes = _grid_axes(variant)
    shape = tuple(len(a) for a in axes)
    index = np.indices(shape).reshape(len(shape), -1).T                    # (N, 6)
    ys, gs, gammas, epss, hs, lams = axes
    y = np.array(ys, float)[index[:, 0]]                                    # (N, m)
    g = np.array(gs, float)[index[:, 1]]                                    # (N, m)
    gamma = np.array([float(x) for x in gammas])[index[:, 2]]
    eps = np.array([float(x) for x in epss])[index[:, 3]]
    H = np.array([h for _, h in hs], float)[index[:, 4]]                    # (N, m, m)
    lam = np.array([float(x) for x in lams])[index[:, 5]]
    requires = set(variant.requires)
    q = bn_channel_quantities(y, g, gamma, 0.0, eps, H=H, lam=lam,
                              full_matrices=bool({"hess_bn", "jac_z_y"} & requires or MAXIMA & requires))
    if MAXIMA & requires:
        # The grid has instances whose exact d^2 L_hat/dy^2 is 0, where the float one is rounding
        # noise that numeric.maxima's symmetry check (relative to |A| itself) rejects; a Hessian
        # is symmetric, so the screen passes its symmetric part (certification is exact anyway).
        hess_bn = 0.5 * (q.hess_bn + np.swapaxes(q.hess_bn, 1, 2))
        q = q.with_values(betaW_max=max_weight_space_smoothness(g, H, lam),
                          betaW_hat_max=max_weight_space_smoothness(q.grad_y_bn, hess_bn, lam))
    r = evaluate_variant(statement, variant, q)
    keep = np.asarray(r.verdicts == Verdict.VIOLATED, bool)
    v_norm = np.sqrt(q.ops.vec_sq(q.grad_y_bn))
    keep &= v_norm > VANISHING_GRADIENT * np.abs(gamma) / q.sigma * np.sqrt(q.ops.vec_sq(g))
    hyp = hypothesis_variant(statement, variant)
    if hyp is not None and hyp is not variant:
        keep &= np.asarray(evaluate_variant(statement, hyp, q).applicable, bool)
    # digits and magnitude of each candidate: sums over its axes of each axis value's own
    shown = [True, True, True, True, bool(USES_H & requires), bool(USES_LAMBDA & requires)]
    values = [ys, gs, gammas, epss, [h for _, h in hs], lams]
    total_digits = sum(np.array([digits([x]) for x in axis])[index[:, k]]
                       for k, axis in enumerate(values) if shown[k])
    total_size = sum(np.array([magnitude([x]) for x in axis])[index[:, k]]
                     for k, axis in enumerate(values) if shown[k])
    found = np.flatnonzero(keep)
    order = found[np.lexsort((found, total_size[found], total_digits[found]))]
    return axes, [index[i] for i in order]


def _from_grid(statement, variant):
    axes, order = _grid_screen(statement, variant)
    for idx in order[:MAX_CERTIFIED]:
        ex = _grid_instance(axes, idx)
        cert = certify.certify_bn(statement, variant, ex, exact_first=True)
        if cert.verdict is not Verdict.VIOLATED or degeneracy(statement, variant, ex):
            continue
        h = f", {axes[4][int(idx[4])][0]}" if USES_H & set(variant.requires) else ""
        return _bn_counterexample(statement, variant, ex, cert,
                                  f"grid of small exact inputs at m = {ex['m']}{h}; the first (fewest digits) "
                                  "that certifies")
    return None


# ---------------------------------------------------------------------------------------------
# Step 2: the sampled families, rounded
# ---------------------------------------------------------------------------------------------

def _family_groups(statement, variant):
    if EpsilonScope(variant.epsilon) is EpsilonScope.POSITIVE:
        return ("free-eps",)
    if hypothesis_variant(statement, variant) is not None:
        return ("relative-norm-eps0",)
    return ("free-eps0",)


def rounded_instance(inputs: dict, digits_: int) -> dict:
    """Exact inputs with every number of a float instance rounded to `digits_` significant digits
    (eps > 0 becomes FAMILY_EPS exactly; H is symmetrised before rounding)."""
    ex = {"m": int(inputs["m"])}
    for name in ("gamma", "beta", "lam"):
        ex[name] = short(inputs[name], digits_)
    ex["eps"] = FAMILY_EPS if certify.exact(inputs["eps"]) > 0 else Fraction(0)
    ex["y"] = [short(v, digits_) for v in inputs["y"]]
    ex["g"] = [short(v, digits_) for v in inputs["g"]]
    H = np.asarray(inputs["H"], dtype=np.float64)
    sym = 0.5 * (H + H.T)
    ex["H"] = [[short(sym[min(i, j), max(i, j)], digits_) for j in range(len(H))] for i in range(len(H))]
    return ex


def onto_relative_norm_hypothesis(ex: dict):
    """H + t v v^T with t from families.relative_norm_shift, exactly over the rationals, so that H
    preserves the relative norms of g and v; None where that is impossible (v = 0, v parallel to
    g) or t is irrational.  A rounded instance outside BatchNorm's domain raises
    BatchNormInputError."""
    ops = SympyOps()
    q = certify.bn_quantities(ex, ops)
    v, g = q.grad_y_bn, q.g
    vv, gg, gv = ops.dot(v, v), ops.dot(g, g), ops.dot(g, v)
    if sp.simplify(vv) == 0 or sp.simplify(vv * gg - gv**2) == 0:
        return None
    t = families.relative_norm_shift(ops, q.H_gg, q.H_vv, g, v)
    H = q.H + (v * v.T) * t
    entries = [[sp.radsimp(sp.expand(H[i, j])) for j in range(H.cols)] for i in range(H.rows)]
    if not all(e.is_Rational for row in entries for e in row):
        return None
    return dict(ex, H=[[Fraction(int(e.p), int(e.q)) for e in row] for row in entries])


def _family_candidates(statement, variant, m):
    """Float instances at batch size m whose registry verdict is violated, most robust first."""
    found = []
    for group in _family_groups(statement, variant):
        chunks = [families.sample_chunk(FAMILY_SEED + 1000, group, head, m, CANDIDATES_PER_M)
                  for head in QUADRATIC_HEADS]
        chunk = families.merge_chunks(chunks)
        if isinstance(chunk.H, families.DiagLowRank):
            chunk = dataclasses.replace(chunk, H=chunk.H.dense())
        r = evaluate_variant(statement, variant, chunk.quantities())
        idx = np.flatnonzero(np.asarray(r.verdicts == Verdict.VIOLATED, bool))
        found += [(float(r.rel_slack[i]), chunk.instance(int(i))) for i in idx]
    # robust violations of plain-looking instances first (they survive rounding to few digits)
    found.sort(key=lambda c: (c[0] > ROBUST_REL_SLACK, c[1]["y_kind"] not in PLAIN_BATCHES,
                              c[1]["g_mode"] not in PLAIN_GRADIENTS, c[0]))
    return [inst for _, inst in found]


def _certified_nondegenerate(statement, variant, ex):
    """The certificate of an exact candidate if it is a violation and not degenerate, else None.
    A candidate that rounding took outside BatchNorm's domain (a constant batch) is no candidate."""
    if ex is None:
        return None
    try:
        cert = certify.certify_bn(statement, variant, ex, exact_first=True)
        if cert.verdict is not Verdict.VIOLATED or degeneracy(statement, variant, ex):
            return None
    except bn.BatchNormInputError:
        return None
    return cert


def _onto_hypothesis(statement, variant, ex):
    if hypothesis_variant(statement, variant) is None:
        return ex
    try:
        return onto_relative_norm_hypothesis(ex)
    except bn.BatchNormInputError:
        return None


def _simplify(statement, variant, ex, cert):
    """Try beta = 0, gamma = 1 (or -1), lambda = 1, one at a time, keeping what stays a counterexample."""
    for name, values in (("beta", (Fraction(0),)), ("gamma", (Fraction(1), Fraction(-1))), ("lam", (Fraction(1),))):
        for value in values:
            if ex.get(name) == value:
                break
            trial = _onto_hypothesis(statement, variant, dict(ex, **{name: value}))
            c = _certified_nondegenerate(statement, variant, trial)
            if c is not None:
                ex, cert = trial, c
                break
    return ex, cert


def _family_label(inst, ex, shifted) -> str:
    """The sampled origin, with the class of H read off the exact instance (a head named PSD may
    leave the PSD cone once H is rounded or shifted by t v v^T)."""
    head = inst["head"]
    if shifted:
        head += " + t v v^T (relative-norm shift)"
    return (f"families (seed {FAMILY_SEED}): group {inst['group']}, head {head}, batch kind {inst['y_kind']}, "
            f"g mode {inst['g_mode']}; exact H {certify.hessian_inertia(ex['H']).label}")


def _from_families(statement, variant):
    shifted = hypothesis_variant(statement, variant) is not None
    for m in range(MIN_M, MAX_M + 1):
        for inst in _family_candidates(statement, variant, m)[:TRIED_PER_M]:
            for k in DIGITS:
                ex = _onto_hypothesis(statement, variant, rounded_instance(inst, k))
                cert = _certified_nondegenerate(statement, variant, ex)
                if cert is None:
                    continue
                ex, cert = _simplify(statement, variant, ex, cert)
                return _bn_counterexample(statement, variant, ex, cert,
                                          f"{_family_label(inst, ex, shifted)}; rounded to {k} significant digit(s)")
    return None


# ---------------------------------------------------------------------------------------------
# Lemma 4.5: the toy model
# ---------------------------------------------------------------------------------------------

# The float screen of the toy grid keeps a data set when det(X^T X) and det(X_c^T X_c) are nonzero:
# for 0/1 entries these are multiples of 1 and of 1/9, computed to ~1e-15, so the cut-off is exact.
TOY_SINGULAR = 1e-6


def _toy_grid():
    """(X, t) of every 0/1 data set of 3 points in the plane, as float arrays (K, 3, 2), (K, 3)."""
    X = np.array(list(itertools.product((0.0, 1.0), repeat=6))).reshape(-1, 3, 2)
    t = np.array(list(itertools.product((0.0, 1.0), repeat=3)))
    X, t = np.repeat(X, len(t), axis=0), np.tile(t, (len(X), 1))
    Xc, tc = X - X.mean(axis=1, keepdims=True), t - t.mean(axis=1, keepdims=True)
    gram = np.linalg.det(np.swapaxes(X, 1, 2) @ X)
    centred = np.linalg.det(np.swapaxes(Xc, 1, 2) @ Xc)
    correlated = np.abs(np.einsum("kni,kn->ki", Xc, tc)).max(axis=1) > TOY_SINGULAR
    keep = (np.abs(gram) > TOY_SINGULAR) & (np.abs(centred) > TOY_SINGULAR) & correlated
    return X[keep], t[keep]


def _toy_counterexample(statement, variant):
    Xs, ts = _toy_grid()
    n_w = len(TOY_W0)
    X = np.repeat(Xs, n_w, axis=0)                                          # (N, 3, 2)
    t = np.repeat(ts, n_w, axis=0)                                          # (N, 3)
    W0 = np.tile(np.array(TOY_W0, float), (len(Xs), 1))                     # (N, 2)
    q = lemma45.toy_quantities_numpy(X, t, W0)
    r = evaluate_variant(statement, variant, q)
    attained = q.ops.dot(W0, q.bn_direction) > 0
    found = np.flatnonzero(np.asarray(r.verdicts == Verdict.VIOLATED, bool) & attained)

    def shown(i):
        return [X[i].astype(int).tolist(), t[i].astype(int).tolist(), W0[i].astype(int).tolist()]
    for i in sorted(found, key=lambda i: (digits(shown(i)), magnitude(shown(i)), int(i)))[:MAX_CERTIFIED]:
        x_rows, tt, w = shown(i)
        x, w0 = sp.Matrix(x_rows), sp.Matrix(w)
        opt = lemma45.exact_optima(x, tt)
        if not (w0.T * opt.bn_direction)[0, 0] > 0:
            continue        # the closest BN optimum is not attained (exactly)
        inputs = {"X": x.tolist(), "t": list(tt), "W0": list(w0)}
        cert = certify.certify_toy(statement, variant, inputs)
        qe = lemma45.exact_quantities(x, tt, w0)
        if cert.verdict is not Verdict.VIOLATED or variant.lhs(qe) == 0:
            continue
        return Counterexample(
            statement.id, variant.name, str(Setting.TOY_REGRESSION), x.rows,
            {"X": [[text(v) for v in row] for row in x.tolist()], "t": [text(v) for v in tt],
             "W0": [text(v) for v in w0]},
            {"W_star": [text(v) for v in opt.W_star], "bn_optimum_direction": [text(v) for v in opt.bn_direction],
             "note": "the BN optima are the open ray {a d : a > 0}; <W0, d> > 0, so the closest one is attained"},
            cert.lhs, cert.rhs, cert.slack_upper, cert.method,
            {"lhs": str(variant.lhs(qe)), "rhs": str(variant.rhs(qe)),
             "slack": str(Relation(variant.relation).slack(variant.lhs(qe), variant.rhs(qe)))},
            "grid of 0/1 data (3 points in the plane), 0/1 targets and integer W0 in [-2, 2]^2; the first "
            "(fewest digits) that certifies")
    return None


# ---------------------------------------------------------------------------------------------
# The search
# ---------------------------------------------------------------------------------------------

SEARCHED = (Setting.BN_CHANNEL, Setting.WEIGHT_SPACE, Setting.TOY_REGRESSION)


@lru_cache(maxsize=None)
def _search(statement_id: str, variant_name: str):
    from theory.statements import get, setting_of
    statement = get(statement_id)
    variant = statement.variant(variant_name)
    setting = setting_of(statement, variant)      # a variant may be evaluated in another setting (obs-4.3)
    if setting not in SEARCHED or Relation(variant.relation) is Relation.DEFINITION:
        return None
    try:
        if setting is Setting.TOY_REGRESSION:
            return _toy_counterexample(statement, variant)
        return _from_grid(statement, variant) or _from_families(statement, variant)
    except (ValueError, ArithmeticError) as err:
        return SearchFailure(statement.id, variant.name, f"{type(err).__name__}: {err}")


def smallest_counterexample(statement, variant):
    """The smallest non-degenerate certified counterexample of a registry variant (see the module
    docstring), a ``SearchFailure`` if exact re-evaluation raised during the search, or None if
    the search space has none (or the setting is not searched: networks, definitions).
    Deterministic and cached: the docs, the errata and the report get the same object."""
    return _search(statement.id, variant.name)
