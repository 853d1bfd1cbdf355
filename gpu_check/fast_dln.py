"""Many deep linear networks at once, exactly: the moment route and the batched route.

A grid trains the same DLN (Appendix A.1(2)) at many learning rates and seeds.  One eager step
of one network is ~25 small (n x d) x (d x d) products plus the normalisation kernels: almost all
per-operation overhead.  For the normalisations whose batch statistics are moments of the data
(none, bn, l2), the whole forward pass of a *linear* network is determined by the data's first
and second moments, because every layer output is affine in the input x:

    y(x) = x~ M~        x~ = [x, 1] (1, d+1),  M~ = [[M], [c]] (d+1, d)       every layer's output
    E[y y^T] = M~^T S~ M~   with S~ = E[x~^T x~] (d+1, d+1), E[y] = last row of S~ M~

    linear   y = z W^T                       M~ <- M~ W^T
    bn       z = gamma (y - mu)/sqrt(var + eps) + beta      (var = E[y^2] - mu^2, biased)
    l2       z = gamma (y - mu)/sqrt(E[y^2] + eps) + beta   (gpu_check.norms' l2 reading)
             both: M~ <- (M~ - e mu) * gamma/s + e beta      (e = the constant row)
    loss     sum_i ||x~_i M~ - t_i||^2 = n (tr(M~^T S~ M~) - 2 tr(M~^T C~) + E||t||^2),  C~ = E[x~^T t]

so a step costs O(depth d^3) instead of O(depth n d^2), and K networks (K grid points, each with
its own data, weights and learning rate) stack into batched (K, d+1, d) products: the cost of a
step hardly grows with K.  The moments, the forward pass and the gradient run in float64 (the
data moments are exact sums of the float32 data); the gradient is then rounded to float32 and the
update is the run's own SGD step in float32, so a grid point follows its eager run within float32
rounding (tests/test_fast_dln.py measures how closely, over the first 100 steps).

The other normalisations (noisy-bn, l1, linf: statistics that are not moments, or noise per
activation) take the batched route (``BatchedStack``): the real float32 forward pass of K networks
side by side, activations transposed (K, d, n) so that a layer is one batched product and its
statistics are reductions over the contiguous sample axis, through the real normalisation layer
over K x d channels.  Measured on dln-paper, one thread, K = 16 against 16 eager runs: the
transposed layout alone is ~2x the (K, n, d) layout or a torch.func.vmap of the network.
noisy-bn's noise (Algorithm 1) is a function of (seed, layer, step) only, so it is drawn outside
the forward pass by the separate run's own ``sample_noise``, once per seed (a grid's learning
rates of one seed share it), and given to the layer's ``perturb``.

What a separate run writes, a stacked one writes too, through the same code: at every step where
a hook of the run (probes, measurements; gpu_check.train.default_hooks) is due, the grid point's
real network is materialised with the stacked weights and the hooks run on it and on the real
data, through the training loop's own hook runner; checkpoints, metrics, events and the summary
are the same files, so a stacked grid point can be resumed by ``gpu_check.run --resume`` and the
other way round.  The BatchNorm running statistics are updated from the same moments.
"""
from __future__ import annotations

import math
import os
import random
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from gpu_check import records
from gpu_check.config import RunConfig
from gpu_check.norms import NOISY_KINDS, Normalisation, NoiseSample, noise_generator, sample_noise
from gpu_check.train import (OpenRun, RunSummary, SimulatedInterruption, StepContext, add_timing, load_summary,
                             open_run, resolve_device, run_hooks, save_checkpoint, write_summary)

