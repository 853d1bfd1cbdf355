"""Certification: a violation counts only after exact re-evaluation.

An instance (its inputs by name: floats at their exact binary value, or Fractions) is evaluated
again, with the registry's own lhs/rhs/condition/constraint functions and theory.bn's closed
forms, over one of two exact back-ends:

* ``interval-60``: theory.ops.IntervalOps, mpmath interval arithmetic at 60 digits.  Every
  value is an interval that provably contains the exact one; a sign is certain when the
  interval excludes 0.  sigma = sqrt(var + eps) is an interval like any other value.
* ``exact``: theory.ops.SympyOps on rationals; sigma is the exact square root (a SymPy
  algebraic number).  Used where an equation must hold exactly: a variant's ``constraint``
  (an extra hypothesis such as "H preserves the relative norms of g and v") is accepted only if
  it is exactly 0, and a slack that comes out a rational number has an exact sign, 0 included.

The maxima of Theorem C.1 enter as certified enclosures (``ball_max_enclosure``): a feasible
point gives a lower bound; the Lagrangian with a multiplier nu, for which (nu - delta) I - A is
proved positive definite by an interval Cholesky factorisation, gives an upper bound.

A ``Certificate`` says 'violated' (the slack is certainly negative, or 0 for a strict '<', or an
identity's two sides certainly differ), 'holds' (certainly >= 0 / > 0), 'equality' (exactly 0),
'undecided' (the enclosure contains 0), 'undefined' (a side is 0/0 at the instance) or
'not-applicable' (the instance misses a hypothesis exactly).
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import sympy as sp

from numeric import maxima
from theory import bn
from theory.ops import INTERVAL_DIGITS, IntervalOps, SympyOps
from theory.quantities import Quantities, max_weight_grad_norm_sq

INTERVAL = "interval-60"
EXACT = "exact"


@dataclass(frozen=True)
class Certificate:
    verdict: str            # violated | holds | equality | undecided | undefined | not-applicable
    method: str             # interval-60 | exact
    slack_lower: str        # decimal enclosure of the slack (RHS - LHS; for identities the
    slack_upper: str        # largest certified |component difference|, negated)
    lhs: str
    rhs: str
    detail: str = ""

    def to_dict(self):
        return {"verdict": self.verdict, "method": self.method, "slack_lower": self.slack_lower,
                "slack_upper": self.slack_upper, "lhs": self.lhs, "rhs": self.rhs, "detail": self.detail}


# ---------------------------------------------------------------------------------------------
# Exact inputs
# ---------------------------------------------------------------------------------------------

def exact(x) -> Fraction:
    """A float at its exact binary value, or a Fraction/int/decimal string as it is."""
    if isinstance(x, Fraction):
        return x
    if isinstance(x, sp.Rational):
        return Fraction(int(x.p), int(x.q))
    if isinstance(x, str):
        return Fraction(x)
    if isinstance(x, (int, np.integer)):
        return Fraction(int(x))
    x = float(x)
    if not np.isfinite(x):
        raise bn.BatchNormInputError(f"cannot certify a non-finite input {x!r}")
    return Fraction(x)


def exact_inputs(inputs: dict) -> dict:
    """Every numeric input of a BatchNorm-channel instance as Fractions (vectors as lists)."""
    out = {"m": int(inputs["m"])}
    for name in ("gamma", "beta", "eps", "lam"):
        if inputs.get(name) is not None:
            out[name] = exact(inputs[name])
    for name in ("y", "g"):
        out[name] = [exact(v) for v in np.asarray(inputs[name], dtype=object).ravel()] \
            if not isinstance(inputs[name], list) else [exact(v) for v in inputs[name]]
    if inputs.get("H") is not None:
        out["H"] = [[exact(v) for v in row] for row in (inputs["H"].tolist() if hasattr(inputs["H"], "tolist")
                                                          else inputs["H"])]
    return out


def _validate(ex: dict):
    m = ex["m"]
    if m < 2:
        raise bn.BatchNormInputError(f"batch of size {m}: BatchNorm needs m >= 2")
    if len(ex["y"]) != m or len(ex["g"]) != m:
        raise bn.BatchNormInputError(f"y and g must have m = {m} entries, got {len(ex['y'])} and {len(ex['g'])}")
    if "H" in ex and (len(ex["H"]) != m or any(len(r) != m for r in ex["H"])):
        raise bn.BatchNormInputError(f"H must be {m} x {m}")
    if ex["eps"] < 0:
        raise bn.BatchNormInputError(f"epsilon must be >= 0, got {ex['eps']}")
    if ex["eps"] == 0 and len(set(ex["y"])) == 1:
        raise bn.BatchNormInputError(f"constant batch (every entry {ex['y'][0]}) with epsilon = 0")
    if ex["gamma"] == 0:
        raise bn.BatchNormInputError("gamma = 0: the BN layer is constant")


# ---------------------------------------------------------------------------------------------
# Quantities over an exact back-end
# ---------------------------------------------------------------------------------------------

def _convert(ops, ex):
    """(number, vector, matrix) constructors for the back-end."""
    if isinstance(ops, IntervalOps):
        return ops.number, ops.vector, ops.matrix
    num = sp.Rational
    return (lambda x: num(x.numerator, x.denominator),
            lambda xs: sp.Matrix([[num(x.numerator, x.denominator)] for x in xs]),
            lambda rows: sp.Matrix([[num(x.numerator, x.denominator) for x in r] for r in rows]))


def bn_quantities(ex: dict, ops, requires=()) -> Quantities:
    """The registry's quantities of one exact BatchNorm-channel instance, over `ops`.

    Only what `requires` names beyond the basics is built (full matrices cost O(m^3) intervals).
    """
    _validate(ex)
    number, vector, matrix = _convert(ops, ex)
    m = ex["m"]
    mm = number(Fraction(m))
    y, g = vector(ex["y"]), vector(ex["g"])
    gamma, beta, eps = number(ex["gamma"]), number(ex["beta"]), number(ex["eps"])
    mu, sigma, y_hat = bn.batch_statistics(ops, y, mm, eps)
    v = bn.grad_y_bn(ops, g, y_hat, sigma, gamma, mm)
    values = dict(m=mm, gamma=gamma, beta=beta, eps=eps, y=y, mu=mu, sigma=sigma, y_hat=y_hat, g=g, grad_y_bn=v)
    need = set(requires)
    if "H" in ex:
        H = matrix(ex["H"])
        values.update(H=H, H_frob=ops.sqrt(ops.frob_sq(H)), H_gg=ops.bilinear(H, g, g), H_vv=ops.bilinear(H, v, v),
                      hess_bn_vv=bn.hessian_bn_bilinear(ops, H, g, y_hat, sigma, gamma, mm, v, v))
        if need & {"hess_bn", "betaW_hat_max"}:
            values["hess_bn"] = bn.hessian_bn_matrix(ops, H, g, y_hat, sigma, gamma, mm)
    if "jac_z_y" in need:
        values["jac_z_y"] = bn.jacobian_z_y(ops, y_hat, sigma, gamma, mm)
    if ex.get("lam") is not None:
        lam = number(ex["lam"])
        values.update(lam=lam, gW_max=max_weight_grad_norm_sq(ops, g, lam),
                      gW_hat_max=max_weight_grad_norm_sq(ops, v, lam))
        if need & {"betaW_max", "betaW_hat_max"}:
            if not isinstance(ops, IntervalOps):
                raise ValueError("the maxima of Theorem C.1 are certified in interval arithmetic only")
            values["betaW_max"] = ball_max_enclosure(ops, g, values["H"], lam)
            values["betaW_hat_max"] = ball_max_enclosure(ops, v, values["hess_bn"], lam)
        if "betaW_hat0_max" in need:      # the BN maximum at H = 0 (thm-c1/split-bound)
            curvature_only = bn.hessian_bn_matrix(ops, ops.scale_matrix(number(Fraction(0)), values["H"]), g, y_hat,
                                                  sigma, gamma, mm)
            values["betaW_hat0_max"] = ball_max_enclosure(ops, v, curvature_only, lam)
    return Quantities(ops, values)


# ---------------------------------------------------------------------------------------------
# Certified enclosure of max w^T A w over ||w - c|| <= r, c = lam^2 u/2, r = ||c||
# ---------------------------------------------------------------------------------------------

def _mid(x) -> float:
    return float(x.mid) if hasattr(x, "mid") else float(x)


def _interval_cholesky_pd(ops, M) -> bool:
    """True if the interval Cholesky factorisation of the symmetric interval matrix M runs with
    every pivot's lower end > 0: then every symmetric matrix in M is positive definite
    (Alefeld & Mayer; Rump, Acta Numerica 2010, sec. 10.8)."""
    n = M.rows
    L = ops.ctx.matrix(n, n)
    for j in range(n):
        pivot = M[j, j] - ops.ctx.fsum(L[j, k] ** 2 for k in range(j))
        if not pivot.a > 0:
            return False
        L[j, j] = ops.ctx.sqrt(pivot)
        for i in range(j + 1, n):
            L[i, j] = (M[i, j] - ops.ctx.fsum(L[i, k] * L[j, k] for k in range(j))) / L[j, j]
    return True


def ball_max_enclosure(ops, u, A, lam):
    """An interval that provably contains max_{||w - c|| <= r} w^T A w (the maxima of Thm C.1).

    Lower end: the float maximiser (numeric.maxima) pulled into the ball if rounding put it
    outside, evaluated in intervals.  Upper end: for nu >= a_max and delta > 0 with
    (nu - delta) I - A positive definite (proved by interval Cholesky), every feasible w has
    w^T A w <= f(w) := w^T A w - nu (||w - c||^2 - r^2) and f is concave with curvature <= -delta,
    so max f <= f(w~) + ||grad f(w~)||^2 / (4 delta) at any w~.
    """
    ctx = ops.ctx
    m = u.rows
    uf = np.array([_mid(u[i, 0]) for i in range(m)])
    Af = np.array([[_mid(A[i, j]) for j in range(m)] for i in range(m)])
    lf = _mid(lam)
    sol = maxima.solve_ball_quadratic_max(uf[None], Af[None], lf)
    c = u * (lam**2 / 2)
    r_sq = ops.vec_sq(c)
    # lower bound: a certainly feasible point
    w = ops.vector([float(x) for x in sol.maximiser[0]])
    for shrink in (0, 1e-30, 1e-20, 1e-12, 1e-6):
        wt = c + (w - c) * ctx.mpf(1 - shrink)
        if (ops.vec_sq(wt - c) - r_sq).b <= 0:
            break
    else:
        wt = c * 0
    lower = ops.bilinear(A, wt, wt)
    # upper bound
    scale = float(np.abs(Af).max()) if Af.size else 0.0
    if scale == 0.0 or float(np.max(np.abs(uf))) == 0.0:
        return ctx.mpf([min(lower.a, 0), max(lower.b, 0)])
    nu_f = max(float(sol.multiplier[0]), 0.0)
    for extra in (1e-12, 1e-9, 1e-6, 1e-3):
        delta = ctx.mpf(extra * scale)
        nu = ctx.mpf(nu_f) + 2 * delta
        M = ops.eye_like(u) * (nu - delta) - A
        if _interval_cholesky_pd(ops, M):
            break
    else:
        return ctx.mpf([lower.a, ctx.inf])
    grad = (A * wt) * 2 - (wt - c) * (2 * nu)
    f = ops.bilinear(A, wt, wt) - nu * (ops.vec_sq(wt - c) - r_sq)
    upper = f + ops.vec_sq(grad) / (4 * delta)
    return ctx.mpf([lower.a, upper.b])


# ---------------------------------------------------------------------------------------------
# Deciding a variant on one instance
# ---------------------------------------------------------------------------------------------

def _fmt(x, digits=20) -> str:
    """A value for the report: exact rationals as p/q, algebraic numbers and intervals in decimals."""
    if isinstance(x, sp.Basic):
        return str(x) if x.is_Rational else f"{sp.N(x, digits)}"
    if hasattr(x, "a"):
        from mpmath import mp
        a, b = x._mpi_
        lo, hi = mp.nstr(mp.mpf(a), digits), mp.nstr(mp.mpf(b), digits)
        return lo if lo == hi else f"[{lo}, {hi}]"
    return str(x)


def _components(x):
    if hasattr(x, "rows"):
        return [x[i, j] for i in range(x.rows) for j in range(x.cols)]
    return [x]


def _canonical(x):
    """An exact SymPy number in a form where 0 is recognisable (radicals expanded and collected)."""
    return sp.radsimp(sp.expand(x)) if isinstance(x, sp.Basic) else x


def _sign(x):
    """+1 / -1 / 0 (zero, or undecided for an interval containing 0) of an interval or exact number."""
    if isinstance(x, sp.Basic):
        if x.is_Rational:
            return int(sp.sign(x))
        value = sp.N(x, INTERVAL_DIGITS)
        # a nonzero algebraic number of this size is far above 10^-50 at the inputs we certify
        if abs(value) < sp.Float(10) ** -50:
            return 0
        return 1 if value > 0 else -1
    if x.a > 0:
        return 1
    if x.b < 0:
        return -1
    return 0


def _magnitude(x) -> str:
    if isinstance(x, sp.Basic):
        return _fmt(abs(x))
    return _fmt(abs(x).b)


def _undefined(x) -> bool:
    """0/0 or x/0 in an exact value (the formula is undefined at the instance)."""
    parts = _components(x)
    return any(isinstance(p, sp.Basic) and p.has(sp.nan, sp.zoo, sp.oo, -sp.oo) for p in parts)


def _decide(variant, q, method) -> Certificate:
    lhs, rhs = variant.lhs(q), variant.rhs(q)
    if _undefined(lhs) or _undefined(rhs):
        return Certificate("undefined", method, "", "", "", "", "a side of the variant is undefined (0/0)")
    show = (lambda x: "(vector)" if hasattr(x, "rows") else _fmt(x))
    if variant.relation == "==":
        diffs = [_canonical(a - b) for a, b in zip(_components(lhs), _components(rhs))]
        signs = [_sign(d) for d in diffs]
        worst = max(diffs, key=lambda d: float(sp.N(abs(d))) if isinstance(d, sp.Basic) else float(abs(d).b))
        if any(signs):
            verdict = "violated"
        elif method == EXACT and all(isinstance(d, sp.Basic) and d == 0 for d in diffs):
            verdict = "equality"
        else:
            verdict = "undecided"
        return Certificate(verdict, method, "-" + _magnitude(worst), "-" + _magnitude(worst) if verdict == "violated"
                           else "0", show(lhs), show(rhs))
    slack = _canonical(rhs - lhs)
    sign = _sign(slack)
    exact_zero = isinstance(slack, sp.Basic) and slack == 0
    if exact_zero:
        verdict = "violated" if variant.relation == "<" else "equality"
    else:
        verdict = {-1: "violated", 1: "holds", 0: "undecided"}[sign]
    lo, hi = (_fmt(slack), _fmt(slack)) if isinstance(slack, sp.Basic) else (_fmt(slack.a), _fmt(slack.b))
    return Certificate(verdict, method, lo, hi, show(lhs), show(rhs))


def _applicable(variant, q, ex) -> tuple:
    """(True/False/None, why) under the variant's epsilon scope, condition and constraint."""
    eps = ex.get("eps", Fraction(0))
    if variant.epsilon == "zero" and eps != 0:
        return False, "the variant is about eps = 0"
    if variant.epsilon == "positive" and eps <= 0:
        return False, "the variant is about eps > 0"
    if variant.condition is not None:
        s = _sign(variant.condition(q))
        if s < 0:
            return False, "its condition is not > 0"
        if s == 0:
            return None, "its condition is not certainly > 0"
    return True, ""


