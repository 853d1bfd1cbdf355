"""numeric.refine: scipy.optimize from the worst sampled instances never ends above its start,
and drives a violated variant further into violation."""
import numpy as np

from numeric import refine, sweep
from theory import statements as registry


def _start(sid, v, seed=0):
    s = registry.get(sid)
    summary = sweep.run_sweep(statements=(s,), instances=60, seed=seed)[(sid, v)]
    return s, s.variant(v), summary


def test_refinement_reaches_at_most_the_starting_relative_slack():
    s, v, summary = _start("thm-4.2", "epsilon")
    kept = [k for k in summary.most_held if k.inputs["m"] <= 4][:1]
    r = refine.refine(s, v, kept[0].inputs)
    assert r.min_rel_slack <= r.start_rel_slack


def test_refinement_finds_a_violation_of_theorem_4_2_epsilon_from_an_instance_where_it_holds():
    s, v, summary = _start("thm-4.2", "epsilon")
    starts = [k for k in summary.most_held if k.inputs["m"] <= 4 and k.rel_slack > 0]
    best = min(refine.refine(s, v, k.inputs, max_iterations=40).min_rel_slack for k in starts[:3])
    assert best < 0


def test_a_bound_that_holds_is_not_pushed_below_rounding():
    s, v, summary = _start("thm-4.1", "drop-correlation")
    r = refine.refine_variant(s, v, summary.most_violated)
    assert r is not None and r.min_rel_slack > -1e-12


def test_identities_are_not_refined():
    s, v, summary = _start("thm-4.1", "exact")
    assert refine.refine_variant(s, v, summary.most_violated) is None
    assert np.isfinite(summary.min_rel_slack)
