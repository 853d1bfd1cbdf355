"""The registry: every statement of the paper, encoded once.

Each ``Statement`` holds the statement as printed (``Excerpt``s copied verbatim from the
extraction in ../shared/paper, joined by labelled ``Connecting`` text), where it is, the reading
chosen where the text is garbled or ambiguous, its hypotheses, and its ``Variant``s.  A
variant about BatchNorm with epsilon > 0 is made from its eps = 0 variant by
``epsilon_variant``; a violated printed-type variant names the likely cause of the misprint.
The variant ``printed`` is the statement as printed; every other variant is separate, named,
and says in one line how it differs.

A variant is two functions of a ``Quantities`` bundle (theory.quantities) -- the two sides
of its relation -- written over an ``ops`` back-end so that SymPy (exact, m = 2..6 and
general m), NumPy (N instances), torch and the trajectory probes evaluate the *same*
definition.  The left side is, by convention, the measured object (the true gradient or
Hessian through BatchNorm, the true maximum, the true distance); the right side is the
paper's formula.  The slack of a variant is its relation's (theory.vocab.Relation.slack).

    python -m theory.statements [--format text|json]
"""
from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field, replace
from typing import Callable, Optional

from theory import bn, cli
from theory.vocab import EpsilonScope, Kind, Relation, Setting

# ---------------------------------------------------------------------------------------------
# Types
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Variant:
    name: str
    latex: str
    note: str
    relation: Relation
    lhs: Callable
    rhs: Optional[Callable]
    requires: tuple
    epsilon: EpsilonScope = EpsilonScope.ZERO   # which BatchNorm epsilon the variant is about
    extra_hypotheses: tuple = ()      # beyond the statement's own, in words
    condition: Optional[Callable] = None   # q -> scalar that must be > 0 (an extra hypothesis)
    # The condition may also be 0 (a non-strict hypothesis "condition >= 0").
    condition_allows_zero: bool = False
    constraint: Optional[Callable] = None  # q -> scalar that must be == 0 (an extra hypothesis)
    # Magnitude of the terms that cancel in the slack (for the rounding tolerance, see
    # theory.evaluate); None means |LHS| + |RHS|.
    scale: Optional[Callable] = None
    constraint_scale: Optional[Callable] = None
    # The likely cause of the misprint, for a printed-type variant that is violated.
    cause: str = ""
    # The variant this one restates for BatchNorm with epsilon > 0 (set by epsilon_variant).
    derived_from: str = ""
    # Where this variant's quantities come from, when not the statement's own setting (a sentence
    # of Observation 4.3 is evaluated on the Lemma 4.5 toy model).
    setting: Optional[Setting] = None

    def __post_init__(self):
        # Relation("<=") and EpsilonScope("zero") accept the words too, and reject anything else
        # with a ValueError naming the value.
        object.__setattr__(self, "relation", Relation(self.relation))
        object.__setattr__(self, "epsilon", EpsilonScope(self.epsilon))
        if self.setting is not None:
            object.__setattr__(self, "setting", Setting(self.setting))


def epsilon_variant(base: Variant, note: str, *, name: str = "epsilon", latex: Optional[str] = None,
                    **changes) -> Variant:
    """``base`` restated for BatchNorm with epsilon > 0 (torch's BatchNorm): the same two sides,
    requirements and tolerances, now evaluated where sigma = sqrt(Var(y) + eps) and y_hat
    carries that sigma.  ``changes`` replaces what differs (a side); the LaTeX is the base's with
    that sigma, unless the restatement changes a side and says so in ``latex``."""
    fields = dict(name=name, note=note, epsilon=EpsilonScope.POSITIVE, cause="", derived_from=base.name,
                  latex=latex if latex is not None else base.latex + r",\quad " + EPSILON_SIGMA)
    return replace(base, **{**fields, **changes})


EPSILON_SIGMA = r"\sigma = \sqrt{\mathrm{Var}(y)+\epsilon}"


@dataclass(frozen=True)
class Excerpt:
    """Text copied verbatim from the paper (../shared/paper); tests compare it in full.

    ``prose``: the excerpt is running text of the extraction (emphasis marks ``*`` and inline
    ``$...$`` math as extracted); its LaTeX is the text in ``\text{}`` with the math kept."""
    text: str
    prose: bool = False

    @property
    def latex(self) -> str:
        if not self.prose:
            return self.text
        parts = self.text.replace("*", "").split("$")
        return "".join(part if i % 2 else r"\text{" + part + "}" for i, part in enumerate(parts) if part)


@dataclass(frozen=True)
class Connecting:
    """Our connecting text between excerpts (equation tags, the words between two displays, a
    hypothesis set in LaTeX); not a quotation."""
    text: str

    @property
    def latex(self) -> str:
        return self.text


@dataclass(frozen=True)
class Remark:
    """A derived formula shown beside a statement's variants (docs and errata): ``formula`` is the
    closed form shown in ``latex``, ``equals`` what it is a closed form of (both q -> value); a test
    checks that they agree exactly in the invariant algebra (``with_epsilon`` says which)."""
    title: str
    latex: str
    text: str
    formula: Callable
    equals: Callable
    with_epsilon: bool = True


@dataclass(frozen=True)
class Source:
    section: str
    equations: str
    page: str

    def __str__(self):
        return f"{self.section}; {self.equations}; {self.page}"


@dataclass(frozen=True)
class Statement:
    id: str
    title: str
    source: Source
    kind: Kind
    setting: Setting
    printed: tuple          # Excerpt and Connecting parts, in order: the statement as printed
    reading: str
    hypotheses: tuple
    variants: tuple = field(default_factory=tuple)
    remarks: tuple = ()     # Remark: derived formulas shown beside the variants

    def __post_init__(self):
        object.__setattr__(self, "kind", Kind(self.kind))
        object.__setattr__(self, "setting", Setting(self.setting))

    @property
    def printed_latex(self) -> str:
        """The printed statement in LaTeX: the excerpts and the connecting text joined."""
        return "".join(part.latex for part in self.printed)

    @property
    def excerpts(self) -> tuple:
        return tuple(part for part in self.printed if isinstance(part, Excerpt))

    def variant(self, name: str) -> Variant:
        for v in self.variants:
            if v.name == name:
                return v
        raise UnknownStatementError(
            f"statement {self.id!r} has no variant {name!r}; its variants are: "
            + ", ".join(v.name for v in self.variants))


def setting_of(statement: "Statement", variant: Variant) -> Setting:
    """The setting a variant is evaluated in: its own where it names one, else its statement's."""
    return variant.setting if variant.setting is not None else statement.setting


class UnknownStatementError(KeyError):
    def __str__(self):  # KeyError quotes its message; show it plainly
        return str(self.args[0])


# ---------------------------------------------------------------------------------------------
# Small shared pieces (inner products the paper's formulas are built from)
# ---------------------------------------------------------------------------------------------

def g_sum(q):
    """<1, g>"""
    return q.ops.total(q.g)


def g_dot_yhat(q):
    """<g, y_hat>"""
    return q.ops.dot(q.g, q.y_hat)


def g_norm_sq(q):
    return q.ops.dot(q.g, q.g)


def grad_bn_norm_sq(q):
    """||nabla_y L_hat||^2 of the *measured* gradient."""
    return q.ops.dot(q.grad_y_bn, q.grad_y_bn)


def yhat_norm_ratio(q):
    """rho = ||y_hat||^2 / m  (1 when eps = 0; var/(var+eps) < 1 otherwise)."""
    return q.ops.dot(q.y_hat, q.y_hat) / q.m


BN_INPUTS = ("m", "gamma", "sigma", "y_hat", "g")


# Term magnitudes for rounding tolerances (theory.evaluate).  Each bounds the sum of the absolute
# values of the terms whose difference forms the slack, using ||y_hat|| <= sqrt(m), |<1,g>| <=
# sqrt(m)||g|| and |<g,y_hat>| <= sqrt(m)||g|| (Cauchy-Schwarz).

def _gradient_scale(q):
    return 3 * (q.gamma**2 / q.sigma**2) * g_norm_sq(q)


def _gradient_vector_scale(q):
    return 3 * q.ops.abs(q.gamma) / q.sigma * q.ops.sqrt(g_norm_sq(q))


def _jacobian_scale(q):
    return q.ops.abs(q.gamma) / q.sigma * (q.ops.sqrt(q.m) + 2)


def _curvature_scale(q):
    """|gamma|/(m sigma^2) ||g|| sqrt(m) (5 + sqrt(m)): the sum_b g_b d^2 z_b part of the Hessian."""
    return q.ops.abs(q.gamma) / (q.m * q.sigma**2) * q.ops.sqrt(g_norm_sq(q) * q.m) * (5 + q.ops.sqrt(q.m))


