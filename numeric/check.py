"""Evaluate one statement variant on numbers the user brings, exactly.

    check(statement, inputs, variant=None) -> tuple of CheckResult

``inputs`` uses the keys of the report's counterexamples: ``y``, ``g``, ``gamma``, ``beta``,
``eps``, ``H``, ``lambda`` for a BatchNorm channel (and the weight-space statements, which also
need ``lambda``); ``X``, ``t``, ``W0`` for Lemma 4.5's toy model (W0 is a weight vector; a bias,
where a variant has one, is not part of the distance).  Every number is exact: an int, a
``Fraction``, or a string such as "1/3", "0.1" or "1e-3" (read as the exact decimal it spells).
``beta`` and ``eps`` default to 0.  A report counterexample's ``inputs`` (or the whole
counterexample object) can be given as it is.

Each variant is decided by numeric.certify -- exact rational/algebraic arithmetic first, 60-digit
interval arithmetic where the exact path does not decide (the maxima of Theorem C.1) -- and the
closed form of both sides is given where one exists.  Nothing here is float64: the verdict is the
certified one.
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Optional

from numeric import certify
from numeric.counterexample import USES_H, USES_LAMBDA, exact_sides
from theory.statements import Statement, Variant, setting_of
from theory.vocab import Setting, Verdict

CHANNEL_KEYS = ("y", "g", "gamma", "beta", "eps", "H", "lambda")
TOY_KEYS = ("X", "t", "W0")
KEYS = {Setting.BN_CHANNEL: CHANNEL_KEYS, Setting.WEIGHT_SPACE: CHANNEL_KEYS, Setting.TOY_REGRESSION: TOY_KEYS}
# Keys of a report counterexample object that are not inputs (so the whole object can be given).
COUNTEREXAMPLE_WRAPPER = "inputs"


class CheckInputError(ValueError):
    """Input that cannot be checked: the message names the key and the problem."""


@dataclass(frozen=True)
class CheckResult:
    statement_id: str
    variant: str
    relation: str
    verdict: Verdict
    method: str                 # exact | interval-60 (how the verdict was certified)
    lhs: str
    rhs: str
    slack_lower: str            # enclosure of the slack (RHS - LHS; for an identity -|LHS - RHS|)
    slack_upper: str
    exact: dict                 # closed forms of lhs, rhs and slack where they exist
    detail: str = ""

    @property
    def slack(self) -> str:
        """The slack itself where it is known exactly, else its enclosure."""
        if "slack" in self.exact:
            return self.exact["slack"]
        return self.slack_lower if self.slack_lower == self.slack_upper else f"[{self.slack_lower}, {self.slack_upper}]"

    def to_dict(self) -> dict:
        return {"id": self.statement_id, "variant": self.variant, "relation": str(self.relation),
                "verdict": str(self.verdict), "certified": self.method, "lhs": self.lhs, "rhs": self.rhs,
                "slack": self.slack, "slack_lower": self.slack_lower, "slack_upper": self.slack_upper,
                "exact": self.exact, "detail": self.detail}


# ---------------------------------------------------------------------------------------------
# Exact numbers
# ---------------------------------------------------------------------------------------------

def exact_number(value, key: str) -> Fraction:
    """An int, Fraction or exact decimal/ratio string as a Fraction; anything else is an error
    naming the key (floats are refused: 0.1 as a float is not 1/10 -- write "0.1")."""
    if isinstance(value, bool) or value is None:
        raise CheckInputError(f"{key}: expected a number, got {value!r}")
    if isinstance(value, (int, Fraction)):
        return Fraction(value)
    if isinstance(value, float):
        raise CheckInputError(f"{key}: {value!r} is a binary float; give the number as JSON text "
                              f"(read exactly) or as a string such as \"0.1\" or \"1/3\"")
    if isinstance(value, str):
        text = value.strip()
        if text.lower().lstrip("+-") in ("nan", "inf", "infinity"):
            raise CheckInputError(f"{key}: {value!r} is not a finite number")
        try:
            return Fraction(text)
        except (ValueError, ZeroDivisionError):
            raise CheckInputError(f"{key}: {value!r} is not a number (use e.g. 3, \"1/3\", \"0.1\")") from None
    raise CheckInputError(f"{key}: expected a number, got {type(value).__name__}")


def _vector(value, key: str) -> list:
    if not isinstance(value, (list, tuple)) or any(isinstance(x, (list, tuple)) for x in value):
        raise CheckInputError(f"{key}: expected a list of numbers")
    return [exact_number(x, f"{key}[{i}]") for i, x in enumerate(value)]


def _matrix(value, key: str, rows: Optional[int] = None, cols: Optional[int] = None) -> list:
    if not isinstance(value, (list, tuple)) or not value or not all(isinstance(r, (list, tuple)) for r in value):
        raise CheckInputError(f"{key}: expected a list of rows (a matrix)")
    out = [[exact_number(x, f"{key}[{i}][{j}]") for j, x in enumerate(r)] for i, r in enumerate(value)]
    widths = {len(r) for r in out}
    if len(widths) != 1:
        raise CheckInputError(f"{key}: rows of different lengths {sorted(widths)}")
    if rows is not None and (len(out) != rows or widths != {cols}):
        raise CheckInputError(f"{key}: expected {rows} x {cols}, got {len(out)} x {widths.pop()}")
    return out


# ---------------------------------------------------------------------------------------------
# Inputs per setting
# ---------------------------------------------------------------------------------------------

def _needs(variant: Variant) -> tuple:
    need = ("y", "g", "gamma")
    if USES_H & set(variant.requires):
        need += ("H",)
    if USES_LAMBDA & set(variant.requires):
        need += ("lambda",)
    return need


def channel_inputs(raw: dict, variants) -> dict:
    """Validated exact inputs of a BatchNorm-channel instance, in certify's form."""
    need = sorted({k for v in variants for k in _needs(v)}, key=CHANNEL_KEYS.index)
    missing = [k for k in need if k not in raw]
    if missing:
        raise CheckInputError(f"missing key {missing[0]!r} (needed: {', '.join(need)})")
    y, g = _vector(raw["y"], "y"), _vector(raw["g"], "g")
    m = len(y)
    if m < 2:
        raise CheckInputError(f"y has {m} entr{'y' if m == 1 else 'ies'}: BatchNorm needs a batch of m >= 2")
    if len(g) != m:
        raise CheckInputError(f"g has {len(g)} entries, y has {m}: they must have the same length")
    out = {"m": m, "y": y, "g": g, "gamma": exact_number(raw["gamma"], "gamma"),
           "beta": exact_number(raw.get("beta", 0), "beta"), "eps": exact_number(raw.get("eps", 0), "eps")}
    if out["eps"] < 0:
        raise CheckInputError(f"eps = {out['eps']}: BatchNorm's epsilon must be >= 0")
    if out["eps"] == 0 and len(set(y)) == 1:
        raise CheckInputError(f"y is constant ({y[0]}): zero batch variance with eps = 0, BatchNorm is undefined")
    if out["gamma"] == 0:
        raise CheckInputError("gamma = 0: the BatchNorm layer is constant")
    if "H" in raw:
        out["H"] = _matrix(raw["H"], "H", m, m)
        if any(out["H"][i][j] != out["H"][j][i] for i in range(m) for j in range(i)):
            raise CheckInputError("H is not symmetric (a Hessian d^2L/dz^2 is)")
    if "lambda" in raw:
        out["lambda"] = exact_number(raw["lambda"], "lambda")
        if out["lambda"] <= 0:
            raise CheckInputError(f"lambda = {out['lambda']}: the bound on ||X||_2 must be > 0")
    return out