# The normalisations whose statistics are moments of the data (the moment route's domain).
MOMENT_NORMS = ("none", "bn", "l2")
# The others: the batched route (BatchedStack) trains them through the real normalisation layer,
# K networks side by side; noisy-bn's noise is drawn per network from its own generator.
BATCHED_NORMS = ("noisy-bn", "l1", "linf")
ROUTES = {**{n: "moments" for n in MOMENT_NORMS}, **{n: "batched" for n in BATCHED_NORMS}}
# The fewest points for which a stack beats separate runs (python -m gpu_check.bench, dln-paper, one
# thread, the machine loaded: the moment route is on par at K = 1 and 3x faster at K = 4; the
# batched route is 0.9-1.3x at K = 1 and 1-2.9x at K = 4).
MIN_STACK = {"moments": 1, "batched": 2}
# float32's largest finite value: an eager run's float32 loss is inf beyond it, and the run then
# stops as diverged; the moment route's float64 loss is rounded to float32 for the same test.
FLOAT32_MAX = float(np.finfo(np.float32).max)


class StackError(ValueError):
    """Grid points that cannot be trained together in a stack; the message says why."""


def stack_key(config: RunConfig) -> tuple:
    """Grid points with equal keys can share one stack: everything but lr, seed (and device)."""
    d = config.dln
    return (config.preset, config.norm, config.steps, config.probe_every, config.checkpoint_every,
            config.probe_channels, config.probe_dtype, config.bn_eps, config.bn_momentum, config.measure,
            config.measure_every, config.cpu_threads, d.depth, d.width, d.n_samples)


def supports(config: RunConfig) -> bool:
    """True when a stack can train this run: a DLN-only preset with a norm of ROUTES."""
    return config.networks() == ("dln",) and config.norm in ROUTES


def route_name(config: RunConfig) -> str:
    return ROUTES[config.norm]


# ---------------------------------------------------------------------------------------------
# The moment forward pass (pure functions of stacked tensors)
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Moments:
    """The data moments of K networks' training sets, float64."""

    n: int
    S: torch.Tensor        # (K, d+1, d+1)  E[x~^T x~]
    C: torch.Tensor        # (K, d+1, d)    E[x~^T t]
    tt: torch.Tensor       # (K,)           E[||t||^2]


def data_moments(inputs: list, targets: list) -> Moments:
    """Moments of each network's (x (n, d), t (n, d)) float32 data, summed in float64."""
    S, C, tt = [], [], []
    for x, t in zip(inputs, targets):
        x, t = x.double(), t.double()
        xa = torch.cat([x, torch.ones(x.shape[0], 1, dtype=x.dtype, device=x.device)], 1)   # (n, d+1)
        n = x.shape[0]
        S.append(xa.T @ xa / n)
        C.append(xa.T @ t / n)
        tt.append((t * t).sum() / n)
    if len({x.shape[0] for x in inputs}) != 1:
        raise StackError("stacked networks must have the same number of samples")
    return Moments(inputs[0].shape[0], torch.stack(S), torch.stack(C), torch.stack(tt))


def moment_forward(norm: str, eps: float, weights, gammas, betas, moments: Moments):
    """The summed training loss of K stacked DLNs (K,), and each normalised layer's batch mean
    and its bn variance / l2 scale ((K, d) each), from the data moments.

    weights: list of (K, d, d) float64, in the order the input meets them (fc01 first);
    gammas, betas: list of (K, d) for the normalised layers (all but the last)."""
    K, d1, _ = moments.S.shape
    const = torch.zeros(1, d1, 1, dtype=moments.S.dtype, device=moments.S.device)
    const[0, -1, 0] = 1.0                                                       # e: the constant row
    M = torch.eye(d1, dtype=moments.S.dtype, device=moments.S.device)[:, :-1].expand(K, d1, d1 - 1)  # y = x
    stats = []
    for i, W in enumerate(weights):
        M = M @ W.transpose(1, 2)                                               # (K, d+1, d) y = z W^T
        if i == len(weights) - 1 or norm == "none":
            continue
        P = moments.S @ M                                                       # (K, d+1, d)
        second = (P * M).sum(1)                                                 # (K, d) E[y^2]
        mu = P[:, -1, :]                                                        # (K, d) E[y]
        if norm == "bn":
            spread = second - mu * mu                                           # (K, d) biased var
            s = torch.sqrt(spread + eps)
        else:                                                                   # l2
            spread = s = torch.sqrt(second + eps)
        scale = gammas[i] / s                                                   # (K, d)
        M = (M - const * mu[:, None, :]) * scale[:, None, :] + const * betas[i][:, None, :]
        stats.append((mu.detach(), spread.detach()))
    P = moments.S @ M
    loss = moments.n * ((P * M).sum((1, 2)) - 2 * (moments.C * M).sum((1, 2)) + moments.tt)   # (K,)
    return loss, stats