def _hessian_matrix_scale(q):
    return 9 * (q.gamma**2 / q.sigma**2) * q.ops.sqrt(q.ops.frob_sq(q.H)) + _curvature_scale(q)


def _hessian_form_scale(q):
    """Terms of v^T H_hat v and v^T H v, bounded through the inputs rather than through v:
    ||v||^2 <= V = (gamma^2/sigma^2)||g||^2 (P has eigenvalues in [0, 1] for every eps >= 0), and
    float v carries an error ~ m u sqrt(V) even where the exact v is 0 (every m = 2 batch), so a
    scale built from the computed ||v|| would call rounding noise a violation.  |H| is H_frob when
    known, else the largest measured Rayleigh quotient."""
    V = (q.gamma**2 / q.sigma**2) * g_norm_sq(q)
    if q.has(("H_frob",)):
        h = q.H_frob
    else:
        h = q.ops.abs(q.H_gg) / g_norm_sq(q) if q.has(("H_gg",)) else 0
        h = h + q.ops.abs(q.H_vv) / V
    return (q.gamma**2 / q.sigma**2) * h * V * 4 + _curvature_scale(q) * V + q.ops.abs(q.hess_bn_vv)


# ---------------------------------------------------------------------------------------------
# Fact C.1 -- gradient through BatchNorm
# ---------------------------------------------------------------------------------------------

def _fact_c1_printed(q):
    # (gamma/(m sigma)) (m df/dC^(b) - sum_k df/dC^(k) - B^(b) sum_k df/dC^(k) B^(k)), B = y_hat
    o = q.ops
    inner = o.scale(q.m, q.g) - o.scale(g_sum(q), o.ones_like(q.g)) - o.scale(g_dot_yhat(q), q.y_hat)
    return o.scale(q.gamma / (q.m * q.sigma), inner)


FACT_C1 = Statement(
    id="fact-c1",
    title="Gradient through BatchNorm",
    source=Source("Appendix C.1, Fact C.1", "unnumbered display of Fact C.1; used as eqs. (3)-(4)", "p. 18 (anchor page-17-1)"),
    kind=Kind.IDENTITY,
    setting=Setting.BN_CHANNEL,
    printed=(Excerpt(r"\frac{\partial f}{\partial A^{(b)}} = \frac{\gamma}{m\sigma} \left(m \frac{\partial f}{\partial C^{(b)}} - \sum_{k=1}^m \frac{\partial f}{\partial C^{(k)}} - B^{(b)} \sum_{k=1}^m \frac{\partial f}{\partial C^{(k)}} B^{(k)} \right)"),),
    reading=("A = y (one channel's batch), B = y_hat, C = z = gamma*B + beta, f = L; "
             "df/dC = g.  sigma^2 is the biased batch variance (the text says 'variance sigma^2').  "
             "Read as an identity between the true gradient nabla_y L_hat (left) and the printed "
             "expression (right), for every b."),
    hypotheses=("m >= 2", "sigma > 0 (the batch is not constant)", "eps = 0 (the paper's BatchNorm has no epsilon)"),
    variants=(
        FACT_C1_PRINTED := Variant("printed", r"\nabla_{y}\widehat{L} = \frac{\gamma}{m\sigma}\left(m g - \mathbf{1}\langle \mathbf{1}, g\rangle - \hat y \langle g, \hat y\rangle\right)",
                "the statement as printed (eps = 0)", Relation.EQ,
                lambda q: q.grad_y_bn, _fact_c1_printed, BN_INPUTS + ("grad_y_bn",),
                scale=_gradient_vector_scale),
        epsilon_variant(FACT_C1_PRINTED, "BatchNorm with epsilon > 0 as torch computes it; sigma includes epsilon"),
    ),
)

# ---------------------------------------------------------------------------------------------
# Fact C.2 -- Jacobian of the normalised outputs
# ---------------------------------------------------------------------------------------------

def _fact_c2_printed(q):
    # (gamma/sigma)(I[b=k] - 1/m - y_hat^(b) y_hat^(k)/m), eq. (2); eq. (1) is gamma = 1
    o = q.ops
    ones = o.ones_like(q.y_hat)
    centred = o.eye_like(q.y_hat) - o.scale_matrix(1 / q.m, o.outer(ones, ones)) \
        - o.scale_matrix(1 / q.m, o.outer(q.y_hat, q.y_hat))
    return o.scale_matrix(q.gamma / q.sigma, centred)


FACT_C2 = Statement(
    id="fact-c2",
    title="Gradients of normalized outputs (Jacobian of BatchNorm)",
    source=Source("Appendix C.1, Fact C.2", "eqs. (1), (2)", "p. 18 (anchor page-17-2)"),
    kind=Kind.IDENTITY,
    setting=Setting.BN_CHANNEL,
    printed=(Excerpt(r"\frac{\partial \hat{y}^{(b)}}{\partial y^{(k)}} = \frac{1}{\sigma} \left(\mathbf{I}[b=k] - \frac{1}{m} - \frac{1}{m} \hat{y}^{(b)} \hat{y}^{(k)} \right),\tag{1}"),
             Connecting(r"\quad\text{and thus}\quad "),
             Excerpt(r"\frac{\partial z_j^{(b)}}{\partial y^{(k)}} = \frac{\gamma}{\sigma} \left(\mathbf{I}[b=k] - \frac{1}{m} - \frac{1}{m} \hat{y}^{(b)} \hat{y}^{(k)} \right),\tag{2}")),
    reading=("The full m x m Jacobian dz/dy of eq. (2) is compared entrywise; eq. (1) is eq. (2) "
             "at gamma = 1, so one check covers both.  sigma is the biased batch std."),
    hypotheses=("m >= 2", "sigma > 0", "eps = 0"),
    variants=(
        FACT_C2_PRINTED := Variant("printed", r"\frac{\partial z}{\partial y} = \frac{\gamma}{\sigma}\left(I - \frac{1}{m}\mathbf{1}\mathbf{1}^\top - \frac{1}{m}\hat y\hat y^\top\right)",
                "the statement as printed (eq. (2); eq. (1) is gamma = 1)", Relation.EQ,
                lambda q: q.jac_z_y, _fact_c2_printed, ("m", "gamma", "sigma", "y_hat", "jac_z_y"),
                scale=_jacobian_scale),
        epsilon_variant(FACT_C2_PRINTED, "BatchNorm with epsilon > 0; sigma and y_hat include epsilon"),
    ),
)

# ---------------------------------------------------------------------------------------------
# Appendix C closed-form Hessian (proof of Theorem 4.2, eqs. (40)-(42))
# ---------------------------------------------------------------------------------------------

def _hessian_c_printed(q):
    # gamma^2/sigma^2 [ P H P - 1/(m gamma) ( gbar yhat^T + yhat gbar^T
    #                    - 3/m yhat (g^T yhat) yhat^T + <g,yhat>(I - M/m) ) ],
    # P = I - yhat yhat^T/m - M/m, M = 11^T, gbar = g - mu(g) 1
    o = q.ops
    ones = o.ones_like(q.y_hat)
    M = o.outer(ones, ones)
    eye = o.eye_like(q.y_hat)
    P = eye - o.scale_matrix(1 / q.m, o.outer(q.y_hat, q.y_hat)) - o.scale_matrix(1 / q.m, M)
    gbar = q.g - o.scale(g_sum(q) / q.m, ones)
    gy = g_dot_yhat(q)
    bracket = (o.outer(gbar, q.y_hat) + o.outer(q.y_hat, gbar)
               - o.scale_matrix(3 * gy / q.m, o.outer(q.y_hat, q.y_hat))
               + o.scale_matrix(gy, eye - o.scale_matrix(1 / q.m, M)))
    inner = o.matmul(o.matmul(P, q.H), P) - o.scale_matrix(1 / (q.m * q.gamma), bracket)
    return o.scale_matrix(q.gamma**2 / q.sigma**2, inner)


