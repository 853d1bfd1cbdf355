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

This module holds what the three measurements share: the hook base class, the interval, the
statistics freeze, the loss at substituted parameters, the registry of measurement names.
"""
from __future__ import annotations

import contextlib
import time

import torch
from torch.func import functional_call

from gpu_check.config import MEASUREMENTS

MEASURE_POINTS = 25   # measured steps per run when measure_every = 0: enough for a curve over training


def measure_interval(config) -> int:
    """K: the configured ``measure_every``, or steps // MEASURE_POINTS (at least 1) when it is 0."""
    every = getattr(config, "measure_every", 0)
    return every if every > 0 else max(1, config.steps // MEASURE_POINTS)


@contextlib.contextmanager
def frozen_statistics(model):
    """Forward passes inside do not move any normalisation layer's running statistics."""
    norms = [m for m in model.modules() if hasattr(m, "update_running")]
    saved = [m.update_running for m in norms]
    for m in norms:
        m.update_running = False
    try:
        yield model
    finally:
        for m, s in zip(norms, saved):
            m.update_running = s


def loss_at(model, params: dict, inputs, target) -> torch.Tensor:
    """The training loss of ``model`` with the parameters in ``params`` substituted (the others,
    and the buffers, are the model's own); training mode as the model is."""
    return model.loss(functional_call(model, params, (inputs,)), target)


def gradient_at(model, params: dict, inputs, target, wrt) -> tuple:
    """({name: dL/d name} for the parameter names in ``wrt``, the loss), at ``params`` (name -> tensor).
    Only the tensors of ``wrt`` require grad, so autograd builds no graph below the lowest of them."""
    leaves = {n: (t.detach().requires_grad_(True) if n in wrt else t.detach()) for n, t in params.items()}
    loss = loss_at(model, leaves, inputs, target)
    grads = torch.autograd.grad(loss, [leaves[n] for n in wrt])
    return dict(zip(wrt, grads)), loss.detach()


class MeasurementHook:
    """A hook of gpu_check.train (``name``, ``file``, ``due``, ``__call__``) that times itself.

    Subclasses implement ``measure(ctx) -> list of records``.  ``cost`` holds, per network, the
    number of calls and the seconds they took; ``steps`` the distinct steps measured.
    """

    name = file = ""

    def __init__(self, config):
        self.config = config
        self.every = measure_interval(config)
        self.cost = {}          # network -> [calls, seconds]
        self.steps = set()

    def due(self, step: int, net) -> bool:
        return step % self.every == 0 or step == self.config.steps

    def measure(self, ctx) -> list:
        raise NotImplementedError

    def __call__(self, ctx) -> list:
        device = ctx.inputs.device
        t0 = time.perf_counter()
        with frozen_statistics(ctx.net.model):
            rows = self.measure(ctx)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        c = self.cost.setdefault(ctx.net.name, [0, 0.0])
        c[0] += 1
        c[1] += time.perf_counter() - t0
        self.steps.add(ctx.step)
        return rows


def measurement_hooks(config) -> list:
    """The hooks of the measurements named in ``config.measure``, in the order named."""
    from gpu_check.measure_distributions import DistributionHook
    from gpu_check.measure_ics import ICSHook
    from gpu_check.measure_landscape import LandscapeHook

    classes = {"ics": ICSHook, "landscape": LandscapeHook, "distributions": DistributionHook}
    assert set(classes) == set(MEASUREMENTS), (sorted(classes), MEASUREMENTS)
    return [classes[name](config) for name in getattr(config, "measure", ())]


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