# ---------------------------------------------------------------------------------------------
# A stack of grid points
# ---------------------------------------------------------------------------------------------

@dataclass
class Member:
    """One grid point of a stack: its opened run (gpu_check.train.open_run) and its records."""

    run: OpenRun
    session: dict = field(default_factory=dict)     # this invocation's timings
    status: str = "running"
    message: str = ""
    last: dict = field(default_factory=dict)
    trained: int = 0
    next_step: int = 0
    probe_now: float = 0.0                           # seconds probing at the current step

    @property
    def config(self) -> RunConfig:
        return self.run.config

    @property
    def run_dir(self) -> str:
        return self.run.run_dir

    @property
    def net(self):
        return self.run.nets[0]

    @property
    def hooks(self) -> list:
        return self.run.hooks

    @property
    def writer(self) -> records.RecordWriter:
        return self.run.writer


def _open(config: RunConfig, run_dir: str, resume: bool, device, route: str) -> Member:
    """The member's run directory opened as a separate run opens it (gpu_check.train.open_run)."""
    run = open_run(config, run_dir, device, resume=resume, log=lambda msg: None, route=route)
    return Member(run, session={k: 0.0 for k in run.timing}, next_step=run.start)


def _seed(seed: int) -> None:
    """The global RNG states a separate run of this seed has after seeding (a DLN with a moment
    norm draws nothing from them while it trains; hooks run under a preserved RNG)."""
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)