def certify_bn(statement, variant, inputs: dict, exact_first: bool = False) -> Certificate:
    """Certify a float (or rational) BatchNorm-channel / weight-space instance exactly.

    The exact (SymPy) path runs first for a variant with a constraint, or when asked
    (`exact_first`: it can also say 'equality', and decide a strict '<' at exact 0); otherwise,
    and when the exact sign is not decided, interval arithmetic."""
    ex = exact_inputs(inputs)
    maxima = {"betaW_max", "betaW_hat_max", "betaW_hat0_max"} & set(variant.requires)
    if variant.constraint is not None or (exact_first and not maxima):
        qe = bn_quantities(ex, SympyOps(), variant.requires)
        if variant.constraint is not None:
            # the extra hypothesis is an equation: it must hold exactly, so decide it over rationals
            residual = sp.simplify(variant.constraint(qe))
            if residual != 0:
                return Certificate("not-applicable", EXACT, "", "", "", "",
                                   f"the hypothesis '{variant.extra_hypotheses[0] if variant.extra_hypotheses else 'constraint'}' "
                                   f"does not hold exactly (residual {_fmt(residual, 6)})")
        ok, why = _applicable(variant, qe, ex)
        if not ok:
            return Certificate("not-applicable", EXACT, "", "", "", "", why)
        cert = _decide(variant, qe, EXACT)
        if cert.verdict != "undecided":
            return cert
    ops = IntervalOps()
    q = bn_quantities(ex, ops, variant.requires)
    if not q.has(variant.requires):
        return Certificate("not-applicable", INTERVAL, "", "", "", "", f"missing {q.missing(variant.requires)}")
    ok, why = _applicable(variant, q, ex)
    if ok is not True:
        return Certificate("not-applicable" if ok is False else "undecided", INTERVAL, "", "", "", "", why)
    return _decide(variant, q, INTERVAL)


