"""Hypothesis strategies for the toolkit's instances, composed in one module and reused, and the
counterexamples pinned with @example (every one found, in exact inputs).

An instance is a dict with every input by name, the shape numeric.sweep keeps and
numeric.certify reads: m, y, gamma, beta, eps, g, H, lam (BatchNorm channel); X, t, W0 (the
Lemma 4.5 toy model).
"""
from __future__ import annotations


import numpy as np
from hypothesis import HealthCheck, Phase, assume, settings, strategies as st, target

from numeric import counterexample, families
from numeric.certify import certify, certify_bn
from numeric.quantities import bn_channel_quantities
from theory import statements as registry
from theory.evaluate import evaluate_variant
from theory.vocab import Setting, Verdict

# Deterministic, bounded search: the suite's runtime is part of its contract (< ~2 min).
SEARCH = settings(max_examples=30, deadline=None, derandomize=True, database=None,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])

# A float violation with |relative slack| above this is expected to certify; below it, float
# rounding may decide (numeric.sweep.SUSPECT_REL_SLACK).
ROBUST = 1e-6
# Under a constraint, float instances are rounded to this many digits before exact re-evaluation;
# a violation must then be robust to a relative perturbation of ~10^-6 to survive.
CONSTRAINED_DIGITS = 8
ROBUST_CONSTRAINED = 1e-3

# Entries are short decimals (k/100, |k| <= 1000) times a power of ten: wide in scale, and exact
# re-evaluation of a rounded instance stays cheap.
_mantissa = st.integers(min_value=-1000, max_value=1000).map(lambda k: k / 100)
_exponent = st.integers(min_value=-3, max_value=3)
_nonzero = st.integers(min_value=5, max_value=2000).map(lambda k: k / 100)


@st.composite
def scaled_vectors(draw, m):
    scale = 10.0 ** draw(_exponent)
    return np.array(draw(st.lists(_mantissa, min_size=m, max_size=m))) * scale