def toy_inputs(raw: dict) -> dict:
    """Validated exact inputs of Lemma 4.5's toy model: X (n x d), t (n), W0 (d)."""
    missing = [k for k in TOY_KEYS if k not in raw]
    if missing:
        raise CheckInputError(f"missing key {missing[0]!r} (needed: {', '.join(TOY_KEYS)})")
    X = _matrix(raw["X"], "X")
    t, W0 = _vector(raw["t"], "t"), _vector(raw["W0"], "W0")
    if len(t) != len(X):
        raise CheckInputError(f"t has {len(t)} entries, X has {len(X)} rows: one target per data point")
    if len(W0) != len(X[0]):
        raise CheckInputError(f"W0 has {len(W0)} entries, X has {len(X[0])} columns: one weight per input")
    if len(X) < 2:
        raise CheckInputError(f"X has {len(X)} row: BatchNorm needs a batch of m >= 2 data points")
    return {"X": X, "t": t, "W0": W0}


def _unwrap(raw) -> dict:
    if not isinstance(raw, dict):
        raise CheckInputError(f"expected a JSON object of inputs, got {type(raw).__name__}")
    if isinstance(raw.get(COUNTEREXAMPLE_WRAPPER), dict):
        return raw[COUNTEREXAMPLE_WRAPPER]
    return raw


