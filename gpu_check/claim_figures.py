"""Figures of the claims, from run summaries: standard and BatchNorm side by side, as in the
paper, with the mean over seeds and its 95% band (the t-interval of gpu_check.criteria at each
measured step).

One figure per network and learning rate, ``<network>_lr<LR>.png``: a row per quantity, the
standard network on the left and BatchNorm on the right, one y-scale per row (shared by the two
panels), axis labels with units, and a caption line naming preset, data, learning rate, seeds
and device.  Quantities:

    training loss                 (Figure 1(a), 5, 13(a))            log scale
    cos(G, G'), layers 2..k       (Figure 3)                         linear, [-1, 1]
    loss range along the gradient (Figure 4(a), 10(a))               log scale
    largest gradient change       (Figure 4(b), 10(b))               log scale
    beta_eff x lr                 (Figure 4(c), 10(c)), a line at 2  log scale
    change of the layer inputs    (Figure 1(c), 8): |d mean| / std of the activations a
                                  normalisation receives (the standard net's layer outputs)

Beside them, the claims that compare more than two networks get an overlay per network and
learning rate, every network in one panel per quantity (the paper's Figures 2, 5, 6, 12, 13):

    ``<family>_lr<LR>_noise.png``  standard, BatchNorm, "noisy" BatchNorm and the standard network
                                   with the same noise (Section 2.1): training loss, change of the
                                   layer inputs, and the final training accuracy the fig2 criteria
                                   judge (mean and 95% t-interval per network)
    ``<family>_lr<LR>_lp.png``     standard, BatchNorm, l1, l2, linf (Section 3.3): training loss,
                                   the landscape quantities and the change of the layer inputs

A quantity no summary holds is left out.  Log-scale quantities (positive, spanning decades) are
summarised over seeds in log space: the line is the geometric mean and the band the t-interval of
log10 of the values, so it never crosses zero; the cosine's band is clipped to [-1, 1], its
range, and says so.  A change of layer inputs below gpu_check.criteria.FLOAT32_RESOLUTION is
float32 rounding, not signal: it is not drawn, and the panel says so.  Seeds whose run diverged
are named in the panel's title and left out of its band (split_diverged).
"""
from __future__ import annotations

import math
import os
import re
import textwrap
from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from gpu_check import claims as C  # noqa: E402
from gpu_check import readings as R  # noqa: E402
from gpu_check.criteria import FLOAT32_RESOLUTION, seed_interval  # noqa: E402

SIDES = (("none", "Standard"), ("bn", "Standard + BatchNorm"))
COLOURS = {"none": "black", "bn": "tab:blue"}


def _ics(s):
    return [(r["step"], r["cos"]) for r in s["ics"]]


def _land(key, times_lr=False):
    def get(s):
        return [(r["step"], r[key] * (r["lr"] if times_lr else 1.0)) for r in s["landscape"] if key in r]
    return get


def _inputs(s):
    """|d mean| / std per measured step; NaN where it is below float32's resolution (rounding)."""
    d = s["distributions"]
    rows = d.get("pre-norm") or (d.get("output") if s["run"]["norm"] == "none" else None) or []
    return [(r["step"], r["d_mean"] if r["d_mean"] >= FLOAT32_RESOLUTION else math.nan) for r in rows]


def _loss(s):
    return list(zip(s["loss"]["curve"]["steps"], s["loss"]["curve"]["loss"]))


# (row label, y-axis label with unit, getter, log scale, reference line, range of the quantity)
QUANTITIES = (
    ("training loss", "loss", _loss, True, None, None),
    ("ICS: cos(G, G'), median of layers 2..k", "cosine (1 = no shift)", _ics, False, None, (-1.0, 1.0)),
    ("loss range along the gradient", "max - min loss", _land("loss_range"), True, None, None),
    ("gradient predictiveness", "max ||grad' - grad||_2", _land("grad_change_max"), True, None, None),
    ("effective beta x lr (2: stability edge of GD)", "beta_eff x lr", _land("beta_eff", True), True, 2.0, None),
    ("change of layer inputs between steps", "|d mean| / std", _inputs, True, None, None),
)
CAPTION_CHARS = 150       # characters of a caption line that fit the 11-inch figure at font size 8
UNITS = ("loss: summed squared error (DLN), cross-entropy in nats (VGG); gradients in loss units per parameter "
         "unit; beta_eff x lr and |d mean| / std are dimensionless")


