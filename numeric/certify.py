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

A ``Certificate`` carries a ``theory.vocab.Verdict``: VIOLATED (the slack is certainly negative,
or 0 for a strict '<', or an identity's two sides certainly differ), HOLDS (certainly > 0),
EQUALITY (exactly 0), UNDETERMINED (the enclosure contains 0), UNDEFINED (a side is 0/0 at the
instance) or NOT_APPLICABLE (the instance misses a hypothesis exactly).  The sign rule is
``theory.vocab.Relation``'s.

``certify_kept`` certifies the instances the sweep kept and returns every failure of exact
re-evaluation with its message beside the certificates (nothing is skipped silently);
``hessian_inertia`` gives the exact inertia of a rational H, so a label such as 'positive
semidefinite' is checked on the instance it describes.
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import sympy as sp

from numeric import maxima
from theory import bn, lemma45
from theory.ops import INTERVAL_DIGITS, IntervalOps, SympyOps
from theory.quantities import Quantities, channel_quantities
from theory.vocab import EpsilonScope, Relation, Setting, Verdict

INTERVAL = "interval-60"
EXACT = "exact"


@dataclass(frozen=True)
class Certificate:
    verdict: Verdict
    method: str             # interval-60 | exact
    slack_lower: str        # decimal enclosure of the slack (RHS - LHS; for identities the
    slack_upper: str        # largest certified |component difference|, negated)
    lhs: str
    rhs: str
    detail: str = ""

    def to_dict(self):
        return {"verdict": str(self.verdict), "method": self.method, "slack_lower": self.slack_lower,
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
    """The registry's quantities of one exact BatchNorm-channel instance, over `ops`
    (theory.quantities.channel_quantities, the one builder every layer uses), plus certified
    enclosures of Theorem C.1's maxima where `requires` names them.

    Only what `requires` names beyond the basics is built (full matrices cost O(m^3) intervals).
    """
    _validate(ex)
    number, vector, matrix = _convert(ops, ex)
    need = set(requires)
    maxima_needed = bool(need & {"betaW_max", "betaW_hat_max", "betaW_hat0_max"})
    if maxima_needed and not isinstance(ops, IntervalOps):
        raise ValueError("the maxima of Theorem C.1 are certified in interval arithmetic only")
    H = matrix(ex["H"]) if "H" in ex else None
    lam = number(ex["lam"]) if ex.get("lam") is not None else None
    matrices = tuple(name for name in ("jac_z_y", "hess_bn")
                     if name in need or (name == "hess_bn" and "betaW_hat_max" in need))
    q = channel_quantities(ops, number(Fraction(ex["m"])), number(ex["gamma"]), vector(ex["g"]),
                           y=vector(ex["y"]), beta=number(ex["beta"]), eps=number(ex["eps"]), H=H, lam=lam,
                           matrices=matrices)
    if maxima_needed:
        q = q.with_values(betaW_max=ball_max_enclosure(ops, q.g, q.H, lam),
                          betaW_hat_max=ball_max_enclosure(ops, q.grad_y_bn, q.hess_bn, lam))
        if "betaW_hat0_max" in need:      # the BN maximum at H = 0 (thm-c1/split-bound)
            curvature_only = bn.hessian_bn_matrix(ops, ops.scale_matrix(number(Fraction(0)), q.H), q.g, q.y_hat,
                                                  q.sigma, q.gamma, q.m)
            q = q.with_values(betaW_hat0_max=ball_max_enclosure(ops, q.grad_y_bn, curvature_only, lam))
    return q


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


def certainly_nonzero(x) -> bool:
    """Some component of an exact (SymPy) or interval value is certainly not 0."""
    return any(_sign(_canonical(c)) != 0 for c in _components(x))


def _magnitude(x) -> str:
    if isinstance(x, sp.Basic):
        return _fmt(abs(x))
    return _fmt(abs(x).b)


def _undefined(x) -> bool:
    """0/0 or x/0 in an exact value (the formula is undefined at the instance)."""
    parts = _components(x)
    return any(isinstance(p, sp.Basic) and p.has(sp.nan, sp.zoo, sp.oo, -sp.oo) for p in parts)


def _decide(variant, q, method) -> Certificate:
    relation = Relation(variant.relation)
    lhs, rhs = variant.lhs(q), variant.rhs(q)
    if _undefined(lhs) or _undefined(rhs):
        return Certificate(Verdict.UNDEFINED, method, "", "", "", "", "a side of the variant is undefined (0/0)")
    show = (lambda x: "(vector)" if hasattr(x, "rows") else _fmt(x))
    if relation is Relation.EQ:
        diffs = [_canonical(relation.slack(a, b)) for a, b in zip(_components(lhs), _components(rhs))]
        signs = [_sign(d) for d in diffs]
        worst = max(diffs, key=lambda d: float(sp.N(abs(d))) if isinstance(d, sp.Basic) else float(abs(d).b))
        if any(signs):
            verdict = relation.verdict_of_sign(1)
        elif method == EXACT and all(isinstance(d, sp.Basic) and d == 0 for d in diffs):
            verdict = relation.verdict_of_sign(0)
        else:
            verdict = Verdict.UNDETERMINED
        # an identity's slack is reported as -|largest component difference|
        return Certificate(verdict, method, "-" + _magnitude(worst),
                           "-" + _magnitude(worst) if verdict is Verdict.VIOLATED else "0", show(lhs), show(rhs))
    slack = _canonical(relation.slack(lhs, rhs))
    exact_zero = isinstance(slack, sp.Basic) and slack == 0
    sign = 0 if exact_zero else _sign(slack)
    # an interval that contains 0 has no certain sign; only an exact 0 is a sign of 0
    verdict = relation.verdict_of_sign(sign) if sign or exact_zero else Verdict.UNDETERMINED
    lo, hi = (_fmt(slack), _fmt(slack)) if isinstance(slack, sp.Basic) else (_fmt(slack.a), _fmt(slack.b))
    return Certificate(verdict, method, lo, hi, show(lhs), show(rhs))


def _applicable(variant, q, ex) -> tuple:
    """(True/False/None, why) under the variant's epsilon scope and condition."""
    eps = ex.get("eps", Fraction(0))
    scope = EpsilonScope(variant.epsilon)
    # the scope depends only on whether eps is 0 (a tiny exact eps must not round to 0.0)
    if not scope.admits(0.0 if eps == 0 else 1.0):
        return False, f"the variant is about eps in scope '{scope}', the instance has eps = {eps}"
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
    (`exact_first`: it can also say EQUALITY, and decide a strict '<' at exact 0); otherwise,
    and when the exact sign is not decided, interval arithmetic."""
    ex = exact_inputs(inputs)
    maxima = {"betaW_max", "betaW_hat_max", "betaW_hat0_max"} & set(variant.requires)
    if variant.constraint is not None or (exact_first and not maxima):
        qe = bn_quantities(ex, SympyOps(), variant.requires)
        if variant.constraint is not None:
            # the extra hypothesis is an equation: it must hold exactly, so decide it over rationals
            residual = sp.simplify(variant.constraint(qe))
            if residual != 0:
                return Certificate(Verdict.NOT_APPLICABLE, EXACT, "", "", "", "",
                                   f"the hypothesis '{variant.extra_hypotheses[0] if variant.extra_hypotheses else 'constraint'}' "
                                   f"does not hold exactly (residual {_fmt(residual, 6)})")
        ok, why = _applicable(variant, qe, ex)
        if not ok:
            return Certificate(Verdict.NOT_APPLICABLE, EXACT, "", "", "", "", why)
        cert = _decide(variant, qe, EXACT)
        if cert.verdict is not Verdict.UNDETERMINED:
            return cert
    ops = IntervalOps()
    q = bn_quantities(ex, ops, variant.requires)
    if not q.has(variant.requires):
        return Certificate(Verdict.NOT_APPLICABLE, INTERVAL, "", "", "", "", f"missing {q.missing(variant.requires)}")
    ok, why = _applicable(variant, q, ex)
    if ok is not True:
        return Certificate(Verdict.NOT_APPLICABLE if ok is False else Verdict.UNDETERMINED, INTERVAL, "", "", "", "",
                           why)
    return _decide(variant, q, INTERVAL)


def _rationals(values):
    return [sp.Rational(exact(v).numerator, exact(v).denominator) for v in values]


def certify_toy(statement, variant, inputs: dict) -> Certificate:
    """Lemma 4.5's toy model, exactly (theory.lemma45's rational optimum sets)."""
    X = [_rationals(row) for row in np.asarray(inputs["X"], dtype=object).tolist()]
    t = _rationals(np.asarray(inputs["t"], dtype=object).ravel())
    W0 = _rationals(np.asarray(inputs["W0"], dtype=object).ravel())
    try:
        q = lemma45.exact_quantities(X, t, W0)
    except lemma45.ToyModelError as err:
        return Certificate(Verdict.NOT_APPLICABLE, EXACT, "", "", "", "", str(err))
    if variant.condition is not None and not variant.condition(q) > 0:
        return Certificate(Verdict.NOT_APPLICABLE, EXACT, "", "", "", "", "condition <W0, W*> > 0 fails")
    return _decide(variant, q, EXACT)


def certify(statement, variant, setting, inputs: dict) -> Certificate:
    """Exact re-evaluation of one instance of a variant in its setting."""
    setting = Setting(setting)
    if setting is Setting.TOY_REGRESSION:
        return certify_toy(statement, variant, inputs)
    if setting in (Setting.BN_CHANNEL, Setting.WEIGHT_SPACE):
        return certify_bn(statement, variant, inputs)
    return Certificate(Verdict.UNDETERMINED, EXACT, "", "", "", "", f"no exact re-evaluation for the {setting} setting")


# ---------------------------------------------------------------------------------------------
# The instances the sweep kept
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class CertificationFailure:
    """Exact re-evaluation of one kept instance raised: the instance and the error's message."""
    inputs: dict
    message: str


@dataclass(frozen=True)
class KeptCertification:
    certificates: tuple     # Certificate, in the order the kept instances were tried
    failures: tuple         # CertificationFailure, each with its message (reported, never skipped)


def certify_kept(statement, variant, kept, want: Verdict, tries: int, enough: int) -> KeptCertification:
    """Certify the kept instances whose float verdict is `want`, most extreme first: at most `tries`
    certificates, stopping once `enough` of them say `want`.  An instance whose exact
    re-evaluation raises (bad exact input, a division by an exact 0) is a failure with its message;
    any other exception is a bug and propagates."""
    want = Verdict(want)
    certificates, failures = [], []
    for k in kept:
        if len(certificates) >= tries or sum(c.verdict is want for c in certificates) >= enough:
            break
        if Verdict(k.verdict) is not want:
            continue
        try:
            certificates.append(certify(statement, variant, k.setting, k.inputs))
        except (ValueError, ArithmeticError) as err:
            failures.append(CertificationFailure(k.inputs, f"{type(err).__name__}: {err}"))
    return KeptCertification(tuple(certificates), tuple(failures))


# ---------------------------------------------------------------------------------------------
# Exact inertia of a rational symmetric matrix
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Inertia:
    positive: int
    zero: int
    negative: int

    @property
    def label(self) -> str:
        """'positive definite', 'positive semidefinite', 'negative (semi)definite', 'indefinite' or 'zero'."""
        n = self.positive + self.zero + self.negative
        if self.zero == n:
            return "zero"
        if self.negative == 0:
            return "positive definite" if self.zero == 0 else "positive semidefinite"
        if self.positive == 0:
            return "negative definite" if self.zero == 0 else "negative semidefinite"
        return "indefinite"

    def __str__(self) -> str:
        return (f"{self.label} (exact inertia: {self.positive} positive, {self.zero} zero, "
                f"{self.negative} negative eigenvalue(s))")


def hessian_inertia(H) -> Inertia:
    """Exact inertia of a symmetric rational matrix (rows of Fractions, ints or p/q strings).

    A real symmetric matrix has only real eigenvalues, so its characteristic polynomial has only
    real roots, and for such a polynomial Descartes' rule of signs is exact: the number of
    positive roots is the number of sign changes of its coefficients (zeros skipped), the number
    of negative roots that of p(-x); the multiplicity of the root 0 is the number of trailing zero
    coefficients.  All in rational arithmetic."""
    M = sp.Matrix([[sp.Rational(exact(v).numerator, exact(v).denominator) for v in row] for row in H])
    if M.rows != M.cols or M != M.T:
        raise ValueError(f"H must be a symmetric square matrix, got {M.rows} x {M.cols}"
                         f"{'' if M.rows != M.cols else ' (not symmetric)'}")
    x = sp.Symbol("x")
    coeffs = M.charpoly(x).all_coeffs()          # leading first
    zero = 0
    while coeffs and coeffs[-1] == 0:
        coeffs.pop()
        zero += 1

    def changes(cs):
        signs = [sp.sign(c) for c in cs if c != 0]
        return sum(a != b for a, b in zip(signs, signs[1:]))
    degree = len(coeffs) - 1
    flipped = [c * (-1) ** (degree - i) for i, c in enumerate(coeffs)]
    return Inertia(changes(coeffs), zero, changes(flipped))
