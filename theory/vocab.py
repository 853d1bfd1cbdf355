"""The shared vocabulary: verdicts, relations, settings, epsilon scopes and statement kinds.

Every layer (symbolic, numeric, certification, trajectory summary, report, docs) speaks these
types; no other module compares verdict or relation strings.  The members are ``str`` enums
whose values are the words the documents and JSON output have always used, so a verdict
serialises as ``"violated"`` and reads back with ``Verdict("violated")``.

The slack rule lives here and only here (``Relation.slack``):

* ``<=`` and ``<``: slack = RHS - LHS, negative means violated; for ``<`` a slack of exactly 0
  also violates.
* ``==``: slack = LHS - RHS, the signed residual; any non-zero residual violates.  Float layers
  report ``-|LHS - RHS|`` (``Relation.float_slack``) so that a float slack is never positive for
  an identity and 0 means exact agreement.

And the float64 rounding budget (``rounding_tolerance``), from which every float verdict is
decided, lives here too.
"""
from __future__ import annotations

from enum import Enum

import numpy as np


class _Word(str, Enum):
    """A ``str`` enum that prints as its value (``f"{Verdict.HOLDS}"`` is ``holds``)."""

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)


class Verdict(_Word):
    """What a layer concludes about a statement variant (or one instance of it).

    HOLDS        the relation holds, strictly where it is an inequality
    EQUALITY     the two sides are equal (an identity holds; an inequality is tight)
    VIOLATED     the relation fails (certified where a layer says so)
    CONDITIONAL  holds exactly when a stated condition does
    UNDETERMINED the layer could not decide (a float within rounding of 0; an interval that
                 contains 0; no closed form)
    UNDEFINED    a side is 0/0 at the instance
    NOT_APPLICABLE the instance misses a hypothesis of the variant, or its quantities are absent
    DEFINITION   a measurement with no truth value
    """
    HOLDS = "holds"
    EQUALITY = "equality"
    VIOLATED = "violated"
    CONDITIONAL = "conditional"
    UNDETERMINED = "undetermined"
    UNDEFINED = "undefined"
    NOT_APPLICABLE = "n/a"
    DEFINITION = "definition"

    @property
    def decided(self) -> bool:
        """A verdict that says which way the relation goes."""
        return self in (Verdict.HOLDS, Verdict.EQUALITY, Verdict.VIOLATED, Verdict.CONDITIONAL)


# What each verdict means, for --help texts and report footers.
VERDICT_LEGEND = {
    Verdict.HOLDS: "the relation holds (strictly, for an inequality)",
    Verdict.EQUALITY: "both sides are equal (an identity holds, or an inequality is tight)",
    Verdict.VIOLATED: "the relation fails; certified in exact or interval arithmetic",
    Verdict.CONDITIONAL: "holds exactly when the stated condition does",
    Verdict.UNDETERMINED: "not decided (rounding-level slack, or no closed form)",
    Verdict.UNDEFINED: "a side is 0/0 at the instance",
    Verdict.NOT_APPLICABLE: "no instance meets the variant's hypotheses",
    Verdict.DEFINITION: "a definition: measured, no truth value",
}



class ClaimVerdict(_Word):
    """What the reproduction concludes about an experimental claim of the paper under one reading
    (gpu_check.criteria): a statistic's 95% interval over seeds against the claim's threshold.

    REPRODUCED        the interval lies on the claim's side of the threshold (inside the margin,
                      for a claim of similarity)
    NOT_REPRODUCED    the interval lies on the other side (outside the margin)
    INCONCLUSIVE      the interval straddles the threshold (or there are too few seeds)
    NOT_TESTABLE_HERE the claim needs a resource this setting lacks (a GPU, CIFAR-10), named
    NOT_IMPLEMENTED   no measurement of the project makes the claim's statistic yet
    """
    REPRODUCED = "reproduced"
    NOT_REPRODUCED = "not-reproduced"
    INCONCLUSIVE = "inconclusive"
    NOT_TESTABLE_HERE = "not-testable-here"
    NOT_IMPLEMENTED = "not-implemented"

