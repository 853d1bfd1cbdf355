"""The reproduction report: each experimental claim of Sections 2-3 and Appendix B next to what
our runs show, with the figure and a verdict.

    python -m gpu_check.reproduce --out docs/reproduction.md [--runs DIR ...]
        [--scale smoke|cpu] [--work DIR] [--vgg-steps N] [--dln-steps N] [--jobs J] [--data DIR]
    python -m gpu_check.reproduce --from-summaries [DIR] --out docs/reproduction.md
    python -m gpu_check.reproduce --scale paper [--plan] [--data DIR] [--work DIR] --out docs/reproduction.md

--from-summaries judges every claim of gpu_check.claims over seeds and readings from the committed
run summaries (gpu_check.reproduction_doc); --scale paper prints the grid of gpu_check.readings
with its estimated time, runs it through gpu_check.sweep, summarises it and writes both documents.
The rest of this docstring is about the single-run report of --runs / --scale smoke|cpu.

Without --runs, the runs a claim needs are made first (each a ``python -m gpu_check.run``
subprocess with ``--measure ics,landscape,distributions``) in --work (default
runs/reproduction-<scale>; a complete run found there is reused, an interrupted one resumed):

    smoke  the smoke preset (both networks, 12 steps) for every norm: about a minute; it
           exercises every measurement and figure, but no claim is testable at that scale;
    cpu    dln-paper (Appendix A's DLN, 10,000 full-batch steps) and vgg-cpu (a VGG-11 with
           1/8 of the widths on 10,000 images) for every norm.

With --runs, the given run directories are used as they are (several presets may be mixed;
for each network and norm the first run given is used).  The figures go to
<out without .md>/figures and are embedded by relative path.

Verdicts: *reproduced* / *not reproduced* when the runs are at a scale where the claim can be
tested, judged by the criterion written beside each claim; *not testable at this scale*
otherwise, with the reason (smoke runs; a claim about CIFAR-10 on synthetic data; a missing run;
an experiment no run performs).  The criteria are ours: the paper states its claims in words.
"""
from __future__ import annotations

import math
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from gpu_check import plots, readings, records, reproduction_doc
from gpu_check.config import DEVICES, NORMS, config_from_dict, preset, resume_mismatches, with_overrides
from gpu_check.grid import expand_runs
from gpu_check.measure_distributions import moment_changes
from theory import cli
from theory.fileio import atomic_write_text, check_writable

REPRODUCED, NOT_REPRODUCED, NOT_TESTABLE = "reproduced", "not reproduced", "not testable at this scale"
MEASURE_ALL = "ics,landscape,distributions"
SCALES = {
    # scale -> [(preset, norms)]: the runs a full report needs
    "smoke": [("smoke", NORMS)],
    "cpu": [("dln-paper", NORMS), ("vgg-cpu", NORMS)],
}
FINAL_FRACTION = 0.1     # "final loss": the mean training loss over the last 10% of the steps
SIMILAR_FACTOR = 3.0     # "marginal difference": medians within a factor of 3 of each other
COSINE_MARGIN = 0.05     # "similar or worse ICS": median cosine of BN <= that of standard + 0.05
EARLY_FRACTION = 1 / 3   # "initial phases of training": the first third of the steps
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ---------------------------------------------------------------------------------------------
# Statistics of runs (pure functions of plots.Run)
# ---------------------------------------------------------------------------------------------

def final_loss(run, network) -> float:
    """Mean training loss over the last FINAL_FRACTION of the recorded steps."""
    loss = np.array([float(m["loss"]) for m in run.metrics
                     if m.get("network") == network and m.get("split") == "train"])
    if loss.size == 0:
        return math.nan
    return float(np.mean(loss[-max(1, int(len(loss) * FINAL_FRACTION)):]))


def mean_loss(run, network) -> float:
    """Mean training loss over the whole run (the area under the training curve, per step)."""
    loss = [float(m["loss"]) for m in run.metrics if m.get("network") == network and m.get("split") == "train"]
    return float(np.mean(loss)) if loss else math.nan


def final_test_accuracy(run, network) -> float:
    test = [m for m in run.metrics if m.get("network") == network and m.get("split") == "test"]
    return float(test[-1]["accuracy"]) if test else math.nan


def early_steps(run) -> float:
    """The end of 'early training': the first EARLY_FRACTION of the run's steps."""
    return EARLY_FRACTION * float(run.config["steps"])


def _window(rows, network, early):
    rows = [x for x in rows if x["network"] == network]
    return rows if early is None else [x for x in rows if x["step"] <= early]