HESSIAN_C = Statement(
    id="hessian-c",
    title="Closed-form Hessian of the BatchNorm loss w.r.t. the pre-BN activations",
    source=Source("Appendix C.3, proof of Theorem 4.2", "eqs. (40)-(42) (reached from (19)-(39))", "pp. 20-21"),
    kind=Kind.IDENTITY,
    setting=Setting.BN_CHANNEL,
    printed=(Excerpt(r"= \frac{\gamma^2}{\sigma^2} \left[\left(\boldsymbol{I} - \frac{1}{m} \hat{\boldsymbol{y}}_j \hat{\boldsymbol{y}}_j^\top - \frac{1}{m} \boldsymbol{M} \right) \boldsymbol{H}_{jj} \left(\boldsymbol{I} - \frac{1}{m} \hat{\boldsymbol{y}}_j \hat{\boldsymbol{y}}_j^\top - \frac{1}{m} \boldsymbol{M} \right) \right]"),
             Connecting(r" (40) "),
             Excerpt(r"- \frac{1}{m\gamma} \left(\overline{\hat{\boldsymbol{g}}_j} \hat{\boldsymbol{y}}_j^\top + \hat{\boldsymbol{y}}_j \overline{\hat{\boldsymbol{g}}_j}^\top - \frac{3}{m} \hat{\boldsymbol{y}}_j \hat{\boldsymbol{g}}_j^\top \hat{\boldsymbol{y}} \hat{\boldsymbol{y}}_j^\top + \langle \hat{\boldsymbol{g}}_j, \hat{\boldsymbol{y}}_j \rangle \left(\boldsymbol{I} - \frac{1}{m} \boldsymbol{M} \right) \right) \right]"),
             Connecting(r" (42)")),
    reading=("The left side is d^2 L_hat / dy_j dy_j (eq. (38)).  The bracket opened in (40) closes "
             "after (42), so gamma^2/sigma^2 multiplies both lines.  'ŷ_j ĝ_j^T ŷ ŷ_j^T' is read as "
             "ŷ (ĝ^T ŷ) ŷ^T (a subscript is lost in the extraction); the overline ĝ is ĝ - μ(ĝ)1, "
             "defined before (38) ('letting ĝ = ĝ - μ(ĝ)', overline lost); M = 11^T; H = H_jj = d^2L/dz^2.  "
             "Where the printed algebra differs from the derivation on the way: eq. (34) prints -(1/γ) ĝ ĝ^T where "
             "(32) and the derivation have -(1/γ) ŷ ĝ^T, and eq. (37) is cut off in the extraction; the end "
             "result (40)-(42) is nevertheless what SymPy derives."),
    hypotheses=("m >= 2", "sigma > 0", "eps = 0", "L twice differentiable at z"),
    variants=(
        HESSIAN_C_PRINTED := Variant("printed", r"\frac{\partial^2\widehat L}{\partial y\,\partial y} = \frac{\gamma^2}{\sigma^2}\Big[PHP - \frac{1}{m\gamma}\big(\bar g\hat y^\top + \hat y\bar g^\top - \tfrac{3}{m}\langle g,\hat y\rangle\hat y\hat y^\top + \langle g,\hat y\rangle(I - \tfrac1m M)\big)\Big]",
                "the statement as printed (eqs. (40)-(42), eps = 0)", Relation.EQ,
                lambda q: q.hess_bn, _hessian_c_printed, BN_INPUTS + ("H", "hess_bn"),
                scale=_hessian_matrix_scale),
        epsilon_variant(HESSIAN_C_PRINTED, "BatchNorm with epsilon > 0; sigma and y_hat include epsilon (P is then not a projector)"),
    ),
)

# ---------------------------------------------------------------------------------------------
# Theorem 4.1 -- Lipschitzness
# ---------------------------------------------------------------------------------------------

def _thm41_rhs(coef_last):
    def rhs(q):
        return (q.gamma**2 / q.sigma**2) * (g_norm_sq(q) - g_sum(q)**2 / q.m - coef_last(q) * g_dot_yhat(q)**2)
    return rhs


THM_4_1 = Statement(
    id="thm-4.1",
    title="The effect of BatchNorm on the Lipschitzness of the loss",
    source=Source("Section 4.2, Theorem 4.1 (restated in Appendix C.2)", "display of Thm 4.1; proof eqs. (3)-(9)", "p. 8 (anchor page-8-0); proof p. 18"),
    kind=Kind.INEQUALITY,
    setting=Setting.BN_CHANNEL,
    printed=(Excerpt(r"\left|\left|\nabla_{\bm{y}_{\bm{j}}}\widehat{\mathcal{L}}\right|\right|^2 \leq \frac{\gamma^2}{\sigma_j^2} \left(\left|\left|\nabla_{\bm{y}_{\bm{j}}}\mathcal{L}\right|\right|^2 - \frac{1}{m} \left\langle \mathbf{1}, \nabla_{\bm{y}_{\bm{j}}}\mathcal{L}\right\rangle^2 - \frac{1}{\sqrt{m}} \left\langle \nabla_{\bm{y}_{\bm{j}}}\mathcal{L}, \hat{\bm{y}}_{\bm{j}}\right\rangle^2\right)."),),
    reading=("nabla_y L of the 'identical non-BN network' is g = dL_hat/dz (the proof ends 'exploiting "
             "dL_hat/dz_j = dL/dy'): the non-BN network evaluated where its layer output equals the BN "
             "output.  sigma_j is the biased batch std, so <1, y_hat> = 0 and ||y_hat||^2 = m.  Where the proof's "
             "algebra departs from the derivation: step (8) -> (9) turns <g - 1 mu_g, y_hat/||y_hat||>^2 into "
             "<g, y_hat>^2/sqrt(m), but ||y_hat||^2 = m makes it <g, y_hat>^2/m."),
    hypotheses=("m >= 2", "sigma_j > 0", "eps = 0", "gamma, beta constants", "g = dL/dz arbitrary"),
    variants=(
        THM_4_1_PRINTED := Variant("printed", r"\|\nabla_y\widehat L\|^2 \le \frac{\gamma^2}{\sigma^2}\Big(\|g\|^2 - \frac1m\langle\mathbf 1,g\rangle^2 - \frac{1}{\sqrt m}\langle g,\hat y\rangle^2\Big)",
                "the statement as printed", Relation.LE,
                grad_bn_norm_sq, _thm41_rhs(lambda q: 1 / q.ops.sqrt(q.m)), BN_INPUTS + ("grad_y_bn",),
                scale=_gradient_scale,
                cause=("The proof's step (8) -> (9) divides <g, y_hat>^2 by ||y_hat|| = sqrt(m) once, where the projection "
                      "onto y_hat divides by ||y_hat||^2 = m: the coefficient of <g, y_hat>^2 must be 1/m, not 1/sqrt(m).")),
        THM_4_1_EXACT := Variant("exact", r"\|\nabla_y\widehat L\|^2 = \frac{\gamma^2}{\sigma^2}\Big(\|g\|^2 - \frac1m\langle\mathbf 1,g\rangle^2 - \frac{1}{m}\langle g,\hat y\rangle^2\Big)",
                "1/sqrt(m) replaced by 1/m (the proof's step (8)->(9) divides by ||y_hat|| = sqrt(m) once instead of ||y_hat||^2 = m), and equality", Relation.EQ,
                grad_bn_norm_sq, _thm41_rhs(lambda q: 1 / q.m), BN_INPUTS + ("grad_y_bn",),
                scale=_gradient_scale),
        Variant("drop-correlation", r"\|\nabla_y\widehat L\|^2 \le \frac{\gamma^2}{\sigma^2}\Big(\|g\|^2 - \frac1m\langle\mathbf 1,g\rangle^2\Big)",
                "the weaker bound without the <g, y_hat> term", Relation.LE,
                grad_bn_norm_sq, _thm41_rhs(lambda q: 0), BN_INPUTS + ("grad_y_bn",),
                scale=_gradient_scale),
        epsilon_variant(THM_4_1_PRINTED, "the printed bound for BatchNorm with epsilon > 0 (torch)"),
        epsilon_variant(THM_4_1_EXACT, "exact form for epsilon > 0, where ||y_hat||^2 = m rho < m", name="exact-epsilon",
                        latex=r"\|\nabla_y\widehat L\|^2 = \frac{\gamma^2}{\sigma^2}\Big(\|g\|^2 - \frac1m\langle\mathbf 1,g\rangle^2 - \frac{2-\rho}{m}\langle g,\hat y\rangle^2\Big),\ \rho = \|\hat y\|^2/m",
                        rhs=_thm41_rhs(lambda q: (2 - yhat_norm_ratio(q)) / q.m)),
    ),
)

# ---------------------------------------------------------------------------------------------
# Theorem 4.2 -- smoothness
# ---------------------------------------------------------------------------------------------

def _thm42_part1_rhs(q):
    return (q.gamma**2 / q.sigma**2) * q.H_vv - q.gamma / (q.m * q.sigma**2) * g_dot_yhat(q) * grad_bn_norm_sq(q)


def _thm42_part2_rhs(q):
    return (q.gamma**2 / q.sigma**2) * (q.H_gg - g_dot_yhat(q) * grad_bn_norm_sq(q) / (q.m * q.gamma))


def _thm42_part2_exact_rhs(q):
    # under the hypothesis v^T H v = (||v||^2/||g||^2) g^T H g
    ratio = grad_bn_norm_sq(q) / g_norm_sq(q)
    return (q.gamma**2 / q.sigma**2) * (ratio * q.H_gg - g_dot_yhat(q) * grad_bn_norm_sq(q) / (q.m * q.gamma))


