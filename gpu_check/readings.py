"""The readings under which every claim is judged, and the grid of runs they need.

A *reading* is one plausible setting of what Appendix A leaves open -- for these experiments the
learning rate -- named, with the text of the paper that supports it:

* DLN, loss summed over the 1000 samples (our reading of ||W_1...W_k x - A x||^2 for a batch):
  lr in DLN_LRS = 1e-9 .. 1e-6.  1e-6 is the printed value on the summed loss; 1e-9 summed is
  the printed 1e-6 on the *mean* loss (the sum is 1000 x the mean).
* VGG: none and bn at VGG_LRS = {0.05, 0.1, 0.5}; the other norms at the printed 0.1.
* ``paper-procedure``: Appendix A.1, "the learning rates were selected based on hyperparameter
  optimization to find a configuration where the training performance for the network was the
  best": per network and norm, the learning rate of its grid with the lowest median final
  training loss over the SELECTION seeds (a diverged run's loss is +inf), then judged on the
  JUDGED seeds, which the selection never saw.  A norm whose grid has one learning rate (VGG's
  l_p and noisy norms: the printed 0.1) has nothing to select: the procedure takes that rate and
  needs no selection runs (``selection_needed``).
* ``lr-grid``: the claims about a range of learning rates (Figure 11's caption) read every
  learning rate of the grid at once.

``paper_plan`` is the full reproduction's grid as data: sub-grids of gpu_check.sweep (one
TOML file each), the number of runs and an estimated time.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import numpy as np

from gpu_check.config import NORMS, PRESETS
from gpu_check.grid import lr_name

DLN_LRS = (1e-9, 1e-8, 1e-7, 3e-7, 1e-6)
# Above the printed lr, for none and bn only: Figure 11's caption says BatchNorm allows a broader
# range of, and larger, learning rates, which a grid ending at the printed rate cannot show (the
# standard DLN trains at all of DLN_LRS); and the paper's procedure (the best training loss) can
# prefer a larger rate only where the grid offers one.  A.2.2: at 1e-6 on the summed loss the
# standard DLN already sits near GD's stability edge (beta_eff x lr ~ 2).
DLN_ABOVE_PRINTED_LRS = (3e-6, 1e-5)
VGG_LRS = (0.05, 0.1, 0.5)
# The norms trained at every lr of a family's grid; the others only at the lrs every norm shares
# (the DLN's DLN_LRS, the VGG's printed 0.1).
SWEPT_NORMS = ("none", "bn")
# The DLN grid trains the paper's six normalisations; noisy-none (Section 2.1's noise in a standard
# network) is a claim about the VGG only.
DLN_NORMS = tuple(n for n in NORMS if n != "noisy-none")
VGG_PRINTED_LR = 0.1
JUDGED_SEEDS = {"dln": (0, 1, 2, 3, 4), "vgg": (0, 1, 2)}       # >= 5 for the DLN, >= 3 for VGG
SELECTION_SEEDS = {"dln": (5, 6), "vgg": (3,)}                  # the paper's procedure picks lr on these
PAPER_PROCEDURE = "paper-procedure"
LR_GRID = "lr-grid"
# A *family* is the set of runs a reading draws on: a network on one kind of data.  The VGG has
# two: CIFAR-10 or its synthetic stand-in ("vgg"), and scikit-learn's real handwritten digits
# ("vgg-digits", gpu_check.data.DIGITS), judged as readings of their own so that a verdict never
# mixes data sets.
DIGITS_FAMILY = "vgg-digits"
FAMILY_NETWORK = {"dln": "dln", "vgg": "vgg", DIGITS_FAMILY: "vgg"}
# The presets a verdict may rest on, per family (no smaller than today's presets: steps, widths,
# data), best first; a summary below its preset's steps is not counted.
JUDGED_PRESETS = {"dln": ("dln-paper",), "vgg": ("vgg-paper", "vgg-cpu"), DIGITS_FAMILY: ("vgg-digits",)}
# The digits family is trained at the printed lr only (every norm).
DIGITS_LRS = (0.1,)
MEASURE = ("ics", "landscape", "distributions")


def lr_text(lr: float) -> str:
    """The canonical text of a learning rate: gpu_check.grid's (1e-3 for 0.001, 1e-1 for 0.1)."""
    return lr_name(lr)