def median_cosine(run, network, early=None) -> float:
    """Median over measured steps (up to ``early`` if given) and layers 2..k of cos(G, G')
    (layer 1 is 1 by definition)."""
    v = [float(x["ics_cosine"]) for x in _window(run.ics, network, early) if x["index"] > 1]
    v = [x for x in v if math.isfinite(x)]
    return float(np.median(v)) if v else math.nan


def median_ics_rel(run, network, early=None) -> float:
    """Median over measured steps (up to ``early``) and layers 2..k of ||G - G'|| / ||G||."""
    v = [float(x["ics_rel"]) for x in _window(run.ics, network, early) if x["index"] > 1]
    v = [x for x in v if math.isfinite(x)]
    return float(np.median(v)) if v else math.nan


def median_landscape(run, network, key, early=None) -> float:
    """Median over measured steps (up to ``early``) of a landscape quantity: 'loss_range'
    (max - min along the gradient), 'grad_change_max' or 'beta_eff'."""
    rows = _window(run.landscape, network, early)
    if key == "loss_range":
        v = [float(x["loss_max"]) - float(x["loss_min"]) for x in rows]
    else:
        v = [float(x[key]) for x in rows]
    v = [x for x in v if math.isfinite(x)]
    return float(np.median(v)) if v else math.nan


def relative_moment_changes(run, network, where="output") -> tuple:
    """Medians over sampled units and successive-step pairs of |d mean| / std and |d var| / var
    (scale-free, so networks whose activations have different scales compare), of the block
    outputs (``where='output'``) or of the normalisation inputs ('pre-norm'; for 'none' the
    output, which is the same activation)."""
    rows = [x for x in run.distributions if x["network"] == network]
    if where == "pre-norm" and not any(x.get("where") == "pre-norm" for x in rows):
        where = "output"
    rows = [x for x in rows if x.get("where", "output") == where]
    var = {(x["layer"], x["unit"], x["step"]): float(x["var"]) for x in rows}
    dm, dv = [], []
    for c in moment_changes(rows, where):
        v = var[(c["layer"], c["unit"], c["step"])]
        if v > 0:
            dm.append(abs(c["d_mean"]) / math.sqrt(v))
            dv.append(abs(c["d_var"]) / v)
    return (float(np.median(dm)) if dm else math.nan, float(np.median(dv)) if dv else math.nan)


# ---------------------------------------------------------------------------------------------
# Claims
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Finding:
    shows: str                 # what our runs show, in words and numbers
    holds: Optional[bool]      # the criterion's outcome; None: not testable
    reason: str = ""           # why not testable (when holds is None)


@dataclass(frozen=True)
class Claim:
    id: str
    section: str
    paper_figures: str
    network: str               # 'vgg' | 'dln'
    text: str                  # the paper's claim (quoted where it is quoted)
    criterion: str             # how we decide it, in words
    norms: tuple               # the runs it needs
    figures: tuple             # our figure names (without _<network>)
    evaluate: Optional[Callable] = None   # runs: {norm: Run} -> Finding; None: no run performs it
    needs_cifar: bool = False
    untestable_reason: str = ""


def _fmt(x) -> str:
    return "-" if not math.isfinite(x) else (f"{x:.3g}" if abs(x) < 1e4 else f"{x:.3e}")


def _training_speed(runs, net):
    bn, none = runs["bn"], runs["none"]
    a, b = mean_loss(bn, net), mean_loss(none, net)
    fa, fb = final_loss(bn, net), final_loss(none, net)
    return Finding(f"mean training loss over the run: bn {_fmt(a)} vs none {_fmt(b)}; final loss bn {_fmt(fa)} "
                   f"vs none {_fmt(fb)}", bool(a < b and fa < fb))


def _test_accuracy(runs, net):
    a, b = final_test_accuracy(runs["bn"], net), final_test_accuracy(runs["none"], net)
    return Finding(f"final test accuracy: bn {_fmt(a)} vs none {_fmt(b)}", bool(a > b))


def _stability_marginal(runs, net):
    (mb, vb), (mn, vn) = relative_moment_changes(runs["bn"], net), relative_moment_changes(runs["none"], net)
    pm, pv = relative_moment_changes(runs["bn"], net, "pre-norm")
    ok = all(math.isfinite(x) and math.isfinite(y) and y > 0 and 1 / SIMILAR_FACTOR <= x / y <= SIMILAR_FACTOR
             for x, y in ((mb, mn), (vb, vn)))
    return Finding(f"median |d mean|/std between successive steps of the block outputs: bn {_fmt(mb)} vs none "
                   f"{_fmt(mn)}; |d var|/var: bn {_fmt(vb)} vs none {_fmt(vn)} (bn's pre-normalisation "
                   f"activations: {_fmt(pm)} and {_fmt(pv)})", ok)