def _relative_norm_scale(q):
    """Magnitude of the terms of v^T H v ||g||^2 - g^T H g ||v||^2: both products, and |H|_F times
    the norms, since H_vv and H_gg themselves are sums of size |H| ||.||^2."""
    gg, vv = g_norm_sq(q), grad_bn_norm_sq(q)
    h = q.H_frob if q.has(("H_frob",)) else 0.0
    return (q.ops.abs(q.H_vv) + h * vv) * gg + (q.ops.abs(q.H_gg) + h * gg) * vv


def _relative_norm_constraint(q):
    """v^T H v ||g||^2 - g^T H g ||v||^2: zero when H preserves the relative norms of g and v."""
    return q.H_vv * g_norm_sq(q) - q.H_gg * grad_bn_norm_sq(q)


def _thm42_scale(q):
    extra = (q.gamma**2 / q.sigma**2) * q.ops.abs(q.H_gg) if q.has(("H_gg",)) else 0
    return _hessian_form_scale(q) + extra


THM42_REQ = BN_INPUTS + ("grad_y_bn", "hess_bn_vv", "H_vv")


def _quadratic_form_gap(q):
    """g^T H g - v^T H v: >= 0 is the quadratic-form reading of 'H preserves the relative norms'."""
    return q.H_gg - q.H_vv


def _yhat_v_over_m(q):
    """c = <y_hat, v>/m: P v = v - c y_hat (<1, v> = 0 for every eps); c = 0 exactly when eps = 0."""
    return q.ops.dot(q.y_hat, q.grad_y_bn) / q.m


def _thm42_curvature_term(q):
    """sum_b g_b v^T (d^2 z_b/dy^2) v for any eps >= 0 (theory.bn.hessian_bn_bilinear at a = b = v,
    with <1, v> = 0):  2<g,v><y_hat,v> + <g,y_hat>||v||^2 - (3/m)<g,y_hat><y_hat,v>^2."""
    o = q.ops
    yv = o.dot(q.y_hat, q.grad_y_bn)
    return 2 * o.dot(q.g, q.grad_y_bn) * yv + g_dot_yhat(q) * grad_bn_norm_sq(q) - 3 * g_dot_yhat(q) * yv**2 / q.m


def _thm42_exact_epsilon_rhs(q):
    # (gamma^2/sigma^2)(Pv)^T H (Pv) - gamma/(m sigma^2) [curvature], (Pv)^T H (Pv) = H_vv - 2c H_yv + c^2 H_yy
    c = _yhat_v_over_m(q)
    H_PvPv = q.H_vv - 2 * c * q.H_yv + c**2 * q.H_yy
    return (q.gamma**2 / q.sigma**2) * H_PvPv - q.gamma / (q.m * q.sigma**2) * _thm42_curvature_term(q)


def _thm42_exact_epsilon_scale(q):
    """The terms of the identity: those of the first display, the two new H forms and the curvature terms."""
    o = q.ops
    c = o.abs(_yhat_v_over_m(q))
    yv = o.abs(o.dot(q.y_hat, q.grad_y_bn))
    gy = o.abs(g_dot_yhat(q))
    curvature = 2 * o.abs(o.dot(q.g, q.grad_y_bn)) * yv + gy * grad_bn_norm_sq(q) + 3 * gy * yv**2 / q.m
    return (_thm42_scale(q) + (q.gamma**2 / q.sigma**2) * (2 * c * o.abs(q.H_yv) + c**2 * o.abs(q.H_yy))
            + o.abs(q.gamma) / (q.m * q.sigma**2) * curvature)

def thm42_first_display_epsilon_slack(q):
    """The slack (RHS - LHS) of thm-4.2's first display for eps > 0, in rho = ||y_hat||^2/m = Var/(Var + eps):
    every term carries the factor 1 - rho, through <y_hat, v> = (gamma/sigma)(1 - rho)<g, y_hat>."""
    o = q.ops
    rho = yhat_norm_ratio(q)
    gy = g_dot_yhat(q)
    k = (1 - rho) * q.gamma * gy / (q.m * q.sigma)            # c = <y_hat, v>/m
    return (1 - rho) * q.gamma**2 * gy / (q.m * q.sigma**3) * (
        q.gamma * (2 * q.H_yv - k * q.H_yy) + 2 * o.dot(q.g, q.grad_y_bn) - 3 * k * gy)


def _thm42_first_display_slack_from_identity(q):
    """RHS of the first display minus its exact left side (the exact-epsilon identity's right side)."""
    return _thm42_part1_rhs(q) - _thm42_exact_epsilon_rhs(q)


THM42_EPSILON_REMARK = Remark(
    "How the first display fails for epsilon > 0",
    (r"\frac{\gamma^{2}}{\sigma^{2}}v^\top Hv - \frac{\gamma}{m\sigma^2}\langle g,\hat y\rangle\|v\|^2 - v^\top\widehat Hv"
     r" = (1-\rho)\,\frac{\gamma^2\langle g,\hat y\rangle}{m\sigma^3}\Big[\gamma\big(2\,\hat y^\top Hv - k\,\hat y^\top H\hat y\big)"
     r" + 2\langle g,v\rangle - 3k\langle g,\hat y\rangle\Big],\quad k = \frac{(1-\rho)\gamma\langle g,\hat y\rangle}{m\sigma},"
     r"\quad \rho = \frac{\mathrm{Var}(y)}{\mathrm{Var}(y)+\epsilon}"),
    ("The slack of the first display (RHS - LHS) for BatchNorm with epsilon > 0, from the exact-epsilon identity: "
     "every term carries 1 - rho = eps/(Var + eps), so the display holds with equality at eps = 0 and fails, "
     "by a relative amount of order eps/Var, in either direction as eps grows (the sign follows <g, y_hat> and "
     "y_hat^T H v)."),
    thm42_first_display_epsilon_slack, _thm42_first_display_slack_from_identity)