@dataclass(frozen=True)
class Reading:
    name: str
    network: str
    lr: Optional[float]      # None: the paper's procedure (per norm) or the whole lr grid
    setting: str             # what it means
    support: str             # what in the paper's text supports it (or speaks against it)
    family: str = ""         # the runs it reads (FAMILY_NETWORK); "" = the network's own family

    @property
    def runs_family(self) -> str:
        return self.family or self.network


def _dln_reading(lr: float) -> Reading:
    notes = {1e-6: "the printed lr (A.1: 'the learning rate is 10^-6') on the summed loss",
             1e-9: "the printed lr 10^-6 on the mean loss (= 1e-9 on the sum over 1000 samples)"}
    support = notes.get(lr, "above the printed lr (none and bn only; Figure 11's caption: BatchNorm allows "
                        "larger learning rates)" if lr in DLN_ABOVE_PRINTED_LRS else
                        "between the printed value's two readings (A.2.2: steps up to 30 x the "
                        "step size are 'valid for standard training')")
    return Reading(f"dln-lr{lr_text(lr)}", "dln", lr, f"DLN, full-batch GD, lr {lr_text(lr)} on the summed loss",
                   support)


def _vgg_reading(lr: float) -> Reading:
    support = ("the printed lr (A.1: 'a fixed learning rate of 0.1')" if lr == VGG_PRINTED_LR else
               "a neighbour of the printed 0.1 (none and bn only; A.2.2: the standard network diverges "
               "not far above its step size)")
    return Reading(f"vgg-lr{lr_text(lr)}", "vgg", lr, f"VGG, SGD batch 128, lr {lr_text(lr)}", support)


def _digits_reading(lr: float) -> Reading:
    return Reading(f"vgg-digits-lr{lr_text(lr)}", "vgg", lr,
                   f"VGG (vgg-digits) on scikit-learn's real handwritten digits, NOT CIFAR-10; SGD batch 128, "
                   f"lr {lr_text(lr)}",
                   "the printed lr (A.1) on a real image set small enough for a CPU; evidence beside the "
                   "paper's CIFAR-10 setting, not a substitute for it", family=DIGITS_FAMILY)


READINGS = tuple([_dln_reading(lr) for lr in DLN_LRS + DLN_ABOVE_PRINTED_LRS] + [_vgg_reading(lr) for lr in VGG_LRS] +
                 [_digits_reading(lr) for lr in DIGITS_LRS] + [
    Reading(PAPER_PROCEDURE, net, None,
            f"{net.upper()}: per norm, the lr of the grid with the lowest median final training loss on "
            f"seeds {', '.join(map(str, SELECTION_SEEDS[net]))}, judged on seeds "
            f"{', '.join(map(str, JUDGED_SEEDS[net]))}",
            "A.1: 'learning rates were selected based on hyperparameter optimization to find a configuration "
            "where the training performance for the network was the best' -- the paper's own procedure; "
            "the verdict of a claim is the verdict under this reading")
    for net in ("dln", "vgg")] + [
    Reading(LR_GRID, net, None, f"{net.upper()}: every learning rate of the grid at once",
            "Figure 11's caption: BatchNorm networks are 'largely robust to a broad range of learning rates'")
    for net in ("dln", "vgg")])


def readings_for(network: str, norms) -> list:
    """The readings a claim on ``network`` comparing ``norms`` is judged under: every lr of the
    grid that all its norms were trained at (the digits family's too), then the paper's procedure."""
    out = []
    for r in READINGS:
        if r.network != network or r.lr is None:
            continue
        if not all(r.lr in lrs_of(r.runs_family, n) for n in norms):
            continue
        out.append(r)
    return out + [next(r for r in READINGS if r.name == PAPER_PROCEDURE and r.network == network)]


def lr_grid_reading(network: str) -> Reading:
    return next(r for r in READINGS if r.name == LR_GRID and r.network == network)


def lrs_of(family: str, norm: str) -> tuple:
    """The learning rates the grid trains ``norm`` at in ``family`` (a network's own family is its name)."""
    if family == "dln":
        return DLN_LRS + DLN_ABOVE_PRINTED_LRS if norm in SWEPT_NORMS else DLN_LRS
    if family == DIGITS_FAMILY:
        return DIGITS_LRS
    return VGG_LRS if norm in SWEPT_NORMS else (VGG_PRINTED_LR,)


