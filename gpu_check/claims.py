"""The experimental claims of Sections 2-3 and Appendix B, each with a criterion that can fail.

Each claim is data: the paper's words, the runs it compares, the per-seed statistic (a pure
function of the run summaries of gpu_check.run_summary for one seed), and its
``criteria.Criterion`` (side, threshold, why, all fixed in advance).  ``judge_claims`` evaluates
every claim under every reading of gpu_check.readings.

Conventions of the statistics (per seed, paired: the runs of one seed share data and streams):
* a *log-ratio* is log10(a / b); a claim that BN is smoother reads log10(standard / bn) > 0;
* medians are over the measured steps of a run (each step's value itself a median over layers
  2..k or over sampled units: see gpu_check.run_summary);
* *layer inputs* (Figures 1(c), 2, 6): the activations a normalisation receives (``pre-norm``),
  which for the standard network is the layer's linear output itself -- never a normalised
  output, whose batch moments are beta and gamma^2 by construction;
* a *change* of a unit's distribution is the geometric mean of the scale-free changes of its
  mean (|d mean| / std) and variance (|d var| / var) between successive steps;
* a diverged run is an outcome: its final and mean loss are +inf, its accuracy chance level
  (CHANCE_ACCURACY), it never reaches a loss level (time +inf), and it does not *train*.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np

from gpu_check import readings as R
from gpu_check.criteria import FLOAT32_RESOLUTION, Criterion, Interval, Side, seed_interval
from theory.vocab import ClaimVerdict

LP_NORMS = ("l1", "l2", "linf")
CHANCE_ACCURACY = 0.1          # CIFAR-10 (and its stand-in) have 10 balanced classes
SIMILAR_FACTOR = 3.0           # "marginal difference": within a factor 3 (margin log10 3)
COMPARABLE_FACTOR = 2.0        # "perform comparably": no more than 2x slower / 2x the mean loss
ACCURACY_MARGIN = 0.05         # "almost non-existent" difference: within 5 points of accuracy
COSINE_MARGIN = 0.05           # "similar, or even worse ICS": bn's cosine at most 0.05 above none's
ALMOST_NO_ICS = 0.9            # "almost no ICS": median cos(G, G') above 0.9
UNCORRELATED = 0.5             # "almost uncorrelated": |median cos(G, G')| below 0.5
LEVEL_FACTOR = 1.1             # loss level of a speed comparison: 1.1 x the lowest final loss compared
TRAINS_FRACTION = 0.5          # a run *trains* when its final loss is below half its initial loss
EDGE_OF_STABILITY = 2.0        # gradient descent at lr settles where beta * lr ~ 2 (sharpness 2 / lr)
EDGE_BAND = 1.25               # beta_eff * lr within [2 / 1.25, 2 * 1.25]: pinned by the step size


# ---------------------------------------------------------------------------------------------
# Statistics of one run summary
# ---------------------------------------------------------------------------------------------

def _num(x) -> float:
    return math.nan if x is None else float(x)


def diverged(s) -> bool:
    return s["run"]["status"] == "diverged"


def final_loss(s) -> float:
    return _num(s["loss"]["final"])


def mean_loss(s) -> float:
    return _num(s["loss"]["mean"])


def train_accuracy(s) -> float:
    return CHANCE_ACCURACY if diverged(s) else _num(s["accuracy"]["final_train"])


def test_accuracy(s) -> float:
    return CHANCE_ACCURACY if diverged(s) else _num(s["accuracy"]["final_test"])


def steps_to_level(s, level: float) -> float:
    """The first sampled step whose windowed loss is <= level; +inf when the run never gets there."""
    for step, loss in zip(s["loss"]["curve"]["steps"], s["loss"]["curve"]["loss"]):
        if _num(loss) <= level:
            return float(step)
    return math.inf


def trains(s) -> bool:
    return not diverged(s) and final_loss(s) < TRAINS_FRACTION * _num(s["loss"]["initial"])


def _median(rows, key, start=0) -> float:
    v = [_num(r[key]) for r in rows if r["step"] >= start]
    v = [x for x in v if math.isfinite(x)]
    return float(np.median(v)) if v else math.nan


def ics_cosine(s, start=0) -> float:
    return _median(s["ics"], "cos", start)


def landscape(s, key) -> float:
    """Median over measured steps of a landscape statistic (NaN when the run did not record it)."""
    return _median([r for r in s["landscape"] if key in r], key)


def beta_lr(s) -> float:
    """Median over measured steps of beta_eff x the step's learning rate (against EDGE_OF_STABILITY)."""
    return float(np.median([_num(r["beta_eff"]) * _num(r["lr"]) for r in s["landscape"]])) if s["landscape"] \
        else math.nan