THM_4_2 = Statement(
    id="thm-4.2",
    title="The effect of BN to smoothness",
    source=Source("Section 4.2, Theorem 4.2 (restated in Appendix C.3)", "two displays of Thm 4.2; proof eqs. (19)-(51)", "p. 8; proof pp. 19-21"),
    kind=Kind.INEQUALITY,
    setting=Setting.BN_CHANNEL,
    printed=(Excerpt(r"\left(\nabla_{\mathbf{y}_{j}}\widehat{\mathcal{L}}\right)^{\top} \frac{\partial \widehat{\mathcal{L}}}{\partial \mathbf{y}_{j} \partial \mathbf{y}_{j}} \left(\nabla_{\mathbf{y}_{j}}\widehat{\mathcal{L}}\right) \leq \frac{\gamma^{2}}{\sigma^{2}} \left(\frac{\partial \widehat{\mathcal{L}}}{\partial \mathbf{y}_{j}}\right)^{\top} \mathbf{H}_{j j} \left(\frac{\partial \widehat{\mathcal{L}}}{\partial \mathbf{y}_{j}}\right) - \frac{\gamma}{m \sigma^{2}} \left\langle \hat{\mathbf{g}}_{j}, \hat{\mathbf{y}}_{j} \right\rangle \left\|\frac{\partial \widehat{\mathcal{L}}}{\partial \mathbf{y}_{j}}\right\|^{2}"),
             Connecting(r"\qquad\text{If we also have that the } H_{jj} \text{ preserves the relative norms of } \hat{g}_j \text{ and } \nabla_{y_j} \mathcal{L}\text{,}\qquad"),
             Excerpt(r"\left(\nabla_{\boldsymbol{y}_j} \widehat{\mathcal{L}}\right)^\top \frac{\partial \widehat{\mathcal{L}}}{\partial \boldsymbol{y}_j \partial \boldsymbol{y}_j} \left(\nabla_{\boldsymbol{y}_j} \widehat{\mathcal{L}}\right) \leq \frac{\gamma^2}{\sigma^2} \left(\hat{\boldsymbol{g}}_j^\top \boldsymbol{H}_{jj} \hat{\boldsymbol{g}}_j - \frac{1}{m\gamma} \langle \hat{\boldsymbol{g}}_j, \hat{\boldsymbol{y}}_j \rangle \left\|\frac{\partial \widehat{\mathcal{L}}}{\partial \boldsymbol{y}_j}\right\|^2\right)")),
    reading=("ĝ = g = dL/dz; H = H_jj = d^2L/dz^2 (the proof's definition, 'H_jk := d^2 L_hat/dz_j dz_k'); "
             "dL_hat/dy_j in the right side is the BN gradient v = nabla_y L_hat.  The hypothesis of the "
             "second display is stated twice in the extraction, once with nabla L and once with nabla L_hat; "
             "we read 'H preserves the relative norms of ĝ and v' as equal Rayleigh quotients: "
             "v^T H v / ||v||^2 = ĝ^T H ĝ / ||ĝ||^2 (the proof uses it to replace v^T H v by ĝ^T H ĝ)."),
    hypotheses=("m >= 2", "sigma > 0", "eps = 0", "gamma, beta constants", "L twice differentiable at z"),
    variants=(
        THM_4_2_PRINTED := Variant("printed", r"v^\top\widehat H v \le \frac{\gamma^2}{\sigma^2} v^\top H v - \frac{\gamma}{m\sigma^2}\langle g,\hat y\rangle\|v\|^2,\quad v = \nabla_y\widehat L",
                "the first display as printed", Relation.LE,
                lambda q: q.hess_bn_vv, _thm42_part1_rhs, THM42_REQ,
                scale=_thm42_scale),
        Variant("printed-part2", r"v^\top\widehat H v \le \frac{\gamma^2}{\sigma^2}\Big(g^\top H g - \frac{1}{m\gamma}\langle g,\hat y\rangle\|v\|^2\Big)\ \text{ if } \frac{v^\top Hv}{\|v\|^2} = \frac{g^\top Hg}{\|g\|^2}",
                "the second display as printed, under its extra hypothesis (read as equal Rayleigh quotients)", Relation.LE,
                lambda q: q.hess_bn_vv, _thm42_part2_rhs, THM42_REQ + ("H_gg",),
                extra_hypotheses=("H preserves the relative norms of g and v: v^T H v / ||v||^2 = g^T H g / ||g||^2",),
                constraint=_relative_norm_constraint, constraint_scale=_relative_norm_scale,
                scale=_thm42_scale,
                cause=("The second display replaces v^T H v by g^T H g using 'H preserves the relative norms of g and v', "
                      "which gives v^T H v = (||v||^2/||g||^2) g^T H g: the factor ||v||^2/||g||^2 was dropped.")),
        Variant("part2-exact", r"v^\top\widehat H v = \frac{\gamma^2}{\sigma^2}\Big(\frac{\|v\|^2}{\|g\|^2}g^\top H g - \frac{1}{m\gamma}\langle g,\hat y\rangle\|v\|^2\Big)",
                "the second display made exact: g^T H g carries the factor ||v||^2/||g||^2 the hypothesis gives", Relation.EQ,
                lambda q: q.hess_bn_vv, _thm42_part2_exact_rhs, THM42_REQ + ("H_gg",),
                extra_hypotheses=("H preserves the relative norms of g and v (as in printed-part2)",),
                constraint=_relative_norm_constraint, constraint_scale=_relative_norm_scale,
                scale=_thm42_scale),
        Variant("part2-quadratic-form", r"v^\top\widehat H v \le \frac{\gamma^2}{\sigma^2}\Big(g^\top H g - \frac{1}{m\gamma}\langle g,\hat y\rangle\|v\|^2\Big)\ \text{ if } v^\top Hv \le g^\top Hg",
                "the second display, its hypothesis read as a comparison of quadratic forms: v^T H v <= g^T H g", Relation.LE,
                lambda q: q.hess_bn_vv, _thm42_part2_rhs, THM42_REQ + ("H_gg",),
                extra_hypotheses=("H does not enlarge the quadratic form of v beyond that of g: v^T H v <= g^T H g",),
                condition=_quadratic_form_gap, condition_allows_zero=True,
                scale=_thm42_scale),
        Variant("part2-main-text", r"v^\top\widehat H v \le \frac{\gamma^2}{\sigma^2}\Big(g^\top H g - \frac{1}{m\gamma}\langle g,\hat y\rangle\|v\|^2\Big)",
                "the second display in the main text's wording: there nabla_{y_j} L = g_hat_j, so 'H preserves the relative "
                "norms of g_hat_j and nabla_{y_j} L' compares g with itself and is vacuous; the display is then claimed for "
                "every H", Relation.LE,
                lambda q: q.hess_bn_vv, _thm42_part2_rhs, THM42_REQ + ("H_gg",),
                scale=_thm42_scale,
                cause=("With the hypothesis vacuous the display needs v^T H v <= g^T H g, which fails for H = I whenever "
                      "||v|| > ||g|| (gamma > sigma): the slack is (gamma^2/sigma^2)(g^T H g - v^T H v).")),
        epsilon_variant(THM_4_2_PRINTED, "the first display for BatchNorm with epsilon > 0 (v is then not orthogonal to y_hat)"),
        THM_4_2_EXACT := Variant(
            "exact", (r"v^\top\widehat H v = \frac{\gamma^2}{\sigma^2}\big(v^\top Hv - 2c\,\hat y^\top Hv + c^2\,\hat y^\top H\hat y\big)"
                      r" - \frac{\gamma}{m\sigma^2}\Big(2\langle g,v\rangle\langle\hat y,v\rangle + \langle g,\hat y\rangle\|v\|^2"
                      r" - \frac{3}{m}\langle g,\hat y\rangle\langle\hat y,v\rangle^2\Big),\quad c = \frac{\langle\hat y,v\rangle}{m}"),
            "the exact identity behind the first display: v^T H_hat v in terms of v^T H v, y_hat^T H v, y_hat^T H y_hat "
            "(through (Pv)^T H (Pv), Pv = v - c y_hat) and BatchNorm's curvature; at eps = 0, c = 0 and <y_hat, v> = 0, "
            "so it is the first display with equality", Relation.EQ,
            lambda q: q.hess_bn_vv, _thm42_exact_epsilon_rhs, THM42_REQ + ("H_yv", "H_yy"),
            scale=_thm42_exact_epsilon_scale),
        epsilon_variant(THM_4_2_EXACT, "the exact identity for epsilon > 0 (torch's BatchNorm), where c and <y_hat, v> "
                        "are not 0: what the trajectory probes check along training", name="exact-epsilon"),
    ),
    remarks=(THM42_EPSILON_REMARK,),
)

# ---------------------------------------------------------------------------------------------
# Observation 4.3 -- BatchNorm does more than rescaling
# ---------------------------------------------------------------------------------------------

def _obs43_witness_output(gamma_of):
    def lhs(q):
        # z of the BN layer with the witness configuration gamma = gamma_of(q), beta = mu
        return bn.bn_forward(q.ops, q.y, q.m, gamma_of(q), q.mu, q.eps)
    return lhs


def _obs43_minima_lhs(q):
    """||nabla_{(W, gamma, beta)} L_hat||^2 at (W*, gamma = sigma(W* X), beta = mu(W* X)) (theory.lemma45)."""
    return q.ops.vec_sq(q.bn_grad_at_w_star)


def _obs43_scale(q):
    return 2 * q.ops.sqrt(q.ops.dot(q.y, q.y)) + 2 * q.ops.abs(q.mu) * q.ops.sqrt(q.m)


OBS_4_3 = Statement(
    id="obs-4.3",
    title="BatchNorm does more than rescaling",
    source=Source("Section 4.2, Observation 4.3", "unnumbered", "p. 8"),
    kind=Kind.EXISTENCE,
    setting=Setting.BN_CHANNEL,
    printed=(Excerpt(r"*For any input data* X *and network configuration* W, there exists a BN configuration (W, γ, β) that results in the same activations y_i , and where $\gamma = \sigma_j$ *. Consequently, all of the minima of the normal landscape are preserved in the BN landscape.*", prose=True),),
    reading=("The witness is gamma = sigma_j, beta = mu_j (the batch mean): then z = sigma*(y - mu)/sigma + mu = y, "
             "so the BN network computes exactly what the normal network computes on that batch, and every "
             "loss value (hence every minimum value) of the normal landscape is attained in the BN landscape.  "
             "The claim is checked as the identity z(witness) = y.  Note that the witness depends on the batch."),
    hypotheses=("m >= 2", "sigma_j > 0", "eps = 0"),
    variants=(
        OBS_4_3_PRINTED := Variant("printed", r"\gamma = \sigma_j,\ \beta = \mu_j \implies z = \gamma\hat y + \beta = y",
                "the statement as printed, with the witness beta = mu_j", Relation.EQ,
                _obs43_witness_output(lambda q: q.sigma), lambda q: q.y, ("m", "y", "mu", "sigma", "eps"),
                scale=_obs43_scale),
        epsilon_variant(OBS_4_3_PRINTED, "epsilon > 0: the witness gamma must be sqrt(Var + eps), the sigma BatchNorm divides by"),
        epsilon_variant(OBS_4_3_PRINTED, "epsilon > 0 but gamma taken literally as the batch standard deviation sigma_j (without epsilon)",
                        name="epsilon-batch-std",
                        latex=r"\gamma = \sqrt{\mathrm{Var}(y)}\ (\text{the batch std}),\ \beta = \mu_j \implies z = y\ \text{under}\ \epsilon > 0",
                        lhs=_obs43_witness_output(lambda q: q.ops.sqrt(q.sigma**2 - q.eps)),
                        cause="With epsilon > 0 the witness must be gamma = sqrt(Var + eps), not the batch standard deviation."),
        Variant("minima-preserved", r"\|\nabla_{(W,\gamma,\beta)}\widehat L(W^*,\sigma^*,\mu^*)\|^2 = 0",
                "the second sentence, strong reading: an optimum W* of the standard network, with the witness "
                "gamma = sigma(W* X), beta = mu(W* X), is an optimum (so a critical point) of the BN network; "
                "evaluated exactly on the Lemma 4.5 toy model (theory.lemma45)", Relation.EQ,
                _obs43_minima_lhs, lambda q: 0 * _obs43_minima_lhs(q), ("bn_grad_at_w_star", "bn_grad_scale"),
                setting=Setting.TOY_REGRESSION,
                scale=lambda q: q.bn_grad_scale,
                cause=("The witness reproduces the standard network's outputs, so it attains the same loss value, but the "
                      "BN network has the extra directions gamma and beta: at a standard optimum without a bias the "
                      "residual need not sum to 0, and dL_hat/dbeta = 2 sum_i (z_i - t_i) != 0.")),
    ),
)