def selection_needed(family: str, norm: str) -> bool:
    """Whether the paper's procedure has a choice to make for this norm: more than one lr in its grid.
    With one candidate every selection outcome picks it, so the selection seeds are not run."""
    return len(lrs_of(family, norm)) > 1


def select_lr(final_losses: dict) -> Optional[float]:
    """The paper's procedure for one network and norm: {lr: [final training loss of each selection
    seed]} -> the lr with the lowest median (ties: the smaller lr); None when no lr has every
    selection seed.  A diverged run's loss is +inf, so a diverging lr is never chosen over one
    that trains."""
    best = None
    for lr in sorted(final_losses):
        losses = final_losses[lr]
        if not losses:
            continue
        m = float(np.median(np.asarray(losses, dtype=np.float64)))
        if best is None or m < best[1] or (math.isnan(best[1]) and not math.isnan(m)):
            best = (lr, m)
    return None if best is None else best[0]


# ---------------------------------------------------------------------------------------------
# The grid of the full reproduction (gpu_check.sweep sub-grids), and its estimated time
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SubGrid:
    """One gpu_check.sweep grid: presets x norms x lrs x seeds with shared options; ``out`` is
    its directory under the work directory (sub-grids with equal options share one)."""

    out: str
    preset: str
    norms: tuple
    lrs: tuple
    seeds: tuple
    options: tuple           # sorted ((RunConfig field, value), ...)

    @property
    def runs(self) -> int:
        return len(self.norms) * len(self.lrs) * len(self.seeds)

    def toml(self) -> str:
        """The grid as a TOML file for ``python -m gpu_check.sweep --grid FILE``."""
        def value(v):
            if isinstance(v, (tuple, list)):
                return "[" + ", ".join(value(x) for x in v) + "]"
            if isinstance(v, str):
                return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
            if isinstance(v, float):
                return repr(v)
            return str(v)
        lines = [f"preset = {value([self.preset])}", f"norm = {value(list(self.norms))}",
                 f"lr = {value([float(x) for x in self.lrs])}", f"seed = {value(list(self.seeds))}", "",
                 "[options]"] + [f"{k} = {value(v)}" for k, v in self.options]
        return "\n".join(lines) + "\n"


SCALES = ("smoke", "cpu", "paper")
# The smoke scale: the smoke preset (both networks, tiny) for every norm, one seed, at the smoke
# DLN's learning rate (a grid point sets the lr of every network of its preset): it exercises the
# pipeline end to end; its summaries are below every judged preset's scale, so nothing is judged.
SMOKE_LR = 3e-4


def paper_plan(scale: str = "paper", data: Optional[str] = None) -> tuple:
    """The sub-grids of the full reproduction.  ``paper``: Appendix A's DLN (dln-paper) and the
    paper-width VGG (vgg-paper, CIFAR-10 through ``data``); ``cpu``: the VGG at vgg-cpu (both with the
    real-digits family, vgg-digits); ``smoke``: the smoke preset (see SMOKE_LR).  Every
    run measures ICS, landscape and distributions and runs no probes (Section 2-3 runs; the
    probes of Section 4 are another experiment)."""
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}; scales are: {', '.join(SCALES)}")
    base = (("measure", MEASURE), ("probe_every", 0))
    if scale == "smoke":
        return (SubGrid("smoke", "smoke", NORMS, (SMOKE_LR,), (0,),
                        tuple(sorted(base + ((("data", data),) if data else ())))),)
    vgg_opts = tuple(sorted(base + ((("data", data),) if data else ())))
    vgg = "vgg-paper" if scale == "paper" else "vgg-cpu"
    seeds = {net: tuple(sorted(JUDGED_SEEDS[net] + SELECTION_SEEDS[net])) for net in ("dln", "vgg")}
    others = tuple(n for n in NORMS if n not in SWEPT_NORMS)
    assert not any(selection_needed("vgg", n) for n in others)      # one lr each: no selection seed
    return (SubGrid("dln", "dln-paper", DLN_NORMS, DLN_LRS, seeds["dln"], tuple(sorted(base))),
            SubGrid("dln", "dln-paper", SWEPT_NORMS, DLN_ABOVE_PRINTED_LRS, seeds["dln"], tuple(sorted(base))),
            SubGrid("vgg", vgg, SWEPT_NORMS, VGG_LRS, seeds["vgg"], vgg_opts),
            SubGrid("vgg", vgg, others, (VGG_PRINTED_LR,), JUDGED_SEEDS["vgg"], vgg_opts),
            # the real-image family: every norm at the printed lr, the judged seeds (no lr is chosen)
            SubGrid(DIGITS_FAMILY, "vgg-digits", NORMS, DIGITS_LRS, JUDGED_SEEDS["vgg"], tuple(sorted(base))))