def certify_toy(statement, variant, inputs: dict) -> Certificate:
    """Lemma 4.5's toy model, exactly (theory.lemma45's rational optimum sets)."""
    from theory import lemma45

    X = [[sp.Rational(exact(v).numerator, exact(v).denominator) for v in row] for row in np.asarray(inputs["X"]).tolist()]
    t = [sp.Rational(exact(v).numerator, exact(v).denominator) for v in np.asarray(inputs["t"]).ravel()]
    W0 = [sp.Rational(exact(v).numerator, exact(v).denominator) for v in np.asarray(inputs["W0"]).ravel()]
    try:
        q = lemma45.exact_quantities(X, t, W0)
    except lemma45.ToyModelError as err:
        return Certificate("not-applicable", EXACT, "", "", "", "", str(err))
    if variant.condition is not None and not variant.condition(q) > 0:
        return Certificate("not-applicable", EXACT, "", "", "", "", "condition <W0, W*> > 0 fails")
    return _decide(variant, q, EXACT)


def certify(statement, variant, setting: str, inputs: dict) -> Certificate:
    if setting == "toy-regression":
        return certify_toy(statement, variant, inputs)
    if setting == "bn-channel":
        return certify_bn(statement, variant, inputs)
    return Certificate("undecided", EXACT, "", "", "", "", f"no exact re-evaluation for the {setting} setting")
