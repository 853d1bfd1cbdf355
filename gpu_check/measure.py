"""The paper's measurements (Sections 2-3, Appendix A.2, B) as optional hooks of a training run.

    python -m gpu_check.run --preset smoke --norm bn --out DIR --measure ics,landscape,distributions \\
        [--measure-every K]

    ics            Definition 2.1 per layer: ||G - G'||_2 and cos(G, G')      -> DIR/ics.jsonl
    landscape      loss and gradient along the gradient direction (Sec. 3.1,  -> DIR/landscape.jsonl
                   App. A.2.2): loss range, gradient predictiveness, effective beta-smoothness
    distributions  batch distribution (quantiles, mean, variance) of a fixed  -> DIR/distributions.jsonl
                   sample of units per layer, at steps t and t + 1

Each runs at every K-th step (``measure_every``; 0 = about MEASURE_POINTS points per run) on the
parameters theta_t and the batch of step t, before the update, in training mode, under the
training loop's preserved RNG: a measurement never changes the trajectory nor the BatchNorm
running statistics.  Each hook times itself; ``cost_table`` turns the times into seconds per
call and the share of a training step, which the run summary states.

This module holds the registry of the measurements and their cost table; what the three share
(the hook base class, the interval, the statistics freeze, the loss at substituted parameters)
is in gpu_check.measure_hook, which they import.
"""
from __future__ import annotations

from gpu_check.measure_distributions import DistributionHook
from gpu_check.measure_hook import MeasurementHook
from gpu_check.measure_ics import ICSHook
from gpu_check.measure_landscape import LandscapeHook

# Measurement name (gpu_check.config.MEASUREMENTS; tests/test_measure_run.py checks both name
# the same set) -> its hook class.
HOOKS = {"ics": ICSHook, "landscape": LandscapeHook, "distributions": DistributionHook}


def measurement_hooks(config) -> list:
    """The hooks of the measurements named in ``config.measure``, in the order named."""
    return [HOOKS[name](config) for name in getattr(config, "measure", ())]


def cost_table(hooks, train_s: float, trained: int, wall_s: float) -> dict:
    """The cost of each measurement in this invocation of a run:

    calls, seconds, per_step_s (seconds per measured step, all networks), train_step_s (seconds
    of one training step, all networks), share_of_step = per_step_s / train_step_s, and
    share_of_run = seconds / wall seconds.
    """
    step_s = train_s / trained if trained else float("nan")
    out = {}
    for h in hooks:
        if not isinstance(h, MeasurementHook):
            continue
        calls = sum(c[0] for c in h.cost.values())
        seconds = sum(c[1] for c in h.cost.values())
        per_step = seconds / len(h.steps) if h.steps else float("nan")
        out[h.name] = {
            "calls": calls, "measured_steps": len(h.steps), "every": h.every, "seconds": seconds,
            "per_step_s": per_step, "train_step_s": step_s,
            "share_of_step": per_step / step_s if h.steps and trained and step_s > 0 else float("nan"),
            "share_of_run": seconds / wall_s if wall_s > 0 else float("nan"),
            "per_network_s": {n: c[1] for n, c in h.cost.items()},
        }
    return out


def describe_costs(table: dict) -> list:
    """One line per measurement, for the summary printed at the end of a run."""
    return [f"  measure {name}: {c['seconds']:.2f} s over {c['measured_steps']} measured steps (every {c['every']}); "
            f"{c['per_step_s']:.3g} s each = {c['share_of_step']:.2f} training steps; "
            f"{100 * c['share_of_run']:.1f}% of the run" for name, c in table.items()]