# Seconds per DLN run as the plan runs it: gpu_check.sweep trains the DLN points in stacks
# (gpu_check.fast_dln: the moment route for none, bn, l2; the batched route for noisy-bn, l1,
# linf), so a run costs its share of its norm's stack.  MEASURED, full length: the 90-run grid
# (dln-paper, 6 norms x 5 lrs x 3 seeds, 10,000 steps, the three measurements at 26 steps, probes
# every 2,500 steps, one stack of 15 per norm) with `gpu_check.sweep --jobs 2` on the 2-core
# machine with nothing else running, 2026-12-02: 32.5 min wall for the grid; a point's share of
# its stack's wall time less its probes (the plan makes none), rounded up.  The probes were
# bn 11.3 s and noisy-bn 12.9 s a point (5 probes).  The separate eager runs these replace took
# none 102, bn 179, noisy-bn 364, l1 299, l2 253, linf 269 s (loaded).
DLN_STACKED_SECONDS = {"none": 8, "bn": 20, "noisy-bn": 52, "l1": 46, "l2": 23, "linf": 54}

# Seconds per run, by preset and norm.  MEASURED (cpu): dln-paper as above; vgg-cpu and vgg-digits:
# the reproduction's 5,000-step runs of 2026-12-02 (the three measurements, no probes, 1 thread,
# two grids running side by side on the 2-core machine, so about one core each), the median
# total wall time of a run over its invocations: vgg-cpu none 351 s (9 runs), bn 372 (9 runs),
# linf 661 (3 runs: 498-905, the slowest beside two benchmarks), l1 444 (2 runs: 383, 504);
# vgg-digits none 284 (3), bn 390 (3), noisy-bn 554 (3: 477-576).  The norms
# not measured yet are ASSUMED by their code path (_vgg_seconds): noisy-bn as bn plus the noise
# (drawn over every activation each step: noisy-bn - bn, measured on vgg-digits, 175 s), noisy-none
# as none plus the same, l2 as l1 (the same generic per-channel reductions, several elementwise
# passes where BatchNorm has one fused kernel; the earlier 3,000-step runs, loaded, had put the
# l_p norms below none, which today's runs contradict), and l_p on vgg-digits at l1's ratio to
# none on vgg-cpu.  ASSUMED (cuda): not measured -- no GPU was available; vgg-paper is ~1e11
# FLOP a step (VGG-11, 32x32, batch 128, forward + backward), about 10 ms a step on a current
# data-centre GPU in float32 without TF32, plus ~20% for measurements: ~180 s for 15,000 steps; the
# DLN's 10x10 matrices are launch-bound: no faster than the CPU.
VGG_CPU_MEASURED = {"none": 351, "bn": 372, "l1": 444, "linf": 661}
VGG_DIGITS_MEASURED = {"none": 284, "bn": 390, "noisy-bn": 554}
NOISE_SECONDS = VGG_DIGITS_MEASURED["noisy-bn"] - VGG_DIGITS_MEASURED["bn"]      # a 5,000-step run's noise draws
LP_OVER_NONE = VGG_CPU_MEASURED["l1"] / VGG_CPU_MEASURED["none"]


def _vgg_seconds(measured: dict) -> dict:
    """Every norm's seconds from the measured ones ('none' and 'bn' at least), by code path."""
    lp = measured.get("l1", measured["none"] * LP_OVER_NONE)
    assumed = {"noisy-bn": measured["bn"] + NOISE_SECONDS, "noisy-none": measured["none"] + NOISE_SECONDS,
               "l1": lp, "l2": lp, "linf": lp}
    return {n: measured.get(n, assumed.get(n)) for n in NORMS}


