"""gpu_check.criteria: the 95% interval over seeds and the verdict of each side of a criterion."""
import math

import numpy as np
import pytest
from scipy import stats

from gpu_check.criteria import NO_INTERVAL, RANGE_INTERVAL, T_INTERVAL, Criterion, Side, seed_interval
from theory.vocab import ClaimVerdict as V


def test_the_interval_is_the_student_t_interval_of_the_seed_mean():
    v = [1.0, 2.0, 4.0]
    iv = seed_interval(v)
    half = stats.t.ppf(0.975, 2) * np.std(v, ddof=1) / math.sqrt(3)
    assert iv.method == T_INTERVAL and iv.n == 3
    assert iv.estimate == pytest.approx(7 / 3) and iv.low == pytest.approx(7 / 3 - half)
    assert iv.high == pytest.approx(7 / 3 + half)


def test_an_infinite_seed_value_is_kept_and_the_interval_becomes_the_range():
    iv = seed_interval([0.5, math.inf, 0.2])
    assert iv.method == RANGE_INTERVAL and (iv.low, iv.high, iv.n) == (0.2, math.inf, 3)


def test_undefined_seed_values_are_counted_apart_and_one_value_gives_no_interval():
    iv = seed_interval([math.nan, 3.0])
    assert iv.undefined == 1 and iv.n == 1 and iv.method == NO_INTERVAL and (iv.low, iv.high) == (-math.inf, math.inf)


@pytest.mark.parametrize("side, values, expected", [
    (Side.GREATER, [1.0, 1.1, 0.9], V.REPRODUCED),
    (Side.GREATER, [-1.0, -1.1, -0.9], V.NOT_REPRODUCED),
    (Side.GREATER, [1.0, -1.0, 0.5], V.INCONCLUSIVE),
    (Side.LESS, [-1.0, -1.1, -0.9], V.REPRODUCED),
    (Side.LESS, [1.0, 1.1, 0.9], V.NOT_REPRODUCED),
    (Side.LESS, [1.0, -1.0, 0.5], V.INCONCLUSIVE),
    (Side.GREATER, [1.0, math.inf, 2.0], V.REPRODUCED),          # a diverged standard run counts
    (Side.GREATER, [1.0, -math.inf, 2.0], V.INCONCLUSIVE),
    (Side.GREATER, [-1.0, -math.inf, -2.0], V.NOT_REPRODUCED),
])
def test_a_one_sided_criterion_gives_each_verdict(side, values, expected):
    assert Criterion("x", side, 0.0, "test").decide(seed_interval(values)) is expected


@pytest.mark.parametrize("values, expected", [
    ([0.1, -0.1, 0.05, 0.0], V.REPRODUCED),           # inside the margin 0.5
    ([2.0, 2.1, 1.9, 2.05], V.NOT_REPRODUCED),        # wholly outside
    ([-2.0, -2.1, -1.9, -2.05], V.NOT_REPRODUCED),
    ([0.1, 0.9, 0.3, 0.6], V.INCONCLUSIVE),           # straddles the margin
])
def test_a_similarity_criterion_uses_its_equivalence_margin(values, expected):
    assert Criterion("x", Side.WITHIN, 0.5, "test").decide(seed_interval(values)) is expected


def test_too_few_seeds_is_inconclusive_however_clear_the_values():
    c = Criterion("x", Side.GREATER, 0.0, "test", min_seeds=5)
    assert c.decide(seed_interval([1.0, 1.1, 1.2])) is V.INCONCLUSIVE
    assert c.decide(seed_interval([1.0, 1.1, 1.2, 1.0, 1.1])) is V.REPRODUCED


def test_a_similarity_margin_must_be_positive():
    with pytest.raises(ValueError, match="margin"):
        Criterion("x", Side.WITHIN, 0.0, "test")