def input_change(s) -> float:
    """Geometric mean of the medians over steps of |d mean| / std and |d var| / var of the
    activations the layers' normalisations receive (the layer outputs for the standard network);
    NaN (undefined) when either median is below FLOAT32_RESOLUTION: rounding, not a change."""
    d = s["distributions"]
    rows = d.get("pre-norm") or (d.get("output") if s["run"]["norm"] == "none" else None)
    if not rows:
        return math.nan
    mean, var = _median(rows, "d_mean"), _median(rows, "d_var")
    if not (mean >= FLOAT32_RESOLUTION and var >= FLOAT32_RESOLUTION):
        return math.nan
    return math.sqrt(mean * var)


def log_ratio(a: float, b: float) -> float:
    """log10(a / b); +-inf and NaN follow IEEE (a diverged run's +inf loss gives +-inf)."""
    with np.errstate(all="ignore"):
        return float(np.log10(np.float64(a) / np.float64(b)))


def most(values) -> float:
    """The largest value, NaN when any is NaN: one undefined comparison makes the worst case over
    several undefined (Python's max would keep or drop a NaN depending on where it stands)."""
    return float(np.max(np.asarray(list(values), dtype=np.float64)))


def least(values) -> float:
    """The smallest value, NaN when any is NaN (as ``most``)."""
    return float(np.min(np.asarray(list(values), dtype=np.float64)))


def live_start(runs) -> float:
    """The dead-start cut-off of a pair: the later of the runs' first live steps (NaN when one
    never leaves its dead start)."""
    starts = [r["loss"]["live_from"] for r in runs]
    return math.nan if any(x is None for x in starts) else float(max(starts))


# ---------------------------------------------------------------------------------------------
# The claims
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Claim:
    id: str
    paper_ref: str                   # section and figure
    network: str
    text: str
    norms: tuple
    criterion: Optional[Criterion] = None
    per_seed: Optional[Callable] = None          # {norm: summary} -> float (lr-grid: {norm: {lr: summary}})
    needs_cifar: bool = False
    missing: str = ""                # not implemented: exactly what is missing
    lr_grid: bool = False            # judged on the whole lr grid at once (reading lr-grid)
    guard: Optional[Callable] = None  # [runs of each seed] -> (force inconclusive?, note)


def _pair(f):
    return lambda runs: f(runs["bn"], runs["none"])


def _level_time(runs, norm, compared):
    level = LEVEL_FACTOR * min(final_loss(runs[n]) for n in compared)
    return steps_to_level(runs[norm], level)


def _edge_guard(seed_runs) -> tuple:
    """fig10c: (inconclusive?, note).  When both networks' beta_eff * lr lie in the edge-of-stability
    band on every seed, the comparison measures the step size, not the landscape."""
    lo, hi = EDGE_OF_STABILITY / EDGE_BAND, EDGE_OF_STABILITY * EDGE_BAND
    vals = {n: [beta_lr(r[n]) for r in seed_runs] for n in ("bn", "none")}
    text = "; ".join(f"{n} beta_eff*lr {min(v):.3g}..{max(v):.3g}" for n, v in vals.items() if v)
    if seed_runs and all(lo <= x <= hi for v in vals.values() for x in v):
        return True, (f"both networks sit at the edge of stability (beta_eff*lr in [{lo:g}, {hi:g}] on every seed: "
                f"{text}): gradient descent pins beta_eff near 2/lr, so the comparison measures the step size")
    return False, (f"{text} (edge of stability: beta_eff*lr = {EDGE_OF_STABILITY:g})" if text else "")