def seed_band(series, log: bool = False) -> tuple:
    """[per seed: [(step, value)]] -> (steps, mean, low, high) at the steps every seed has.
    ``log``: over log10 of the values (a non-positive value is undefined), returned as
    10**(mean, low, high): the geometric mean and its band."""
    common = sorted(set.intersection(*[{st for st, _ in s} for s in series])) if series else []
    by = [dict(s) for s in series]
    mean, low, high = [], [], []
    for st in common:
        values = np.array([float(b[st]) for b in by])
        if log:
            with np.errstate(divide="ignore", invalid="ignore"):
                values = np.where(values > 0, np.log10(np.where(values > 0, values, 1.0)), np.nan)
        iv = seed_interval(values)
        mean.append(iv.estimate)
        low.append(iv.low if math.isfinite(iv.low) else np.nan)
        high.append(iv.high if math.isfinite(iv.high) else np.nan)
    out = np.array(mean), np.array(low), np.array(high)
    if log:
        out = tuple(10.0 ** a for a in out)
    return (np.array(common),) + out


def split_diverged(runs) -> tuple:
    """(the runs that did not diverge, [(seed, step) of each that did]).  A diverged run is an
    outcome the claims count (gpu_check.claims), but its curves end with +inf or NaN where it
    diverged: a band over every seed would end there too, and leave the panel empty.  The band is
    drawn over the others, and the panel names the diverged seeds and their steps."""
    live = [s for s in runs if s["run"]["status"] != "diverged"]
    gone = sorted((s["run"]["seed"], int(s["run"]["next_step"])) for s in runs if s["run"]["status"] == "diverged")
    return live, gone


def _diverged_text(gone) -> str:
    """A title line short enough for a panel: 'diverged: seed 4 at step 22', or for several
    'diverged: seeds 0, 1, 3 (steps 2-12)'."""
    if len(gone) == 1:
        return f"diverged: seed {gone[0][0]} at step {gone[0][1]}"
    steps = sorted(step for _, step in gone)
    span = f"step {steps[0]}" if steps[0] == steps[-1] else f"steps {steps[0]}-{steps[-1]}"
    return f"diverged: seeds {', '.join(str(seed) for seed, _ in gone)} ({span})"


def _caption(runs, network, lr) -> str:
    first = runs[0]["run"]
    seeds = sorted({r["run"]["seed"] for r in runs})
    data = first["dataset"]
    if len({r["run"]["dataset"] for r in runs}) > 1:          # each seed draws its own data set
        data = re.sub(r"seed=\d+", "seed=S", data) + " for seed S"
    return (f"{network.upper()}, preset {first['preset']}, data {data}, lr {R.lr_text(lr)}, "
            f"seeds {', '.join(map(str, seeds))} (mean, geometric on log axes, and 95% t-band over seeds), device {first['device']}")


def judged_runs(summaries, network: str, lr: float, norms) -> dict:
    """{norm: the summaries of ``network`` at ``lr`` on its judged seeds} for each of ``norms``."""
    return {n: [s for s in summaries if s["run"]["network"] == network and s["run"]["norm"] == n
                and s["run"]["lr_text"] == R.lr_text(lr) and s["run"]["seed"] in R.JUDGED_SEEDS[network]]
            for n in norms}


