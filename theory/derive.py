"""SymPy derivations from the definition of training-mode BatchNorm.

Fully symbolic batch (m = 2..6).  y_1..y_m, g_1..g_m and a symmetric H are symbols.  sigma
is defined implicitly by sigma^2 = Var(y) + eps, so SymPy differentiates the definition with
the single rule  d sigma / d y_k = (y_k - mu)/(m sigma)  (the derivative of that equation), and
the results are rational functions of y, g, sigma, gamma, eps.  Two such expressions are equal
when the numerator of their difference vanishes modulo sigma^2 - Var(y) - eps (a polynomial
remainder in sigma): an exact test, without `simplify`.

From the definition we derive
    the Jacobian dz/dy,  the gradient nabla_y L_hat = J^T g,
    the curvature part  sum_b g_b d^2 z_b/dy^2  of the Hessian  d^2 L_hat/dy^2 = J^T H J + (that),
and compare them with the closed forms of theory.bn and the paper's printed formulas.

General m.  The same closed forms evaluated in the invariant algebra of theory.ops
(InvariantOps): vectors in span{1, y_hat, g}, inner products from the Gram matrix, quadratic
forms of H as symbols.  theory.verdicts reads slack expressions from here.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import sympy as sp

from theory import bn, symbols as S
from theory.ops import SympyOps
from theory.quantities import Quantities, channel_quantities

OPS = SympyOps()


@dataclass(frozen=True)
class DerivedCalculus:
    """Derivatives of the BatchNorm map of a fully symbolic batch, taken by SymPy."""

    size: int
    with_epsilon: bool
    y: sp.Matrix
    g: sp.Matrix
    H: sp.Matrix
    mu: sp.Expr
    variance: sp.Expr          # biased Var(y)
    y_hat: sp.Matrix           # (y - mu)/sigma, sigma the symbol S.sigma
    jacobian: sp.Matrix        # dz/dy
    gradient: sp.Matrix        # J^T g
    curvature: sp.Matrix       # sum_b g_b d^2 z_b / dy^2

    @property
    def eps(self):
        return S.eps if self.with_epsilon else sp.Integer(0)

    @property
    def sigma_relation(self):
        """sigma^2 - Var(y) - eps: zero on every batch."""
        return S.sigma**2 - self.variance - self.eps


@lru_cache(maxsize=None)
def derive_calculus(size: int, with_epsilon: bool) -> DerivedCalculus:
    if size < 2:
        raise ValueError(f"batch of size {size}: BatchNorm needs m >= 2")
    batch = S.batch_symbols(size)
    y, g = batch.y, batch.g
    mu, centred, variance = bn.batch_moments(OPS, y, size)
    sig = sp.Function("sigma_of_y")(*y)                 # sigma as a function of the batch
    d_sigma = {sp.Derivative(sig, yk): c / (size * sig) for yk, c in zip(y, centred)}  # from sigma^2 = Var + eps

    def d(expr, yk):
        return sp.diff(expr, yk).xreplace(d_sigma)

    z = [S.gamma * c / sig + S.beta for c in centred]           # the definition
    jac = sp.Matrix(size, size, lambda b, k: d(z[b], y[k]))
    phi = sum(gb * zb for gb, zb in zip(g, z))                  # g held fixed: sum_b g_b z_b
    first = [d(phi, yk) for yk in y]
    curvature = sp.Matrix(size, size, lambda i, k: d(first[i], y[k]))
    to_symbol = {sig: S.sigma}
    jac = jac.xreplace(to_symbol)
    curvature = curvature.xreplace(to_symbol)
    gradient = jac.T * g
    y_hat = centred / S.sigma
    return DerivedCalculus(size, with_epsilon, y, g, batch.H, mu, sp.expand(variance), y_hat,
                           jac, gradient, curvature)


def vanishes(expr, calc: DerivedCalculus) -> bool:
    """Exact: is expr zero on every batch, i.e. modulo sigma^2 - Var(y) - eps?

    Expressions with a further radical in sigma (not polynomial in sigma) are decided by a
    witness instead: a rational batch at which the value is provably non-zero (60 digits).
    """
    # sqrt(Var + eps) computed from y by the definition is the symbol sigma
    expr = expr.replace(
        lambda e: isinstance(e, sp.Pow) and e.exp.is_Rational and e.exp.q == 2
        and sp.expand(e.base - calc.variance - calc.eps) == 0,
        lambda e: S.sigma ** (2 * e.exp))
    try:
        return _vanishes_in_polynomial_ring(expr, calc)
    except NotAMonomialFraction:
        pass
    expr = sp.together(sp.expand(expr)) if not expr.is_Atom else expr
    num, _ = sp.fraction(expr)
    num = sp.expand(num)
    if num == 0:
        return True
    try:
        poly = sp.Poly(num, S.sigma)
    except sp.PolynomialError:
        return not _nonzero_at_a_rational_batch(num, calc)
    remainder = sp.rem(poly, sp.Poly(calc.sigma_relation, S.sigma))
    return sp.expand(remainder.as_expr()) == 0


class NotAMonomialFraction(ValueError):
    """The expression is not a polynomial over a monomial denominator (a radical, a function, a
    denominator with more than one term): vanishes() takes its general path instead."""


def _vanishes_in_polynomial_ring(expr, calc: DerivedCalculus) -> bool:
    """vanishes() for a rational expression whose denominators are all monomials, in SymPy's
    sparse polynomial ring over QQ (sigma first, lexicographic) instead of on expression trees.

    Same test as the general path: the numerator's remainder modulo sigma^2 - Var - eps, which
    has degree < 2 in sigma, is the zero polynomial.  The expression is brought over one common
    denominator bottom-up without cancelling common factors, so the numerator is exact up to a
    factor that is a monomial times a rational: no variable divides sigma^2 - Var - eps (it has
    the term sigma^2 alone), so that factor is not a zero divisor modulo it and the remainder is
    zero exactly when that of the cancelled numerator is.  A denominator with two terms or more
    could be a zero divisor (at eps = 0, m = 2 the relation factors), hence NotAMonomialFraction.
    About ten times faster than expanding the expression tree (the Hessian's curvature at m = 6:
    1.1-1.5 s against 11.5-12.5 s), because no intermediate sum is written out as a SymPy expression.
    """
    relation_rhs = calc.variance + calc.eps
    others = sorted((expr.free_symbols | relation_rhs.free_symbols) - {S.sigma}, key=str)
    ring = sp.polys.rings.ring([S.sigma] + others, sp.QQ, sp.polys.orderings.lex)[0]
    index = {symbol: i for i, symbol in enumerate([S.sigma] + others)}
    numerator, _ = _over_a_monomial(expr, ring, index)
    variance_and_eps, _ = _over_a_monomial(relation_rhs, ring, index)
    relation = ring.gens[0] ** 2 - variance_and_eps      # leading monomial sigma^2 in lex order
    return numerator.rem(relation) == 0


def _over_a_monomial(expr, ring, index) -> tuple:
    """(numerator, denominator) in ``ring`` with expr = numerator / denominator and the
    denominator a single term; NotAMonomialFraction where expr is not of that kind."""
    if expr.is_Symbol:
        return ring.gens[index[expr]], ring.one
    if expr.is_Rational:
        return ring.ground_new(sp.QQ(int(expr.p), int(expr.q))), ring.one
    if expr.is_Mul:
        numerator, denominator = ring.one, ring.one
        for factor in expr.args:
            n, d = _over_a_monomial(factor, ring, index)
            numerator, denominator = numerator * n, denominator * d
        return numerator, denominator
    if expr.is_Pow and expr.exp.is_Integer:
        n, d = _over_a_monomial(expr.base, ring, index)
        k = int(expr.exp)
        if k >= 0:
            return n ** k, d ** k
        if len(n) != 1:
            raise NotAMonomialFraction(f"{expr}: a denominator of {len(n)} terms")
        return d ** -k, n ** -k
    if expr.is_Add:
        # every term over the lcm of the terms' denominators, summed in one dict: adding the
        # terms one by one as ring elements would copy the growing sum at each term
        parts = [_over_a_monomial(term, ring, index) for term in expr.args]
        lcm = tuple(map(max, zip(*(d.LM for _, d in parts))))
        zero, total = ring.domain.zero, {}
        for n, d in parts:
            (mono_d, coeff_d), = d.terms()
            shift, scale = tuple(l - e for l, e in zip(lcm, mono_d)), ring.domain.one / coeff_d
            for mono, c in n.items():
                key = tuple(a + b for a, b in zip(mono, shift))
                total[key] = total.get(key, zero) + c * scale
        return ring.from_dict({k: c for k, c in total.items() if c}), ring.from_dict({lcm: ring.domain.one})
    raise NotAMonomialFraction(f"{type(expr).__name__} {expr}: not a rational function")


def _nonzero_at_a_rational_batch(expr, calc: DerivedCalculus) -> bool:
    point = {yk: sp.Rational(k * k + 1, k + 2) for k, yk in enumerate(calc.y, start=1)}
    point.update({gk: sp.Rational(2 * k - 3, 3) for k, gk in enumerate(calc.g, start=1)})
    point.update({S.gamma: sp.Rational(3, 2), S.beta: sp.Rational(1, 3), S.eps: sp.Rational(1, 7)})
    point[S.sigma] = sp.sqrt(calc.variance.xreplace(point) + calc.eps.xreplace(point))
    value = sp.N(expr.xreplace(point), 60)
    if value.free_symbols:
        raise ValueError(f"cannot decide: free symbols {value.free_symbols} remain")
    return abs(value) > sp.Float(10) ** -40


def matrices_agree(A: sp.Matrix, B: sp.Matrix, calc: DerivedCalculus) -> bool:
    return all(vanishes(a - b, calc) for a, b in zip(A, B))


def symbolic_batch_quantities(calc: DerivedCalculus, H=None, lam=None, point=None) -> Quantities:
    """The registry's quantities on the symbolic batch, measured by SymPy differentiation.

    With ``point`` (a substitution of every symbol by an exact number) the derivatives are
    evaluated there first, so that the statement's formulas combine numbers, not expressions.
    """
    H = calc.H if H is None else H
    at = (lambda e: e.xreplace(point)) if point else (lambda e: e)
    if not point:
        J, curvature = calc.jacobian, calc.curvature
    elif calc is derive_calculus(calc.size, calc.with_epsilon):   # the cached calculus: so are its values
        J, curvature = _derivatives_at(calc.size, calc.with_epsilon, _as_key(point))
    else:
        J, curvature = at(calc.jacobian), at(calc.curvature)
    H, g = at(H), at(calc.g)
    return channel_quantities(
        OPS, sp.Integer(calc.size), at(S.gamma), g, y=at(calc.y), beta=at(S.beta), eps=at(calc.eps),
        statistics=(at(calc.mu), at(S.sigma), at(calc.y_hat)), H=H, lam=at(lam) if lam is not None else None,
        measured=dict(grad_y_bn=J.T * g, jac_z_y=J, hess_bn=J.T * H * J + curvature))


def _as_key(point: dict) -> tuple:
    return tuple(sorted(point.items(), key=lambda item: str(item[0])))


@lru_cache(maxsize=256)
def _derivatives_at(size: int, with_epsilon: bool, point: tuple) -> tuple:
    """(J, curvature) of derive_calculus(size, with_epsilon) at an exact point (a sorted tuple of
    (symbol, number) pairs).  Cached: every variant checked at a size uses the same points
    (rational_batch_points is seeded by the size), and substituting numbers into these large
    expressions is most of the cost of checking one variant there."""
    calc, values = derive_calculus(size, with_epsilon), dict(point)
    return calc.jacobian.xreplace(values), calc.curvature.xreplace(values)


# ---------------------------------------------------------------------------------------------
# Exact rational batches (sigma rational), for the sizes where a symbolic slack is too large
# ---------------------------------------------------------------------------------------------

# One rational point u of {sum u = 0, sum u^2 = m} per size; others follow by reflection.
# (m = 3 has none: x^2 + 3y^2 = 6 has no rational solution; m = 3 is checked symbolically.)
_SPHERE_POINTS = {2: (1, -1), 4: (1, -1, 1, -1), 5: (sp.Rational(1, 2),) * 4 + (-2,), 6: (1, -1) * 3}


def rational_batch_points(calc: DerivedCalculus, count: int, seed: int = 0) -> list:
    """Exact rational batches y = mu + s u with sigma = s rational (eps = 0), or any rational y
    with sigma chosen rational and eps = sigma^2 - Var(y) >= 0 (eps > 0), plus rational g, H,
    gamma, lambda.  Returns substitution dicts for the symbols of calc."""
    import random
    rng = random.Random(seed)
    size = calc.size

    def r(k=12):
        return sp.Rational(rng.randint(-4 * k, 4 * k), k)

    points = []
    for _ in range(count):
        if calc.with_epsilon:
            y = [r() for _ in range(size)]
            var = sum((yi - sum(y) / size) ** 2 for yi in y) / size
            sigma = sp.Rational(int(sp.ceiling(sp.sqrt(var) * 8)) + rng.randint(1, 8), 8)
            extra = {S.eps: sigma**2 - var}
        elif size not in _SPHERE_POINTS:   # m = 3: sigma is an exact square root
            y = [r() for _ in range(size)]
            var = sum((yi - sum(y) / size) ** 2 for yi in y) / size
            sigma = sp.sqrt(var)
            extra = {}
        else:
            p = sp.Matrix(_SPHERE_POINTS[size])
            d = sp.Matrix([r() for _ in range(size)])
            d = d - sp.ones(size, 1) * sum(d) / size
            u = p - 2 * (p.T * d)[0, 0] / (d.T * d)[0, 0] * d if any(d) else p
            sigma = sp.Rational(rng.randint(1, 40), 8)
            mean = r()
            y = [mean + sigma * ui for ui in u]
            extra = {}
        point = {**dict(zip(calc.y, y)), S.sigma: sigma, **extra}
        point.update({gk: r() for gk in calc.g})
        point.update({h: r() for h in S.batch_symbols(size).h})
        point.update({S.gamma: r() or sp.Integer(1), S.beta: r(), S.lam: sp.Rational(rng.randint(1, 24), 8)})
        points.append(point)
    return points


# ---------------------------------------------------------------------------------------------
# General m: invariants
# ---------------------------------------------------------------------------------------------

def invariant_quantities(with_epsilon: bool) -> Quantities:
    """Registry quantities for a general batch size m, through the derived closed forms."""
    ops = S.invariant_ops(with_epsilon)
    return channel_quantities(ops, S.m, S.gamma, ops.basis("g"), beta=S.beta,
                              eps=S.eps if with_epsilon else sp.Integer(0),
                              statistics=(None, S.sigma, ops.basis("yhat")), H=S.SYMBOLIC_H, lam=S.lam)


# Quantities with no closed form in the invariants, and why (theory.verdicts leaves a variant
# that needs one undetermined; the numeric layer decides it).
_TRUST_REGION = ("the maxima over X are trust-region problems with no closed form in the invariants; decided "
                 "numerically with certified maximisers (numeric layer)")
NO_CLOSED_FORM = {"betaW_max": _TRUST_REGION, "betaW_hat_max": _TRUST_REGION, "betaW_hat0_max": _TRUST_REGION}


def invariants_of_batch(calc: DerivedCalculus, H=None, point=None) -> dict:
    """Values of the general-m invariant symbols on a fully symbolic batch, or at an exact point
    (to check that the general-m slack is the m-specific one)."""
    at = (lambda e: e.xreplace(point)) if point else (lambda e: e)
    y_hat, g, H = at(calc.y_hat), at(calc.g), at(calc.H if H is None else H)
    one = sp.ones(calc.size, 1)
    vectors = {"one": one, "yhat": y_hat, "g": g}
    values = {S.m: sp.Integer(calc.size), S.g_sq: OPS.dot(g, g), S.g_one: OPS.total(g),
              S.gamma: at(S.gamma), S.sigma: at(S.sigma), S.lam: at(S.lam), S.eps: at(calc.eps),
              S.g_yhat: OPS.dot(g, y_hat),
              S.rho: OPS.dot(y_hat, y_hat) / calc.size}
    for (a, b), sym in S.H_forms.items():
        values[sym] = OPS.bilinear(H, vectors[a], vectors[b])
    return values


def general_slack(variant, with_epsilon: bool):
    """The slack (theory.vocab.Relation.slack) of a bn-channel/weight-space variant, general m."""
    q = invariant_quantities(with_epsilon)
    return sp.expand(variant.relation.slack(variant.lhs(q), variant.rhs(q)))