class Relation(_Word):
    """The relation between a variant's left side (the measured object) and its right side
    (the paper's formula).  Owns the slack sign rule and the verdict of a slack."""
    LE = "<="
    LT = "<"
    EQ = "=="
    DEFINITION = "definition"

    @property
    def is_inequality(self) -> bool:
        return self in (Relation.LE, Relation.LT)

    def slack(self, lhs, rhs):
        """RHS - LHS for an inequality (negative: violated); the signed residual LHS - RHS for
        an identity.  Works on any values that subtract (floats, arrays, SymPy, intervals)."""
        if self is Relation.DEFINITION:
            raise ValueError("a definition has no slack")
        return rhs - lhs if self.is_inequality else lhs - rhs

    def float_slack(self, lhs, rhs):
        """The slack as float layers report it: RHS - LHS, or -|LHS - RHS| for an identity."""
        if self.is_inequality:
            return rhs - lhs
        return -np.abs(lhs - rhs)

    def verdict_of_sign(self, sign: int) -> Verdict:
        """The verdict of an exactly known slack sign (-1, 0, +1) under the slack rule."""
        if self is Relation.DEFINITION:
            return Verdict.DEFINITION
        if self is Relation.EQ:
            return Verdict.EQUALITY if sign == 0 else Verdict.VIOLATED
        if sign > 0:
            return Verdict.HOLDS
        if sign == 0:
            return Verdict.VIOLATED if self is Relation.LT else Verdict.EQUALITY
        return Verdict.VIOLATED

    def classify(self, slack, tolerance):
        """Per-instance verdicts (object array of Verdict) from float slack and its rounding
        tolerance.  A slack within rounding of 0 is EQUALITY: for a strict ``<`` only exact
        arithmetic can say on which side of 0 it lies (certification decides).  NaN slack (a
        formula that is 0/0 at the instance) is UNDEFINED, never VIOLATED."""
        slack = np.asarray(slack, dtype=np.float64)
        tolerance = np.asarray(tolerance, dtype=np.float64)
        within = np.abs(slack) <= tolerance
        # Object arrays throughout: np.where on str-enum members would turn them into numpy strings.
        verdict = np.empty(np.broadcast(slack, tolerance).shape, dtype=object)
        verdict.fill(Verdict.VIOLATED)
        if self is not Relation.EQ:
            verdict[slack > 0] = Verdict.HOLDS
        verdict[within] = Verdict.EQUALITY
        verdict[np.isnan(slack)] = Verdict.UNDEFINED
        return verdict


class Setting(_Word):
    """Where a statement's quantities come from."""
    BN_CHANNEL = "bn-channel"          # one BatchNorm channel: y, gamma, beta, eps, g, H
    WEIGHT_SPACE = "weight-space"      # maxima over ||X|| <= lambda (Theorems 4.4, C.1)
    TOY_REGRESSION = "toy-regression"  # exact optimum sets of the Lemma 4.5 model
    NETWORK = "network"                # a whole network (Definition 2.1)


class EpsilonScope(_Word):
    """Which BatchNorm epsilon a variant is about."""
    ZERO = "zero"
    POSITIVE = "positive"
    ANY = "any"

    def admits(self, eps):
        """Boolean (array) mask of the eps values in scope."""
        eps = np.asarray(eps, dtype=np.float64)
        if self is EpsilonScope.ZERO:
            return eps == 0
        if self is EpsilonScope.POSITIVE:
            return eps > 0
        return np.ones(eps.shape, dtype=bool)


class Kind(_Word):
    """The logical kind of a statement."""
    IDENTITY = "identity"
    INEQUALITY = "inequality"
    EXISTENCE = "existence"
    CONDITIONAL_IMPLICATION = "conditional implication"
    DEFINITION = "definition"


# ---------------------------------------------------------------------------------------------
# Float64 rounding budget
# ---------------------------------------------------------------------------------------------

# Unit roundoff of IEEE float64.
UNIT_ROUNDOFF = np.finfo(np.float64).eps / 2
# Every quantity is a short chain (at most ~10) of products and inner products of length <= m;
# an inner product of length m carries a relative error <= m u (Higham, gamma_m), so the error
# of a slack is bounded by about 10 m u times the magnitude of the terms that cancel in it.
# ROUNDING_SAFETY = 64 covers that chain with margin, and no more: a violation smaller than
# 64 m u x scale is reported as 'equality' and must be decided exactly (certification).
ROUNDING_SAFETY = 64.0


def rounding_tolerance(m, scale):
    """The float64 rounding budget of a slack whose cancelling terms have magnitude ``scale``
    on a batch of size ``m``: ROUNDING_SAFETY * m * u * scale."""
    return ROUNDING_SAFETY * np.maximum(np.asarray(m, dtype=np.float64), 1) * UNIT_ROUNDOFF * np.asarray(scale)