def claim_figure(summaries, family: str, lr: float, out_dir: str):
    """Draw ``<family>_lr<LR>.png`` from the summaries of ``family`` (gpu_check.readings: a network
    on one kind of data; ``summaries`` must hold that family's runs only) at ``lr`` (judged seeds,
    norms none and bn); returns its path, or None when there is nothing to draw."""
    network = R.FAMILY_NETWORK[family]
    runs = judged_runs(summaries, network, lr, [n for n, _ in SIDES])
    if not all(runs.values()):
        return None
    rows = [q for q in QUANTITIES if all(q[2](s) for n in runs for s in runs[n])]
    live, gone = {}, {}
    for n in runs:
        live[n], gone[n] = split_diverged(runs[n])
    fig, axes = plt.subplots(len(rows), 2, figsize=(11, 2.6 * len(rows)), sharey="row", squeeze=False,
                             constrained_layout=True)
    for i, (label, ylabel, get, log, ref, limits) in enumerate(rows):
        for j, (norm, name) in enumerate(SIDES):
            ax = axes[i][j]
            steps, mean, low, high = seed_band([get(s) for s in live[norm]], log=log)
            band = "95% band"
            if limits is not None:
                clipped = np.nanmin(low, initial=np.inf) < limits[0] or np.nanmax(high, initial=-np.inf) > limits[1]
                low, high = np.clip(low, *limits), np.clip(high, *limits)
                band += f" (clipped to [{limits[0]:g}, {limits[1]:g}])" if clipped else ""
            ax.set_xlim(0, max(int(s["run"]["steps"]) for s in runs[norm]))
            if not live[norm]:
                ax.text(0.5, 0.5, "every seed diverged", transform=ax.transAxes, ha="center", va="center",
                        fontsize=8, color="tab:red")
            elif not np.isfinite(mean).any():
                ax.text(0.5, 0.5, f"below float32 resolution ({FLOAT32_RESOLUTION:.2g}): rounding, not drawn",
                        transform=ax.transAxes, ha="center", va="center", fontsize=8, color="0.3")
            elif len(live[norm]) == 1:
                ax.plot(steps, mean, color=COLOURS[norm], lw=1.5,
                        label=f"seed {live[norm][0]['run']['seed']}, the only one that did not diverge")
            else:
                over = "seeds that did not diverge" if gone[norm] else "seeds"
                ax.plot(steps, mean, color=COLOURS[norm], lw=1.5,
                        label=f"geometric mean over {over}" if log else f"mean over {over}")
                ax.fill_between(steps, low, high, color=COLOURS[norm], alpha=0.25, lw=0, label=band)
            if ref is not None:
                ax.axhline(ref, color="tab:red", ls="--", lw=1, label=f"{ref:g}")
            if log:
                ax.set_yscale("log")
            title = f"{name}: {label}"
            if gone[norm]:
                title += "\n" + _diverged_text(gone[norm])
            ax.set_title(title, fontsize=10)
            ax.set_xlabel("training step")
            if j == 0:
                ax.set_ylabel(ylabel, fontsize=9)
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=7, loc="best")
    # wrapped to the figure's width (~150 characters at this size): a caption is never clipped
    caption = textwrap.wrap(_caption(runs["none"] + runs["bn"], network, lr), CAPTION_CHARS)
    fig.suptitle("\n".join(caption + textwrap.wrap(UNITS, CAPTION_CHARS)), fontsize=8)
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, f"{family}_lr{R.lr_text(lr)}.png")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# a figure compares the standard and the BatchNorm network: at every lr of its family they train at
FAMILY_LRS = tuple((family, R.lrs_of(family, "bn")) for family in R.FAMILY_NETWORK)


# ---------------------------------------------------------------------------------------------
# Overlays: the claims that compare more than two networks
# ---------------------------------------------------------------------------------------------

NORM_COLOURS = {"none": "black", "bn": "tab:blue", "noisy-bn": "tab:orange", "noisy-none": "tab:red",
                "l1": "tab:green", "l2": "tab:purple", "linf": "tab:brown"}
NORM_NAMES = {"none": "standard", "bn": "BatchNorm", "noisy-bn": '"noisy" BatchNorm',
              "noisy-none": "standard + the same noise", "l1": "l1", "l2": "l2", "linf": "linf"}


@dataclass(frozen=True)
class Overlay:
    """One overlay figure: its file-name suffix, the networks it compares, the quantities (rows of
    QUANTITIES by label) and whether it ends with the final training accuracy of each network."""

    suffix: str
    norms: tuple
    quantities: tuple
    accuracy: bool
    title: str


OVERLAYS = (
    Overlay("noise", ("none", "bn", "noisy-bn", "noisy-none"),
            ("training loss", "change of layer inputs between steps"), True,
            'Section 2.1, Figure 2: BatchNorm, "noisy" BatchNorm and the standard network with and without '
            "the same noise"),
    Overlay("lp", ("none", "bn") + C.LP_NORMS,
            ("training loss", "loss range along the gradient", "gradient predictiveness",
             "effective beta x lr (2: stability edge of GD)", "change of layer inputs between steps"), False,
            "Section 3.3, Figures 5, 6, 12, 13: the l_p normalisations beside BatchNorm and the standard network"),
)


def overlay_name(family: str, lr: float, overlay: Overlay) -> str:
    return f"{family}_lr{R.lr_text(lr)}_{overlay.suffix}.png"