class Stack:
    """K DLNs of one stack key, their parameters as batched float32 tensors."""

    def __init__(self, members: list):
        self.members = members
        models = [m.net.model for m in members]
        blocks = [model.blocks() for model in models]
        self.depth = len(blocks[0])
        self.W = torch.stack([torch.stack([b.linear.weight.detach() for _, b in bl]) for bl in blocks])  # (K, L, d, d)
        normed = [[b.norm for _, b in bl if b.norm is not None] for bl in blocks]
        self.has_norm = bool(normed[0])
        if self.has_norm:
            self.gamma = torch.stack([torch.stack([n.weight.detach() for n in ns]) for ns in normed])  # (K, L-1, d)
            self.beta = torch.stack([torch.stack([n.bias.detach() for n in ns]) for ns in normed])
            self.rmean = torch.stack([torch.stack([n.running_mean for n in ns]) for ns in normed])
            self.rscale = torch.stack([torch.stack([n.running_scale for n in ns]) for ns in normed])
        self.W = self.W.clone()
        if self.has_norm:
            self.gamma, self.beta, self.rmean, self.rscale = (t.clone() for t in (self.gamma, self.beta,
                                                                                   self.rmean, self.rscale))
        self.lr = torch.tensor([m.net.optimizer.param_groups[0]["lr"] for m in members],
                               dtype=torch.float32, device=self.W.device)        # (K,)
        self.moments = data_moments([m.net.inputs for m in members], [m.net.targets for m in members])
        cfg = members[0].config
        self.norm, self.eps, self.momentum = cfg.norm, cfg.bn_eps, cfg.bn_momentum

    def keep(self, index: list) -> None:
        """Drop every member not in ``index`` (a diverged run leaves the stack)."""
        idx = torch.as_tensor(index, dtype=torch.long)
        self.members = [self.members[i] for i in index]
        self.W, self.lr = self.W[idx], self.lr[idx]
        if self.has_norm:
            self.gamma, self.beta, self.rmean, self.rscale = (t[idx] for t in (self.gamma, self.beta,
                                                                                self.rmean, self.rscale))
        self.moments = Moments(self.moments.n, self.moments.S[idx], self.moments.C[idx], self.moments.tt[idx])

    def losses_and_grads(self, step: int):
        """(K,) float64 losses and float32 gradients of W (and gamma, beta), float64 internally."""
        W = self.W.double().requires_grad_(True)
        leaves = [W]
        weights = list(W.unbind(1))
        gammas = betas = [None] * (self.depth - 1)
        if self.has_norm:
            g, b = self.gamma.double().requires_grad_(True), self.beta.double().requires_grad_(True)
            leaves += [g, b]
            gammas, betas = list(g.unbind(1)), list(b.unbind(1))
        loss, stats = moment_forward(self.norm, self.eps, weights, gammas, betas, self.moments)
        grads = torch.autograd.grad(loss.sum(), leaves)
        return loss.detach(), [gr.float() for gr in grads], stats

    def update(self, grads, stats, alive) -> None:
        """The run's SGD step (p <- p - lr g, float32) and the running statistics' update, for the
        networks whose loss is finite (``alive``, (K,) bool)."""
        lr = torch.where(alive, self.lr, torch.zeros_like(self.lr))
        grads = [torch.where(alive.view((-1,) + (1,) * (g.dim() - 1)), g, torch.zeros_like(g)) for g in grads]
        self.W.sub_(grads[0] * lr.view(-1, 1, 1, 1))
        if self.has_norm:
            self.gamma.sub_(grads[1] * lr.view(-1, 1, 1))
            self.beta.sub_(grads[2] * lr.view(-1, 1, 1))
            n, m = self.moments.n, self.momentum
            mu = torch.stack([s[0] for s in stats], 1).float()                     # (K, L-1, d)
            spread = torch.stack([s[1] for s in stats], 1)
            if self.norm == "bn":
                spread = spread * n / (n - 1)                                       # unbiased, as torch keeps it
            # the forward pass of a diverged step moves the statistics too (torch's kernel does)
            self.rmean.lerp_(mu, m)
            self.rscale.lerp_(spread.float(), m)

    def materialise(self, k: int) -> None:
        """Member k's real network takes the stacked parameters and running statistics."""
        model = self.members[k].net.model
        with torch.no_grad():
            normed = 0
            for i, (_, block) in enumerate(model.blocks()):
                block.linear.weight.copy_(self.W[k, i])
                if block.norm is not None:
                    block.norm.weight.copy_(self.gamma[k, normed])
                    block.norm.bias.copy_(self.beta[k, normed])
                    block.norm.running_mean.copy_(self.rmean[k, normed])
                    block.norm.running_scale.copy_(self.rscale[k, normed])
                    normed += 1


def stacked_norm(norms: list) -> Normalisation:
    """The K networks' normalisation layers of one depth as one layer over their K x d channels
    side by side (network k's channels are k d .. (k+1) d - 1), holding copies of their gamma,
    beta and running statistics.  Applied to y^T of the K networks, viewed (1, K d, n), its
    statistics are each channel's over the n samples, as each network's own layer computes them."""
    first = norms[0]
    layer = Normalisation(first.kind, first.channels * len(norms), eps=first.eps, momentum=first.momentum,
                          noise=first.noise_cfg, seed=first.seed, layer_index=first.layer_index).to(first.weight.device)
    with torch.no_grad():
        for name in ("weight", "bias", "running_mean", "running_scale"):
            getattr(layer, name).copy_(torch.cat([getattr(n, name) for n in norms]))
    return layer