# ---------------------------------------------------------------------------------------------
# Theorem 4.4 -- minimax weight-space Lipschitzness
# ---------------------------------------------------------------------------------------------

def _thm44_printed_rhs(q):
    mu_g = g_sum(q) / q.m
    return (q.gamma**2 / q.sigma**2) * (q.gW_max**2 - q.m * mu_g**2 - q.lam**2 * g_dot_yhat(q)**2)


def _thm44_unsquared_rhs(q):
    mu_g = g_sum(q) / q.m
    return (q.gamma**2 / q.sigma**2) * (q.gW_max - q.m * mu_g**2 - q.lam**2 * g_dot_yhat(q)**2)


def _thm44_exact_rhs(q):
    mu_g = g_sum(q) / q.m
    return (q.gamma**2 / q.sigma**2) * (q.gW_max - q.lam**2 * q.m * mu_g**2 - q.lam**2 * g_dot_yhat(q)**2 / q.m)


def _thm44_exact_epsilon_rhs(q):
    return q.lam**2 * _thm41_rhs(lambda q: (2 - yhat_norm_ratio(q)) / q.m)(q)


def _thm44_eq17_rhs(q):
    return q.lam**2 * _thm41_rhs(lambda q: 1 / q.ops.sqrt(q.m))(q)


def _thm44_scale(q):
    return (q.gamma**2 / q.sigma**2) * (q.gW_max**2 + q.gW_max) + q.lam**2 * _gradient_scale(q) + q.gW_hat_max


THM44_REQ = ("m", "gamma", "sigma", "y_hat", "g", "lam", "gW_max", "gW_hat_max")

THM_4_4 = Statement(
    id="thm-4.4",
    title="Minimax bound on weight-space Lipschitzness",
    source=Source("Section 4.2, Theorem 4.4 (restated in Appendix C.2)", "display of Thm 4.4; proof eqs. (10)-(18)", "p. 8; proof pp. 18-19"),
    kind=Kind.CONDITIONAL_IMPLICATION,
    setting=Setting.WEIGHT_SPACE,
    printed=(Excerpt(r"g_j = \max_{\|X\| \leq \lambda} \left\| \nabla_W \mathcal{L} \right\|^2, \qquad \hat{g}_j = \max_{\|X\| \leq \lambda} \left\| \nabla_W \widehat{\mathcal{L}} \right\|^2 \implies \hat{g}_j \leq \frac{\gamma^2}{\sigma_j^2} \left(g_j^2 - m \mu_{g_j}^2 - \lambda^2 \left\langle \nabla_{\mathbf{y}_j} \mathcal{L}, \hat{\mathbf{y}}_j \right\rangle^2 \right)."),),
    reading=("W = W_{.j}, the weights into unit j; nabla_W L = X^T nabla_y L with X in R^{m x d} (eq. (14)).  "
             "||X|| is the spectral norm (the proof writes ||X||_2 < lambda; the supremum is the same).  Inside "
             "the max, the upstream gradient g, y_hat, sigma and gamma are held fixed while X varies -- the "
             "proof's reading (it applies Theorem 4.1 at fixed g).  mu_{g_j} is the mean of the entries of "
             "g = nabla_y L (so m mu^2 = <1,g>^2/m, the proof's (17)->(18) step).  g_j^2 is the square of the "
             "scalar g_j, literally."),
    hypotheses=("m >= 2", "sigma > 0", "eps = 0", "lambda > 0", "X ranges over R^{m x d}, d >= 1, ||X||_2 <= lambda"),
    variants=(
        THM_4_4_PRINTED := Variant("printed", r"\hat g_j \le \frac{\gamma^2}{\sigma^2}\big(g_j^2 - m\mu_g^2 - \lambda^2\langle g,\hat y\rangle^2\big)",
                "the statement as printed (g_j squared)", Relation.LE,
                lambda q: q.gW_hat_max, _thm44_printed_rhs, THM44_REQ,
                scale=_thm44_scale,
                cause=("g_j is already a squared norm, so 'g_j^2' squares it twice; the other terms lose the lambda^2 that "
                      "multiplies every term of max ||X^T v||^2 = lambda^2 ||v||^2, and the proof's (17) carries Theorem "
                      "4.1's 1/sqrt(m).")),
        Variant("unsquared", r"\hat g_j \le \frac{\gamma^2}{\sigma^2}\big(g_j - m\mu_g^2 - \lambda^2\langle g,\hat y\rangle^2\big)",
                "g_j^2 read as the typo it appears to be (g_j is already a squared norm); other terms as printed", Relation.LE,
                lambda q: q.gW_hat_max, _thm44_unsquared_rhs, THM44_REQ,
                scale=_thm44_scale),
        Variant("proof-eq17", r"\hat g_j \le \frac{\lambda^2\gamma^2}{\sigma^2}\Big(\|g\|^2 - \frac1m\langle\mathbf 1,g\rangle^2 - \frac1{\sqrt m}\langle g,\hat y\rangle^2\Big)",
                "the bound the proof actually establishes, eq. (17)", Relation.LE,
                lambda q: q.gW_hat_max, _thm44_eq17_rhs, THM44_REQ,
                scale=_thm44_scale),
        THM_4_4_EXACT := Variant("exact", r"\hat g_j = \frac{\gamma^2}{\sigma^2}\Big(g_j - \lambda^2 m\mu_g^2 - \frac{\lambda^2}{m}\langle g,\hat y\rangle^2\Big)",
                "exact value: lambda^2 on every term, g_j unsquared, 1/m on the correlation term", Relation.EQ,
                lambda q: q.gW_hat_max, _thm44_exact_rhs, THM44_REQ,
                scale=_thm44_scale),
        epsilon_variant(THM_4_4_PRINTED, "the printed bound for BatchNorm with epsilon > 0 (torch)"),
        epsilon_variant(THM_4_4_EXACT, "exact value for epsilon > 0 (lambda^2 times Theorem 4.1's exact-epsilon form)",
                        name="exact-epsilon",
                        latex=r"\hat g_j = \frac{\lambda^2\gamma^2}{\sigma^2}\Big(\|g\|^2 - \frac1m\langle\mathbf 1,g\rangle^2 - \frac{2-\rho}{m}\langle g,\hat y\rangle^2\Big),\ \rho = \|\hat y\|^2/m",
                        rhs=_thm44_exact_epsilon_rhs),
    ),
)

# ---------------------------------------------------------------------------------------------
# Theorem C.1 -- minimax smoothness
# ---------------------------------------------------------------------------------------------

def _kappa(q):
    """The separation of Theorem 4.2's second display: <g, y_hat> ||v||^2 / (m gamma)."""
    return g_dot_yhat(q) * grad_bn_norm_sq(q) / (q.m * q.gamma)


def _thmc1_rhs(q):
    return (q.gamma**2 / q.sigma**2) * (q.betaW_max - q.lam**4 * _kappa(q))


def _thmc1_eq58_lhs(q):
    return q.lam**4 * q.hess_bn_vv


def _thmc1_eq58_rhs(q):
    return (q.gamma**2 / q.sigma**2) * (q.lam**4 * q.H_gg - q.lam**4 * _kappa(q))


def _thmc1_scale(q):
    lam4 = q.lam**4
    h = q.H_gg if q.has(("H_gg",)) else 0
    return (q.gamma**2 / q.sigma**2) * lam4 * (q.ops.abs(_kappa(q)) + q.ops.abs(h))


def _thmc1_split_rhs(q):
    return (q.gamma**4 / q.sigma**4) * q.betaW_max + q.betaW_hat0_max


def _thmc1_split_scale(q):
    """Each maximum is a trust-region value computed to rounding of |A| (lambda^2 ||u||)^2 (numeric.maxima);
    |A| <= (gamma^2/sigma^2)||H||_F + the curvature part for the BN network, ||H||_F for the standard one."""
    lam4 = q.lam**4
    h = q.H_frob if q.has(("H_frob",)) else 0
    return lam4 * ((q.gamma**4 / q.sigma**4) * h * g_norm_sq(q)
                   + ((q.gamma**2 / q.sigma**2) * h + 2 * _curvature_scale(q)) * grad_bn_norm_sq(q))