def _draw_band(ax, runs, get, log, limits, colour, name) -> None:
    """One network's mean and 95% band over its seeds that did not diverge, labelled with the
    diverged ones."""
    live, gone = split_diverged(runs)
    label = name + (f" ({_diverged_text(gone)})" if gone else "")
    if not live:
        ax.plot([], [], color=colour, lw=1.5, label=label)
        return
    steps, mean, low, high = seed_band([get(s) for s in live], log=log)
    if limits is not None:
        low, high = np.clip(low, *limits), np.clip(high, *limits)
    if not np.isfinite(mean).any():
        label += ": below float32 resolution, not drawn"
    ax.plot(steps, mean, color=colour, lw=1.3, label=label)
    if len(live) > 1:
        ax.fill_between(steps, low, high, color=colour, alpha=0.15, lw=0)


def _accuracy_panel(ax, runs) -> None:
    """Final training accuracy per network (gpu_check.claims.train_accuracy, what the fig2 criteria
    read; a diverged run counts at chance), mean and 95% t-interval over seeds."""
    norms = list(runs)
    clipped = False
    for i, n in enumerate(norms):
        iv = seed_interval([C.train_accuracy(s) for s in runs[n]])
        err = None
        if math.isfinite(iv.low):
            # a t-interval over 3 seeds can reach past [0, 1], the range of a fraction: drawn clipped, and said so
            low, high = max(iv.low, 0.0), min(iv.high, 1.0)
            clipped |= (low, high) != (iv.low, iv.high)
            err = [[iv.estimate - low], [high - iv.estimate]]
        ax.errorbar([i], [iv.estimate], yerr=err, fmt="o", color=NORM_COLOURS[n], capsize=4)
        ax.text(i, iv.estimate, f"  {iv.estimate:.3f}", fontsize=7, va="center")
    ax.axhline(C.CHANCE_ACCURACY, color="0.5", ls=":", lw=1, label=f"chance ({C.CHANCE_ACCURACY:g})")
    ax.set_xticks(range(len(norms)), [NORM_NAMES[n] for n in norms], fontsize=7, rotation=15)
    ax.set_xlim(-0.5, len(norms) - 0.5)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("fraction correct", fontsize=9)
    ax.set_title("final training accuracy (mean, 95% t-interval over seeds"
                 + (", clipped to [0, 1])" if clipped else ")"), fontsize=10)
    ax.legend(fontsize=7, loc="lower right")


def overlay_figure(summaries, family: str, lr: float, overlay: Overlay, out_dir: str):
    """Draw ``overlay_name(family, lr, overlay)`` from the judged seeds of every network of
    ``overlay`` at ``lr``; returns its path, or None when a network has no judged run there."""
    network = R.FAMILY_NETWORK[family]
    runs = judged_runs(summaries, network, lr, overlay.norms)
    if any({s["run"]["seed"] for s in runs[n]} != set(R.JUDGED_SEEDS[network]) for n in runs):
        return None                  # the networks are compared over the same seeds, all of them
    every = [s for n in runs for s in runs[n]]
    rows = [q for q in QUANTITIES if q[0] in overlay.quantities and all(q[2](s) for s in every)]
    panels = len(rows) + (1 if overlay.accuracy else 0)
    ncols = 2
    nrows = -(-panels // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(11, 3.2 * nrows), squeeze=False, constrained_layout=True)
    flat = [ax for row in axes for ax in row]
    steps = max(int(s["run"]["steps"]) for s in every)
    for ax, (label, ylabel, get, log, ref, limits) in zip(flat, rows):
        for n in overlay.norms:
            _draw_band(ax, runs[n], get, log, limits, NORM_COLOURS[n], NORM_NAMES[n])
        if ref is not None:
            ax.axhline(ref, color="tab:red", ls="--", lw=1)
        if log:
            ax.set_yscale("log")
        ax.set_xlim(0, steps)
        ax.set_title(label, fontsize=10)
        ax.set_xlabel("training step")
        ax.set_ylabel(ylabel, fontsize=9)
        ax.legend(fontsize=6.5, loc="best")
    if overlay.accuracy:
        _accuracy_panel(flat[len(rows)], runs)
    for ax in flat[panels:]:
        ax.set_visible(False)
    lines = textwrap.wrap(overlay.title, CAPTION_CHARS) + textwrap.wrap(_caption(every, network, lr), CAPTION_CHARS)
    fig.suptitle("\n".join(lines + textwrap.wrap(UNITS, CAPTION_CHARS)), fontsize=8)
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, overlay_name(family, lr, overlay))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