class BatchedStack:
    """K DLNs of a norm outside the moment route (BATCHED_NORMS), trained side by side in float32
    as a separate run trains one, through the real normalisation layer (gpu_check.norms):

        activations transposed, z^T (K, d, n): y^T = W z^T is one batched (K, d, d) x (K, d, n)
        product per layer, and the layer's statistics are reductions over the contiguous n axis
        of one (1, K d, n) view (``stacked_norm``) -- torch's batch_norm kernel for noisy-bn.

    noisy-bn's noise (Algorithm 1) is a function of (seed, layer, step) only: each network's is
    drawn from its own generator by the separate run's ``sample_noise``, written into its slice
    of the stack, and given to the layer's ``perturb``.  The arithmetic is float32 like a separate
    run's, in another summation order."""

    def __init__(self, members: list):
        self.members = members
        blocks = [m.net.model.blocks() for m in members]
        self.depth = len(blocks[0])
        self.W = torch.stack([torch.stack([b.linear.weight.detach() for _, b in bl]) for bl in blocks], 1).clone()
        # (L, K, d, d), W[i, k] = layer i + 1 of network k
        self.norms = [stacked_norm([bl[i][1].norm for bl in blocks]) for i in range(self.depth - 1)]
        self.layer_index = [b.norm.layer_index for _, b in blocks[0][:-1]]
        self.X = torch.stack([m.net.inputs.T for m in members]).contiguous()   # (K, d, n)
        self.T = torch.stack([m.net.targets.T for m in members]).contiguous()  # (K, d, n)
        self.lr = torch.tensor([m.net.optimizer.param_groups[0]["lr"] for m in members], dtype=torch.float32,
                               device=self.X.device)
        self.loss = torch.func.vmap(members[0].net.model.loss)                  # (K, d, n) x2 -> (K,)
        cfg = members[0].config
        self.noisy, self.noise_cfg = cfg.norm in NOISY_KINDS, cfg.noise

    def keep(self, index: list) -> None:
        """Drop every member not in ``index`` (a diverged run leaves the stack)."""
        idx = torch.as_tensor(index, dtype=torch.long)
        K, d = len(self.members), self.W.shape[-1]
        self.members = [self.members[i] for i in index]
        self.W, self.X, self.T, self.lr = self.W[:, idx], self.X[idx], self.T[idx], self.lr[idx]
        for i, norm in enumerate(self.norms):
            layer = Normalisation(norm.kind, len(index) * d, eps=norm.eps, momentum=norm.momentum,
                                  noise=norm.noise_cfg, seed=norm.seed, layer_index=norm.layer_index).to(norm.weight.device)
            with torch.no_grad():
                for name in ("weight", "bias", "running_mean", "running_scale"):
                    getattr(layer, name).copy_(getattr(norm, name).detach().view(K, d)[idx].reshape(-1))
            self.norms[i] = layer

    def noise(self, step: int) -> list:
        """Each layer's NoiseSample of the stack at ``step`` ((1, K d, n) shift and scale): network
        k's is drawn from the generator of (its seed, layer, step) exactly as its separate run draws
        it, for its (n, d) activations, and written transposed.  It depends on nothing else, so
        networks of one seed (a grid's learning rates) share one draw."""
        K, d, n = self.X.shape
        first = {}                                    # seed -> the first network of that seed
        for k, m in enumerate(self.members):
            first.setdefault(m.config.seed, k)
        out = []
        for i in range(self.depth - 1):
            shift, scale = (torch.empty(K, d, n, device=self.X.device) for _ in range(2))
            drawn = {}
            for seed, k in first.items():
                gen = noise_generator(seed, self.layer_index[i], step, shift.device)
                drawn[seed] = sample_noise(gen, (n, d), self.noise_cfg, shift.device, out=(shift[k].T, scale[k].T))
            for k, m in enumerate(self.members):
                if first[m.config.seed] != k:                        # a copy of its seed's draw
                    shift[k].copy_(shift[first[m.config.seed]])
                    scale[k].copy_(scale[first[m.config.seed]])
            samples = [drawn[m.config.seed] for m in self.members]
            out.append(NoiseSample(torch.cat([x.mu for x in samples]), torch.cat([x.sigma for x in samples]),
                                   shift.view(1, K * d, n), scale.view(1, K * d, n)))
        return out

    def losses_and_grads(self, step: int):
        """(K,) losses and float32 gradients of W, then each layer's gamma and beta; the forward
        pass updates the stacked running statistics, as each network's own forward pass does."""
        K, d, n = self.X.shape
        noise = self.noise(step) if self.noisy else [None] * (self.depth - 1)
        W = self.W.requires_grad_(True)
        leaves = [W] + [p.requires_grad_(True) for norm in self.norms for p in (norm.weight, norm.bias)]
        z = self.X
        for i in range(self.depth):
            y = torch.bmm(W[i], z)                                                     # (K, d, n)  y^T = W z^T
            if i < self.depth - 1:
                norm = self.norms[i]
                z = norm.perturb(norm.normalise(y.view(1, K * d, n)), noise[i]).view(K, d, n)
        loss = self.loss(y, self.T)                                                    # (K,)
        grads = torch.autograd.grad(loss.sum(), leaves)
        for v in leaves:
            v.requires_grad_(False)
        return loss.detach().double(), list(grads), None

    def update(self, grads, stats, alive) -> None:
        """The run's SGD step (p <- p - lr g, float32) for the networks whose loss is finite."""
        d = self.W.shape[-1]
        lr = torch.where(alive, self.lr, torch.zeros_like(self.lr))                      # (K,)
        with torch.no_grad():
            g = torch.where(alive.view(1, -1, 1, 1), grads[0], torch.zeros_like(grads[0]))
            self.W.sub_(g * lr.view(1, -1, 1, 1))
            lr_c, alive_c = lr.repeat_interleave(d), alive.repeat_interleave(d)           # (K d,)
            params = [p for norm in self.norms for p in (norm.weight, norm.bias)]
            for p, g in zip(params, grads[1:]):
                p.sub_(torch.where(alive_c, g, torch.zeros_like(g)) * lr_c)

    def materialise(self, k: int) -> None:
        """Member k's real network takes the stacked parameters and running statistics."""
        model = self.members[k].net.model
        d = self.W.shape[-1]
        with torch.no_grad():
            for i, (_, block) in enumerate(model.blocks()):
                block.linear.weight.copy_(self.W[i, k])
                if block.norm is not None:
                    for name in ("weight", "bias", "running_mean", "running_scale"):
                        getattr(block.norm, name).copy_(getattr(self.norms[i], name)[k * d:(k + 1) * d])


