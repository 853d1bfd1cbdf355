"""The loss landscape along the gradient (Section 3.1-3.2, Appendix A.2.2; Figures 4, 10-13).

At a measured step t, with theta = theta_t, the batch of step t and g = grad L(theta) (every
parameter of the network, flattened), for step sizes eta in a grid:

    loss(eta)          = L(theta - eta g)                           Figure 4(a): its range
    grad_change(eta)   = ||grad L(theta - eta g) - g||_2            Figure 4(b), 11: gradient predictiveness
    beta_eff           = max_eta grad_change(eta) / (eta ||g||_2)   Figure 4(c): "effective" beta-smoothness

"the maximum difference (in l2-norm) in gradient over distance moved in that direction": the
distance moved is ||eta g||.  The grid spans STEP_RANGES x the run's learning rate ("steps of
length ranging from [1/2, 4] x step size" for the VGG, "[1/100, 30] x step size" for the DLN,
where step size is the training learning rate), geometrically spaced with LANDSCAPE_POINTS
points.  Readings: the loss range is min/max of loss(eta) over the grid (eta = 0 excluded; the
loss at theta is recorded beside it); the network is in training mode throughout (batch
statistics; for noisy BN the noise of step t, so the landscape is of one fixed function);
running statistics do not move.

Section 3.2: "the loss behaves in a similar way when we examine other (random) directions too".
Beside the gradient walk, the same grid of step sizes walks along a random direction d
(``random_direction``): for every parameter tensor, a standard normal draw rescaled to the norm
of that tensor's gradient (so ||d|| = ||g|| and each tensor moves as far as the gradient walk
moves it); d is drawn from (seed, network, step) alone, so it does not touch the training RNG
and a resumed run draws the same d.  The row's ``random_*`` fields are the loss range, the largest
gradient change ||grad L(theta - eta d) - g|| and the effective beta along d.

``along_gradient`` is a pure function of a loss closure over a parameter dict, so its output
can be checked against the closed form of a quadratic (tests/test_measure_landscape.py).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from gpu_check.measure_hook import MeasurementHook, loss_at

LANDSCAPE_FILE = "landscape.jsonl"
# Appendix A.2.2: step sizes as multiples of the training learning rate, per network kind.
STEP_RANGES = {"vgg": (0.5, 4.0), "dln": (0.01, 30.0)}
LANDSCAPE_POINTS = 9


def step_sizes(lr: float, low: float, high: float, points: int = LANDSCAPE_POINTS) -> np.ndarray:
    """(points,) step sizes lr * [low .. high], geometrically spaced, both ends included."""
    if not (lr > 0 and 0 < low < high and points >= 2):
        raise ValueError(f"step grid needs lr > 0, 0 < low < high and >= 2 points; got lr={lr}, "
                         f"[{low}, {high}], {points} points")
    return lr * np.geomspace(low, high, points)


@dataclass(frozen=True)
class Landscape:
    """Loss and gradient along -g at the step sizes ``etas``; float64 numpy."""

    etas: np.ndarray          # (K,)
    loss0: float              # L(theta)
    grad_norm: float          # ||g||
    losses: np.ndarray        # (K,) L(theta - eta g)
    grad_change: np.ndarray   # (K,) ||grad L(theta - eta g) - g||

    @property
    def distance(self) -> np.ndarray:
        return self.etas * self.grad_norm                       # (K,) ||eta g||

    @property
    def beta_eff(self) -> float:
        """max over the grid of grad_change / distance moved (NaN when g = 0: no direction)."""
        if self.grad_norm == 0:
            return float("nan")
        return float(np.max(self.grad_change / self.distance))


def _flat(tensors) -> torch.Tensor:
    return torch.cat([t.reshape(-1) for t in tensors])


def _value_and_grad(loss_fn, params: dict, names) -> tuple:
    leaves = {n: params[n].detach().requires_grad_(True) for n in names}
    loss = loss_fn(leaves)
    grads = torch.autograd.grad(loss, [leaves[n] for n in names])
    return float(loss.detach()), _flat(grads).double()


def along_gradient(loss_fn, theta: dict, etas, direction_of=None) -> Landscape:
    """Walk from ``theta`` (name -> tensor) along -grad loss_fn(theta) by each eta in ``etas``.

    ``loss_fn(params) -> scalar tensor`` is evaluated at theta and at theta - eta g for each
    eta, with its gradient w.r.t. every entry of the dict.  Norms are taken over all entries
    flattened together, in float64.  With ``direction_of`` ({name: gradient tensor} -> {name:
    tensor}), the walk is along theta - eta d for d = direction_of(gradient) instead, and the
    distance moved is eta ||d||; the gradient change is still measured against g."""
    names = list(theta)
    value_and_grad = lambda params: _value_and_grad(loss_fn, params, names)  # noqa: E731

    loss0, g = value_and_grad(theta)
    direction = {n: gi for n, gi in zip(names, _grads_like(g, theta, names))}
    norm = float(torch.linalg.vector_norm(g))
    if direction_of is not None:
        direction = direction_of(direction)
        norm = float(torch.linalg.vector_norm(_flat([direction[n].double() for n in names])))
    losses, changes = [], []
    for eta in np.asarray(etas, dtype=np.float64):
        moved = {n: theta[n].detach() - torch.as_tensor(eta, dtype=theta[n].dtype) * direction[n] for n in names}
        loss, grad = value_and_grad(moved)
        losses.append(loss)
        changes.append(float(torch.linalg.vector_norm(grad - g)))
    return Landscape(np.asarray(etas, dtype=np.float64), loss0, norm, np.asarray(losses), np.asarray(changes))


_RANDOM_STREAM = 23


def random_direction(seed: int, network: str, step: int):
    """{name: gradient tensor} -> {name: d}: per tensor, a standard normal draw (float64, from
    (seed, network, step) only) rescaled to the norm of that tensor's gradient."""
    net = {"dln": 0, "vgg": 1}.get(network, 2)

    def direction_of(grads: dict) -> dict:
        gen = torch.Generator().manual_seed(int(np.random.SeedSequence([seed, _RANDOM_STREAM, net, step])
                                                .generate_state(1)[0]))
        out = {}
        for n, g in grads.items():
            z = torch.randn(g.shape, generator=gen, dtype=torch.float64)
            zn = torch.linalg.vector_norm(z)
            scale = torch.linalg.vector_norm(g.double().cpu()) / zn if zn > 0 else torch.zeros((), dtype=torch.float64)
            out[n] = (z * scale).to(g.device, g.dtype)
        return out
    return direction_of


