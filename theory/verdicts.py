"""Exact verdicts: the sign of each variant's slack, decided symbolically where it can be.

For a variant of the BatchNorm-channel or weight-space setting the slack is an exact
expression in the invariants of theory.symbols (theory.derive.general_slack).  The decision:

1. an extra hypothesis that is an equation (``constraint``) is solved for one H-form and
   substituted;
2. slack identically 0                                  -> ``equality``;
3. the factors of the slack have signs SymPy can prove   -> ``holds`` or ``violated`` (with the
   condition under which it fails: the non-vanishing of the other factors);
4. otherwise exact sample points of the invariant domain (rational invariants satisfying the
   Gram constraints, signs decided at 60 digits) look for a point of negative slack
   -> ``violated`` with that witness, else ``undetermined`` with the reason.

Statements of another setting (Lemma 4.5, Definition 2.1, Observation 4.3, the identities of
Facts C.1/C.2 and the Hessian) are decided by their own exact checks below.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from functools import lru_cache

import sympy as sp

from theory import derive, symbols as S
from theory.statements import STATEMENTS, all_variants
from theory.vocab import EpsilonScope, Kind, Relation, Setting, Verdict

GENERAL_M = ("general m (invariants of span{1, y_hat, g}; the closed forms used are checked "
             "against SymPy differentiation of the definition for m = 2..6)")
SMALL_M = "m = 2..6 (fully symbolic batch, SymPy differentiation of the definition)"
# Exact sample points tried before a sign is called undetermined.
WITNESS_SAMPLES = 400
# Digits for deciding the sign of an algebraic number at a sample point.
SIGN_DIGITS = 60


@dataclass(frozen=True)
class SymbolicVerdict:
    verdict: Verdict
    slack: str = ""            # LaTeX of the exact slack (RHS - LHS; LHS - RHS for identities)
    condition: str = ""        # when it fails (violated) or the hypothesis it needs (conditional)
    reason: str = ""
    covers: str = ""
    witness: dict = field(default_factory=dict)   # exact point (invariants) of negative slack

    def __post_init__(self):
        object.__setattr__(self, "verdict", Verdict(self.verdict))

    def to_dict(self):
        return {"verdict": self.verdict.value, "slack": self.slack, "condition": self.condition,
                "reason": self.reason, "covers": self.covers,
                "witness": {k: str(v) for k, v in self.witness.items()}}


# ---------------------------------------------------------------------------------------------
# Sign analysis
# ---------------------------------------------------------------------------------------------

def _sign_of_factor(f):
    """+1, -1, or None (unknown) for a factor, under the symbols' assumptions and m >= 2."""
    if f.is_positive:
        return 1
    if f.is_negative:
        return -1
    free = f.free_symbols
    if free == {S.m}:
        if sp.solveset(f <= 0, S.m, sp.Interval(2, sp.oo)) is sp.S.EmptySet:
            return 1
        if sp.solveset(f >= 0, S.m, sp.Interval(2, sp.oo)) is sp.S.EmptySet:
            return -1
    return None


def _factor_signs(expr):
    """(overall sign or None, [(factor, exponent, sign)]) of a factored expression.

    Even integer powers are >= 0 (sign 0 in the list: zero where the base is); a factor whose
    sign cannot be proved makes the overall sign unknown (None).
    """
    sign, details, known = 1, [], True
    for arg in sp.Mul.make_args(sp.factor(expr)):
        base, exp = arg.as_base_exp()
        if base.is_number and exp == 1:
            sign *= 1 if base > 0 else -1
            continue
        if exp.is_integer and exp % 2 == 0:
            details.append((base, exp, 0))
            continue
        s = _sign_of_factor(base)
        if s is None:
            known = False
        else:
            sign *= s
        details.append((base, exp, s))
    return (sign if known else None), details


def _nonvanishing_condition(details):
    # factors of proved strict sign (s = +-1) or assumed non-zero (gamma) cannot vanish
    parts = [sp.latex(f) for f, k, s in details
             if s not in (1, -1) and not f.is_nonzero and f.free_symbols]
    return " \\neq 0,\\ ".join(parts) + (" \\neq 0" if parts else "")


