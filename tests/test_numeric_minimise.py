"""numeric.minimise: certified counterexamples of smallest m and shortest rationals."""
from fractions import Fraction

import sympy as sp

from numeric import certify, minimise
from theory import statements as registry
from theory.ops import SympyOps


def _ce(sid, v):
    s = registry.get(sid)
    return s, s.variant(v), minimise.minimal_counterexample(s, s.variant(v), seed=0)


def test_printed_theorem_4_1_fails_already_at_m_equal_2_with_one_digit_inputs():
    s, v, ce = _ce("thm-4.1", "printed")
    assert ce["m"] == 2 and ce["certified"] in ("interval-60", "exact")
    assert all(len(x.replace("-", "").replace(".", "").strip("0")) <= 1 for x in ce["inputs"]["y"] + ce["inputs"]["g"])
    assert ce["exact"]["slack"].endswith("*sqrt(2)") or "sqrt(2)" in ce["exact"]["slack"]
    assert "H" not in ce["inputs"] and "lambda" not in ce["inputs"]    # theorem 4.1 uses neither


def test_counterexamples_are_reproducible():
    assert _ce("thm-4.4", "unsquared")[2] == _ce("thm-4.4", "unsquared")[2]


def test_constrained_counterexample_meets_its_hypothesis_exactly_with_a_nonzero_gradient():
    s, v, ce = _ce("thm-4.2", "printed-part2")
    assert ce["m"] >= 3
    inp = ce["inputs"]
    ex = dict(m=ce["m"], y=[Fraction(x) for x in inp["y"]], g=[Fraction(x) for x in inp["g"]],
              gamma=Fraction(inp["gamma"]), beta=Fraction(inp["beta"]), eps=Fraction(inp["eps"]),
              H=[[Fraction(x) for x in row] for row in inp["H"]], lam=Fraction(1))
    q = certify.bn_quantities(ex, SympyOps())
    assert sp.simplify(v.constraint(q)) == 0
    assert q.ops.dot(q.grad_y_bn, q.grad_y_bn) != 0
    assert certify.certify_bn(s, v, ex).verdict == "violated"


def test_a_variant_that_holds_has_no_counterexample():
    s, v, ce = _ce("thm-4.1", "drop-correlation")
    assert ce is None


def test_lemma_4_5_counterexample_comes_from_the_exact_toy_model():
    _, _, ce = _ce("lemma-4.5", "printed")
    assert ce["setting"] == "toy-regression" and ce["certified"] == "exact" and ce["slack"] == "-1"


def test_short_rounds_to_significant_digits_exactly():
    assert minimise.short(0.123456, 2) == Fraction(12, 100)
    assert minimise.short(-2.6e-7, 1) == Fraction(-3, 10**7)
    assert minimise.short(0.0, 3) == 0


def test_theorem_c1_counterexample_meets_theorem_4_2s_conditions_exactly():
    s, v, ce = _ce("thm-c1", "printed")
    inp = ce["inputs"]
    ex = dict(m=ce["m"], y=[Fraction(x) for x in inp["y"]], g=[Fraction(x) for x in inp["g"]],
              gamma=Fraction(inp["gamma"]), beta=Fraction(inp["beta"]), eps=Fraction(inp["eps"]),
              H=[[Fraction(x) for x in row] for row in inp["H"]], lam=Fraction(inp["lambda"]))
    q = certify.bn_quantities(ex, SympyOps())
    assert sp.simplify(registry.get("thm-4.2").variant("printed-part2").constraint(q)) == 0