def _grads_like(flat: torch.Tensor, theta: dict, names) -> list:
    """Split the flat float64 gradient back into tensors shaped and typed like theta's."""
    out, start = [], 0
    for n in names:
        t = theta[n]
        out.append(flat[start:start + t.numel()].reshape(t.shape).to(t.dtype))
        start += t.numel()
    return out


def learning_rate(optimizer) -> float:
    """The single learning rate of the run's optimiser (the step size of Appendix A.2.2)."""
    lrs = {float(g["lr"]) for g in optimizer.param_groups}
    if len(lrs) != 1:
        raise ValueError(f"the landscape grid is a multiple of one learning rate; the optimiser has {sorted(lrs)}")
    return lrs.pop()


def landscape_row(step: int, network: str, lr: float, scale: tuple, land: Landscape,
                  random: Landscape = None) -> dict:
    extra = {} if random is None else {
        "random_loss_min": float(np.min(random.losses)), "random_loss_max": float(np.max(random.losses)),
        "random_grad_change_max": float(np.max(random.grad_change)), "random_beta_eff": random.beta_eff}
    return {**extra, "step": step, "network": network, "lr": lr, "step_range": list(scale),
            "etas": land.etas.tolist(), "distance": land.distance.tolist(),
            "loss0": land.loss0, "grad_norm": land.grad_norm,
            "losses": land.losses.tolist(), "grad_change": land.grad_change.tolist(),
            "loss_min": float(np.min(land.losses)), "loss_max": float(np.max(land.losses)),
            "grad_change_min": float(np.min(land.grad_change)),
            "grad_change_max": float(np.max(land.grad_change)),
            "beta_eff": land.beta_eff}


class LandscapeHook(MeasurementHook):
    """The landscape along the gradient at every K-th step -> landscape.jsonl (one row a step)."""

    name, file = "landscape", LANDSCAPE_FILE

    def measure(self, ctx) -> list:
        net = ctx.net
        kind = getattr(net.model, "kind", net.name)
        lr = learning_rate(net.optimizer)
        scale = STEP_RANGES[kind]
        theta = {n: p.detach() for n, p in net.model.named_parameters()}
        loss_fn = lambda p: loss_at(net.model, p, ctx.inputs, ctx.target)  # noqa: E731
        etas = step_sizes(lr, *scale)
        land = along_gradient(loss_fn, theta, etas)
        random = along_gradient(loss_fn, theta, etas, random_direction(self.config.seed, net.name, ctx.step))
        return [landscape_row(ctx.step, net.name, lr, scale, land, random)]