def _noisy_trains_like_bn(runs, net):
    n, b, s = (final_loss(runs[k], net) for k in ("noisy-bn", "bn", "none"))
    return Finding(f"final training loss: noisy-bn {_fmt(n)}, bn {_fmt(b)}, none {_fmt(s)}",
                   bool(b < s and abs(n - b) < abs(n - s)))


def _noisy_less_stable(runs, net):
    (mn, vn), (ms, vs) = relative_moment_changes(runs["noisy-bn"], net), relative_moment_changes(runs["none"], net)
    return Finding(f"median |d mean|/std: noisy-bn {_fmt(mn)} vs none {_fmt(ms)}; |d var|/var: noisy-bn "
                   f"{_fmt(vn)} vs none {_fmt(vs)}", bool(mn > ms and vn > vs))


def _ics_similar_or_worse(runs, net):
    bn, none = runs["bn"], runs["none"]
    early = early_steps(bn)
    cb, cn = median_cosine(bn, net, early), median_cosine(none, net, early)
    rb, rn = median_ics_rel(bn, net, early), median_ics_rel(none, net, early)
    return Finding(f"median cos(G, G') over layers 2..k and steps <= {early:.0f}: bn {_fmt(cb)} vs none {_fmt(cn)} "
                   f"(whole run: bn {_fmt(median_cosine(bn, net))} vs none {_fmt(median_cosine(none, net))}); "
                   f"median ||G - G'||/||G|| over steps <= {early:.0f}: bn {_fmt(rb)} vs none {_fmt(rn)} (whole run: "
                   f"bn {_fmt(median_ics_rel(bn, net))} vs none {_fmt(median_ics_rel(none, net))})",
                   bool(cb <= cn + COSINE_MARGIN))


def _dln_ics_striking(runs, net):
    cb, cn = median_cosine(runs["bn"], net), median_cosine(runs["none"], net)
    return Finding(f"median cos(G, G'): none {_fmt(cn)} (claim: ~1), bn {_fmt(cb)} (claim: ~0)",
                   bool(cn >= 0.9 and abs(cb) <= 0.5))


def _landscape(key, words):
    def evaluate(runs, net):
        bn, none = runs["bn"], runs["none"]
        early = early_steps(bn)
        b, n = median_landscape(bn, net, key), median_landscape(none, net, key)
        be, ne = median_landscape(bn, net, key, early), median_landscape(none, net, key, early)
        return Finding(f"median over measured steps of the {words}: bn {_fmt(b)} vs none {_fmt(n)}; over steps "
                       f"<= {early:.0f}: bn {_fmt(be)} vs none {_fmt(ne)}", bool(b < n and be < ne))
    return evaluate


def _lp_train_comparably(runs, net):
    b, s = final_loss(runs["bn"], net), final_loss(runs["none"], net)
    parts, ok = [], b < s
    for p in ("l1", "l2", "linf"):
        x = final_loss(runs[p], net)
        parts.append(f"{p} {_fmt(x)}")
        ok = ok and x < s and (x <= b or abs(x - b) < abs(x - s))
    return Finding(f"final training loss: {', '.join(parts)}; bn {_fmt(b)}; none {_fmt(s)}", bool(ok))


def _l1_beats_bn(runs, net):
    a, b = final_loss(runs["l1"], net), final_loss(runs["bn"], net)
    return Finding(f"final training loss: l1 {a:.7g} vs bn {b:.7g}", bool(a < b))


def _lp_less_stable(runs, net):
    ms, vs = relative_moment_changes(runs["none"], net)
    parts, ok = [], True
    for p in ("l1", "l2", "linf"):
        m, v = relative_moment_changes(runs[p], net)
        parts.append(f"{p} {_fmt(m)} / {_fmt(v)}")
        ok = ok and m > ms and v > vs
    return Finding(f"median |d mean|/std / |d var|/var: {', '.join(parts)}; none {_fmt(ms)} / {_fmt(vs)}", bool(ok))


def _lp_smoother(runs, net):
    keys = ("loss_range", "grad_change_max", "beta_eff")
    early = early_steps(runs["none"])
    ref = {(k, e): median_landscape(runs["none"], net, k, e) for k in keys for e in (None, early)}
    parts, ok = [], True
    for p in ("l1", "l2", "linf"):
        v = {(k, e): median_landscape(runs[p], net, k, e) for k in keys for e in (None, early)}
        parts.append(f"{p} " + "/".join(_fmt(v[(k, None)]) for k in keys)
                     + " (early " + "/".join(_fmt(v[(k, early)]) for k in keys) + ")")
        ok = ok and all(v[key] < ref[key] for key in v)
    return Finding("median loss range / max gradient change / effective beta over the run (and over steps "
                   f"<= {early:.0f}): " + "; ".join(parts) + "; none " + "/".join(_fmt(ref[(k, None)]) for k in keys)
                   + " (early " + "/".join(_fmt(ref[(k, early)]) for k in keys) + ")", bool(ok))