SECONDS_PER_RUN = {
    ("cpu", "dln-paper"): DLN_STACKED_SECONDS,
    ("cpu", "vgg-cpu"): _vgg_seconds(VGG_CPU_MEASURED),
    ("cuda", "vgg-paper"): {n: 180 for n in NORMS},
    ("cuda", "dln-paper"): DLN_STACKED_SECONDS,
    ("cuda", "vgg-cpu"): {n: 60 for n in NORMS},
    ("cpu", "vgg-digits"): _vgg_seconds(VGG_DIGITS_MEASURED),
    ("cuda", "vgg-digits"): {n: 60 for n in NORMS},
    # smoke: 12 steps of both tiny networks with every measurement, ~5 s a run including start-up
    ("cpu", "smoke"): {n: 5 for n in NORMS},
    ("cuda", "smoke"): {n: 5 for n in NORMS},
}
MEASURED = {("cpu", "dln-paper"), ("cpu", "vgg-cpu")}


def estimate_seconds(grid: SubGrid, device: str) -> tuple:
    """(seconds, 'measured' | 'assumed' | 'not feasible') for running ``grid`` one run after
    another on ``device`` ('cpu' | 'cuda')."""
    table = SECONDS_PER_RUN.get((device, grid.preset))
    if table is None:
        return math.inf, "the paper-width VGG needs a GPU"
    seconds = sum(table[n] for n in grid.norms) * len(grid.lrs) * len(grid.seeds)
    return float(seconds), "measured s/run" if (device, grid.preset) in MEASURED else "assumed s/run, not measured"


def seconds_per_run(config: dict) -> float:
    """A run's expected seconds (SECONDS_PER_RUN, scaled to its steps) from its config_to_dict
    form: the cost model by which a sweep starts its longest tasks first (grid.longest_first).
    'auto' counts as the CPU (the estimate orders tasks; it does not promise a time)."""
    device = "cuda" if config.get("device") == "cuda" else "cpu"
    table = SECONDS_PER_RUN.get((device, config["preset"]), {})
    return table.get(config["norm"], 1.0) * config["steps"] / preset_steps(config["preset"])


def _hours(seconds: float) -> str:
    return "not feasible" if math.isinf(seconds) else f"{seconds / 3600:.1f} h"


def plan_text(plan, device: str) -> str:
    """The grid, its number of runs and its estimated time on ``device``, one run at a time."""
    lines, total = [], 0.0
    for g in plan:
        seconds, how = estimate_seconds(g, device)
        total += seconds
        lines.append(f"  {g.out}: {g.preset} x norms {', '.join(g.norms)} x lr {', '.join(lr_text(x) for x in g.lrs)} "
                     f"x seeds {', '.join(map(str, g.seeds))} = {g.runs} runs; on {device}: {_hours(seconds)} ({how})")
    runs = sum(g.runs for g in plan)
    return "\n".join([f"{runs} runs; estimated time on {device}, one run at a time: {_hours(total)}"] + lines)


def preset_steps(preset: str) -> int:
    return PRESETS[preset].steps


def write_grid_files(plan, work: str) -> list:
    """Write each sub-grid's TOML file under ``work``; returns [(toml path, grid out dir)]."""
    import os

    from theory.fileio import atomic_write_text

    os.makedirs(work, exist_ok=True)
    out = []
    for i, g in enumerate(plan):
        path = os.path.join(work, f"grid-{i}-{g.out}.toml")
        atomic_write_text(path, g.toml())
        out.append((path, os.path.join(work, g.out)))
    return out


def sweep_commands(plan, work: str, python: str, device: Optional[str] = None, jobs: int = 1) -> list:
    """The gpu_check.sweep command of each sub-grid (grid file written by ``write_grid_files``)."""
    cmds = []
    for path, out in write_grid_files(plan, work):
        cmd = [python, "-m", "gpu_check.sweep", "--grid", path, "--out", out, "--quiet", "--jobs", str(jobs)]
        if device:
            cmd += ["--device", device]
        cmds.append(cmd)
    return cmds