# ---------------------------------------------------------------------------------------------
# The check
# ---------------------------------------------------------------------------------------------

def _result(statement, variant, cert, exact: dict) -> CheckResult:
    if not exact and cert.method == certify.EXACT and cert.slack_lower == cert.slack_upper and cert.slack_lower:
        # an exact certificate's slack is exact; "-0" is how an identity's -|0| prints
        exact = {"lhs": cert.lhs, "rhs": cert.rhs, "slack": "0" if cert.slack_lower == "-0" else cert.slack_lower}
    return CheckResult(statement.id, variant.name, str(variant.relation), Verdict(cert.verdict), cert.method,
                       cert.lhs, cert.rhs, cert.slack_lower, cert.slack_upper, exact, cert.detail)


def check(statement: Statement, inputs: dict, variant: Optional[str] = None) -> tuple:
    """Every variant of `statement` (or the one named) on the user's exact inputs."""
    raw = _unwrap(inputs)
    # A variant may be evaluated in another setting than its statement's (obs-4.3/minima-preserved on the
    # Lemma 4.5 toy model): a named variant uses its own; otherwise the statement's, or the one whose keys
    # the inputs use, and only the variants of that setting are checked.
    if variant:
        variants = (statement.variant(variant),)
        setting = setting_of(statement, variants[0])
    else:
        settings = list(dict.fromkeys([Setting(statement.setting)] + [setting_of(statement, v) for v in statement.variants]))
        setting = next((s for s in settings if s in KEYS and not set(raw) - set(KEYS[s])), settings[0])
        variants = tuple(v for v in statement.variants if setting_of(statement, v) is setting)
    if setting not in KEYS:
        raise CheckInputError(f"{statement.id} is evaluated on a whole network ({setting}), not on numbers "
                              f"one can type; theory.check takes the statements of the settings "
                              f"{', '.join(str(s) for s in KEYS)}")
    unknown = sorted(set(raw) - set(KEYS[setting]))
    if unknown:
        raise CheckInputError(f"unknown key {unknown[0]!r} for {statement.id} (its keys: {', '.join(KEYS[setting])})")
    if setting is Setting.TOY_REGRESSION:
        ex = toy_inputs(raw)
        return tuple(_result(statement, v, certify.certify_toy(statement, v, ex), {}) for v in variants)
    ex = channel_inputs(raw, variants)
    cert_inputs = {**{k: v for k, v in ex.items() if k != "lambda"}, "lam": ex.get("lambda")}
    results = []
    for v in variants:
        cert = certify.certify_bn(statement, v, cert_inputs, exact_first=True)
        closed = {}
        if cert.verdict is not Verdict.NOT_APPLICABLE:
            closed = exact_sides(v, certify.exact_inputs(cert_inputs))
        results.append(_result(statement, v, cert, closed))
    return tuple(results)