_LANDSCAPE_CLAIMS = (
    ("loss_range", "loss range along the gradient", "(a)", "Lipschitzness of the loss: the loss changes at a smaller rate"),
    ("grad_change_max", "largest gradient change along the gradient", "(b)",
     "gradient predictiveness: the gradient changes less as one moves along it"),
    ("beta_eff", "effective beta-smoothness", "(c)", 'the "effective" beta-smoothness is smaller'),
)


def _claims() -> tuple:
    out = [
        Claim("fig1a", "2", "1(a)", "vgg", "There is a consistent gain in training speed in models with BatchNorm layers.",
              "the mean training loss over the run and the final training loss (last 10% of steps) are both lower with bn",
              ("none", "bn"), ("training",), _training_speed),
        Claim("fig1b", "2", "1(b)", "vgg", "BatchNorm improves test (generalization) performance of VGG on CIFAR-10.",
              "final test accuracy higher with bn", ("none", "bn"), ("training",), _test_accuracy, needs_cifar=True),
        Claim("fig1c", "2", "1(c)", "vgg", "The difference in the evolution of layer input distributions between BN "
              "and non-BN networks seems to be much less pronounced (marginal).",
              f"the scale-free step-to-step changes of sampled units' mean and variance of bn are within a factor "
              f"{SIMILAR_FACTOR:g} of none's", ("none", "bn"), ("distributions", "moments"), _stability_marginal),
        Claim("fig2-train", "2.1", "2", "vgg", 'The performance difference between models with BatchNorm layers and '
              '"noisy" BatchNorm layers is almost non-existent; both perform much better than standard networks.',
              "bn's final loss is below none's, and noisy-bn's final loss is closer to bn's than to none's",
              ("none", "bn", "noisy-bn"), ("training",), _noisy_trains_like_bn),
        Claim("fig2-stability", "2.1", "2, 8", "vgg", 'The "noisy" BatchNorm network has qualitatively less stable '
              'distributions than even the standard, non-BatchNorm network.',
              "noisy-bn's median scale-free changes of unit mean and variance between successive steps exceed none's",
              ("none", "noisy-bn"), ("distributions", "moments"), _noisy_less_stable),
    ]
    for net, fig in (("vgg", "3"), ("dln", "3")):
        out.append(Claim(f"fig3-{net}", "2.2", fig, net, "Networks with BatchNorm often exhibit an increase in ICS "
                         "(Definition 2.1): similar, or even worse, internal covariate shift.",
                         f"over the first third of training, bn's median cos(G, G') over measured steps and layers "
                         f"2..k is at most none's + {COSINE_MARGIN} (the paper calls BN's later stabilisation an "
                         "artifact of convergence; the whole-run medians are shown too)",
                         ("none", "bn"), ("ics",), _ics_similar_or_worse))
    out.append(Claim("fig3-dln-striking", "2.2", "3", "dln", "In the DLN the standard network experiences almost no "
                     "ICS for the entirety of training, whereas for BatchNorm G and G' are almost uncorrelated.",
                     "median cos(G, G') >= 0.9 for none and |median cos| <= 0.5 for bn",
                     ("none", "bn"), ("ics",), _dln_ics_striking))
    for net, fig in (("vgg", "4"), ("dln", "10")):
        for key, words, panel, text in _LANDSCAPE_CLAIMS:
            figs = ("landscape", "predictiveness") if key == "grad_change_max" else ("landscape",)
            paper = f"{fig}{panel}" + (", 11" if key == "grad_change_max" else "")
            out.append(Claim(f"fig{fig}{panel.strip('()')}-{net}", "3.1-3.2", paper, net,
                             f"BatchNorm improves {text}.",
                             f"bn's median {words} over the measured steps is below none's, over the whole run and "
                         "over its first third (the paper: 'especially in the initial phases of training')",
                             ("none", "bn"), figs, _landscape(key, words)))
    for net, fig in (("vgg", "5, 12(a)"), ("dln", "5, 13(a)")):
        out.append(Claim(f"lp-train-{net}", "3.3", fig, net, "All l_p normalization strategies perform comparably "
                         "or even better than BatchNorm.",
                         "bn beats none, and each of l1, l2, linf ends below none and no farther from bn than from "
                         "none (or below bn)", ("none", "bn", "l1", "l2", "linf"), ("lp", "training"), _lp_train_comparably))
    out.append(Claim("lp-l1-dln", "3.3", "5, 13(a)", "dln", "For deep linear networks, l1-normalization performs even "
                     "better than BatchNorm.", "l1's final training loss is below bn's", ("bn", "l1"), ("lp",), _l1_beats_bn))
    out.append(Claim("fig6", "3.3", "6", "vgg", "The l_p normalization techniques lead to larger distributional "
                     "covariate shift compared to normal networks, yet yield improved optimization performance.",
                     "each l_p run's median scale-free changes of unit mean and variance exceed none's",
                     ("none", "l1", "l2", "linf"), ("distributions", "moments"), _lp_less_stable))
    for net, fig in (("vgg", "12(b-d)"), ("dln", "13(b-d)")):
        out.append(Claim(f"lp-smooth-{net}", "3.3", fig, net, "Networks with any normalization strategy have improved "
                         "smoothness of the loss landscape over standard training.",
                         "each l_p run's median loss range, max gradient change and effective beta are below none's, "
                         "over the whole run and over its first third",
                         ("none", "l1", "l2", "linf"), ("lp", "landscape"), _lp_smoother))
    out.append(Claim("lr-range", "3.1", "11", "vgg", "BatchNorm enables a broader range of (and larger) learning "
                     "rates.", "-", ("none", "bn"), ("predictiveness",), None,
                     untestable_reason="needs a sweep over learning rates; no run here trains at other learning rates"))
    out.append(Claim("random-directions", "3.2", "-", "vgg", "The loss behaves in a similar way along other (random) "
                     "directions.", "-", ("none", "bn"), (), None,
                     untestable_reason="our landscape measurement walks the gradient direction only"))
    return tuple(out)