def _random_invariant_point(rng, with_epsilon, strict_zero_g=False):
    """A rational point of the invariant domain: realisable by a batch with m >= 3."""
    def r(lo=-3, hi=3):
        return sp.Rational(rng.randint(lo * 8, hi * 8), 8)

    m = rng.choice([3, 4, 5, 6, 8, 16, 64])
    rho = sp.Rational(rng.randint(1, 16), 16) if with_epsilon else sp.Integer(1)
    g_one, g_yhat = r(), r()
    if strict_zero_g:
        g_one = g_yhat = sp.Integer(0)
    # Gram constraint: ||g||^2 >= <1,g>^2/m + <y_hat,g>^2/(m rho); the excess is ||g_perp||^2
    excess = sp.Integer(0) if strict_zero_g else sp.Rational(rng.randint(0, 40), 8)
    g_sq = g_one**2 / m + g_yhat**2 / (m * rho) + excess
    point = {S.m: sp.Integer(m), S.rho: rho, S.g_one: g_one, S.g_yhat: g_yhat, S.g_sq: g_sq,
             S.gamma: r(-4, 4) or sp.Integer(1), S.sigma: sp.Rational(rng.randint(1, 32), 8),
             S.lam: sp.Rational(rng.randint(1, 32), 8), S.beta: r(), S.eps: sp.Integer(0)}
    for sym in S.H_forms.values():
        point[sym] = r()
    return point


def _find_witness(expr, with_epsilon, strict):
    rng = random.Random(20181203)  # fixed: verdicts are reproducible
    candidates = []
    if strict:
        candidates.append(_random_invariant_point(rng, with_epsilon, strict_zero_g=True))
    candidates += [_random_invariant_point(rng, with_epsilon) for _ in range(WITNESS_SAMPLES)]
    for point in candidates:
        value = expr.xreplace(point)
        if value.free_symbols or not value.is_finite:
            continue
        numeric = sp.N(value, SIGN_DIGITS)
        if numeric < 0 or (strict and value == 0):
            return {str(k): v for k, v in point.items() if k in expr.free_symbols or k == S.m}, value
    return None, None


def _eliminate_constraint(variant, slack, with_epsilon):
    """Solve the variant's equation hypothesis for one H-form and substitute it."""
    if variant.constraint is None:
        return slack, ""
    q = derive.invariant_quantities(with_epsilon)
    c = sp.expand(variant.constraint(q))
    for sym in (S.H_forms[("g", "g")], S.H_forms[("one", "one")]):
        if sp.degree(c, sym) == 1:
            solution = sp.solve(c, sym)[0]
            return sp.factor(sp.together(slack.xreplace({sym: solution}))), \
                f"{sp.latex(sym)} = {sp.latex(solution)}"
    raise ValueError(f"cannot eliminate the constraint of {variant.name}")


def decide_invariant_variant(statement, variant) -> SymbolicVerdict:
    with_eps = variant.epsilon is EpsilonScope.POSITIVE
    mismatched = [m for m in SMALL_SIZES if not slack_matches_general_m(statement, variant, m)]
    if mismatched:
        return SymbolicVerdict(Verdict.UNDETERMINED, covers="-", reason=(
            f"INTERNAL DISAGREEMENT: the general-m slack differs from the slack derived on batches of "
            f"size {mismatched}; no verdict is given"))
    slack = derive.general_slack(variant, with_eps)
    slack, eliminated = _eliminate_constraint(variant, slack, with_eps)
    slack = sp.factor(sp.together(slack))
    latex = sp.latex(slack)
    covers = (GENERAL_M + "; the general-m slack equals the slack derived by SymPy on batches of size "
              "m = 2..6 (symbolic for m = 2, and m = 3 where H does not enter; exact rational batches "
              "otherwise)" + (f"; hypothesis substituted: ${eliminated}$" if eliminated else ""))
    if slack == 0:
        return SymbolicVerdict(Verdict.EQUALITY, latex, covers=covers,
                               reason="the slack is identically 0")
    strict = variant.relation is Relation.LT
    if variant.relation is Relation.EQ:
        # any point where the residual is non-zero is a counterexample: search on -residual^2
        witness, _ = _find_witness(-(slack**2), with_eps, False)
        return SymbolicVerdict(Verdict.VIOLATED, latex, condition=f"${latex} \\neq 0$", covers=covers,
                               reason="the residual is not identically 0", witness=witness or {})
    sign, details = _factor_signs(slack)
    # The verdict of a proved sign is the relation's (vocab): a strict '<' with a slack that is
    # >= 0 but can be 0 is violated where it vanishes.
    if sign == 1 and not strict:
        return SymbolicVerdict(variant.relation.verdict_of_sign(1), latex, covers=covers, reason="every factor of the slack has a proved sign; the product is >= 0")
    if sign == -1 or sign == 1 and strict:
        witness, value = _find_witness(slack, with_eps, strict)
        when = _nonvanishing_condition(details)
        return SymbolicVerdict(
            variant.relation.verdict_of_sign(sign if sign == -1 else 0), latex, condition=(f"${when}$" if sign == -1 else "slack can be 0: $" + when + "$ fails"),
            covers=covers, witness=witness or {},
            reason="every factor of the slack has a proved sign; the product is <= 0" if sign == -1
            else "strict inequality, slack >= 0 with equality possible")
    witness, value = _find_witness(slack, with_eps, strict)
    if witness:
        return SymbolicVerdict(Verdict.VIOLATED, latex, condition=f"fails where ${latex} < 0$", covers=covers,
                               witness=witness,
                               reason="the slack changes sign; an exact point of negative slack was found")
    return SymbolicVerdict(Verdict.UNDETERMINED, latex, covers=covers,
                           reason=f"sign not proved, and no negative point among {WITNESS_SAMPLES} exact samples")


