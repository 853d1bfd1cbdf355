"""The paper's figures, drawn from run directories of gpu_check.run.

    python -m gpu_check.plots DIR [DIR ...] --out FIGDIR

For each network (dln, vgg) that the runs train, one figure per measurement the runs hold,
every run overlaid (one colour per normalisation), PNG and SVG:

    training_<net>        train loss (and accuracy, test accuracy)     Figures 1(a,b), 2, 5, 12(a), 13(a)
    ics_<net>             ||G - G'||_2 and cos(G, G') per layer        Figure 3          (ics.jsonl)
    landscape_<net>       loss range, gradient change, beta_eff        Figures 4, 10     (landscape.jsonl)
    predictiveness_<net>  gradient change vs distance moved            Figure 11         (landscape.jsonl)
    distributions_<net>   quantile bands of a sampled unit over time   Figures 1(c), 2, 6, 9 (distributions.jsonl)
    moments_<net>         |change| of unit mean / variance per step    Figure 8          (distributions.jsonl)
    lp_<net>              l_p normalisations next to none and bn       Figures 5, 12, 13 (runs with l1/l2/linf)
    slack_<net>           per-statement relative slack over training   Section 4 statements (probes.jsonl)

Every title names the runs (normalisation and directory), the preset and the data; data that is
the synthetic stand-in for CIFAR-10 is labelled SYNTHETIC.  A figure whose measurement no run
holds is skipped (and listed as skipped).  ``make_figures`` returns what was drawn.
"""
from __future__ import annotations

import json
import math
import os
import sys
from dataclasses import dataclass, field

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after the backend is chosen)
import numpy as np  # noqa: E402

from gpu_check import records  # noqa: E402
from gpu_check.grid import expand_runs  # noqa: E402
from gpu_check.measure_distributions import moment_changes  # noqa: E402
from theory import cli  # noqa: E402

NORM_COLOURS = {"none": "black", "bn": "tab:blue", "noisy-bn": "tab:orange", "l1": "tab:green",
                "l2": "tab:red", "linf": "tab:purple", "noisy-none": "tab:brown"}
NORM_NAMES = {"none": "Standard", "bn": "Standard + BatchNorm", "noisy-bn": 'Standard + "Noisy" BatchNorm',
              "l1": "l1 normalisation", "l2": "l2 normalisation", "linf": "l-inf normalisation",
              "noisy-none": 'Standard + noise (no BatchNorm)'}
LP_NORMS = ("l1", "l2", "linf")
LINESTYLES = ("-", "--", ":", "-.")
MAX_PANELS = 4          # layers shown per figure (evenly spaced over the network's depth)
FORMATS = ("png", "svg")
SLACK_LINTHRESH = 1e-12  # relative slacks below this are rounding (float64 probes: ~1e-16 x m)


# The name under which a gpu_check.attach run's model is drawn (its records carry no network name).
ATTACHED = "model"


class PlotError(ValueError):
    """A run directory that cannot be plotted; the message names it and the problem."""


@dataclass(frozen=True)
class Run:
    """A run directory read back: its config and records (lists of dicts)."""

    path: str
    config: dict
    meta: dict
    metrics: list
    ics: list = field(default_factory=list)
    landscape: list = field(default_factory=list)
    distributions: list = field(default_factory=list)
    probes: list = field(default_factory=list)
    summary: dict = field(default_factory=dict)

    @property
    def norm(self) -> str:
        return self.config["norm"]

    @property
    def preset(self) -> str:
        return self.config["preset"]

    @property
    def seed(self) -> int:
        return int(self.config["seed"])

    @property
    def device(self) -> str:
        return str(self.meta.get("device", "?"))

    @property
    def networks(self) -> tuple:
        """The networks the run trains; ATTACHED for a run of gpu_check.attach on a user's model
        (its probe records name no network)."""
        own = tuple(n for n in ("dln", "vgg") if self.config.get(n) is not None)
        return own or ((ATTACHED,) if any(probe_network(p) == ATTACHED for p in self.probes) else ())

    def dataset(self, network: str) -> str:
        if network == ATTACHED:
            return "the user's own (gpu_check.attach)"
        return self.meta.get("datasets", {}).get(network, "?")

    def label(self) -> str:
        base = os.path.basename(os.path.normpath(self.path))
        return self.norm if base == self.norm else f"{self.norm} ({base})"


