"""A claim's criterion as data: a statistic per seed, a 95% interval over seeds, a verdict.

Every experimental claim of the reproduction (gpu_check.claims) is judged the same way:

1. for each seed, one number: the claim's *statistic* on the runs of that seed (usually paired:
   the BatchNorm run and the standard run of one seed share data, initialisation stream and
   data order, so their log-ratio or difference is taken seed by seed);
2. a 95% interval for the statistic's mean over seeds (``seed_interval``):
   * a Student-t interval, mean +- t_{0.975, n-1} s / sqrt(n), when every seed's value is finite;
   * when a seed's value is infinite (a run that diverged, or never reached a loss level: an
     outcome, never dropped), the mean and t-interval are undefined; the interval is then the
     range [min, max] of the seeds' values, and the estimate their median: the verdict below is
     then "every seed on the claim's side" / "every seed on the other side" / neither;
   * a seed whose statistic is undefined (NaN: e.g. a window with no measured step) is not a
     value; the reading lists it as such;
   * fewer than 2 values: the interval is (-inf, inf), so the verdict is inconclusive;
3. the verdict (``Criterion.decide``), with the threshold fixed before the data are looked at:
   * ``>``: reproduced when low > threshold, not-reproduced when high <= threshold;
   * ``<``: reproduced when high < threshold, not-reproduced when low >= threshold;
   * ``within`` (a claim of similarity, equivalence margin m stated in advance):
     reproduced when -m < low and high < m; not-reproduced when the whole interval is outside
     (high <= -m or low >= m);
   * inconclusive otherwise (the interval straddles).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum

import numpy as np
from scipy import stats

from theory.vocab import ClaimVerdict

CONFIDENCE = 0.95
# The smallest relative change of a unit's batch moment that a float32 forward pass resolves:
# float32's machine epsilon.  The runs compute in float32, so a measured |d mean| / std or
# |d var| / var below it is rounding of the forward pass, not a change of the distribution
# (a BatchNorm DLN at lr 1e-7 records ~1e-8 at every step): such a value is *unresolved*, an
# undefined statistic for the criteria and not drawn in the figures.
FLOAT32_RESOLUTION = float(np.finfo(np.float32).eps)      # 2^-23 ~ 1.19e-7
T_INTERVAL = "t-interval over seeds (95%)"
RANGE_INTERVAL = "range over seeds (a seed's value is infinite: no t-interval)"
NO_INTERVAL = "no interval (fewer than 2 seeds with a value)"


class Side(str, Enum):
    """Which side of the threshold the claim predicts."""
    GREATER = ">"
    LESS = "<"
    WITHIN = "within"        # |statistic| < margin: a claim of similarity

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Interval:
    """The statistic over seeds: estimate, [low, high], the number of values and the method."""

    estimate: float
    low: float
    high: float
    n: int
    method: str
    undefined: int = 0      # seeds whose statistic is NaN (not counted in n)


def seed_interval(values, confidence: float = CONFIDENCE) -> Interval:
    """The interval of the module docstring over the per-seed ``values``."""
    v = np.asarray(list(values), dtype=np.float64)        # (seeds,)
    nan = int(np.isnan(v).sum())
    v = v[~np.isnan(v)]
    n = int(v.size)
    if n == 0:
        return Interval(math.nan, -math.inf, math.inf, 0, NO_INTERVAL, nan)
    if not np.all(np.isfinite(v)):
        return Interval(float(np.median(v)), float(v.min()), float(v.max()), n, RANGE_INTERVAL, nan)
    mean = float(v.mean())
    if n == 1:
        return Interval(mean, -math.inf, math.inf, 1, NO_INTERVAL, nan)
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1) * v.std(ddof=1) / math.sqrt(n))
    return Interval(mean, mean - half, mean + half, n, T_INTERVAL, nan)


@dataclass(frozen=True)
class Criterion:
    """A claim's statistic, the side the claim predicts, the threshold (the margin m for
    ``Side.WITHIN``), and why that threshold: all fixed before any run is looked at."""

    statistic: str           # what is computed per seed, in words
    side: Side
    threshold: float
    why: str
    min_seeds: int = 3       # fewer seeds with a value: inconclusive, whatever the interval

    def __post_init__(self):
        if self.side is Side.WITHIN and not self.threshold > 0:
            raise ValueError(f"an equivalence margin must be > 0, got {self.threshold}")
        if self.min_seeds < 2:
            raise ValueError(f"min_seeds = {self.min_seeds}: an interval needs >= 2 seeds")

    def rule(self) -> str:
        """'95% interval lies above 0', '... inside (-0.477, 0.477)', for the documents."""
        t = f"{self.threshold:.3g}"
        if self.side is Side.WITHIN:
            return f"95% interval lies inside (-{t}, {t})"
        return f"95% interval lies {'above' if self.side is Side.GREATER else 'below'} {t}"

    def decide(self, iv: Interval) -> ClaimVerdict:
        """The verdict of the module docstring; inconclusive below ``min_seeds`` values."""
        if iv.n < self.min_seeds:
            return ClaimVerdict.INCONCLUSIVE
        lo, hi, t = iv.low, iv.high, self.threshold
        if self.side is Side.GREATER:
            on, off = lo > t, hi <= t
        elif self.side is Side.LESS:
            on, off = hi < t, lo >= t
        else:
            on, off = (-t < lo and hi < t), (hi <= -t or lo >= t)
        if on:
            return ClaimVerdict.REPRODUCED
        if off:
            return ClaimVerdict.NOT_REPRODUCED
        return ClaimVerdict.INCONCLUSIVE