def train_stack(items: list, *, device: str = "cpu", on_done=None, stop_after: int = None) -> list:
    """Train (or continue) the runs of ``items`` = [(config, run_dir, resume)] together by the
    route of their norm (ROUTES: the moment route or the batched route).  Every config must be supported and share one ``stack_key`` and one start step.
    Returns one RunSummary per item, in order; ``on_done(index, summary)`` is called as each run
    ends (diverged runs leave the stack early).  ``stop_after``: as in run_training, a testing aid
    that 'dies' (SimulatedInterruption) when step ``stop_after`` is reached."""
    if not items:
        return []
    configs = [c for c, _, _ in items]
    bad = [c.norm for c in configs if not supports(c)]
    if bad:
        raise StackError(f"stacks train DLN-only presets with norm in {tuple(ROUTES)}; got {bad}")
    if len({stack_key(c) for c in configs}) != 1:
        raise StackError("stacked runs must share every setting except lr and seed")
    dev = resolve_device(device if device != "auto" else configs[0].device)
    route = f"{route_name(configs[0])}(K={len(items)})"
    members = []
    try:
        for c, d, r in items:
            members.append(_open(c, d, r, dev, route))
        if len({m.run.start for m in members}) != 1:
            raise StackError("stacked runs must resume from the same step")
    except BaseException:
        for m in members:
            if m.writer is not None:
                m.writer.close()
        raise
    if members[0].run.complete:           # every checkpoint is past the last step: nothing to do
        return [load_summary(m.run_dir) for m in members]
    order = {id(m): i for i, m in enumerate(members)}
    results = [None] * len(members)
    try:
        return _train(members, order, results, configs[0], dev, on_done, stop_after)
    finally:
        for m in members:
            m.writer.close()