# What every run's config.json holds under "config" (gpu_check.run's and gpu_check.attach's).
RUN_FIELDS = ("norm", "preset", "seed")


def load_run(path: str) -> Run:
    try:
        meta = records.read_run_meta(path)
        # the fields every run's config has (gpu_check.run's and an attach run's) and the figures read
        config = meta["config"]
        missing = [k for k in RUN_FIELDS if k not in config]
        if missing:
            raise KeyError(f"its config lacks {', '.join(missing)}")
        if not isinstance(config["norm"], str) or not isinstance(config["preset"], str):
            raise TypeError(f"norm {config['norm']!r} and preset {config['preset']!r} must be names")
        int(config["seed"])
        summary = {}
        if os.path.isfile(os.path.join(path, records.SUMMARY)):
            with open(os.path.join(path, records.SUMMARY), encoding="utf-8") as f:
                summary = json.load(f)
        if not isinstance(summary, dict):
            raise ValueError(f"{records.SUMMARY} is not a JSON object")
        read = lambda name: records.read_jsonl(os.path.join(path, name))  # noqa: E731
        return Run(path=path, config=meta["config"], meta=meta, metrics=read(records.METRICS),
                   ics=read("ics.jsonl"), landscape=read("landscape.jsonl"),
                   distributions=read("distributions.jsonl"), probes=read(records.PROBES), summary=summary)
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as err:
        raise PlotError(f"{path!r} is not a readable run directory: {type(err).__name__}: {err}") from None


@dataclass(frozen=True)
class Figure:
    name: str            # e.g. 'ics_vgg'
    paper: str           # the paper's figure numbers it corresponds to
    title: str
    files: tuple         # paths written (png, svg)


# ---------------------------------------------------------------------------------------------
# Labels and small helpers
# ---------------------------------------------------------------------------------------------

def data_label(name: str) -> str:
    """The data a run used, with the synthetic stand-in named as such."""
    if "synthetic" in name.lower():
        return f"SYNTHETIC images, not CIFAR-10 [{name}]"
    return name


def title_for(what: str, network: str, runs) -> str:
    presets = sorted({r.preset for r in runs})
    datasets = sorted({data_label(r.dataset(network)) for r in runs})
    names = ", ".join(r.label() for r in runs)
    return (f"{what} -- {network.upper()}, preset {'/'.join(presets)}\n"
            f"runs: {names}\ndata: {'; '.join(datasets)}")


def _styles(runs) -> dict:
    """path -> (colour, linestyle): colour by norm, linestyle tells runs of one norm apart."""
    seen, out = {}, {}
    for r in runs:
        k = seen.get(r.norm, 0)
        seen[r.norm] = k + 1
        out[r.path] = (NORM_COLOURS.get(r.norm, "grey"), LINESTYLES[k % len(LINESTYLES)])
    return out


def _finite(values) -> np.ndarray:
    a = np.asarray([float(v) for v in values], dtype=np.float64)
    return a[np.isfinite(a)]


def _scale(ax, values, axis="y") -> None:
    """Log scale when every finite value is positive and they span a decade; else linear."""
    v = _finite(values)
    if v.size and (v > 0).all() and v.max() / v.min() > 10:
        (ax.set_yscale if axis == "y" else ax.set_xscale)("log")