THM_C_1 = Statement(
    id="thm-c1",
    title="Minimax smoothness bound",
    source=Source("Appendix C.3, Theorem C.1", "display of Thm C.1; proof eqs. (52)-(58)", "p. 22 (anchor page-22-0)"),
    kind=Kind.INEQUALITY,
    setting=Setting.WEIGHT_SPACE,
    printed=(Excerpt(r"\max_{||X||\leq \lambda}\left(\frac{\partial \widehat{\mathcal{L}}}{\partial W_{\cdot j}}\right)^\top \frac{\partial \widehat{\mathcal{L}}}{\partial W_{\cdot j} \partial W_{\cdot j}}\left(\frac{\partial \widehat{\mathcal{L}}}{\partial W_{\cdot j}}\right)<\frac{\gamma^2}{\sigma^2} \left[\max_{||X||\leq \lambda}\left(\frac{\partial \mathcal{L}}{\partial W_{\cdot j}}\right)^\top \frac{\partial \mathcal{L}}{\partial W_{\cdot j} \partial W_{\cdot j}}\left(\frac{\partial \mathcal{L}}{\partial W_{\cdot j}}\right)-\lambda^4 \kappa\right],"),),
    reading=("beta(X) = (X^T u)^T (X^T A X) (X^T u) = u^T S A S u with S = X X^T (eqs. (52)-(57)), u the y-gradient "
             "and A the y-Hessian of the respective network, held fixed while X varies (as in Theorem 4.4).  "
             "With d >= m, S ranges over all PSD matrices with ||S||_2 <= lambda^2, so the max is that of w^T A w "
             "over the ball {w : ||w - (lambda^2/2) u|| <= (lambda^2/2)||u||} (a trust-region problem).  "
             "kappa, 'the separation given in the previous theorem', is read as <g, y_hat> ||v||^2/(m gamma), the "
             "term subtracted inside gamma^2/sigma^2 [...] in Theorem 4.2's second display; 'the same conditions' "
             "are that theorem's (H preserves the relative norms of g and v)."),
    hypotheses=("m >= 2", "sigma > 0", "eps = 0", "lambda > 0", "d >= m", "conditions of Theorem 4.2"),
    variants=(
        Variant("printed", r"\max_{\|X\|\le\lambda}\hat\beta(X) < \frac{\gamma^2}{\sigma^2}\Big[\max_{\|X\|\le\lambda}\beta(X) - \lambda^4\kappa\Big]",
                "the statement as printed: true maxima over X, strict inequality", Relation.LT,
                lambda q: q.betaW_hat_max, _thmc1_rhs,
                BN_INPUTS + ("grad_y_bn", "lam", "betaW_max", "betaW_hat_max"),
                scale=_thmc1_scale,
                cause=("The proof evaluates both maxima at X X^T = lambda^2 I (eq. (58)); that S maximises neither side in "
                      "general, and the bound inherits Theorem 4.2's second display.")),
        Variant("proof-eq58", r"\lambda^4 v^\top\widehat H v < \frac{\gamma^2}{\sigma^2}\big[\lambda^4 g^\top H g - \lambda^4\kappa\big]",
                "the proof's evaluation (eq. (58)): X X^T = lambda^2 I taken as the maximiser on both sides", Relation.LT,
                _thmc1_eq58_lhs, _thmc1_eq58_rhs, BN_INPUTS + ("grad_y_bn", "lam", "hess_bn_vv", "H_gg"),
                extra_hypotheses=("H preserves the relative norms of g and v (Theorem 4.2's second display)",),
                constraint=_relative_norm_constraint, constraint_scale=_relative_norm_scale,
                scale=_thmc1_scale),
        Variant("split-bound", r"\max_{\|X\|\le\lambda}\hat\beta(X) \le \frac{\gamma^4}{\sigma^4}\max_{\|X\|\le\lambda}\beta(X) + \max_{\|X\|\le\lambda}\hat\beta_0(X)",
                "what does hold between the two maxima (a proved bound, not a closed form): the BN maximum is at most "
                "(gamma/sigma)^4 times the standard one plus the BN maximum of the same network with H = 0 "
                "(BatchNorm's own curvature); equality for every H <= 0 whose quadratic form vanishes on the range of P, "
                "in particular H = 0", Relation.LE,
                lambda q: q.betaW_hat_max, _thmc1_split_rhs,
                BN_INPUTS + ("grad_y_bn", "lam", "betaW_max", "betaW_hat_max", "betaW_hat0_max"),
                scale=_thmc1_split_scale),
    ),
)

# ---------------------------------------------------------------------------------------------
# Lemma 4.5 -- favourable initialisation
# ---------------------------------------------------------------------------------------------

def _lemma45_rhs_of(name):
    """The lemma's right side with W* the standard optimum called ``name`` in the quantities."""
    def rhs(q):
        o = q.ops
        W_star = q.values[name]
        ws_sq = o.dot(W_star, W_star)
        return o.dot(q.W0 - W_star, q.W0 - W_star) - (ws_sq - o.dot(W_star, q.W0))**2 / ws_sq
    return rhs


_lemma45_rhs = _lemma45_rhs_of("W_star")


def _lemma45_scale_of(name):
    """Terms of the slack, 4(||W0||^2 + ||W*||^2), times the condition number of the Gram matrix of the
    centred inputs: W* and the BN direction come from solves whose relative error is cond * u."""
    def scale(q):
        W_star = q.values[name]
        return 4 * (q.ops.dot(q.W0, q.W0) + q.ops.dot(W_star, W_star)) * q.gram_condition
    return scale


def _lemma45_ray_lhs(q):
    o = q.ops
    k = o.dot(q.W_star, q.W0) / o.dot(q.W_star, q.W_star)
    diff = q.W0 - o.scale(k, q.W_star)
    return o.dot(diff, diff)


def _lemma45_scale(q):
    return 4 * (q.ops.dot(q.W0, q.W0) + q.ops.dot(q.W_star, q.W_star))


