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

A quantity no summary holds is left out; rounding-level values are not drawn as signal because
nothing here plots a normalised output's moments.
"""
from __future__ import annotations

import math
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from gpu_check import readings as R  # noqa: E402
from gpu_check.criteria import seed_interval  # noqa: E402

SIDES = (("none", "Standard"), ("bn", "Standard + BatchNorm"))
COLOURS = {"none": "black", "bn": "tab:blue"}


def _ics(s):
    return [(r["step"], r["cos"]) for r in s["ics"]]


def _land(key, times_lr=False):
    def get(s):
        return [(r["step"], r[key] * (r["lr"] if times_lr else 1.0)) for r in s["landscape"] if key in r]
    return get


def _inputs(s):
    d = s["distributions"]
    rows = d.get("pre-norm") or (d.get("output") if s["run"]["norm"] == "none" else None) or []
    return [(r["step"], r["d_mean"]) for r in rows]


def _loss(s):
    return list(zip(s["loss"]["curve"]["steps"], s["loss"]["curve"]["loss"]))


# (row label, y-axis label with unit, getter, log scale, reference line)
QUANTITIES = (
    ("training loss", "loss", _loss, True, None),
    ("ICS: cos(G, G'), median of layers 2..k", "cosine (1 = no shift)", _ics, False, None),
    ("loss range along the gradient", "max - min loss", _land("loss_range"), True, None),
    ("gradient predictiveness", "max ||grad' - grad||_2", _land("grad_change_max"), True, None),
    ("effective beta x lr (2: stability edge of GD)", "beta_eff x lr", _land("beta_eff", True), True, 2.0),
    ("change of layer inputs between steps", "|d mean| / std", _inputs, True, None),
)
UNITS = ("loss: summed squared error (DLN), cross-entropy in nats (VGG); gradients in loss units per parameter "
         "unit; beta_eff x lr and |d mean| / std are dimensionless")


def seed_band(series) -> tuple:
    """[per seed: [(step, value)]] -> (steps, mean, low, high) at the steps every seed has."""
    common = sorted(set.intersection(*[{st for st, _ in s} for s in series])) if series else []
    by = [dict(s) for s in series]
    mean, low, high = [], [], []
    for st in common:
        iv = seed_interval([float(b[st]) for b in by])
        mean.append(iv.estimate)
        low.append(iv.low if math.isfinite(iv.low) else np.nan)
        high.append(iv.high if math.isfinite(iv.high) else np.nan)
    return np.array(common), np.array(mean), np.array(low), np.array(high)


def _caption(runs, network, lr) -> str:
    first = runs[0]["run"]
    seeds = sorted({r["run"]["seed"] for r in runs})
    return (f"{network.upper()}, preset {first['preset']}, data {first['dataset']}, lr {R.lr_text(lr)}, "
            f"seeds {', '.join(map(str, seeds))} (mean and 95% t-band over seeds), device {first['device']}")


def claim_figure(summaries, family: str, lr: float, out_dir: str):
    """Draw ``<family>_lr<LR>.png`` from the summaries of ``family`` (gpu_check.readings: a network
    on one kind of data; ``summaries`` must hold that family's runs only) at ``lr`` (judged seeds,
    norms none and bn); returns its path, or None when there is nothing to draw."""
    network = R.FAMILY_NETWORK[family]
    runs = {n: [s for s in summaries if s["run"]["network"] == network and s["run"]["norm"] == n
                and s["run"]["lr_text"] == R.lr_text(lr) and s["run"]["seed"] in R.JUDGED_SEEDS[network]]
            for n, _ in SIDES}
    if not all(runs.values()):
        return None
    rows = [q for q in QUANTITIES if all(q[2](s) for n in runs for s in runs[n])]
    fig, axes = plt.subplots(len(rows), 2, figsize=(11, 2.6 * len(rows)), sharey="row", squeeze=False,
                             constrained_layout=True)
    for i, (label, ylabel, get, log, ref) in enumerate(rows):
        for j, (norm, name) in enumerate(SIDES):
            ax = axes[i][j]
            steps, mean, low, high = seed_band([get(s) for s in runs[norm]])
            ax.plot(steps, mean, color=COLOURS[norm], lw=1.5, label="mean over seeds")
            ax.fill_between(steps, low, high, color=COLOURS[norm], alpha=0.25, lw=0, label="95% band")
            if ref is not None:
                ax.axhline(ref, color="tab:red", ls="--", lw=1, label=f"{ref:g}")
            if log:
                ax.set_yscale("log")
            ax.set_title(f"{name}: {label}", fontsize=10)
            ax.set_xlabel("training step")
            if j == 0:
                ax.set_ylabel(ylabel, fontsize=9)
            ax.legend(fontsize=7, loc="best")
    fig.suptitle(_caption(runs["none"] + runs["bn"], network, lr) + "\n" + UNITS, fontsize=8)
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, f"{family}_lr{R.lr_text(lr)}.png")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


FAMILY_LRS = (("dln", R.DLN_LRS), ("vgg", R.VGG_LRS), (R.DIGITS_FAMILY, R.DIGITS_LRS))
