"""Every variant's LaTeX says what is evaluated.

The LaTeX of each variant is translated by the small reader below (a fixed table of the
notation, transcribed independently from the registry's readings: v = nabla_y L_hat, P, M,
g_bar, kappa, ...) into SymPy, and both sides are evaluated at exact rational batches and
compared with the registry's own lhs/rhs.  A wrong coefficient in either the LaTeX or the
lambda changes the value at a generic rational point, so this test fails; the two tests at
the end show it on one mutated LaTeX and one mutated lambda.

Clauses after the relation: ``\\rho = ...`` / ``k = ...`` define a name the LaTeX uses;
``\\sigma = \\sqrt{...}`` and ``v = ...`` restate a name already defined and are checked; the
hypothesis ``\\text{ if } a = b`` must vanish exactly where the variant's constraint does.
"""
from __future__ import annotations

import re
from dataclasses import replace

import pytest
import sympy as sp

from theory import derive, lemma45, statements as st
from theory.quantities import Quantities
from theory.vocab import EpsilonScope, Relation

# Digits for comparing two exact values (sigma may be an exact square root).
DIGITS = 60
# Two exact values of size O(1..10^3) agree when their difference is below 10^-40 at 60 digits.
AGREE = sp.Float(10) ** -40


class Arr:
    """A SymPy matrix in the reader's arithmetic: a 1 x 1 product is the scalar it holds."""

    def __init__(self, M):
        self.M = sp.Matrix(M)

    @staticmethod
    def _wrap(M):
        return M[0, 0] if M.shape == (1, 1) else Arr(M)

    @property
    def T(self):
        return Arr(self.M.T)

    def __mul__(self, other):
        return self._wrap(self.M * (other.M if isinstance(other, Arr) else other))

    def __rmul__(self, other):
        return Arr(other * self.M)

    def __truediv__(self, s):
        return Arr(self.M / s)

    def _like(self, other):
        """A scalar added to a vector is added to every entry (z = gamma y_hat + beta)."""
        return other.M if isinstance(other, Arr) else other * sp.ones(*self.M.shape)

    def __add__(self, other):
        return Arr(self.M + self._like(other))

    __radd__ = __add__

    def __sub__(self, other):
        return Arr(self.M - self._like(other))

    def __neg__(self):
        return Arr(-self.M)


def dot(a, b):
    return (a.M.T * b.M)[0, 0]


def norm_sq(a):
    return dot(a, a)


# LaTeX notation -> reader names, longest first.  Each line is the notation of the registry's
# readings, written down here once more.
NAMES = [
    (r"\frac{\partial^2\widehat L}{\partial y\,\partial y}", " Hhat "),
    (r"\frac{\partial z}{\partial y}", " J "),
    (r"\max_{\|X\|\le\lambda}\hat\beta_0(X)", " betaWhat0 "),
    (r"\max_{\|X\|\le\lambda}\hat\beta(X)", " betaWhat "),
    (r"\nabla_{(W,\gamma,\beta)}\widehat L(W^*,\sigma^*,\mu^*)", " gradstar "),
    (r"\max_{\|X\|\le\lambda}\beta(X)", " betaW "),
    (r"\operatorname{dist}(W_0, \widehat{\mathcal W}^*)", " dist "),
    (r"\nabla_{y}\widehat{L}", " v "), (r"\nabla_y\widehat L", " v "),
    (r"\mathrm{Var}(y)", " var "), (r"\mathrm{ICS}_{t,i}", " ICS "), (r"\mathrm{ICS}_{t,1}", " ICS1 "),
    (r"G'_{t,i}", " Gp "), (r"G_{t,i}", " G "),
    (r"\widehat H", " Hhat "), (r"\hat g_j", " gWhat "), (r"g_j", " gW "), (r"\mu_g", " mug "),
    (r"\mu_j", " mu "), (r"\sigma_j", " sigma "), (r"\hat y", " yhat "), (r"\bar g", " gbar "),
    (r"\mathbf{1}", " one "), (r"\mathbf 1", " one "), (r"W_0", " W0 "), (r"W^*_b", " Wstarb "), (r"W^*_c", " Wstarc "), (r"W^*", " Wstar "),
    (r"\gamma", " gamma "), (r"\sigma", " sigma "), (r"\lambda", " lam "), (r"\rho", " rho "),
    (r"\kappa", " kappa "), (r"\beta", " beta "), (r"\epsilon", " eps "),
    ("PHP", " P H P "), ("Hv", " H v "), ("Hg", " H g "),
]
NOISE = [r"\left", r"\right", r"\Big", r"\big", r"\,", r"\ (\text{the batch std})"]