def _landscape_claims() -> list:
    out = []
    parts = (("a", "loss_range", "loss range along the gradient",
              "BatchNorm improves the Lipschitzness of the loss: the loss changes at a smaller rate."),
             ("b", "grad_change_max", "largest gradient change along the gradient",
              "BatchNorm improves gradient predictiveness: the gradient changes less as one moves along it."),
             ("c", "beta_eff", "effective beta-smoothness", 'With BatchNorm the "effective" beta-smoothness is '
              'smaller.'))
    for net, fig in (("vgg", "4"), ("dln", "10")):
        for panel, key, words, text in parts:
            ref = f"3.1-3.2, Fig. {fig}({panel})" + (", 11" if key == "grad_change_max" else "")
            guard = _edge_guard if (net, key) == ("dln", "beta_eff") else None
            why = ("the paper's panels show the standard network's curve above BN's at every step; a ratio "
                   "of medians over steps > 1, i.e. log10 > 0, is the claim's direction")
            if guard:
                why += ("; and, fixed in advance: when both networks' beta_eff*lr lie within a factor "
                        f"{EDGE_BAND:g} of {EDGE_OF_STABILITY:g} on every seed the reading is inconclusive "
                        "(gradient descent settles where beta*lr ~ 2, whatever the landscape)")
            out.append(Claim(
                f"fig{fig}{panel}-{net}", ref, net, text, ("none", "bn"),
                Criterion(f"log10(median {words} of none / median of bn) over measured steps", Side.GREATER, 0.0,
                          why, min_seeds=len(R.JUDGED_SEEDS[net])),
                _pair(lambda b, n, key=key: log_ratio(landscape(n, key), landscape(b, key))), guard=guard))
    return out


