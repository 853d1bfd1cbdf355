"""Many deep linear networks at once, exactly: the moment route.

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
import warnings
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from gpu_check import checkpoint, records
from gpu_check.config import RunConfig, config_from_dict, resume_mismatches
from gpu_check.measure import cost_table
from gpu_check.train import (NetworkRun, RunSummary, SimulatedInterruption, StepContext, _add, _run_hooks, _save,
                             _summary, check_fresh_dir, default_hooks, load_summary, prepare_network, resolve_device,
                             run_metadata, summary_dict)

# The normalisations whose statistics are moments of the data (the moment route's domain).
MOMENT_NORMS = ("none", "bn", "l2")
# The others the vmap route stacks (noisy-bn draws its noise from a generator per network, layer
# and step, which a vmap over networks cannot express).
VMAP_NORMS = ("l1", "linf")
ROUTES = {**{n: "moments" for n in MOMENT_NORMS}, **{n: "stacked" for n in VMAP_NORMS}}
# The fewest points for which a stack beats separate runs (python -m gpu_check.bench, dln-paper, one
# thread: the moment route is on par at K = 1 and 3x faster at K = 4; the vmap route is 0.6-0.9x at
# K = 1 and 1.2x at K = 4).
MIN_STACK = {"moments": 1, "stacked": 4}
# float32's largest finite value: an eager run's float32 loss is inf beyond it, and the run then
# stops as diverged; the moment route's float64 loss is rounded to float32 for the same test.
FLOAT32_MAX = float(np.finfo(np.float32).max)


class StackError(ValueError):
    """Grid points that cannot be trained together by the moment route; the message says why."""


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
    """One grid point of a stack: its run, its live network and its records."""

    config: RunConfig
    run_dir: str
    net: NetworkRun
    hooks: list
    writer: records.RecordWriter = None
    timing: dict = field(default_factory=dict)      # accumulated over earlier invocations
    session: dict = field(default_factory=dict)     # this invocation
    start: int = 0
    resumed: bool = False
    status: str = "running"
    message: str = ""
    last: dict = field(default_factory=dict)
    trained: int = 0
    next_step: int = 0
    probe_now: float = 0.0                           # seconds probing at the current step


def _open(config: RunConfig, run_dir: str, resume: bool, device) -> Member:
    """The member's run directory opened as gpu_check.train.run_training opens a run."""
    os.makedirs(run_dir, exist_ok=True)
    ckpt = os.path.join(run_dir, records.CHECKPOINT)
    saved = None
    if resume:
        saved = checkpoint.load(ckpt)
        diffs = resume_mismatches(config_from_dict(saved["config"]), config)
        if diffs:
            raise checkpoint.CheckpointError(f"the configuration does not match the checkpoint in {run_dir}: "
                                             + "; ".join(diffs))
    else:
        check_fresh_dir(run_dir)
    _seed(config.seed)
    net = prepare_network(config, "dln", device)
    hooks = default_hooks(config)
    files = list(dict.fromkeys([records.METRICS, records.EVENTS] + [h.file for h in hooks]))
    timing = {"wall_s": 0.0, "train_s": 0.0, "checkpoint_s": 0.0, **{f"{h.name}_s": 0.0 for h in hooks}}
    member = Member(config, run_dir, net, hooks, timing=timing, session={k: 0.0 for k in timing})
    if saved is not None:
        records.truncate_records(run_dir, saved["file_sizes"])
        state = saved["networks"]["dln"]
        net.model.load_state_dict(state["model"])
        net.optimizer.load_state_dict(state["optimizer"])
        member.start, member.resumed = saved["next_step"], True
        timing.update({k: v for k, v in saved["timing"].items() if k in timing})
    else:
        records.atomic_write_json(os.path.join(run_dir, records.CONFIG), run_metadata(config, device, [net]))
    member.next_step = member.start
    member.writer = records.RecordWriter(run_dir, files)
    return member


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
                               dtype=torch.float32)                              # (K,)
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