# ---------------------------------------------------------------------------------------------
# Identities checked on fully symbolic batches (m = 2..6)
# ---------------------------------------------------------------------------------------------

SMALL_SIZES = (2, 3, 4, 5, 6)


def identity_holds_on_batch(statement, variant, size) -> bool:
    """printed side == measured side on a fully symbolic batch of this size, exactly.

    An identity about the Hessian matrix (it requires ``hess_bn``) is affine in H: the H-linear
    parts agree iff the Jacobians agree (J = (gamma/sigma) P), so it is compared at H = 0 plus
    the Jacobian check.
    """
    calc = derive.derive_calculus(size, variant.epsilon is EpsilonScope.POSITIVE)
    if "hess_bn" in variant.requires:
        q0 = derive.symbolic_batch_quantities(calc, H=sp.zeros(size, size))
        jac_ok = derive.matrices_agree(calc.jacobian, (S.gamma / S.sigma) * _projector(calc), calc)
        return jac_ok and derive.matrices_agree(variant.lhs(q0), variant.rhs(q0), calc)
    q = derive.symbolic_batch_quantities(calc)
    lhs, rhs = variant.lhs(q), variant.rhs(q)
    if isinstance(lhs, sp.MatrixBase):
        return derive.matrices_agree(lhs, rhs, calc)
    return derive.vanishes(Relation.EQ.slack(lhs, rhs), calc)


def _projector(calc):
    n = calc.size
    return sp.eye(n) - sp.ones(n, n) / n - calc.y_hat * calc.y_hat.T / n


# Sizes whose slack is compared symbolically (small expressions); larger sizes are compared at
# exact rational batches (sigma rational), RATIONAL_POINTS of them.
RATIONAL_POINTS = 6


def _slack_of(variant, q):
    return variant.relation.slack(variant.lhs(q), variant.rhs(q))


def slack_matches_general_m(statement, variant, size) -> bool:
    """The general-m slack, evaluated on a batch of this size, is that batch's exact slack
    computed from SymPy's derivatives of the definition.

    m = 2 (and m = 3 when H does not enter): fully symbolic.  Slacks are affine in H, so both
    sides are compared at H = 0 and at each symmetric unit matrix E_ij, which proves agreement
    for a symbolic H.  Otherwise: RATIONAL_POINTS exact batches (every symbol rational, sigma
    rational or an exact square root), both slacks evaluated exactly.
    """
    with_eps = variant.epsilon is EpsilonScope.POSITIVE
    calc = derive.derive_calculus(size, with_eps)
    general = derive.general_slack(variant, with_eps)
    uses_H = any(sym in general.free_symbols for sym in S.H_forms.values())
    if size == 2 or (size == 3 and not uses_H):
        basis = [sp.zeros(size, size)]
        if uses_H:
            for i in range(size):
                for j in range(i, size):
                    E = sp.zeros(size, size)
                    E[i, j] = E[j, i] = 1
                    basis.append(E)
        for E in basis:
            exact = _slack_of(variant, derive.symbolic_batch_quantities(calc, H=E, lam=S.lam))
            inv = derive.invariants_of_batch(calc, H=E)
            if not derive.vanishes(exact - general.xreplace(inv), calc):
                return False
        return True
    for point in derive.rational_batch_points(calc, RATIONAL_POINTS, seed=size):
        exact = _slack_of(variant, derive.symbolic_batch_quantities(calc, lam=S.lam, point=point))
        at_batch = general.xreplace(derive.invariants_of_batch(calc, point=point))
        if sp.expand(sp.radsimp(exact - at_batch)) != 0:
            return False
    return True


# ---------------------------------------------------------------------------------------------
# Per-statement decisions
# ---------------------------------------------------------------------------------------------

def _decide_identity(statement, variant) -> SymbolicVerdict:
    failures = [m for m in SMALL_SIZES if not identity_holds_on_batch(statement, variant, m)]
    if failures:
        return SymbolicVerdict(Verdict.VIOLATED, covers=SMALL_M, condition=f"fails for m in {failures}",
                               reason="printed and derived expressions differ on a symbolic batch")
    return SymbolicVerdict(Verdict.EQUALITY, covers=SMALL_M + "; general m: the printed formula is the closed "
                           "form of theory.bn, derived by differentials for every m",
                           reason="printed expression equals SymPy's derivative of the definition exactly")