def _group(s, i):
    """(content, end) of the brace group or single token starting at s[i]."""
    while s[i] == " ":
        i += 1
    if s[i] == "{":
        depth = 0
        for j in range(i, len(s)):
            depth += {"{": 1, "}": -1}.get(s[j], 0)
            if depth == 0:
                return s[i + 1:j], j + 1
    if s[i] == "\\":
        m = re.match(r"\\[a-zA-Z]+\s*[a-zA-Z0-9]?", s[i:])
        return m.group(0), i + m.end()
    return s[i], i + 1


def _expand_macros(s):
    """\\frac, \\sqrt, \\langle, \\| ... \\| into reader syntax."""
    s = s.replace(r"\tfrac", r"\frac")
    while r"\frac" in s:
        i = s.index(r"\frac")
        num, j = _group(s, i + 5)
        den, k = _group(s, j)
        s = s[:i] + f" (({num})/({den})) " + s[k:]
    while r"\sqrt" in s:
        i = s.index(r"\sqrt")
        arg, j = _group(s, i + 5)
        s = s[:i] + f" sqrt({arg}) " + s[j:]
    s = re.sub(r"\\langle(.*?)\\rangle", r" dot(\1) ", s)
    s = re.sub(r"\\\|(.*?)\\\|\^2", r" norm_sq(\1) ", s)
    s = re.sub(r"\\\|(.*?)\\\|_2", r" sqrt(norm_sq(\1)) ", s)
    return s


def to_python(latex: str) -> str:
    """One side of a relation, in reader syntax with explicit products."""
    s = latex
    for tex, name in NAMES:
        s = s.replace(tex, name)
    for noise in NOISE:
        s = s.replace(noise, "")
    s = _expand_macros(s)
    s = s.replace("[", "(").replace("]", ")").replace("^", "**").replace(r"**\top", ".T")
    tokens = re.findall(r"[A-Za-z_][A-Za-z_0-9]*(?:\.T)?|\d+|\*\*|[-+*/(),.=<>]", s)
    out = []
    for tok in tokens:
        if out and (re.match(r"[A-Za-z_0-9)]", out[-1][-1]) and out[-1] not in ("dot", "sqrt", "norm_sq")) \
                and (re.match(r"[A-Za-z_0-9(]", tok)):
            out.append("*")
        out.append(tok)
    return " ".join(out)


def evaluate(latex: str, names: dict):
    return eval(to_python(latex), {"dot": dot, "norm_sq": norm_sq, "sqrt": sp.sqrt}, dict(names))


RELATIONS = [(r"\le", Relation.LE), ("<", Relation.LT), ("=", Relation.EQ)]


def split_relation(main: str):
    """(relation, [sides]) of the main claim; a chain a = b = c gives three sides."""
    for token, relation in RELATIONS:
        depth, parts, last, i = 0, [], 0, 0
        while i < len(main):
            c = main[i]
            depth += {"{": 1, "(": 1, "[": 1, "}": -1, ")": -1, "]": -1}.get(c, 0)
            if depth == 0 and main.startswith(token, i) and not main[i + len(token):i + len(token) + 1].isalpha() \
                    and (token != "<" or not main.startswith(r"\le", i - 1)):
                parts.append(main[last:i])
                last = i + len(token)
                i = last
                continue
            i += 1
        if parts:
            return relation, parts + [main[last:]]
    raise AssertionError(f"no relation in {main!r}")


def read_variant(variant):
    """(assignments, main claim, definition clauses, hypothesis, scope) of a variant's LaTeX."""
    latex = variant.latex
    scope = None
    if r"\ \text{under}\ \epsilon > 0" in latex:
        latex, scope = latex.replace(r"\ \text{under}\ \epsilon > 0", ""), EpsilonScope.POSITIVE
    hypothesis = None
    if r"\ \text{ if } " in latex:
        latex, hypothesis = latex.split(r"\ \text{ if } ")
    assignments = []
    if r"\implies" in latex:
        before, latex = latex.split(r"\implies")
        assignments = [a.strip() for a in before.split(r",\ ")]
    clauses = re.split(r",\\quad |,\\ ", latex)
    return assignments, clauses[0], clauses[1:], hypothesis, scope