CLAIMS = _claims()


@dataclass(frozen=True)
class Verdict:
    claim: Claim
    verdict: str
    shows: str
    reason: str
    runs: tuple        # the runs it used


def scale_reason(runs, claim: Claim) -> str:
    """Why runs at this scale cannot test the claim, or '' when they can."""
    presets = {r.preset for r in runs}
    if "smoke" in presets:
        return ("smoke runs: 12 steps of a 6-layer DLN and a 2-convolution VGG on 8x8 images exercise the "
                "measurements, but say nothing about training over thousands of steps")
    if claim.needs_cifar and any("synthetic" in r.dataset(claim.network).lower() for r in runs):
        return "the claim is about CIFAR-10; these runs used the synthetic stand-in (no --data)"
    return ""


def judge(claim: Claim, runs_by_norm: dict) -> Verdict:
    """The verdict on one claim from the runs of its network, by normalisation."""
    missing = [n for n in claim.norms if n not in runs_by_norm]
    used = tuple(runs_by_norm[n] for n in claim.norms if n in runs_by_norm)
    if claim.evaluate is None:
        return Verdict(claim, NOT_TESTABLE, "not measured", claim.untestable_reason, used)
    if missing:
        return Verdict(claim, NOT_TESTABLE, "-", f"no {claim.network.upper()} run with norm {', '.join(missing)} "
                       "was given", used)
    finding = claim.evaluate(runs_by_norm, claim.network)
    reason = scale_reason(used, claim)
    if reason:
        return Verdict(claim, NOT_TESTABLE, finding.shows, reason, used)
    return Verdict(claim, REPRODUCED if finding.holds else NOT_REPRODUCED, finding.shows, _caveat(used, claim), used)


def _caveat(runs, claim) -> str:
    """What differs from the paper's setting, for a verdict at reduced scale."""
    presets = sorted({r.preset for r in runs})
    notes = []
    if "vgg-cpu" in presets:
        notes.append("narrow VGG (widths / 8) on 10,000 images, fewer steps than the paper's 15,000")
    if any("synthetic" in r.dataset(claim.network).lower() for r in runs):
        notes.append("synthetic stand-in for CIFAR-10")
    steps = sorted({int(r.config["steps"]) for r in runs})
    if notes:
        return f"at reduced scale ({'; '.join(notes)}; {'/'.join(map(str, steps))} steps)"
    return ""


# ---------------------------------------------------------------------------------------------
# Runs
# ---------------------------------------------------------------------------------------------

PRESET_RANK = {"smoke": 0, "vgg-cpu": 1, "dln-paper": 2, "vgg-paper": 2}


def group_runs(runs) -> dict:
    """{network: {norm: Run}}: for each network, the runs of its largest-scale preset among those
    given (a claim compares runs of one preset), and of those the first given for each norm."""
    out = {}
    for net in ("dln", "vgg"):
        have = [r for r in runs if net in r.networks]
        if not have:
            continue
        top = max(PRESET_RANK.get(r.preset, 1) for r in have)
        for r in have:
            if PRESET_RANK.get(r.preset, 1) == top:
                out.setdefault(net, {}).setdefault(r.norm, r)
    return out