def _build() -> tuple:
    v_seeds, d_seeds = len(R.JUDGED_SEEDS["vgg"]), len(R.JUDGED_SEEDS["dln"])
    out = [
        Claim("fig1a", "2, Fig. 1(a)", "vgg", "There is a consistent gain in training speed in models with "
              "BatchNorm layers.", ("none", "bn"),
              Criterion("log10(mean training loss over the run of none / of bn)", Side.GREATER, 0.0,
                        "the area under the training-loss curve is lower with BN when it trains faster", v_seeds),
              _pair(lambda b, n: log_ratio(mean_loss(n), mean_loss(b)))),
        Claim("fig1b", "2, Fig. 1(b)", "vgg", "BatchNorm improves test (generalization) performance of VGG on "
              "CIFAR-10.", ("none", "bn"),
              Criterion("final test accuracy of bn - of none", Side.GREATER, 0.0,
                        "the paper reports 83% vs 80%; any gain is the claim's direction", v_seeds),
              _pair(lambda b, n: test_accuracy(b) - test_accuracy(n)), needs_cifar=True),
        Claim("fig1c", "2, Fig. 1(c)", "vgg", "The difference in distributional stability (change in the mean "
              "and variance) of layer inputs in networks with and without BatchNorm seems to be marginal.",
              ("none", "bn"),
              Criterion("log10(change of bn's layer inputs / of none's): geometric mean of the median scale-free "
                        "changes of mean and variance between successive steps, of the activations BN receives",
                        Side.WITHIN, math.log10(SIMILAR_FACTOR),
                        f"'marginal': within a factor {SIMILAR_FACTOR:g} either way (equivalence margin "
                        f"log10 {SIMILAR_FACTOR:g}, fixed in advance); BN's own outputs are excluded because "
                        "their batch moments are beta and gamma^2 by construction", v_seeds),
              _pair(lambda b, n: log_ratio(input_change(b), input_change(n)))),
        Claim("fig2-similar", "2.1, Fig. 2", "vgg", 'The performance difference between models with BatchNorm '
              'layers and "noisy" BatchNorm layers is almost non-existent.', ("bn", "noisy-bn"),
              Criterion("final training accuracy of noisy-bn - of bn", Side.WITHIN, ACCURACY_MARGIN,
                        f"'almost non-existent': within {ACCURACY_MARGIN:g} (5 points of accuracy, the paper "
                        "plots accuracy), equivalence margin fixed in advance", v_seeds),
              lambda runs: train_accuracy(runs["noisy-bn"]) - train_accuracy(runs["bn"])),
        Claim("fig2-better", "2.1, Fig. 2", "vgg", 'Both BatchNorm and "noisy" BatchNorm perform much better than '
              'standard networks.', ("none", "noisy-bn"),
              Criterion("final training accuracy of noisy-bn - of none", Side.GREATER, 0.0,
                        "the direction of the claim ('much' is not quantified by the paper; bn vs none is fig1a)",
                        v_seeds),
              lambda runs: train_accuracy(runs["noisy-bn"]) - train_accuracy(runs["none"])),
        Claim("fig2-stability", "2.1, Fig. 2, 8", "vgg", 'The "noisy" BatchNorm network has qualitatively less '
              'stable distributions than even the standard, non-BatchNorm network.', ("none", "noisy-bn"),
              Criterion("log10(change of noisy-bn's layer inputs / of none's) (as fig1c)", Side.GREATER, 0.0,
                        "less stable = larger step-to-step changes of the inputs the layers receive", v_seeds),
              lambda runs: log_ratio(input_change(runs["noisy-bn"]), input_change(runs["none"]))),
        Claim("fig2-noise-standard", "2.1", "vgg", "Adding the same amount of noise to the activations of the "
              "standard (non-BatchNorm) network prevents it from training entirely.", ("noisy-none",),
              Criterion("log10(final training loss / initial training loss) of noisy-none (Algorithm 1's noise on "
                        "the unnormalised layer outputs)", Side.GREATER, math.log10(TRAINS_FRACTION),
                        f"'prevents it from training': the loss does not fall below {TRAINS_FRACTION:g} x its "
                        "initial value (the rule of lr-range's 'trains'); a diverged run does not train", v_seeds),
              lambda runs: log_ratio(final_loss(runs["noisy-none"]), _num(runs["noisy-none"]["loss"]["initial"]))),
    ]
    for net in ("vgg", "dln"):
        n_seeds = len(R.JUDGED_SEEDS[net])
        ics = Criterion("median cos(G, G') of bn - of none (medians over measured steps of the median over "
                        "layers 2..k)", Side.LESS, COSINE_MARGIN,
                        f"'similar, or even worse ICS': BN's gradients no more aligned than the standard "
                        f"network's, up to a margin of {COSINE_MARGIN:g} in cosine", n_seeds)
        out.append(Claim(f"fig3-{net}", "2.2, Fig. 3", net, "Networks with BatchNorm often exhibit an increase in "
                         "ICS (Definition 2.1): similar, or even worse, internal covariate shift (whole run).",
                         ("none", "bn"), ics, _pair(lambda b, n: ics_cosine(b) - ics_cosine(n))))
    out.append(Claim("fig3-vgg-live", "2.2, Fig. 3", "vgg", "As fig3-vgg, from the end of the standard "
                     "network's dead start.", ("none", "bn"),
                     Criterion("as fig3-vgg, over the measured steps from the later of the two runs' first live "
                               "steps (the first step at which the loss, averaged over 1% of the run, is below "
                               "95% of its initial value)", Side.LESS, COSINE_MARGIN,
                               "a network whose loss has not moved yet has G ~ G' (cos ~ 1) trivially; the rule "
                               "is fixed before any run is read", v_seeds),
                     _pair(lambda b, n: ics_cosine(b, live_start((b, n))) - ics_cosine(n, live_start((b, n))))))
    out += [
        Claim("fig3-dln-none", "2.2, Fig. 3", "dln", "In the DLN the standard network experiences almost no ICS "
              "for the entirety of training.", ("none",),
              Criterion("median cos(G, G') of none", Side.GREATER, ALMOST_NO_ICS,
                        f"'almost no ICS': G and G' aligned, cosine above {ALMOST_NO_ICS:g}", d_seeds),
              lambda runs: ics_cosine(runs["none"])),
        Claim("fig3-dln-bn", "2.2, Fig. 3", "dln", "In the DLN with BatchNorm, G and G' are almost "
              "uncorrelated.", ("bn",),
              Criterion("median cos(G, G') of bn", Side.WITHIN, UNCORRELATED,
                        f"'almost uncorrelated': |cosine| below {UNCORRELATED:g} (equivalence margin)", d_seeds),
              lambda runs: ics_cosine(runs["bn"])),
    ]
    out += _landscape_claims()
    for net in ("vgg", "dln"):
        out.append(Claim(f"grad-magnitude-{net}", "3.1", net, "With BatchNorm the magnitudes of the gradients are "
                         "smaller too.", ("none", "bn"),
                         Criterion("log10(median ||grad L|| of none / of bn) over measured steps (all parameters)",
                                   Side.GREATER, 0.0, "smaller gradients with BN: the ratio exceeds 1",
                                   len(R.JUDGED_SEEDS[net])),
                         _pair(lambda b, n: log_ratio(landscape(n, "grad_norm"), landscape(b, "grad_norm")))))
    compared = ("bn",) + LP_NORMS
    out += [
        Claim("lp-train-vgg", "3.3, Fig. 5, 12(a)", "vgg", "All l_p normalization strategies perform comparably or "
              "even better than BatchNorm.", compared,
              Criterion("max over l1, l2, linf of log10(mean training loss over the run of l_p / of bn)", Side.LESS,
                        math.log10(COMPARABLE_FACTOR),
                        f"'comparably or better': no l_p with more than {COMPARABLE_FACTOR:g}x bn's area under the "
                        "loss curve", v_seeds),
              lambda runs: most(log_ratio(mean_loss(runs[p]), mean_loss(runs["bn"])) for p in LP_NORMS)),
        Claim("lp-train-dln", "3.3, Fig. 5, 13(a)", "dln", "All l_p normalization strategies perform comparably or "
              "even better than BatchNorm.", compared,
              Criterion(f"max over l1, l2, linf of log10(steps to reach the loss level of l_p / of bn); level = "
                        f"{LEVEL_FACTOR:g} x the lowest final loss among bn, l1, l2, linf of the seed",
                        Side.LESS, math.log10(COMPARABLE_FACTOR),
                        "the final losses sit on the same saddle plateau, so the speed to it is the informative "
                        f"statistic; 'comparably': no l_p more than {COMPARABLE_FACTOR:g}x slower than bn; a run "
                        "that never reaches the level is infinitely slow", d_seeds),
              lambda runs: most(log_ratio(_level_time(runs, p, compared), _level_time(runs, "bn", compared))
                               for p in LP_NORMS)),
        Claim("lp-l1-dln", "3.3, Fig. 5, 13(a)", "dln", "For deep linear networks, l1-normalization performs even "
              "better than BatchNorm.", ("bn", "l1"),
              Criterion(f"log10(steps to the loss level of l1 / of bn); level = {LEVEL_FACTOR:g} x the lower final "
                        "loss of the two", Side.LESS, 0.0, "better = reaches the plateau sooner", d_seeds),
              lambda runs: log_ratio(_level_time(runs, "l1", ("bn", "l1")), _level_time(runs, "bn", ("bn", "l1")))),
        Claim("fig6", "3.3, Fig. 6", "vgg", "The l_p normalization techniques lead to larger distributional "
              "covariate shift compared to normal networks.", ("none",) + LP_NORMS,
              Criterion("min over l1, l2, linf of log10(change of l_p's layer inputs / of none's) (as fig1c)",
                        Side.GREATER, 0.0, "every l_p's inputs move more between steps than the standard "
                        "network's", v_seeds),
              lambda runs: least(log_ratio(input_change(runs[p]), input_change(runs["none"])) for p in LP_NORMS)),
    ]
    for net, fig in (("vgg", "12(b-d)"), ("dln", "13(b-d)")):
        keys = ("loss_range", "grad_change_max", "beta_eff")
        out.append(Claim(f"lp-smooth-{net}", f"3.3, Fig. {fig}", net, "Networks with any normalization strategy "
                         "have improved smoothness of the loss landscape over standard training.",
                         ("none",) + LP_NORMS,
                         Criterion("min over l1, l2, linf and over loss range, max gradient change, effective beta "
                                   "of log10(median of none / of l_p)", Side.GREATER, 0.0,
                                   "every l_p smoother than the standard network on every landscape measure",
                                   len(R.JUDGED_SEEDS[net])),
                         lambda runs, keys=keys: least(log_ratio(landscape(runs["none"], k), landscape(runs[p], k))
                                                     for p in LP_NORMS for k in keys)))
    for net in ("vgg", "dln"):
        out.append(Claim(f"lr-range-{net}", "3.1, Fig. 11 caption", net, "BatchNorm enables a broader range of "
                         "(and larger) learning rates.", ("none", "bn"),
                         Criterion("number of the grid's learning rates at which bn trains - at which none trains "
                                   f"(trains: not diverged and final loss < {TRAINS_FRACTION:g} x initial loss)",
                                   Side.GREATER, 0.0, "a broader range: BN trains at more of the grid's rates; a "
                                   "diverged run counts as not training", len(R.JUDGED_SEEDS[net])),
                         lambda runs: float(sum(trains(s) for s in runs["bn"].values())
                                            - sum(trains(s) for s in runs["none"].values())), lr_grid=True))
    for net in ("vgg", "dln"):
        out.append(Claim(f"random-directions-{net}", "3.2", net, "The loss behaves in a similar way along other "
                         "(random) directions: BatchNorm's loss changes at a smaller rate there too.", ("none", "bn"),
                         Criterion("log10(median loss range along a random direction of none / of bn) over measured "
                                   "steps (the direction: per parameter tensor a normal draw scaled to the "
                                   "gradient's norm; the step sizes of the gradient walk)", Side.GREATER, 0.0,
                                   "fig4a / fig10a's criterion, measured along a random direction instead of the "
                                   "gradient", len(R.JUDGED_SEEDS[net])),
                         _pair(lambda b, n: log_ratio(landscape(n, "random_loss_range"),
                                                      landscape(b, "random_loss_range")))))
    return tuple(out)