class VmapStack:
    """K DLNs with an l_p norm: the real network's forward pass, vmapped over the stacked
    parameters and data of the K runs (torch.func), so that each operation runs once for all K.
    Same float32 arithmetic as a separate run, in a different summation order."""

    def __init__(self, members: list):
        self.members = members
        self.template = members[0].net.model
        params, bufs = torch.func.stack_module_state([m.net.model for m in members])
        self.params = {k: v.detach().clone() for k, v in params.items()}          # (K, ...) each
        self.bufs = {k: v.clone() for k, v in bufs.items()}
        self.X = torch.stack([m.net.inputs for m in members])                    # (K, n, d)
        self.T = torch.stack([m.net.targets for m in members])
        self.lr = torch.tensor([m.net.optimizer.param_groups[0]["lr"] for m in members], dtype=torch.float32)

    def keep(self, index: list) -> None:
        idx = torch.as_tensor(index, dtype=torch.long)
        self.members = [self.members[i] for i in index]
        self.params = {k: v[idx] for k, v in self.params.items()}
        self.bufs = {k: v[idx] for k, v in self.bufs.items()}
        self.X, self.T, self.lr = self.X[idx], self.T[idx], self.lr[idx]

    def _loss(self, params, bufs, x, t):
        return self.template.loss(torch.func.functional_call(self.template, (params, bufs), (x,)), t)

    def losses_and_grads(self, step: int):
        """(K,) losses and gradients; the forward pass updates the stacked running statistics,
        as each network's own forward pass does in a separate run."""
        leaves = {k: v.requires_grad_(True) for k, v in self.params.items()}
        self.template.set_step(step)
        with warnings.catch_warnings():
            # torch has no batching rule for lerp_ (the running statistics' update): it loops over
            # the K networks, correctly, and says so once per call site
            warnings.filterwarnings("ignore", message=".*not yet implemented the batching rule for aten::lerp_",
                                    category=UserWarning)
            loss = torch.func.vmap(self._loss)(leaves, self.bufs, self.X, self.T)
        grads = torch.autograd.grad(loss.sum(), list(leaves.values()))
        for v in leaves.values():
            v.requires_grad_(False)
        return loss.detach().double(), list(grads), None

    def update(self, grads, stats, alive) -> None:
        lr = torch.where(alive, self.lr, torch.zeros_like(self.lr))
        with torch.no_grad():
            for (name, p), g in zip(self.params.items(), grads):
                g = torch.where(alive.view((-1,) + (1,) * (g.dim() - 1)), g, torch.zeros_like(g))
                p.sub_(g * lr.view((-1,) + (1,) * (g.dim() - 1)))

    def materialise(self, k: int) -> None:
        model = self.members[k].net.model
        with torch.no_grad():
            for name, v in self.params.items():
                model.get_parameter(name).copy_(v[k])
            for name, v in self.bufs.items():
                model.get_buffer(name).copy_(v[k])


def train_stack(items: list, *, device: str = "cpu", on_done=None, stop_after: int = None) -> list:
    """Train (or continue) the runs of ``items`` = [(config, run_dir, resume)] together by the
    moment route.  Every config must be supported and share one ``stack_key`` and one start step.
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
    if dev.type == "cpu":         # process-wide, as in a separate run
        torch.set_num_threads(configs[0].cpu_threads)
    members = [_open(c, d, r, dev) for c, d, r in items]
    order = {id(m): i for i, m in enumerate(members)}
    if len({m.start for m in members}) != 1:
        raise StackError("stacked runs must resume from the same step")
    cfg, start = configs[0], members[0].start
    results = [None] * len(members)
    if start > cfg.steps:
        for i, m in enumerate(members):
            results[i] = _finish(m, cfg, "complete", already=True)
        return results
    git = records.git_revision()
    for m in members:
        m.writer.write(records.EVENTS, [{"event": "resume" if m.resumed else "start", "step": m.start,
                                         "time": time.time(), "git": git,
                                         "device": records.device_description(dev),
                                         "route": f"{route_name(cfg)}(K={len(members)})"}])
    try:
        return _train(members, order, results, cfg, dev, on_done, stop_after)
    finally:
        for m in members:
            m.writer.close()


def _train(members, order, results, cfg, dev, on_done, stop_after) -> list:
    start = members[0].start
    stack = (Stack if cfg.norm in MOMENT_NORMS else VmapStack)(members)
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
            _save(os.path.join(m.run_dir, records.CHECKPOINT), m.config, cfg.steps + 1, [m.net], m.writer,
                  _add(m.timing, m.session))
            m.session["checkpoint_s"] += time.perf_counter() - t0
            results[order[id(m)]] = _finish(m, cfg, "complete")
            if on_done:
                on_done(order[id(m)], results[order[id(m)]])
    return results


def _hooks(stack: Stack, step: int, device) -> None:
    """Every hook due at ``step`` for each member, on its materialised real network."""
    for k, m in enumerate(stack.members):
        due = [h for h in m.hooks if h.due(step, m.net)]
        if not due:
            continue
        stack.materialise(k)
        _seed(m.config.seed)
        m.net.model.set_step(step)
        ctx = StepContext(step, m.net, *m.net.batch(step), m.config)
        m.probe_now = _run_hooks(due, ctx, device, m.writer, m.session)


def _checkpoint(stack: Stack, next_step: int, t_begin: float) -> None:
    for k, m in enumerate(stack.members):
        t0 = time.perf_counter()
        stack.materialise(k)
        _seed(m.config.seed)
        m.session["wall_s"] = (t0 - t_begin) / len(stack.members)
        _save(os.path.join(m.run_dir, records.CHECKPOINT), m.config, next_step, [m.net], m.writer,
              _add(m.timing, m.session))
        m.session["checkpoint_s"] += time.perf_counter() - t0


def _finish(m: Member, cfg: RunConfig, status: str, already: bool = False) -> RunSummary:
    """Close the member's records and write its summary.json, as a separate run does."""
    if already:
        m.writer.close()
        return load_summary(m.run_dir)
    m.status = status
    total = _add(m.timing, m.session)
    m.writer.write(records.EVENTS, [{"event": status, "step": m.next_step, "time": time.time()}])
    m.writer.close()
    summary = _summary(cfg, status, m.message, m.next_step, m.trained, m.session, total, m.last, [m.net])
    summary = replace(summary, measure_cost=cost_table(m.hooks, m.session["train_s"], m.trained,
                                                       m.session["wall_s"]))
    records.atomic_write_json(os.path.join(m.run_dir, records.SUMMARY), summary_dict(summary))
    return summary