def run_command(preset: str, norm: str, out: str, steps=None, data=None, device=None) -> list:
    cmd = [sys.executable, "-m", "gpu_check.run", "--preset", preset, "--norm", norm, "--out", out,
           "--measure", MEASURE_ALL, "--quiet"]
    if steps:
        cmd += ["--steps", str(steps)]
    if data:
        cmd += ["--data", data]
    if device:
        cmd += ["--device", device]
    return cmd


def _held_run_mismatch(run_dir: str, preset_name: str, norm: str, steps, data) -> str:
    """'' when ``run_dir`` holds no run, or one this request may reuse or resume; else how its
    config differs from the one ``run_command`` would ask for (steps, data, ...)."""
    path = os.path.join(run_dir, records.CONFIG)
    if not os.path.isfile(path):
        return ""
    try:
        held = config_from_dict(records.read_run_meta(run_dir)["config"])
    except (ValueError, KeyError, TypeError) as err:
        return f"its {records.CONFIG} is unreadable: {err}"
    wanted = with_overrides(preset(preset_name), norm=norm, steps=steps, data=data,
                            measure=tuple(MEASURE_ALL.split(",")))
    return "; ".join(resume_mismatches(held, wanted))


def ensure_runs(scale: str, work: str, *, vgg_steps=None, dln_steps=None, jobs=1, data=None, device=None,
                log=print) -> list:
    """Make (or reuse, or resume) the runs of ``scale`` under ``work``; returns their directories."""
    todo, dirs = [], []
    for preset, norms in SCALES[scale]:
        steps = vgg_steps if preset.startswith("vgg") else dln_steps if preset.startswith("dln") else None
        for norm in norms:
            d = os.path.join(work, f"{preset}-{norm}")
            dirs.append(d)
            held = _held_run_mismatch(d, preset, norm, steps, data if preset.startswith(("vgg", "smoke")) else None)
            if held:
                raise cli.InputError(f"{d} holds a run made with other options ({held}): remove it, or choose "
                                     "another --work")
            if os.path.isfile(os.path.join(d, records.SUMMARY)):
                log(f"reusing {d}")
                continue
            cmd = run_command(preset, norm, d, steps, data if preset.startswith(("vgg", "smoke")) else None, device)
            if os.path.isfile(os.path.join(d, records.CHECKPOINT)):
                cmd.append("--resume")
            todo.append((d, cmd))
    os.makedirs(work, exist_ok=True)

    def go(item):
        d, cmd = item
        log(f"running {' '.join(cmd[1:])}")
        done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd[1:])} failed (exit {done.returncode}): {done.stderr.strip()[-800:]}")
        return d

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        list(pool.map(go, todo))
    return dirs


# ---------------------------------------------------------------------------------------------
# The document
# ---------------------------------------------------------------------------------------------

def _rel(path: str, start: str) -> str:
    return os.path.relpath(path, start).replace(os.sep, "/")