# ---------------------------------------------------------------------------------------------
# Exact instances with the notation of the readings
# ---------------------------------------------------------------------------------------------

def _bn_names(q):
    m = q.m
    one = Arr(sp.ones(m, 1))
    yhat, g, v = Arr(q.y_hat), Arr(q.g), Arr(q.grad_y_bn)
    eye, M = Arr(sp.eye(m)), one * one.T
    names = dict(m=m, gamma=q.gamma, sigma=q.sigma, beta=q.beta, eps=q.eps, lam=q.lam, mu=q.mu, y=Arr(q.y),
                 g=g, yhat=yhat, one=one, v=v, J=Arr(q.jac_z_y), Hhat=Arr(q.hess_bn), H=Arr(q.H), I=eye, M=M,
                 gW=q.gW_max, gWhat=q.gW_hat_max, betaW=q.betaW_max, betaWhat=q.betaW_hat_max,
                 betaWhat0=q.betaW_hat0_max)
    names["P"] = eye - (yhat * yhat.T) / m - M / m
    names["gbar"] = g - one * (dot(one, g) / m)
    names["mug"] = dot(one, g) / m
    names["kappa"] = dot(g, yhat) * norm_sq(v) / (m * q.gamma)
    names["var"] = norm_sq(Arr(q.y) - one * q.mu) / m
    return names


def _bn_points(with_eps):
    calc = derive.derive_calculus(4, with_eps)
    for point in derive.rational_batch_points(calc, 2, seed=7):
        q = derive.symbolic_batch_quantities(calc, lam=derive.S.lam, point=point)
        yield q.with_values(betaW_max=sp.Rational(37, 3), betaW_hat_max=sp.Rational(-5, 7),
                            betaW_hat0_max=sp.Rational(2, 9))


def _toy_points():
    for X, t, W0 in (([[1, 0], [0, 1], [1, 1]], [1, 0, 0], [sp.Rational(1, 2), sp.Rational(3, 2)]),
                     ([[2, 1], [0, 1], [1, 3]], [1, 2, -1], [sp.Rational(-1, 3), 2])):
        q = lemma45.exact_quantities(X, t, W0)
        yield q, dict(W0=Arr(q.W0), Wstar=Arr(q.W_star), Wstarb=Arr(q.W_star_bias), Wstarc=Arr(q.W_star_centred),
                      dist=sp.sqrt(q.bn_opt_dist_sq), gradstar=Arr(q.bn_grad_at_w_star),
                      zero=Arr(sp.zeros(*q.bn_grad_at_w_star.shape)))


def _network_points():
    for seed in (1, 2):
        vec = [Arr(sp.Matrix([sp.Rational(seed * k + j, 3) for j in range(4)])) for k in range(1, 5)]
        q = Quantities(derive.OPS, dict(G=vec[0].M, G_prime=vec[1].M, G_first=vec[2].M, G_first_prime=vec[2].M))
        names = dict(G=vec[0], Gp=vec[1], ICS1=sp.sqrt(norm_sq(vec[2] - vec[2])))
        names["ICS"] = sp.sqrt(norm_sq(vec[0] - vec[1]))
        yield q, names


def instances(statement, variant):
    setting = st.setting_of(statement, variant).value
    if setting == "toy-regression":
        return list(_toy_points())
    if setting == "network":
        return list(_network_points())
    return [(q, _bn_names(q)) for q in _bn_points(variant.epsilon is EpsilonScope.POSITIVE)]


def _value(x):
    return x.M if isinstance(x, Arr) else x


def agree(a, b) -> bool:
    a, b = _value(a), _value(b)
    if isinstance(a, sp.MatrixBase) or isinstance(b, sp.MatrixBase):
        return sp.Matrix(a).shape == sp.Matrix(b).shape and all(agree(x, y) for x, y in zip(a, b))
    return abs(sp.N(sp.sympify(a) - sp.sympify(b), DIGITS)) < AGREE


