"""numeric.counterexample: the one search for counterexamples, with one degeneracy policy.

Every counterexample is certified, non-degenerate (m >= 3, v != 0, LHS != 0 exactly), the
smallest of its search space, the same on every run, and labelled from the exact instance."""
from fractions import Fraction

import pytest
import sympy as sp

from numeric import certify, counterexample as C
from theory import statements as registry
from theory.ops import SympyOps
from theory.vocab import Setting, Verdict

VIOLATED = [("thm-4.1", "printed"), ("thm-4.1", "epsilon"), ("thm-4.2", "printed-part2"), ("thm-4.2", "epsilon"),
            ("obs-4.3", "epsilon-batch-std"), ("thm-4.4", "printed"), ("thm-4.4", "unsquared"),
            ("thm-4.4", "proof-eq17"), ("thm-4.4", "epsilon"), ("thm-c1", "printed"), ("thm-c1", "proof-eq58")]


def _ce(sid, v):
    s = registry.get(sid)
    return s, s.variant(v), C.smallest_counterexample(s, s.variant(v))


def exact_inputs(ce) -> dict:
    inp = ce.inputs
    ex = dict(m=ce.m, y=[Fraction(x) for x in inp["y"]], g=[Fraction(x) for x in inp["g"]],
              gamma=Fraction(inp["gamma"]), beta=Fraction(inp["beta"]), eps=Fraction(inp["eps"]),
              lam=Fraction(inp.get("lambda", "1")))
    if "H" in inp:
        ex["H"] = [[Fraction(x) for x in row] for row in inp["H"]]
    else:
        ex["H"] = [[Fraction(0)] * ce.m for _ in range(ce.m)]
    return ex


@pytest.mark.parametrize("sid, name", VIOLATED)
def test_counterexample_of_a_violated_variant_is_certified_and_non_degenerate(sid, name):
    s, v, ce = _ce(sid, name)
    assert isinstance(ce, C.Counterexample), ce
    ex = exact_inputs(ce)
    assert ce.m >= C.MIN_M
    assert C.degeneracy(s, v, ex) == ""
    q = certify.bn_quantities(ex, SympyOps(), tuple(r for r in v.requires if r not in C.MAXIMA))
    assert any(sp.radsimp(sp.expand(c)) != 0 for c in q.grad_y_bn)              # v != 0 exactly
    assert certify.certify_bn(s, v, ex).verdict is Verdict.VIOLATED


def test_degeneracy_rejects_m_2_a_zero_gradient_and_a_zero_left_side():
    s = registry.get("thm-4.1")
    v = s.variant("printed")
    at_m2 = dict(m=2, y=[Fraction(0), Fraction(1)], g=[Fraction(-1), Fraction(1)], gamma=Fraction(1),
                 beta=Fraction(0), eps=Fraction(0))
    assert certify.certify_bn(s, v, at_m2).verdict is Verdict.VIOLATED      # what the old report showed
    assert "m = 2" in C.degeneracy(s, v, at_m2)
    g_in_span = dict(at_m2, m=3, y=[Fraction(0), Fraction(0), Fraction(1)], g=[Fraction(1)] * 3)
    assert "gradient v is exactly 0" in C.degeneracy(s, v, g_in_span)


def test_thm_4_1_printed_counterexample_is_small_integers_with_the_exact_slack():
    _, _, ce = _ce("thm-4.1", "printed")
    assert ce.m == 3 and ce.inputs["y"] == ["0", "0", "1"] and ce.inputs["g"] == ["-1", "0", "0"]
    assert ce.certified == certify.EXACT and "sqrt(3)" in ce.exact["slack"]
    assert sp.sympify(ce.exact["slack"]) == sp.Rational(3, 4) - 3 * sp.sqrt(3) / 4
    assert "H" not in ce.inputs and "lambda" not in ce.inputs    # Theorem 4.1 uses neither


def test_the_search_is_deterministic_and_does_not_depend_on_the_cache():
    s, v, ce = _ce("thm-4.4", "unsquared")
    C._search.cache_clear()
    assert C.smallest_counterexample(s, v) == ce