def run_table(runs, doc_dir: str) -> list:
    lines = ["| network | norm | preset | steps | seed | device | data | final train loss | wall s | "
             "measurement cost (s per measured step = training steps; share of run) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in runs:
        cost = r.summary.get("measure_cost", {})
        costs = "; ".join(f"{k} {_fmt(c['per_step_s'])} s = {_fmt(c['share_of_step'])} steps, "
                          f"{100 * c['share_of_run']:.1f}%" for k, c in cost.items()) or "-"
        for net in r.networks:
            lines.append(f"| {net} | {r.norm} | {r.preset} | {r.config['steps']} | {r.seed} | {r.device} | "
                         f"{plots.data_label(r.dataset(net))} | {_fmt(final_loss(r, net))} | "
                         f"{_fmt(float(r.summary.get('wall_s', math.nan)))} | {costs} |")
    return lines


def describe_runs(runs) -> str:
    """'none, bn: preset dln-paper, seed 0, cpu (...)' -- the runs a verdict used."""
    if not runs:
        return "-"
    keys = sorted({(r.preset, r.seed, r.device) for r in runs})
    return "; ".join(f"{', '.join(r.norm for r in runs if (r.preset, r.seed, r.device) == k)}: preset {k[0]}, "
                     f"seed {k[1]}, {k[2]}" for k in keys)


def _png(figure) -> str:
    return next(p for p in figure.files if p.endswith(".png"))


def render(verdicts, runs, figures: dict, doc_path: str, command: str) -> str:
    doc_dir = os.path.dirname(os.path.abspath(doc_path))
    counts = {v: sum(1 for x in verdicts if x.verdict == v) for v in (REPRODUCED, NOT_REPRODUCED, NOT_TESTABLE)}
    out = [f"<!-- generated by `{command}`; do not edit by hand -->", "",
           "# Reproduction of the experiments of Santurkar et al. (2018), Sections 2-3 and Appendix B", "",
           f"Regenerate with `{command}` (see `python -m gpu_check.reproduce --help`).  Each claim below is the "
           "paper's, with its figure number; *our runs* gives what the runs listed here measured; the verdict "
           "follows the stated criterion (ours: the paper states its claims in words), or says why the claim "
           "cannot be tested at the scale of these runs.", "",
           f"**{counts[REPRODUCED]} reproduced, {counts[NOT_REPRODUCED]} not reproduced, "
           f"{counts[NOT_TESTABLE]} not testable at this scale.**", "",
           "## Runs", ""] + run_table(runs, doc_dir) + [
           "", "## Verdicts", "", "| claim | section | paper figure | network | verdict |", "|---|---|---|---|---|"]
    for v in verdicts:
        out.append(f"| [{v.claim.id}](#{v.claim.id}) | {v.claim.section} | {v.claim.paper_figures} | "
                   f"{v.claim.network.upper()} | **{v.verdict}** |")
    out += ["", "## Claims", ""]
    shown = {}                       # figure name -> the claim under which it is embedded
    for v in verdicts:
        c = v.claim
        out += [f"### {c.id}", "",
                f"**Paper (Section {c.section}, Figure {c.paper_figures}, {c.network.upper()}):** {c.text}", "",
                f"**Criterion:** {c.criterion}", "",
                f"**Our runs** ({describe_runs(v.runs)}): {v.shows}", "",
                f"**Verdict: {v.verdict}**" + (f" -- {v.reason}" if v.reason else ""), ""]
        for name in c.figures:
            f = figures.get(f"{name}_{c.network}")
            if f is None:
                continue
            if f.name in shown:
                out += [f"Figure: `{f.name}`, shown under [{shown[f.name]}](#{shown[f.name]}).", ""]
            else:
                shown[f.name] = c.id
                out += [f"![{f.name}: paper Figure {f.paper}]({_rel(_png(f), doc_dir)})", ""]
    others = [f for k, f in figures.items() if k not in shown]
    if others:
        out += ["## Figures without a claim above", "",
                "Figure 9 (DLN activation distributions), Figure 8's moment changes for the DLN, and the "
                "per-statement slack of Section 4's statements along the same runs (probes.jsonl; see "
                "`python -m theory.report --trajectory DIR`).", ""]
        for f in others:
            out += [f"![{f.name}: paper Figure {f.paper}]({_rel(_png(f), doc_dir)})", ""]
    out += ["## Readings", "",
            "- ICS: Definition 2.1 through the registry (`def-2.1`: `ics_l2`, `ics_cosine`); layer i = the i-th "
            "block from the input, G = gradient of its weight tensor, G' after the run's own optimiser step of "
            "every parameter of layers 1..i-1 on the same batch, training mode (gpu_check/measure_ics.py).",
            "- Landscape: steps eta in [1/2, 4] x lr (VGG) and [1/100, 30] x lr (DLN) along the full gradient, "
            "geometric grid of 9 points, same batch, training mode; loss range = max - min over the grid; "
            "gradient change = ||grad(theta - eta g) - g||; effective beta = max of change / ||eta g|| "
            "(gpu_check/measure_landscape.py).",
            "- Distributions: a block's output before the ReLU (after the noise for noisy BN), 4 units per "
            "block drawn from the seed, quantiles over batch x height x width at steps t and t + 1; moment "
            "changes are compared scale-free (|d mean| / std, |d var| / var) because the networks' activations "
            "have different scales.  A BN unit's batch mean and variance are beta and gamma^2 by construction, "
            "so its output moments move only as beta and gamma do; the activations BN receives (pre-norm) "
            "are recorded too and quoted where they matter (gpu_check/measure_distributions.py).",
            f"- Final loss: mean training loss over the last {int(100 * FINAL_FRACTION)}% of the steps.", ""]
    return "\n".join(out)


def reproduce(run_dirs, out: str, command: str) -> tuple:
    """Judge every claim on the runs in ``run_dirs``, draw the figures, write ``out``."""
    runs = [plots.load_run(d) for d in run_dirs]
    fig_dir = os.path.join(os.path.splitext(out)[0], "figures")
    grouped = group_runs(runs)
    figures = {}
    for net, by_norm in grouped.items():
        used = [by_norm[n] for n in NORMS if n in by_norm]
        drawn, _ = plots.make_figures(used, fig_dir, formats=("png",), networks=(net,))
        figures.update({f.name: f for f in drawn})
    verdicts = [judge(c, grouped.get(c.network, {})) for c in CLAIMS]
    used = [r for r in runs if any(r is x for by_norm in grouped.values() for x in by_norm.values())]
    text = render(verdicts, used, figures, out, command)
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    atomic_write_text(out, text + "\n")
    return verdicts, figures


def _paper_grid(args) -> int:
    """--scale paper: print the grid and its estimated time, then run it through gpu_check.sweep
    (which skips complete points and resumes partial ones) and summarise its runs."""
    plan = readings.paper_plan("paper", args.data)
    for device in ("cpu", "cuda"):
        print(readings.plan_text(plan, device))
    if args.plan:
        return 0
    work = args.work or os.path.join("runs", "reproduction-paper")
    for cmd in readings.sweep_commands(plan, work, sys.executable, args.device):
        print(f"running {' '.join(cmd[1:])}", file=sys.stderr)
        done = subprocess.run(cmd, cwd=REPO)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd[1:])} exited with status {done.returncode}")
    dirs = sorted({os.path.join(work, g.out) for g in plan})
    subprocess.run([sys.executable, "-m", "gpu_check.run_summary", *dirs, "--out",
                    os.path.join(os.path.splitext(args.out)[0], "summaries")], cwd=REPO, check=True)
    reproduction_doc.write(args.out)
    print(f"wrote {args.out} and {reproduction_doc.paths(args.out)[0]} from the summaries")
    return 0