CLAIMS = _build()


# ---------------------------------------------------------------------------------------------
# Judging
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ReadingResult:
    reading: R.Reading
    setting: str
    seeds: tuple
    interval: Interval
    verdict: ClaimVerdict
    note: str = ""


@dataclass(frozen=True)
class ClaimResult:
    claim: Claim
    readings: tuple
    verdict: ClaimVerdict
    why: str


@dataclass(frozen=True)
class SummaryIndex:
    """Summaries of the judged preset of each family (gpu_check.readings.JUDGED_PRESETS), by
    (family, norm, lr_text, seed)."""

    by_key: dict
    presets: dict = field(default_factory=dict)      # family -> preset judged (absent: none)

    @classmethod
    def of(cls, summaries) -> "SummaryIndex":
        presets, by_key = {}, {}
        for family, candidates in R.JUDGED_PRESETS.items():
            for p in candidates:
                if any(_counts(s, family, p) for s in summaries):
                    presets[family] = p
                    break
        for s in summaries:
            r = s["run"]
            for family, p in presets.items():
                if _counts(s, family, p):
                    by_key[(family, r["norm"], r["lr_text"], int(r["seed"]))] = s
        return cls(by_key, presets)

    def get(self, family, norm, lr, seed):
        return self.by_key.get((family, norm, R.lr_text(lr), seed))