def latex_mismatches(statement, variant) -> list:
    """Where the variant's LaTeX and its lhs/rhs disagree (empty: they say the same)."""
    assignments, main, clauses, hypothesis, scope = read_variant(variant)
    problems = []
    if scope is not None and scope is not variant.epsilon:
        problems.append(f"LaTeX says epsilon scope {scope}, the variant {variant.epsilon}")
    relation, sides = split_relation(main)
    expected = Relation.EQ if variant.relation is Relation.DEFINITION else variant.relation
    if relation is not expected:
        problems.append(f"LaTeX relation {relation.value}, variant {variant.relation.value}")
    for q, names in instances(statement, variant):
        names = dict(names)
        for clause in clauses:                       # definitions first (rho, k), restatements after
            name, expr = clause.split("=", 1)
            key = to_python(name).strip()
            value = evaluate(expr, names)
            if key in names and not agree(names[key], value):
                problems.append(f"clause {clause!r} does not hold")
            names[key] = value
        for assignment in assignments:               # the witness of an existence claim
            name, expr = assignment.split("=", 1)
            names[to_python(name).strip()] = evaluate(expr, names)
        if "gamma" in names and "yhat" in names:
            names["z"] = names["yhat"] * names["gamma"] + names["one"] * names["beta"]
        values = [evaluate(side, names) for side in sides]
        if variant.relation is Relation.DEFINITION:  # 'name = formula': the measured value is the formula
            if not agree(variant.lhs(q), values[-1]):
                problems.append("definition: lhs differs from the LaTeX formula")
            continue
        if not agree(variant.lhs(q), values[0]):
            problems.append(f"lhs differs from the LaTeX left side {sides[0]!r}")
        if not agree(variant.rhs(q), values[-1]):
            problems.append(f"rhs differs from the LaTeX right side {sides[-1]!r}")
        for middle in values[1:-1]:
            if not agree(values[0], middle):
                problems.append("a middle term of the chain differs from its left side")
        if hypothesis is not None and r"\le" in hypothesis:   # 'a <= b': the variant's condition is b - a (>= 0)
            a, b = (evaluate(side, names) for side in hypothesis.split(r"\le"))
            if variant.condition is None or not variant.condition_allows_zero or not agree(variant.condition(q), b - a):
                problems.append("the hypothesis in the LaTeX is not the variant's condition (>= 0)")
        elif hypothesis is not None:
            a, b = (evaluate(side, names) for side in hypothesis.split("="))
            scale = norm_sq(names["v"]) * norm_sq(names["g"])
            if not agree(variant.constraint(q), (a - b) * scale):
                problems.append("the hypothesis in the LaTeX is not the variant's constraint")
    return problems


@pytest.mark.parametrize("statement,variant", list(st.all_variants()),
                         ids=[f"{s.id}:{v.name}" for s, v in st.all_variants()])
def test_variant_latex_says_what_is_evaluated(statement, variant):
    assert latex_mismatches(statement, variant) == []


def test_a_wrong_coefficient_in_the_latex_is_caught():
    s = st.get("thm-4.1")
    wrong = replace(s.variant("printed"), latex=s.variant("printed").latex.replace(r"\frac{1}{\sqrt m}", r"\frac{1}{m}"))
    assert wrong.latex != s.variant("printed").latex
    assert any("rhs differs" in p for p in latex_mismatches(s, wrong))


def test_a_wrong_coefficient_in_the_lambda_is_caught():
    s = st.get("thm-4.4")
    printed = s.variant("printed")
    wrong = replace(printed, rhs=lambda q: printed.rhs(q) + q.lam**2 * st.g_dot_yhat(q) ** 2 * (q.gamma**2 / q.sigma**2) / 2)
    assert any("rhs differs" in p for p in latex_mismatches(s, wrong))


def test_a_wrong_coefficient_in_the_exact_epsilon_identity_is_caught():
    s = st.get("thm-4.2")
    exact = s.variant("exact-epsilon")
    wrong = replace(exact, latex=exact.latex.replace(r"\frac{3}{m}", r"\frac{2}{m}"))
    assert wrong.latex != exact.latex
    assert any("rhs differs" in p for p in latex_mismatches(s, wrong))


def test_a_quadratic_form_hypothesis_that_is_not_the_condition_is_caught():
    s = st.get("thm-4.2")
    variant = s.variant("part2-quadratic-form")
    wrong = replace(variant, condition=lambda q: q.H_vv - q.H_gg)
    assert any("condition" in p for p in latex_mismatches(s, wrong))