def _reproduce(args, command: str) -> int:
    if os.path.isdir(args.out):
        raise cli.InputError(f"--out {args.out!r} is a directory; give the Markdown file to write")
    if os.path.isdir(os.path.dirname(os.path.abspath(args.out))):
        check_writable(args.out)
    if args.data is not None and not os.path.isdir(args.data):
        raise cli.InputError(f"--data {args.data!r}: no such directory")
    if args.from_summaries is not None:
        results = reproduction_doc.write(args.out, args.from_summaries or None)
        for r in results:
            print(f"{r.claim.id:22s} {r.verdict}")
        print(f"wrote {args.out} and {reproduction_doc.paths(args.out)[0]}")
        return 0
    if args.scale == "paper":
        return _paper_grid(args)
    if not args.runs and args.scale == "smoke" and (args.vgg_steps or args.dln_steps):
        raise cli.InputError("--vgg-steps and --dln-steps set the steps of the cpu scale's runs; the smoke "
                             "preset trains both networks for its own 12 steps")
    dirs = expand_runs(args.runs) if args.runs else ensure_runs(
        args.scale, args.work or os.path.join("runs", f"reproduction-{args.scale}"), vgg_steps=args.vgg_steps,
        dln_steps=args.dln_steps, jobs=args.jobs, data=args.data, device=args.device,
        log=lambda m: print(m, file=sys.stderr))
    verdicts, figures = reproduce(dirs, args.out, command)
    for v in verdicts:
        print(f"{v.claim.id:22s} {v.verdict}")
    print(f"wrote {args.out} and {len(figures)} figures")
    return 0


def main(argv=None) -> int:
    p = cli.parser("python -m gpu_check.reproduce", __doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="the Markdown report to write (figures go beside it)")
    p.add_argument("--runs", nargs="+", metavar="DIR", help="existing run directories to use (no new runs); a grid "
                   "directory of gpu_check.sweep stands for its runs")
    p.add_argument("--scale", choices=tuple(SCALES) + ("paper",), default="smoke",
                   help="the runs to make without --runs; paper: the full grid of gpu_check.readings (every norm, "
                   "the learning rates, the seeds) through gpu_check.sweep, then the summaries and both documents")
    p.add_argument("--plan", action="store_true", help="with --scale paper: print the grid (runs, estimated "
                   "time) and stop")
    p.add_argument("--from-summaries", nargs="?", const="", metavar="DIR",
                   help="write the document and its JSON from the run summaries in DIR (default: <out without "
                   ".md>/summaries); no runs")
    p.add_argument("--work", help="directory of the runs made here (default runs/reproduction-<scale>)")
    p.add_argument("--vgg-steps", type=cli.positive_int, help="override the VGG preset's steps")
    p.add_argument("--dln-steps", type=cli.positive_int, help="override the DLN preset's steps")
    p.add_argument("--jobs", type=cli.positive_int, default=1, help="runs made in parallel")
    p.add_argument("--data", help="CIFAR-10 directory for the VGG runs (default: synthetic stand-in)")
    p.add_argument("--device", choices=DEVICES)
    command = "python -m gpu_check.reproduce " + " ".join(argv if argv is not None else sys.argv[1:])
    # RuntimeError: a run this command started failed (its stderr's tail is in the message)
    return cli.run(p, lambda args: _reproduce(args, command), argv, bad_input=(plots.PlotError, RuntimeError))


if __name__ == "__main__":
    sys.exit(main())