def _counts(s, family, preset) -> bool:
    r = s["run"]
    return (r["network"] == R.FAMILY_NETWORK[family] and r["preset"] == preset
            and int(r["steps"]) >= R.preset_steps(preset))


def chosen_lrs(index: SummaryIndex, network: str, norms) -> dict:
    """The paper's procedure: {norm: lr or None} from the selection seeds (the network's own family);
    a norm with a single lr in its grid takes it (nothing to select, no selection run needed)."""
    out = {}
    for n in norms:
        if not R.selection_needed(network, n):
            out[n] = R.lrs_of(network, n)[0]
            continue
        losses = {}
        for lr in R.lrs_of(network, n):
            got = [index.get(network, n, lr, s) for s in R.SELECTION_SEEDS[network]]
            if all(g is not None for g in got):
                losses[lr] = [final_loss(g) for g in got]
        out[n] = R.select_lr(losses)
    return out


def _seed_runs(claim: Claim, reading: R.Reading, index: SummaryIndex, chosen: dict) -> tuple:
    """([seed], [runs of that seed]) for the judged seeds that have every run the claim needs."""
    seeds, runs = [], []
    family = reading.runs_family
    for seed in R.JUDGED_SEEDS[claim.network]:
        if claim.lr_grid:
            got = {n: {R.lr_text(lr): index.get(family, n, lr, seed) for lr in R.lrs_of(family, n)}
                   for n in claim.norms}
            ok = all(s is not None for d in got.values() for s in d.values())
        else:
            lrs = {n: reading.lr if reading.lr is not None else chosen.get(n) for n in claim.norms}
            got = {n: None if lrs[n] is None else index.get(family, n, lrs[n], seed) for n in claim.norms}
            ok = all(s is not None for s in got.values())
        if ok:
            seeds.append(seed)
            runs.append(got)
    return tuple(seeds), runs