def _decide_lemma(statement, variant) -> SymbolicVerdict:
    from theory import lemma45
    if "bn_opt_dist_sq" not in variant.requires:
        # Only W_0 and W* enter: decide in the Gram invariants of the pair, any dimension.
        q = lemma45.gram_quantities()
        slack = sp.factor(sp.together(_slack_of(variant, q)))
        if slack == 0:
            return SymbolicVerdict(Verdict.EQUALITY, "0", covers="any dimension (Gram invariants of W_0, W*)",
                                   reason="the slack is identically 0 in the Gram invariants")
        return SymbolicVerdict(Verdict.VIOLATED, sp.latex(slack), condition=f"${sp.latex(slack)} \\neq 0$",
                               covers="any dimension (Gram invariants of W_0, W*)",
                               reason="the slack is not identically 0 in the Gram invariants")
    cx = lemma45.minimal_counterexample(variant)
    if cx is None:
        return SymbolicVerdict(Verdict.UNDETERMINED, covers="one neuron, identity activation, 3 data points in R^2",
                               reason="no violation on the exact toy-model search range")
    return SymbolicVerdict(
        Verdict.VIOLATED, sp.latex(cx.slack), condition="W* is not on the BN optimum ray (standard and BN optima point in different directions)",
        covers="one neuron, identity activation, 3 data points in R^2 (exact rationals)",
        reason="exact optimum sets: the BN optima form the ray of the centred least-squares direction, "
               "which does not contain a multiple of the standard optimum W*",
        witness=cx.as_witness())


def _decide_ics(statement, variant) -> SymbolicVerdict:
    """Evaluate the variant on gradients that are unknown functions of the printed argument lists."""
    from theory.ops import SympyOps
    from theory.quantities import Quantities
    from theory.statements import ics_argument_lists
    sizes = range(2, 9)
    for k in sizes:
        values = {}
        for layer, (g_name, gp_name) in ((1, ("G_first", "G_first_prime")), (2, ("G", "G_prime"))):
            grad = sp.Function(f"grad_W{layer}")
            before, after = ics_argument_lists(layer, k)
            values[g_name] = sp.Matrix([grad(*before)])
            values[gp_name] = sp.Matrix([grad(*after)])
        q = Quantities(SympyOps(), values)
        residual = sp.simplify(variant.lhs(q) - variant.rhs(q))
        if residual != 0:
            return SymbolicVerdict(Verdict.VIOLATED, sp.latex(residual), condition=f"${sp.latex(residual)} \\neq 0$",
                                   covers=f"networks of {k} layers",
                                   reason="G and G' are evaluated at different parameter lists")
    return SymbolicVerdict(Verdict.EQUALITY, "0", covers=f"networks of {sizes.start}..{sizes.stop - 1} layers",
                           reason="G' of the first layer is evaluated at the same parameters as G")


def decide(statement, variant) -> SymbolicVerdict:
    if variant.relation is Relation.DEFINITION:
        return SymbolicVerdict(Verdict.DEFINITION, covers="-", reason="a definition has no truth value")
    if statement.setting is Setting.NETWORK:
        return _decide_ics(statement, variant)
    if statement.setting is Setting.TOY_REGRESSION:
        return _decide_lemma(statement, variant)
    if statement.kind in (Kind.IDENTITY, Kind.EXISTENCE):
        return _decide_identity(statement, variant)
    without = [name for name in variant.requires if name in derive.NO_CLOSED_FORM]
    if without:
        return SymbolicVerdict(Verdict.UNDETERMINED, covers="-",
                               reason="; ".join(dict.fromkeys(derive.NO_CLOSED_FORM[name] for name in without)))
    return decide_invariant_variant(statement, variant)


@lru_cache(maxsize=1)
def symbolic_verdicts() -> dict:
    """{(statement id, variant name): SymbolicVerdict} for the whole registry."""
    return {(s.id, v.name): decide(s, v) for s, v in all_variants(STATEMENTS)}


def load_symbolic_verdicts() -> dict:
    """The cached verdicts written by `python -m theory.docs` (package data, always installed).

    tests/test_docs_fresh.py fails when the cache differs from a fresh computation.
    """
    import json
    from pathlib import Path
    cache = Path(__file__).resolve().parent / "data" / "symbolic_verdicts.json"
    if not cache.exists():
        raise FileNotFoundError(f"{cache} is missing: regenerate it with `python -m theory.docs`")
    raw = json.loads(cache.read_text())
    out = {}
    for key, d in raw.items():
        sid, vname = key.split("::")
        out[(sid, vname)] = SymbolicVerdict(d["verdict"], d["slack"], d["condition"], d["reason"],
                                            d["covers"], d["witness"])
    return out