def _train(members, order, results, cfg, dev, on_done, stop_after) -> list:
    start = members[0].run.start
    stack = (Stack if cfg.norm in MOMENT_NORMS else BatchedStack)(members)
    t_begin = time.perf_counter()
    for step in range(start, cfg.steps + 1):
        if stop_after is not None and step == stop_after:
            raise SimulatedInterruption(f"simulated interruption before step {step}")
        _hooks(stack, step, dev)
        if step == cfg.steps:
            for m in stack.members:
                m.next_step = step + 1
            break
        t0 = time.perf_counter()
        losses, grads, stats = stack.losses_and_grads(step)
        loss32 = losses.float()      # the value a float32 run records; inf beyond float32's range
        alive = torch.isfinite(loss32)
        stack.update(grads, stats, alive)          # a diverged network is not updated, as in run_training
        dt = (time.perf_counter() - t0) / len(stack.members)
        keep = []
        for k, m in enumerate(stack.members):
            loss = float(loss32[k])
            row = {"step": step, "network": "dln", "split": "train", "loss": loss, "accuracy": None,
                   "step_time_s": dt, "probe_time_s": m.probe_now}
            m.probe_now = 0.0
            m.writer.write(records.METRICS, [row])
            m.last["dln"] = row
            m.session["train_s"] += dt
            if math.isfinite(loss):
                keep.append(k)
                continue
            m.status = "diverged"
            m.next_step = step
            m.message = (f"training diverged: dln loss is {loss} at step {step} (norm {cfg.norm}); stopped "
                         f"before the update. Records up to step {step} are kept in {m.run_dir}")
        if len(keep) < len(stack.members):
            gone = [m for k, m in enumerate(stack.members) if k not in keep]
            if keep:
                stack.keep(keep)
            for m in gone:
                m.session["wall_s"] = (time.perf_counter() - t_begin) / len(members)   # its share
                results[order[id(m)]] = _finish(m, cfg, "diverged")
                if on_done:
                    on_done(order[id(m)], results[order[id(m)]])
            if not keep:
                break
        for m in stack.members:
            m.trained += 1
            m.next_step = step + 1
        nxt = step + 1
        if nxt % cfg.checkpoint_every == 0 or nxt == cfg.steps:
            _checkpoint(stack, nxt, t_begin)
    share = (time.perf_counter() - t_begin) / len(members)     # a member's share of the stack's wall time
    for m in stack.members:
        if results[order[id(m)]] is None:
            m.session["wall_s"] = share
            k = stack.members.index(m)
            stack.materialise(k)
            t0 = time.perf_counter()
            _seed(m.config.seed)
            save_checkpoint(os.path.join(m.run_dir, records.CHECKPOINT), m.config, cfg.steps + 1, [m.net], m.writer,
                  add_timing(m.run.timing, m.session))
            m.session["checkpoint_s"] += time.perf_counter() - t0
            results[order[id(m)]] = _finish(m, cfg, "complete")
            if on_done:
                on_done(order[id(m)], results[order[id(m)]])
    return results


def _hooks(stack, step: int, device) -> None:
    """Every hook due at ``step`` for each member, on its materialised real network."""
    for k, m in enumerate(stack.members):
        due = [h for h in m.hooks if h.due(step, m.net)]
        if not due:
            continue
        stack.materialise(k)
        _seed(m.config.seed)
        m.net.model.set_step(step)
        ctx = StepContext(step, m.net, *m.net.batch(step), m.config)
        m.probe_now = run_hooks(due, ctx, device, m.writer, m.session)


def _checkpoint(stack, next_step: int, t_begin: float) -> None:
    for k, m in enumerate(stack.members):
        t0 = time.perf_counter()
        stack.materialise(k)
        _seed(m.config.seed)
        m.session["wall_s"] = (t0 - t_begin) / len(stack.members)
        save_checkpoint(os.path.join(m.run_dir, records.CHECKPOINT), m.config, next_step, [m.net], m.writer,
              add_timing(m.run.timing, m.session))
        m.session["checkpoint_s"] += time.perf_counter() - t0


def _finish(m: Member, cfg: RunConfig, status: str) -> RunSummary:
    """Close the member's records and write its summary.json, as a separate run does."""
    m.status = status
    total = add_timing(m.run.timing, m.session)
    m.writer.write(records.EVENTS, [{"event": status, "step": m.next_step, "time": time.time()}])
    m.writer.close()
    return write_summary(m.run, status, m.message, m.next_step, m.trained, m.session, total, m.last)