def _setting(claim: Claim, reading: R.Reading, index: SummaryIndex, chosen: dict, runs) -> str:
    preset = index.presets.get(reading.runs_family)
    parts = [reading.setting]
    if reading.name == R.PAPER_PROCEDURE:
        only = lambda n: "" if R.selection_needed(reading.runs_family, n) else " (its only lr)"  # noqa: E731
        parts.append("chosen lr: " + ", ".join(f"{n} {R.lr_text(chosen[n]) + only(n) if chosen.get(n) else 'none yet'}"
                                              for n in claim.norms))
    if preset is None:
        parts.append(f"no {claim.network.upper()} run summaries at preset scale yet")
    else:
        first = next(iter(runs[0].values())) if runs else None
        if isinstance(first, dict) and "run" not in first:
            first = next(iter(first.values()))
        data = first["run"]["dataset"] if first else "-"
        parts.append(f"preset {preset} ({R.preset_steps(preset)} steps), data {data}")
    return "; ".join(parts)


def judge_reading(claim: Claim, reading: R.Reading, index: SummaryIndex) -> ReadingResult:
    chosen = chosen_lrs(index, claim.network, claim.norms) if reading.name == R.PAPER_PROCEDURE else {}
    seeds, runs = _seed_runs(claim, reading, index, chosen)
    iv = seed_interval([claim.per_seed(r) for r in runs])
    verdict = claim.criterion.decide(iv)
    notes = []
    if iv.n < claim.criterion.min_seeds:
        notes.append(f"{iv.n} seed(s) with a value, {claim.criterion.min_seeds} required")
    if iv.undefined:
        notes.append(f"{iv.undefined} seed(s) where the statistic is undefined")
    if claim.guard is not None:
        pinned, note = claim.guard(runs)
        if pinned:
            verdict = ClaimVerdict.INCONCLUSIVE
        if note:
            notes.append(note)
    return ReadingResult(reading, _setting(claim, reading, index, chosen, runs), seeds, iv, verdict, "; ".join(notes))


def _cifar_missing(index: SummaryIndex) -> str:
    """Why the CIFAR-10 claims cannot be judged here ('' when the VGG family's runs are on CIFAR-10)."""
    have = [s for (family, *_), s in index.by_key.items() if family == "vgg"]
    if not have:
        return "CIFAR-10 is not available here (no --data directory) and no VGG run at preset scale was summarised"
    if not all(s["run"]["dataset"].lower().startswith("cifar-10") for s in have):
        return "CIFAR-10 is not available here: the VGG runs used the synthetic stand-in (no --data)"
    return ""


def judge_claim(claim: Claim, index: SummaryIndex) -> ClaimResult:
    if claim.criterion is None:
        return ClaimResult(claim, (), ClaimVerdict.NOT_IMPLEMENTED, f"not implemented: {claim.missing}")
    readings = [R.lr_grid_reading(claim.network)] if claim.lr_grid else R.readings_for(claim.network, claim.norms)
    results = tuple(judge_reading(claim, r, index) for r in readings)
    if claim.needs_cifar:
        reason = _cifar_missing(index)
        if reason:
            results = tuple(ReadingResult(r.reading, r.setting, r.seeds, r.interval, ClaimVerdict.NOT_TESTABLE_HERE,
                                          "; ".join(x for x in (reason, r.note) if x)) for r in results)
            return ClaimResult(claim, results, ClaimVerdict.NOT_TESTABLE_HERE, reason)
    primary = results[0] if claim.lr_grid else next(r for r in results if r.reading.name == R.PAPER_PROCEDURE)
    others = [f"{r.reading.name}: {r.verdict}" for r in results if r is not primary]
    why = (f"the verdict under '{primary.reading.name}' ({primary.reading.support})"
           + (f"; other readings: {', '.join(others)}" if others else ""))
    if primary.note:
        why += f"; {primary.note}"
    return ClaimResult(claim, results, primary.verdict, why)


def judge_claims(summaries, claims=CLAIMS) -> list:
    index = SummaryIndex.of(summaries)
    return [judge_claim(c, index) for c in claims]