@st.composite
def symmetric_matrices(draw, m):
    entries = draw(st.lists(_mantissa, min_size=m * (m + 1) // 2, max_size=m * (m + 1) // 2))
    H = np.zeros((m, m))
    H[np.triu_indices(m)] = entries
    return H + np.triu(H, 1).T


@st.composite
def bn_instances(draw, epsilon="zero", min_m=2, max_m=6, relative_norm_H=False):
    """One BatchNorm-channel instance: a non-constant batch, gamma of either sign, any beta,
    eps = 0 or 1e-5 per the variant's scope, g, a symmetric H (rebuilt to preserve the relative
    norms of g and v when asked), lambda in [0.05, 20]."""
    m = draw(st.integers(min_value=max(min_m, 3 if relative_norm_H else 2), max_value=max_m))
    y = draw(scaled_vectors(m))
    eps = 1e-5 if epsilon == "positive" else 0.0
    if eps == 0:
        y = y if np.ptp(y) > 1e-6 * (np.abs(y).max() + 1e-300) else y + np.arange(m)
    gamma = draw(_nonzero) * draw(st.sampled_from((-1.0, 1.0)))
    beta = draw(_mantissa)
    g = draw(scaled_vectors(m))
    H = draw(symmetric_matrices(m))
    lam = draw(_nonzero)
    if relative_norm_H:
        q = bn_channel_quantities(y, g, gamma, beta, eps)
        Hs, ok = families.preserve_relative_norms(H[None], g[None], q.grad_y_bn)
        H = Hs[0]
    return dict(m=m, y=y, gamma=gamma, beta=beta, eps=eps, g=g, H=H, lam=lam)


@st.composite
def toy_instances(draw):
    points, d = draw(st.sampled_from(((3, 2), (4, 2), (4, 3))))
    X = np.array(draw(st.lists(st.integers(-3, 3), min_size=points * d, max_size=points * d)), float).reshape(points, d)
    t = np.array(draw(st.lists(st.integers(-3, 3), min_size=points, max_size=points)), float)
    W0 = np.array(draw(st.lists(st.integers(-3, 3), min_size=d, max_size=d)), float)
    return dict(X=X, t=t, W0=W0)


def instance_for(variant):
    """The strategy matching a BatchNorm-channel variant's scope and extra hypothesis."""
    needs_maxima = "betaW_max" in variant.requires
    constrained = variant.constraint is not None or needs_maxima
    # exact re-evaluation under a constraint (SymPy) grows fast with m: those searches stop at m = 4
    return bn_instances(epsilon=variant.epsilon, relative_norm_H=constrained, max_m=4 if constrained else 6)


# ---------------------------------------------------------------------------------------------
# Evaluating one instance as the sweep does
# ---------------------------------------------------------------------------------------------

def evaluate_bn(statement_id, variant_name, inst):
    """(verdict, relative slack) of the registry's float evaluation of one instance."""
    statement = registry.get(statement_id)
    variant = statement.variant(variant_name)
    q = bn_channel_quantities(inst["y"][None], inst["g"][None], inst["gamma"], inst["beta"], inst["eps"],
                              H=np.asarray(inst["H"])[None], lam=inst["lam"], full_matrices=True,
                              weight_space_maxima="betaW_max" in variant.requires)
    r = evaluate_variant(statement, variant, q)
    if r.applicable[0] and not np.isfinite(r.slack[0]):
        return Verdict.UNDEFINED, float("nan")      # 0/0 at the instance (numeric.sweep counts these apart)
    return Verdict(r.verdicts[0]), float(r.rel_slack[0])


def certified_verdict(statement_id, variant_name, setting, inst) -> Verdict:
    """Exact verdict of an instance.  Under an equation hypothesis (a constraint) a float
    instance meets it only to rounding, so the instance is rounded to CONSTRAINED_DIGITS
    significant digits and moved onto the hypothesis exactly (H plus the rank-one term that makes
    it hold over the rationals, as numeric.counterexample does); NOT_APPLICABLE if impossible."""
    statement = registry.get(statement_id)
    variant = statement.variant(variant_name)
    exact = isinstance(inst.get("y", [0.0])[0], str)
    if setting == Setting.BN_CHANNEL and variant.constraint is not None and not exact:
        rounded = counterexample.rounded_instance(inst, CONSTRAINED_DIGITS)
        # None: v = 0 or v parallel to g exactly, where the hypothesis already holds as it is
        ex = counterexample.onto_relative_norm_hypothesis(rounded) or rounded
        return certify_bn(statement, variant, ex).verdict
    return certify(statement, variant, setting, dict(inst)).verdict


# ---------------------------------------------------------------------------------------------
# Pinned counterexamples, exact inputs
# ---------------------------------------------------------------------------------------------

def _inst(y, g, gamma="1", beta="0", eps="0", H=None, lam="1"):
    m = len(y)
    H = H if H is not None else [["0"] * m for _ in range(m)]
    return dict(m=m, y=list(y), g=list(g), gamma=gamma, beta=beta, eps=eps, H=H, lam=lam)


_E1 = [["1", "0", "0"], ["0", "0", "0"], ["0", "0", "0"]]
# The counterexamples numeric.counterexample finds (the docs, the errata and the report show these).
PINNED = {
    ("thm-4.1", "printed"): _inst(["0", "0", "1"], ["-1", "0", "0"]),
    ("thm-4.1", "epsilon"): _inst(["0", "0", "2"], ["-1", "0", "0"], eps="1"),
    ("thm-4.2", "printed-part2"): _inst(["0", "0", "1"], ["-1", "0", "-1"], H=_E1),
    ("thm-4.2", "epsilon"): _inst(["0", "0", "1"], ["-1", "0", "0"], gamma="-1", eps="1"),
    ("obs-4.3", "epsilon-batch-std"): _inst(["0", "0", "1"], ["-1", "0", "0"], eps="1"),
    ("thm-4.4", "printed"): _inst(["0", "0", "1"], ["-1", "0", "0"]),
    ("thm-4.4", "unsquared"): _inst(["0", "0", "1"], ["-1", "0", "0"]),
    ("thm-4.4", "proof-eq17"): _inst(["0", "0", "1"], ["-1", "0", "0"]),
    ("thm-4.4", "epsilon"): _inst(["0", "0", "1"], ["-1", "0", "0"], eps="1"),
    ("thm-c1", "printed"): _inst(["0", "0", "1"], ["-1", "0", "0"]),
    ("thm-c1", "proof-eq58"): _inst(["0", "0", "1"], ["-1", "0", "-1"], H=_E1),
}
# Earlier certified violations from the sampled families (rounded floats; several at m = 2, which
# the counterexample policy now calls degenerate): kept as regression cases for certification.
EARLIER = {
    ("thm-4.1", "printed"): _inst(["0.9", "0.2"], ["-0.7", "0.7"]),
    ("thm-4.1", "epsilon"): _inst(["60", "100"], ["-600", "600"], eps="1/100000"),
    ("thm-4.2", "printed-part2"): _inst(["400", "-300", "-300"], ["-10", "-10", "5"],
                                        H=[["200", "-60", "200"], ["-60", "-2230/9", "2230/9"],
                                           ["200", "2230/9", "2270/9"]]),
    ("thm-4.2", "epsilon"): _inst(["-0.06", "0.02"], ["0.5", "0"], eps="1/100000",
                                  H=[["-0.2", "0.09"], ["0.09", "-0.3"]]),
    ("obs-4.3", "epsilon-batch-std"): _inst(["0.0007", "-0.0005"], ["400", "0"], eps="1/100000"),
    ("thm-4.4", "printed"): _inst(["-0.2", "0.005"], ["0", "0.02"]),
    ("thm-4.4", "unsquared"): _inst(["-0.2", "0.005"], ["0", "0.02"]),
    ("thm-4.4", "proof-eq17"): _inst(["0.7", "-0.07"], ["0.003", "-0.003"]),
    ("thm-4.4", "epsilon"): _inst(["0.005", "-0.001"], ["-0.002", "0.0001"], eps="1/100000"),
    ("thm-c1", "printed"): _inst(["-0.1", "0.02", "0.1"], ["-3", "2", "1"],
                                 H=[["864/209", "-349/418", "669/209"], ["-349/418", "384/209", "313/209"],
                                    ["669/209", "313/209", "1317/209"]]),
    ("thm-c1", "proof-eq58"): _inst(["-0.1", "0.02", "0.1"], ["-3", "2", "1"],
                                    H=[["864/209", "-349/418", "669/209"], ["-349/418", "384/209", "313/209"],
                                       ["669/209", "313/209", "1317/209"]]),
}
PINNED_TOY = {("lemma-4.5", "printed"): dict(X=[[0, 0], [0, 1], [1, 1]], t=[1, 0, 1], W0=[1, 0])}
EARLIER_TOY = {("lemma-4.5", "printed"): dict(X=[[0, 0], [0, 1], [1, 0]], t=[1, 0, 1], W0=[1, 0])}


def as_float_instance(inst):
    """A pinned (exact, string) instance as float arrays, for @example in float searches."""
    from fractions import Fraction
    f = (lambda x: float(Fraction(x)))
    return dict(m=inst["m"], y=np.array([f(v) for v in inst["y"]]), g=np.array([f(v) for v in inst["g"]]),
                gamma=f(inst["gamma"]), beta=f(inst["beta"]), eps=f(inst["eps"]),
                H=np.array([[f(v) for v in row] for row in inst["H"]]), lam=f(inst["lam"]))


def search_bn(statement_id, variant, inst, must_hold):
    """One hypothesis example of a bn-channel variant: steer toward small relative slack; every
    example must be one the variant applies to (else hypothesis reports the search unsatisfiable);
    a float violation of a variant that must hold may not survive exact re-evaluation, and a
    robust float violation of one that fails must."""
    verdict, rel = evaluate_bn(statement_id, variant, inst)
    assume(verdict not in (Verdict.NOT_APPLICABLE, Verdict.UNDEFINED))
    assert verdict in (Verdict.HOLDS, Verdict.EQUALITY, Verdict.VIOLATED), verdict
    target(-rel, label=f"{statement_id}/{variant}: -relative slack")
    if verdict != Verdict.VIOLATED:
        return
    certified = certified_verdict(statement_id, variant, Setting.BN_CHANNEL, inst)
    if must_hold:
        assert certified != Verdict.VIOLATED, f"certified counterexample to {statement_id}/{variant}: {inst}"
    elif rel < -(ROBUST_CONSTRAINED if registry.get(statement_id).variant(variant).constraint else ROBUST):
        assert certified == Verdict.VIOLATED, f"float violation not confirmed exactly: {inst}"


def find_instance(statement_id, variant_name, accept):
    """The first (shrunk) instance of the variant's strategy whose float (verdict, relative slack)
    `accept`s; raises hypothesis.errors.NoSuchExample if the bounded search reaches none."""
    from hypothesis import find

    variant = registry.get(statement_id).variant(variant_name)
    return find(instance_for(variant), lambda inst: accept(*evaluate_bn(statement_id, variant_name, inst)),
                settings=settings(SEARCH, max_examples=200, phases=[Phase.generate, Phase.target]))


def find_violation(statement_id, variant_name):
    """An instance with a robust float violation (see find_instance)."""
    robust = ROBUST_CONSTRAINED if registry.get(statement_id).variant(variant_name).constraint else ROBUST
    return find_instance(statement_id, variant_name,
                         lambda verdict, rel: verdict == Verdict.VIOLATED and rel < -robust)
