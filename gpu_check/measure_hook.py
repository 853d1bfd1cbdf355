"""What the measurement hooks of gpu_check.measure share: the hook base class, the measuring
interval, the statistics freeze, the loss and gradient at substituted parameters.

The measurements themselves (measure_ics, measure_landscape, measure_distributions) subclass
``MeasurementHook``; gpu_check.measure holds their registry and the cost table.
"""
from __future__ import annotations

import contextlib
import time
from abc import ABC, abstractmethod

import torch
from torch.func import functional_call

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


class MeasurementHook(ABC):
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

    @abstractmethod
    def measure(self, ctx) -> list:
        """The records of one measurement at ctx's step."""

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
