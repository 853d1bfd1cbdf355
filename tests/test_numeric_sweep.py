"""numeric.sweep: the numeric checker says 'holds' where a variant holds and 'violated' where it
does not, and rounding never counts as a violation."""
import numpy as np
import pytest

from numeric import families, sweep
from numeric.quantities import bn_channel_quantities
from theory import statements as registry
from theory.evaluate import evaluate_variant
from theory.vocab import Verdict


@pytest.fixture(scope="module")
def small():
    return sweep.run_sweep(statements=(registry.get("thm-4.1"), registry.get("thm-4.2"), registry.get("def-2.1")),
                           instances=150, seed=5)


def test_thm_4_1_exact_holds_with_equality_on_every_instance(small):
    s = small[("thm-4.1", "exact")]
    assert s.instances > 300 and s.violations == 0 and s.holds == 0


def test_thm_4_1_printed_is_violated_on_most_instances_from_m_equal_2(small):
    s = small[("thm-4.1", "printed")]
    assert s.violations > 0.5 * s.instances and s.smallest_m_violated == 2 and s.min_rel_slack < -0.1


def test_thm_4_1_drop_correlation_holds_strictly(small):
    s = small[("thm-4.1", "drop-correlation")]
    assert s.violations == 0 and s.holds > 0 and s.max_rel_slack > 0


def test_constrained_variants_are_evaluated_on_the_relative_norm_group(small):
    s = small[("thm-4.2", "printed-part2")]
    assert s.instances >= 150 and s.violations > 0


def test_definition_reports_the_measured_shift(small):
    s = small[("def-2.1", "printed")]
    assert s.instances > 0 and len(s.lhs_summary) == 3 and s.lhs_summary[0] >= 0


def test_same_seed_gives_the_same_summary():
    st = (registry.get("obs-4.3"),)
    a = sweep.run_sweep(statements=st, instances=50, seed=1)
    b = sweep.run_sweep(statements=st, instances=50, seed=1)
    for key in a:
        assert (a[key].violations, a[key].min_slack, a[key].median_slack) == \
            (b[key].violations, b[key].min_slack, b[key].median_slack)


def test_rounding_noise_of_a_vanishing_bn_gradient_is_not_a_violation():
    # m = 2, eps = 0: the exact v is 0, the float v is rounding noise (numeric.sweep docstring)
    statement = registry.get("thm-4.2")
    variant = statement.variant("printed")
    chunk = families.sample_chunk(0, "free-eps0", "softmax-ce", 2, 400)
    accs = {("thm-4.2", v.name): sweep._Accumulator(v.relation) for v in statement.variants}
    sweep.evaluate_chunk([(statement, variant)], sweep.bn_evaluation(chunk, 0), accs)
    summary = sweep._summary(("thm-4.2", "printed"), accs[("thm-4.2", "printed")])
    raw = evaluate_variant(statement, variant, chunk.quantities())
    assert summary.violations == 0
    assert (raw.verdicts == Verdict.VIOLATED).sum() + (raw.verdicts == Verdict.HOLDS).sum() >= summary.rounding


def test_a_real_violation_survives_the_rounding_checks():
    statement = registry.get("thm-4.1")
    y = np.array([[0.9, 0.2, 0.4]])
    g = np.array([[-0.7, 0.7, 0.1]])
    q = bn_channel_quantities(y, g, 1.0)
    r = evaluate_variant(statement, statement.variant("printed"), q)
    verdicts, suspect, sensitive, rounding = sweep._first_pass(statement, statement.variant("printed"), r, q)
    assert verdicts[0] == Verdict.VIOLATED and not suspect[0] and not sensitive[0] and not rounding[0]


def test_relative_norm_constraint_has_a_tolerance_scale_in_the_registry():
    for name in ("printed-part2", "part2-exact"):
        assert registry.get("thm-4.2").variant(name).constraint_scale is not None


def test_undefined_slack_is_counted_apart_not_as_a_violation():
    statement = registry.get("thm-4.2")
    variant = statement.variant("part2-exact")
    q = bn_channel_quantities(np.array([[0.0, 1.0, 3.0]]), np.zeros((1, 3)), 1.0, H=np.eye(3)[None])
    r = evaluate_variant(statement, variant, q)
    verdicts, *_ = sweep._first_pass(statement, variant, r, q)
    assert verdicts[0] == "undefined"