LEMMA_4_5 = Statement(
    id="lemma-4.5",
    title="BatchNorm leads to a favourable initialization",
    source=Source("Section 4.2, Lemma 4.5 (restated in Appendix C)", "display of Lemma 4.5; proof eqs. (59)-(62)", "p. 8; proof p. 22"),
    kind=Kind.CONDITIONAL_IMPLICATION,
    setting=Setting.TOY_REGRESSION,
    printed=(Excerpt(r"\left| \left| W_0 - \widehat{W}^* \right| \right|^2 \leq \left| \left| W_0 - W^* \right| \right|^2 - \frac{1}{\left| \left| W^* \right| \right|^2} \left(\left| \left| W^* \right| \right|^2 - \left\langle W^*, W_0 \right\rangle \right)^2,"),
             Connecting(r" \quad\text{if } "),
             Excerpt(r"\langle W_0, W^* \rangle > 0")),
    reading=("W* is the optimum of the standard network closest to W_0 and Ŵ* the optimum of the BN network "
             "closest to W_0 ('closest optima'); ||W_0 - Ŵ*|| is the distance from W_0 to the BN optimum set "
             "(an infimum where the set is a ray without its end point 0, at which BatchNorm is undefined).  "
             "The proof shows the inequality only for the point k W* (k = <W*,W_0>/||W*||^2), assuming every "
             "positive multiple of a standard optimum is a BN optimum.  Evaluated exactly on a model whose "
             "optimum sets are known in closed form (theory.lemma45: one neuron, identity activation, squared "
             "loss, three data points; BN with constant gamma > 0, beta, as Section 4.1 assumes).  The same conclusion, "
             "on the same kind of model (one neuron, identity activation, three points), is in Dannemann & Junike "
             "(2025), 'Batch normalization does not improve initialization', arXiv:2502.17913."),
    hypotheses=("<W_0, W*> > 0", "W* != 0", "optimum sets of the actual networks"),
    variants=(
        Variant("printed", r"\operatorname{dist}(W_0, \widehat{\mathcal W}^*)^2 \le \|W_0 - W^*\|^2 - \frac{(\|W^*\|^2 - \langle W^*, W_0\rangle)^2}{\|W^*\|^2}",
                "the statement as printed, with Ŵ* the closest optimum of the actual BN network", Relation.LE,
                lambda q: q.bn_opt_dist_sq, _lemma45_rhs, ("W0", "W_star", "bn_opt_dist_sq"),
                condition=lambda q: q.ops.dot(q.W0, q.W_star),
                scale=_lemma45_scale,
                cause=("The proof takes k W* to be an optimum of the BN network; the BN optima form the ray of the centred "
                      "least-squares direction, which differs from W* in general.")),
        Variant("ray", r"\|W_0 - kW^*\|^2 = \|W_0 - W^*\|^2 - \frac{(\|W^*\|^2 - \langle W^*, W_0\rangle)^2}{\|W^*\|^2},\ k = \frac{\langle W^*,W_0\rangle}{\|W^*\|^2}",
                "the proof's algebra (59)-(62): the point k W* on the ray through W*, not the BN optimum set", Relation.EQ,
                _lemma45_ray_lhs, _lemma45_rhs, ("W0", "W_star"),
                condition=lambda q: q.ops.dot(q.W0, q.W_star),
                scale=_lemma45_scale),
        Variant("with-bias", r"\operatorname{dist}(W_0, \widehat{\mathcal W}^*)^2 \le \|W_0 - W^*_b\|^2 - \frac{(\|W^*_b\|^2 - \langle W^*_b, W_0\rangle)^2}{\|W^*_b\|^2}",
                "the standard layer has a bias, y = W x + b: its optimal weights W*_b are the centred least-squares "
                "solution, which spans the BN optimum ray, so the closest BN optimum is k W*_b and the bound is tight",
                Relation.LE, lambda q: q.bn_opt_dist_sq, _lemma45_rhs_of("W_star_bias"),
                ("W0", "W_star_bias", "bn_opt_dist_sq", "gram_condition"),
                extra_hypotheses=("the standard layer has a bias (W*_b: the weights of its optimum; the bias is not part of the distance)",),
                condition=lambda q: q.ops.dot(q.W0, q.W_star_bias),
                scale=_lemma45_scale_of("W_star_bias")),
        Variant("centred-inputs", r"\operatorname{dist}(W_0, \widehat{\mathcal W}^*)^2 \le \|W_0 - W^*_c\|^2 - \frac{(\|W^*_c\|^2 - \langle W^*_c, W_0\rangle)^2}{\|W^*_c\|^2}",
                "the inputs are centred (sum_i x_i = 0), no bias: W*_c, the least-squares solution on the centred "
                "inputs, spans the BN optimum ray (BatchNorm's optima do not change when the inputs are centred)",
                Relation.LE, lambda q: q.bn_opt_dist_sq, _lemma45_rhs_of("W_star_centred"),
                ("W0", "W_star_centred", "bn_opt_dist_sq", "gram_condition"),
                extra_hypotheses=("the inputs are centred: the model is fitted on x_i - mean_j x_j",),
                condition=lambda q: q.ops.dot(q.W0, q.W_star_centred),
                scale=_lemma45_scale_of("W_star_centred")),
    ),
)

# ---------------------------------------------------------------------------------------------
# Definition 2.1 -- internal covariate shift
# ---------------------------------------------------------------------------------------------

def ics_l2(q):
    """||G_{t,i} - G'_{t,i}||_2 (Frobenius norm of the parameter-shaped difference)."""
    d = q.G - q.G_prime
    return q.ops.sqrt(q.ops.vec_sq(d))


def ics_cosine(q):
    """cos angle between G and G' (the paper's Figure 3 also plots it; ideally 1)."""
    return q.ops.dot(q.G, q.G_prime) / q.ops.sqrt(q.ops.vec_sq(q.G) * q.ops.vec_sq(q.G_prime))


def ics_argument_lists(i: int, k: int):
    """The parameter lists at which G_{t,i} and G'_{t,i} are evaluated, as printed:
    (W_1^(t), ..., W_k^(t)) and (W_1^(t+1), ..., W_{i-1}^(t+1), W_i^(t), ..., W_k^(t))."""
    import sympy as sp
    before = tuple(sp.Symbol(f"W_{l}^(t)") for l in range(1, k + 1))
    after = tuple(sp.Symbol(f"W_{l}^(t+1)") for l in range(1, i)) \
        + tuple(sp.Symbol(f"W_{l}^(t)") for l in range(i, k + 1))
    return before, after


def _ics_first_layer(q):
    d = q.G_first - q.G_first_prime
    return q.ops.sqrt(q.ops.vec_sq(d))


DEF_2_1 = Statement(
    id="def-2.1",
    title="Internal covariate shift (ICS)",
    source=Source("Section 2.2, Definition 2.1", "displays of G_{t,i} and G'_{t,i}", "p. 4 (anchor page-4-1)"),
    kind=Kind.DEFINITION,
    setting=Setting.NETWORK,
    printed=(Excerpt(r"G_{t,i} = \nabla_{W_i^{(t)}} \mathcal{L}(W_1^{(t)}, \dots, W_k^{(t)}; x^{(t)}, y^{(t)})"),
             Connecting(r"\qquad "),
             Excerpt(r"G'_{t,i} = \nabla_{W_i^{(t)}} \mathcal{L}(W_1^{(t+1)}, \dots, W_{i-1}^{(t+1)}, W_i^{(t)}, W_{i+1}^{(t)}, \dots, W_k^{(t)}; x^{(t)}, y^{(t)})."),
             Connecting(r"\qquad \text{ICS} = "),
             Excerpt(r"||G_{t,i} - G'_{t,i}||_2")),
    reading=("'activation i' is read as layer i (G is a gradient w.r.t. layer i's parameters).  W^{(t+1)} are "
             "the parameters after the optimiser step at t computed from the same batch; the batch (x^(t), "
             "y^(t)) is the same for G and G'; BatchNorm layers are evaluated in training mode for both.  "
             "||.||_2 of a parameter tensor is the Frobenius norm.  Figure 3 also reports the cosine of G, G'."),
    hypotheses=("layers 1..k in order from input to output", "the same batch for G and G'"),
    variants=(
        Variant("printed", r"\mathrm{ICS}_{t,i} = \|G_{t,i} - G'_{t,i}\|_2",
                "the definition as printed (a measurement, no truth value)", Relation.DEFINITION,
                ics_l2, None, ("G", "G_prime")),
        Variant("first-layer-zero", r"\mathrm{ICS}_{t,1} = 0",
                "a consequence of the definition: layer 1 has no preceding layer, so G' = G", Relation.EQ,
                _ics_first_layer, lambda q: 0 * _ics_first_layer(q), ("G_first", "G_first_prime")),
    ),
)

# ---------------------------------------------------------------------------------------------
# The registry
# ---------------------------------------------------------------------------------------------

STATEMENTS = (FACT_C1, FACT_C2, HESSIAN_C, THM_4_1, THM_4_2, OBS_4_3, THM_4_4, THM_C_1, LEMMA_4_5, DEF_2_1)
BY_ID = {s.id: s for s in STATEMENTS}


def get(statement_id: str) -> Statement:
    """The statement with this ID; an unknown ID is an error that lists the valid ones."""
    try:
        return BY_ID[statement_id]
    except KeyError:
        raise UnknownStatementError(
            f"unknown statement ID {statement_id!r}; valid IDs: {', '.join(BY_ID)}") from None


def resolve(ids) -> tuple:
    """Statements for a list of IDs (all when empty), validating each."""
    return tuple(get(i) for i in ids) if ids else STATEMENTS


def all_variants(statements=STATEMENTS):
    for s in statements:
        for v in s.variants:
            yield s, v


def to_json_dict(statements=STATEMENTS) -> dict:
    return {"statements": [
        {"id": s.id, "title": s.title, "source": str(s.source), "kind": s.kind,
         "setting": s.setting, "printed_latex": s.printed_latex, "reading": s.reading,
         "hypotheses": list(s.hypotheses),
         "variants": [{"name": v.name, "latex": v.latex, "note": v.note, "relation": v.relation,
                       "epsilon": v.epsilon, "extra_hypotheses": list(v.extra_hypotheses)}
                      for v in s.variants]}
        for s in statements]}


def format_text(statements=STATEMENTS) -> str:
    lines = []
    for s in statements:
        lines.append(f"{s.id:<11} {s.title}  [{s.kind}]")
        lines.append(f"{'':11} source: {s.source}")
        lines.append(f"{'':11} hypotheses: {'; '.join(s.hypotheses)}")
        for v in s.variants:
            lines.append(f"{'':11} - {v.name:<18} {v.relation:<10} {v.note}")
        lines.append("")
    return "\n".join(lines)


FORMATS = {"text": format_text, "json": lambda chosen: json.dumps(to_json_dict(chosen), indent=2)}


def main(argv=None) -> int:
    parser = cli.parser("python -m theory.statements", __doc__.split("\n")[0])
    parser.add_argument("--format", choices=tuple(FORMATS), default="text")
    parser.add_argument("ids", nargs="*", help="statement IDs (default: all)")
    return cli.run(parser, lambda args: print(FORMATS[args.format](resolve(args.ids))), argv,
                   bad_input=(UnknownStatementError,))


if __name__ == "__main__":
    sys.exit(main())