def test_smallest_means_fewest_digits_first():
    _, _, ce = _ce("thm-4.2", "printed-part2")
    assert C.digits(ce.inputs["y"] + ce.inputs["g"]) == 6          # every entry one digit
    assert ce.exact["slack"] == "-9/16"


def test_constrained_counterexample_meets_its_hypothesis_exactly():
    for sid, name in (("thm-4.2", "printed-part2"), ("thm-c1", "printed"), ("thm-c1", "proof-eq58")):
        s, v, ce = _ce(sid, name)
        q = certify.bn_quantities(exact_inputs(ce), SympyOps())
        assert sp.simplify(C.hypothesis_variant(s, v).constraint(q)) == 0


def test_the_label_of_h_is_its_exact_inertia():
    _, _, ce = _ce("thm-4.2", "printed-part2")
    assert ce.derived["H"] == str(certify.hessian_inertia(ce.inputs["H"]))
    assert ce.derived["H"].startswith("positive semidefinite")


def test_a_variant_that_holds_has_no_counterexample():
    assert _ce("thm-4.1", "drop-correlation")[2] is None
    assert _ce("thm-4.2", "part2-exact")[2] is None


def test_lemma_4_5_counterexample_attains_the_closest_bn_optimum():
    from theory import lemma45
    s, v, ce = _ce("lemma-4.5", "printed")
    assert ce.setting == str(Setting.TOY_REGRESSION) and ce.certified == certify.EXACT
    opt = lemma45.exact_optima([[int(x) for x in row] for row in ce.inputs["X"]], [int(x) for x in ce.inputs["t"]])
    w0 = sp.Matrix([sp.Rational(x) for x in ce.inputs["W0"]])
    assert (w0.T * opt.bn_direction)[0, 0] > 0
    assert sp.Rational(ce.exact["slack"]) < 0 and sp.Rational(ce.exact["lhs"]) != 0


def test_a_failure_of_exact_re_evaluation_is_reported_not_hidden(monkeypatch):
    s, v = registry.get("thm-4.4"), registry.get("thm-4.4").variant("epsilon")

    def broken(*args, **kwargs):
        raise ZeroDivisionError("division by an exact 0 in the test")
    monkeypatch.setattr(certify, "certify_bn", broken)
    C._search.cache_clear()
    try:
        result = C.smallest_counterexample(s, v)
    finally:
        C._search.cache_clear()
    assert isinstance(result, C.SearchFailure) and "division by an exact 0" in str(result)


def test_family_rounding_keeps_numbers_exact_and_short():
    assert C.short(0.123456, 2) == Fraction(12, 100)
    assert C.short(-2.6e-7, 1) == Fraction(-3, 10**7)
    assert C.short(0.0, 3) == 0
    assert C.text(Fraction(1, 3)) == "1/3" and C.text(Fraction(1, 8)) == "0.125" and C.text(Fraction(-4)) == "-4"


def test_the_families_fallback_finds_a_certified_non_degenerate_counterexample():
    s = registry.get("thm-4.1")
    v = s.variant("printed")
    ce = C._from_families(s, v)
    assert ce is not None and ce.m >= C.MIN_M and ce.origin.startswith("families")
    assert certify.certify_bn(s, v, exact_inputs(ce)).verdict is Verdict.VIOLATED
    assert C.degeneracy(s, v, exact_inputs(ce)) == ""


def test_a_psd_head_shifted_off_the_psd_cone_is_labelled_by_its_exact_h():
    from tests.strategies import EARLIER
    # the report's earlier thm-4.2/printed-part2 counterexample: head quadratic-psd, then H + t v v^T;
    # its exact H has eigenvalues about -381.5, 463.0, 123.0
    ex = EARLIER[("thm-4.2", "printed-part2")]
    inst = {"head": "quadratic-psd", "group": "relative-norm-eps0", "y_kind": "integer", "g_mode": "generic"}
    label = C._family_label(inst, ex, shifted=True)
    assert "quadratic-psd + t v v^T" in label and label.endswith("exact H indefinite")
    assert certify.hessian_inertia(ex["H"]) == certify.Inertia(2, 0, 1)
