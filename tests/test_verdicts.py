"""Every statement has a checker that must say holds/equality and one that must say violated,
both through the code path of the report: theory.verdicts.decide (symbolic) and
theory.evaluate.evaluate_variant (numeric)."""
from dataclasses import replace

import numpy as np
import pytest

from numeric.quantities import bn_channel_quantities
from theory import statements as st
from theory.evaluate import evaluate_variant
from theory.lemma45 import toy_quantities_numpy
from theory.verdicts import decide, symbolic_verdicts


def _perturbed(statement_id, name="printed", **changes):
    s = st.get(statement_id)
    return s, replace(s.variant(name), name="perturbed-in-test", **changes)


def _bn_instances(n=200, m=6, eps=0.0, seed=0):
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(n, m, m))
    return bn_channel_quantities(rng.normal(size=(n, m)), rng.normal(size=(n, m)), rng.uniform(0.5, 2, n),
                                 rng.normal(size=n), eps, H=A @ A.transpose(0, 2, 1), lam=2.0,
                                 full_matrices=True)


# (statement, variant that must hold or be an equality, its expected verdict)
HOLDING = [("fact-c1", "printed", "equality"), ("fact-c2", "printed", "equality"),
           ("hessian-c", "printed", "equality"), ("thm-4.1", "exact", "equality"),
           ("thm-4.1", "drop-correlation", "holds"), ("thm-4.2", "printed", "equality"),
           ("obs-4.3", "printed", "equality"), ("thm-4.4", "exact", "equality"),
           ("lemma-4.5", "ray", "equality"), ("def-2.1", "first-layer-zero", "equality")]


@pytest.mark.parametrize("sid,name,expected", HOLDING)
def test_checker_says_holds_or_equality_for_a_true_variant(sid, name, expected):
    assert symbolic_verdicts()[(sid, name)].verdict == expected   # the report's code path (cached)


def _scaled_rhs(sid, name, factor):
    s = st.get(sid)
    rhs = s.variant(name).rhs
    return _perturbed(sid, name, rhs=lambda q: rhs(q) * factor)


PERTURBATIONS = {
    # identities: the printed right side scaled by 1 + 1/7
    "fact-c1": lambda: _scaled_rhs("fact-c1", "printed", 8 / 7),
    "fact-c2": lambda: _scaled_rhs("fact-c2", "printed", 8 / 7),
    "hessian-c": lambda: _scaled_rhs("hessian-c", "printed", 8 / 7),
    # the witness output shifted by one: z = y + 1
    "obs-4.3": lambda: _perturbed("obs-4.3", lhs=lambda q: q.y + q.ops.ones_like(q.y)),
    # inequalities: tightened by a positive multiple of a correlation term
    "thm-4.1": lambda: _perturbed("thm-4.1", "exact", relation="<=",
                                  rhs=lambda q: st.get("thm-4.1").variant("exact").rhs(q) - q.gamma**2 * st.g_dot_yhat(q) ** 2 / q.sigma**2 / q.m),
    "thm-4.2": lambda: _perturbed("thm-4.2", rhs=lambda q: st.get("thm-4.2").variant("printed").rhs(q) - q.gamma**2 / q.sigma**2 * st.g_dot_yhat(q) ** 2),
    "thm-4.4": lambda: _perturbed("thm-4.4", "exact", relation="<=",
                                  rhs=lambda q: st.get("thm-4.4").variant("exact").rhs(q) - q.lam**2 * st.g_sum(q) ** 2),
    "thm-c1": lambda: (st.get("thm-c1"), st.get("thm-c1").variant("proof-eq58")),
    "lemma-4.5": lambda: _perturbed("lemma-4.5", "ray", rhs=lambda q: st.get("lemma-4.5").variant("ray").rhs(q) - q.ops.dot(q.W0, q.W0)),
    "def-2.1": lambda: _perturbed("def-2.1", "first-layer-zero", lhs=st.ics_l2, rhs=lambda q: 0 * st.ics_l2(q)),
}


@pytest.mark.parametrize("sid", sorted(PERTURBATIONS))
def test_checker_says_violated_for_a_perturbed_variant(sid):
    statement, variant = PERTURBATIONS[sid]()
    assert decide(statement, variant).verdict == "violated"


@pytest.mark.parametrize("sid,name", [("thm-4.1", "printed"), ("thm-4.4", "printed"), ("thm-4.4", "proof-eq17"),
                                      ("lemma-4.5", "printed"), ("thm-4.2", "printed-part2"),
                                      ("obs-4.3", "epsilon-batch-std"), ("thm-c1", "proof-eq58")])
def test_printed_statements_found_false_are_violated_with_a_witness(sid, name):
    verdict = symbolic_verdicts()[(sid, name)]
    assert verdict.verdict == "violated"
    assert verdict.condition


def test_thm_4_1_printed_is_violated_exactly_when_g_correlates_with_y_hat():
    verdict = symbolic_verdicts()[("thm-4.1", "printed")]
    assert verdict.condition == r"$g_{\hat{y}} \neq 0$"


def test_numeric_checker_agrees_on_bn_instances():
    q = _bn_instances()
    s = st.get("thm-4.1")
    assert evaluate_variant(s, s.variant("exact"), q).n_violated == 0
    assert evaluate_variant(s, s.variant("drop-correlation"), q).n_violated == 0
    assert evaluate_variant(s, s.variant("printed"), q).n_violated == q.values["y"].shape[0]
    for sid in ("fact-c1", "fact-c2", "hessian-c", "thm-4.2", "thm-4.4", "obs-4.3"):
        statement, perturbed = PERTURBATIONS[sid]()
        assert evaluate_variant(statement, perturbed, q).n_violated > 0, sid


def test_numeric_lemma_checker_finds_the_toy_counterexample_and_the_ray_identity():
    rng = np.random.default_rng(3)
    X, t = rng.normal(size=(500, 3, 2)), rng.normal(size=(500, 3))
    q0 = toy_quantities_numpy(X, t, np.zeros((500, 2)))
    q = toy_quantities_numpy(X, t, q0.W_star)             # W_0 = W*: the right side is 0
    s = st.get("lemma-4.5")
    assert evaluate_variant(s, s.variant("ray"), q).n_violated == 0
    printed = evaluate_variant(s, s.variant("printed"), q)
    assert printed.n_violated > 400