def _symlog(ax, values, linthresh=SLACK_LINTHRESH) -> None:
    """Symmetric log scale for slacks of both signs, with ticks at most every third decade."""
    v = _finite(values)
    ax.set_yscale("symlog", linthresh=linthresh)
    top = math.ceil(math.log10(max(np.abs(v).max(), linthresh))) if v.size else 0
    low = math.floor(math.log10(linthresh))
    decades = list(range(low, top + 1, max(1, math.ceil((top - low + 1) / 4))))
    ticks = [0.0] + ([10.0 ** d for d in decades] if (v > 0).any() else []) \
        + ([-(10.0 ** d) for d in decades] if (v < 0).any() else [])
    ax.set_yticks(sorted(ticks))


def _num(x) -> float:
    return float(x) if x is not None else math.nan


def _smooth(y: np.ndarray, window: int) -> np.ndarray:
    if window <= 1 or y.size < window:
        return y
    kernel = np.ones(window) / window
    head = np.cumsum(y[:window - 1]) / np.arange(1, window)       # shorter windows at the start
    return np.concatenate([head, np.convolve(y, kernel, mode="valid")])


def _pick_layers(layers, k=MAX_PANELS, skip_first=False) -> list:
    """Up to k layer names evenly spaced over the depth (input to output order)."""
    layers = list(layers)[1:] if skip_first and len(layers) > 1 else list(layers)
    if len(layers) <= k:
        return layers
    idx = np.unique(np.round(np.linspace(0, len(layers) - 1, k)).astype(int))
    return [layers[i] for i in idx]


def _save(fig, out_dir: str, name: str, formats=FORMATS) -> tuple:
    paths = []
    for fmt in formats:
        p = os.path.join(out_dir, f"{name}.{fmt}")
        fig.savefig(p, dpi=110, metadata={"Date": None} if fmt == "svg" else None)
        paths.append(p)
    plt.close(fig)
    return tuple(paths)


def _legend(fig, axes) -> None:
    handles, labels = {}, []
    for ax in np.ravel(axes):
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in handles:
                handles[lab] = h
                labels.append(lab)
    if handles:
        fig.legend([handles[lab] for lab in labels], labels, loc="lower center", bbox_to_anchor=(0.5, 0.0),
                   ncol=min(6, len(labels)), fontsize=8, frameon=False)


# Fixed margins, in inches (a layout engine costs more than the drawing: ~1 s a figure here)
TITLE_IN, LEGEND_IN, LEFT_IN, GAP_IN = 0.95, 0.9, 0.75, 0.75


def _new(nrows, ncols, title, width=4.2, height=3.0):
    w, h = width * ncols, height * nrows + TITLE_IN + LEGEND_IN
    fig, axes = plt.subplots(nrows, ncols, figsize=(w, h), squeeze=False)
    fig.subplots_adjust(left=LEFT_IN / w, right=1 - 0.25 / w, top=1 - TITLE_IN / h, bottom=LEGEND_IN / h,
                        wspace=GAP_IN / (width - GAP_IN), hspace=GAP_IN / (height - GAP_IN))
    fig.suptitle(title, fontsize=9, y=1 - 0.08 / h, va="top")
    return fig, axes


# ---------------------------------------------------------------------------------------------
# Figures
# ---------------------------------------------------------------------------------------------

def fig_training(network, runs, out_dir):
    has_acc = network == "vgg"
    panels = ["train loss"] + (["train accuracy", "test accuracy"] if has_acc else [])
    fig, axes = _new(1, len(panels), title_for("Training (Fig. 1a/b, 2, 5)", network, runs))
    style = _styles(runs)
    losses = []
    for r in runs:
        c, ls = style[r.path]
        train = [m for m in r.metrics if m.get("network") == network and m.get("split") == "train"]
        steps = np.array([m["step"] for m in train])
        loss = np.array([_num(m["loss"]) for m in train])
        window = max(1, len(steps) // 50) if network == "vgg" else 1
        axes[0, 0].plot(steps, _smooth(loss, window), color=c, ls=ls, label=r.label())
        losses += list(loss)
        if has_acc:
            acc = np.array([_num(m["accuracy"]) for m in train])
            axes[0, 1].plot(steps, _smooth(acc, window), color=c, ls=ls, label=r.label())
            test = [m for m in r.metrics if m.get("network") == network and m.get("split") == "test"]
            axes[0, 2].plot([m["step"] for m in test], [_num(m["accuracy"]) for m in test], color=c, ls=ls,
                            marker=".", label=r.label())
    _scale(axes[0, 0], losses)
    for ax, p in zip(axes[0], panels):
        ax.set_title(p + (" (moving average)" if network == "vgg" and p.startswith("train") else ""), fontsize=9)
        ax.set_xlabel("step")
    _legend(fig, axes)
    return fig


def fig_ics(network, runs, out_dir):
    rows = {r.path: [x for x in r.ics if x["network"] == network] for r in runs}
    order = sorted({(x["index"], x["layer"]) for rs in rows.values() for x in rs})
    layers = _pick_layers([name for _, name in order], skip_first=True)
    fig, axes = _new(2, len(layers), title_for("ICS per Definition 2.1 (Fig. 3)", network, runs), width=3.6)
    style = _styles(runs)
    for r in runs:
        c, ls = style[r.path]
        for k, layer in enumerate(layers):
            pts = sorted((x["step"], _num(x["ics_l2"]), _num(x["ics_cosine"])) for x in rows[r.path] if x["layer"] == layer)
            if not pts:
                continue
            s, l2, cos = map(np.array, zip(*pts))
            axes[0, k].plot(s, l2, color=c, ls=ls, marker=".", label=r.label())
            axes[1, k].plot(s, cos, color=c, ls=ls, marker=".", label=r.label())
    for k, layer in enumerate(layers):
        vals = [_num(x["ics_l2"]) for rs in rows.values() for x in rs if x["layer"] == layer]
        _scale(axes[0, k], vals)
        axes[0, k].set_title(f"{layer}: ||G - G'||_2", fontsize=9)
        axes[1, k].set_title(f"{layer}: cos(G, G') (ideally 1)", fontsize=9)
        axes[1, k].set_ylim(-1.05, 1.05)
        axes[1, k].set_xlabel("step")
    _legend(fig, axes)
    return fig


def fig_landscape(network, runs, out_dir):
    fig, axes = _new(1, 3, title_for("Landscape along the gradient (Fig. 4 / 10)", network, runs))
    style = _styles(runs)
    vals = {0: [], 1: [], 2: []}
    for r in runs:
        c, ls = style[r.path]
        rows = sorted((x for x in r.landscape if x["network"] == network), key=lambda x: x["step"])
        if not rows:
            continue
        s = np.array([x["step"] for x in rows])
        lo, hi = np.array([_num(x["loss_min"]) for x in rows]), np.array([_num(x["loss_max"]) for x in rows])
        glo, ghi = (np.array([_num(x["grad_change_min"]) for x in rows]),
                    np.array([_num(x["grad_change_max"]) for x in rows]))
        beta = np.array([_num(x["beta_eff"]) for x in rows])
        axes[0, 0].fill_between(s, lo, hi, color=c, alpha=0.3, label=r.label())
        axes[0, 0].plot(s, hi, color=c, ls=ls, lw=0.8)
        axes[0, 1].fill_between(s, glo, ghi, color=c, alpha=0.3, label=r.label())
        axes[0, 1].plot(s, ghi, color=c, ls=ls, lw=0.8)
        axes[0, 2].plot(s, beta, color=c, ls=ls, marker=".", label=r.label())
        vals[0] += list(lo) + list(hi)
        vals[1] += list(glo) + list(ghi)
        vals[2] += list(beta)
    ranges = {tuple(x["step_range"]) for r in runs for x in r.landscape if x["network"] == network}
    rng = ranges.pop() if len(ranges) == 1 else ("?", "?")
    titles = (f"(a) loss range over steps [{rng[0]}, {rng[1]}] x lr",
              "(b) gradient predictiveness: ||grad(x - eta g) - g||", "(c) effective beta-smoothness")
    for k in range(3):
        _scale(axes[0, k], vals[k])
        axes[0, k].set_title(titles[k], fontsize=9)
        axes[0, k].set_xlabel("step")
    _legend(fig, axes)
    return fig


def fig_predictiveness(network, runs, out_dir):
    steps = sorted({x["step"] for r in runs for x in r.landscape if x["network"] == network})
    chosen = [steps[i] for i in np.unique(np.round(np.linspace(0, len(steps) - 1, min(3, len(steps)))).astype(int))]
    fig, axes = _new(1, len(chosen), title_for("Gradient predictiveness vs distance (Fig. 11)", network, runs))
    style = _styles(runs)
    for k, step in enumerate(chosen):
        vals = []
        for r in runs:
            c, ls = style[r.path]
            row = next((x for x in r.landscape if x["network"] == network and x["step"] == step), None)
            if row is None:
                continue
            d, ch = np.array(row["distance"], dtype=float), np.array(row["grad_change"], dtype=float)
            axes[0, k].plot(d, ch, color=c, ls=ls, marker=".", label=r.label())
            vals += list(ch)
        _scale(axes[0, k], vals)
        xs = [v for r in runs for x in r.landscape if x["network"] == network and x["step"] == step for v in x["distance"]]
        _scale(axes[0, k], xs, axis="x")
        axes[0, k].set_title(f"step {step}: l2 error of the gradient", fontsize=9)
        axes[0, k].set_xlabel("distance moved ||eta g||")
    _legend(fig, axes)
    return fig


def _dist_layers(runs, network) -> list:
    names = []
    for r in runs:
        for x in r.distributions:
            if x["network"] == network and x["layer"] not in names:
                names.append(x["layer"])
    return _pick_layers(names, k=3)


def fig_distributions(network, runs, out_dir):
    layers = _dist_layers(runs, network)
    fig, axes = _new(len(runs), len(layers),
                     title_for("Activation distributions of a sampled unit over training (Fig. 1c, 2, 6, 9)",
                               network, runs), width=3.6, height=2.4)
    for i, r in enumerate(runs):
        c = NORM_COLOURS.get(r.norm, "grey")
        for k, layer in enumerate(layers):
            ax = axes[i, k]
            rows = [x for x in r.distributions if x["network"] == network and x["layer"] == layer
                    and x.get("where", "output") == "output"]
            if not rows:
                continue
            unit = min(x["unit"] for x in rows)
            rows = sorted((x for x in rows if x["unit"] == unit), key=lambda x: x["step"])
            s = np.array([x["step"] for x in rows])
            q = np.array([x["quantiles"] for x in rows], dtype=float)          # (T, Q)
            nq = q.shape[1]
            for b in range(nq // 2):
                ax.fill_between(s, q[:, b], q[:, nq - 1 - b], color=c, alpha=0.15 + 0.2 * b, lw=0)
            ax.plot(s, q[:, nq // 2], color=c, lw=1)
            ax.set_title(f"{NORM_NAMES.get(r.norm, r.norm)}\n{layer}, unit {unit}", fontsize=8)
            if i == len(runs) - 1:
                ax.set_xlabel("step")
    return fig


def fig_moments(network, runs, out_dir):
    layers = _dist_layers(runs, network)
    fig, axes = _new(2, len(layers), title_for("Change of unit mean and variance between successive steps "
                                               "(Fig. 8)", network, runs), width=3.6)
    style = _styles(runs)
    for r in runs:
        c, ls = style[r.path]
        changes = moment_changes([x for x in r.distributions if x["network"] == network])
        for k, layer in enumerate(layers):
            ch = [x for x in changes if x["layer"] == layer]
            if not ch:
                continue
            steps = sorted({x["step"] for x in ch})
            dm = [np.mean([abs(x["d_mean"]) for x in ch if x["step"] == s]) for s in steps]
            dv = [np.mean([abs(x["d_var"]) for x in ch if x["step"] == s]) for s in steps]
            axes[0, k].plot(steps, dm, color=c, ls=ls, marker=".", label=r.label())
            axes[1, k].plot(steps, dv, color=c, ls=ls, marker=".", label=r.label())
    for k, layer in enumerate(layers):
        axes[0, k].set_title(f"{layer}: |mean(t+1) - mean(t)|", fontsize=9)
        axes[1, k].set_title(f"{layer}: |var(t+1) - var(t)|", fontsize=9)
        axes[1, k].set_xlabel("step")
        for row in range(2):
            ys = [v for line in axes[row, k].get_lines() for v in line.get_ydata()]
            _scale(axes[row, k], ys)
    _legend(fig, axes)
    return fig


def fig_lp(network, runs, out_dir):
    """Training loss and the landscape measures of the l_p runs beside none and bn (Fig. 5, 12, 13)."""
    fig, axes = _new(1, 4, title_for("l_p normalisations (Fig. 5, 12, 13)", network, runs), width=3.6)
    style = _styles(runs)
    vals = {k: [] for k in range(4)}
    for r in runs:
        c, ls = style[r.path]
        train = [m for m in r.metrics if m.get("network") == network and m.get("split") == "train"]
        loss = np.array([_num(m["loss"]) for m in train])
        window = max(1, len(loss) // 50) if network == "vgg" else 1
        axes[0, 0].plot([m["step"] for m in train], _smooth(loss, window), color=c, ls=ls, label=r.label())
        vals[0] += list(loss)
        rows = sorted((x for x in r.landscape if x["network"] == network), key=lambda x: x["step"])
        if rows:
            s = [x["step"] for x in rows]
            for k, key in ((1, "loss"), (2, "grad_change_max"), (3, "beta_eff")):
                y = ([_num(x["loss_max"]) - _num(x["loss_min"]) for x in rows] if key == "loss"
                     else [_num(x[key]) for x in rows])
                axes[0, k].plot(s, y, color=c, ls=ls, marker=".", label=r.label())
                vals[k] += y
    for k, t in enumerate(("(a) train loss", "(b) loss range (max - min along the gradient)",
                           "(c) max gradient change", "(d) effective beta-smoothness")):
        _scale(axes[0, k], vals[k])
        axes[0, k].set_title(t, fontsize=9)
        axes[0, k].set_xlabel("step")
    _legend(fig, axes)
    return fig


def probe_network(record) -> str:
    """The network a probe record belongs to: its 'network', or ATTACHED (a user's model)."""
    return record.get("network") or ATTACHED


def slack_series(probes, network) -> dict:
    """(statement, variant) -> {step: min relative slack over the layers and channels probed}."""
    out = {}
    for p in probes:
        if probe_network(p) != network or "rel_slack" not in p:   # 'error' and 'n/a' records have no slack
            continue
        v = _num(p["rel_slack"])
        if not math.isfinite(v):
            continue
        d = out.setdefault((p["statement"], p["variant"]), {})
        d[p["step"]] = min(v, d.get(p["step"], math.inf))
    return out


def fig_slack(network, runs, out_dir):
    series = {r.path: slack_series(r.probes, network) for r in runs}
    statements = sorted({s for d in series.values() for s, _ in d})
    ncols = min(3, len(statements))
    nrows = math.ceil(len(statements) / ncols)
    fig, axes = _new(nrows, ncols, title_for("Per-statement relative slack over training (min over probed "
                                             "layers and channels; < 0 means violated)", network, runs), width=4.0)
    style = _styles(runs)
    for k, statement in enumerate(statements):
        ax = axes[k // ncols, k % ncols]
        variants = sorted({v for d in series.values() for s, v in d if s == statement})
        for r in runs:
            c, _ = style[r.path]
            for j, variant in enumerate(variants):
                d = series[r.path].get((statement, variant))
                if not d:
                    continue
                steps = sorted(d)
                ax.plot(steps, [d[s] for s in steps], color=c, ls=LINESTYLES[j % len(LINESTYLES)], marker=".",
                        label=f"{r.norm}: {variant}")
        ax.axhline(0.0, color="grey", lw=0.6)
        _symlog(ax, [y for line in ax.get_lines() for y in line.get_ydata()])
        ax.set_title(statement, fontsize=9)
        ax.set_xlabel("step")
        ax.legend(fontsize=6)
    for k in range(len(statements), nrows * ncols):
        axes[k // ncols, k % ncols].axis("off")
    return fig


# name, paper figures, builder, which runs it needs
FIGURES = (
    ("training", "1(a,b), 2, 5, 12(a), 13(a)", fig_training, lambda r, n: any(m.get("network") == n for m in r.metrics)),
    ("ics", "3", fig_ics, lambda r, n: any(x["network"] == n for x in r.ics)),
    ("landscape", "4, 10", fig_landscape, lambda r, n: any(x["network"] == n for x in r.landscape)),
    ("predictiveness", "11", fig_predictiveness, lambda r, n: any(x["network"] == n for x in r.landscape)),
    ("distributions", "1(c), 2, 6, 9", fig_distributions, lambda r, n: any(x["network"] == n for x in r.distributions)),
    ("moments", "8", fig_moments, lambda r, n: any(x["network"] == n for x in r.distributions)),
    ("lp", "5, 12, 13", fig_lp, lambda r, n: any(m.get("network") == n for m in r.metrics)
     and (r.norm in LP_NORMS or r.norm in ("none", "bn"))),
    ("slack", "Section 4 statements", fig_slack, lambda r, n: any(probe_network(p) == n for p in r.probes)),
)


def make_figures(run_dirs, out_dir: str, only=None, formats=FORMATS, networks=("dln", "vgg", ATTACHED)) -> tuple:
    """Draw every figure the runs support into ``out_dir`` (for the ``networks`` named, figure
    names in ``only`` or all); returns (figures, skipped), skipped listing 'name_net: reason'."""
    runs = [r if isinstance(r, Run) else load_run(r) for r in run_dirs]
    if not runs:
        raise PlotError("no run directories given")
    os.makedirs(out_dir, exist_ok=True)
    drawn, skipped = [], []
    networks = [n for n in networks if any(n in r.networks for r in runs)]
    for network in networks:
        for name, paper, build, needs in FIGURES:
            if only is not None and name not in only:
                continue
            use = [r for r in runs if needs(r, network)]
            if name == "lp" and not any(r.norm in LP_NORMS for r in use):
                skipped.append(f"{name}_{network}: no run with an l_p normalisation")
                continue
            if not use:
                skipped.append(f"{name}_{network}: no run holds its records")
                continue
            fig = build(network, use, out_dir)
            title = fig._suptitle.get_text() if fig._suptitle is not None else name
            drawn.append(Figure(f"{name}_{network}", paper, title, _save(fig, out_dir, f"{name}_{network}", formats)))
    return drawn, skipped


def _plot(args) -> int:
    drawn, skipped = make_figures(expand_runs(args.runs), args.out)
    for f in drawn:
        print(f"{f.name:24s} (paper Fig. {f.paper}): {', '.join(f.files)}")
    for s in skipped:
        print(f"skipped {s}")
    return 0


def main(argv=None) -> int:
    p = cli.parser("python -m gpu_check.plots", __doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", metavar="DIR", help="run directories of gpu_check.run, or grid "
                   "directories of gpu_check.sweep (each stands for its runs)")
    p.add_argument("--out", required=True, metavar="FIGDIR", help="directory for the PNG and SVG files")
    # PlotError: a directory that is not a run; ValueError: a record file that is not JSON lines
    return cli.run(p, _plot, argv, bad_input=(PlotError, ValueError))


if __name__ == "__main__":
    sys.exit(main())
