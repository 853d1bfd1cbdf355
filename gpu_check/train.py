"""The training loop, with optional per-step hooks.

A run advances every network of the configuration by one step per step index.  At step t,
for each network:

    1. hooks due at t run on the parameters theta_t and the batch of step t (probes,
       evaluation; later ICS, loss landscape, activation histograms), each appending its
       records to its own file; they run under a saved-and-restored RNG state, so they never
       change the trajectory;
    2. the training update: forward, loss, backward, SGD step; one metrics record.

After the last step the hooks run once more at t = steps on the final parameters.  Checkpoints
are written after every ``checkpoint_every`` updates.  A non-finite loss stops the run before
its update, with a clear message; everything written so far is kept.

A hook is any object with ``name``, ``file`` (the record file it appends to), ``due(step,
network)`` and ``__call__(ctx) -> list of records``; see ProbeHook and EvalHook.
"""
from __future__ import annotations

import math
import os
import random
import sys
import time
from dataclasses import dataclass, field, replace
from typing import Optional, Protocol

import numpy as np
import torch

from gpu_check import checkpoint, data, records
from gpu_check.config import (BATCHNORM_KINDS, RunConfig, config_from_dict, config_to_dict,
                              resume_mismatches)
from gpu_check.measure import cost_table, describe_costs, measurement_hooks
from gpu_check.models import NETWORK_INDEX, Network, build_model
from gpu_check.probes import describe_model, preserved_rng
from gpu_check.probing import Probe


# The share of a run's wall time its probes may take (issue 14's target at the presets' probe
# intervals); a run over it says so in its summary.
PROBE_BUDGET = 0.05


class RunError(ValueError):
    """The run cannot start: an occupied output directory, a checkpoint that does not match."""


class SimulatedInterruption(RuntimeError):
    """Raised by ``stop_after`` (tests and --stop-after): the process 'dies' at that step."""


# ---------------------------------------------------------------------------------------------
# Networks of a run
# ---------------------------------------------------------------------------------------------

@dataclass
class NetworkRun:
    """The live state of one network in a run (mutable by nature: it trains)."""

    name: str
    model: Network
    optimizer: torch.optim.Optimizer
    dataset: str
    inputs: torch.Tensor           # the whole training set on the device
    targets: torch.Tensor
    order: object                  # data.BatchOrder, or None for full-batch training
    test: tuple = ()               # (x_test, y_test) on the device, or ()

    def batch(self, step: int) -> tuple:
        if self.order is None:
            return self.inputs, self.targets
        idx = torch.as_tensor(self.order.indices(step), device=self.inputs.device)
        return self.inputs[idx], self.targets[idx]

    def data_order(self, step: int) -> dict:
        return {"full_batch": True} if self.order is None else self.order.state(step)


def resolve_device(requested: str) -> torch.device:
    """The device of a run.  On CUDA, TF32 is switched off for matrix products and convolutions:
    the measurements of Sections 2-3 are differences of gradients and losses (ICS, gradient
    predictiveness, loss ranges) that TF32's 10-bit mantissa would round away, and a run must
    compute in the float32 it records (torch's default keeps TF32 on for cuDNN convolutions)."""
    if requested == "auto":
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda" and not torch.cuda.is_available():
        raise RunError("--device cuda: no CUDA device is available (torch.cuda.is_available() is False)")
    if requested == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    return torch.device(requested)


def prepare_network(config: RunConfig, name: str, device: torch.device) -> NetworkRun:
    model = build_model(config, name).to(device)
    model.train()
    if name == "dln":
        d = data.dln_data(config.seed, config.dln.n_samples, config.dln.width)
        opt = torch.optim.SGD(model.parameters(), lr=config.dln.lr)       # full-batch GD
        return NetworkRun(name, model, opt, d.name, torch.from_numpy(d.x).to(device),
                          torch.from_numpy(d.target).to(device), None)
    v = config.vgg
    d = data.image_data(config.seed, config.data, v.n_train, v.n_test, v.image_size)
    opt = torch.optim.SGD(model.parameters(), lr=v.lr)
    return NetworkRun(name, model, opt, d.name, torch.from_numpy(d.x_train).to(device),
                      torch.from_numpy(d.y_train).to(device),
                      data.BatchOrder(config.seed, v.n_train, v.batch_size),
                      (torch.from_numpy(d.x_test).to(device), torch.from_numpy(d.y_test).to(device)))


# ---------------------------------------------------------------------------------------------
# Hooks
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class StepContext:
    step: int
    net: NetworkRun
    inputs: torch.Tensor
    target: torch.Tensor
    config: RunConfig


class Hook(Protocol):
    """An optional measurement made at some steps, before that step's update.

    ``name`` keys its timing in the summary (``{name}_s``); ``file`` is the jsonl file of the
    run directory its records are appended to (it is truncated on resume like the others).
    It must not change the model, the optimiser or the data order; RNG draws it makes are
    undone by the loop.  A measurement that needs theta_{t+1} (e.g. G' of Definition 2.1)
    makes its own copy and update inside the call.
    """

    name: str
    file: str

    def due(self, step: int, net: NetworkRun) -> bool: ...

    def __call__(self, ctx: StepContext) -> list: ...


class ProbeHook:
    """The statements of the registry on the real network: the attach API's Probe (the one probe
    path, gpu_check.probing), whose records this loop writes."""

    name, file = "probes", records.PROBES

    def __init__(self, config: RunConfig):
        self.config = config
        self.enabled = config.norm in BATCHNORM_KINDS and config.probe_every > 0
        self.probes = {}

    def probe(self, net: NetworkRun) -> Probe:
        if net.name not in self.probes:
            self.probes[net.name] = probe_of(self.config, net.name, net.model)
        return self.probes[net.name]

    def due(self, step: int, net: NetworkRun) -> bool:
        return self.enabled and (step % self.config.probe_every == 0 or step == self.config.steps)

    def __call__(self, ctx: StepContext) -> list:
        return self.probe(ctx.net).measure(ctx.step, lambda m: m.loss(m(ctx.inputs), ctx.target))

    def events(self, ctx: StepContext) -> list:
        """The events log's account of the probe just made: how its Hessian forms were computed,
        and the chain sweep's check against Hessian-vector products (gpu_check.probes)."""
        return [self.probe(ctx.net).event(ctx.step) | {"network": ctx.net.name}]


def probe_of(config: RunConfig, network: str, model: Network) -> Probe:
    """The Probe of one network of a run: layers named as norm_blocks() names them ('fc01',
    'conv03'; records say 'dln/fc01'), the run's channel count, seed and probe dtype."""
    return Probe(model, None, every=config.probe_every, channels=config.probe_channels, seed=config.seed,
                 network=network, names={block.norm: name for name, block in model.norm_blocks()},
                 stream=NETWORK_INDEX[network],
                 dtype=torch.float64 if config.probe_dtype == "float64" else torch.float32)


class EvalHook:
    """Test loss and accuracy of the VGG in evaluation mode (running statistics, no noise)."""

    name, file = "eval", records.METRICS
    batch = 1000

    def __init__(self, config: RunConfig):
        self.config = config

    def due(self, step: int, net: NetworkRun) -> bool:
        return bool(net.test) and (step % self.config.vgg.eval_every == 0 or step == self.config.steps)

    def __call__(self, ctx: StepContext) -> list:
        model, (x, y) = ctx.net.model, ctx.net.test
        model.eval()
        loss, correct = 0.0, 0
        try:
            with torch.no_grad():
                for s in range(0, len(y), self.batch):
                    out = model(x[s:s + self.batch])
                    loss += float(torch.nn.functional.cross_entropy(out, y[s:s + self.batch], reduction="sum"))
                    correct += int(model.correct(out, y[s:s + self.batch]))
        finally:
            model.train()
        return [{"step": ctx.step, "network": ctx.net.name, "split": "test",
                 "loss": loss / len(y), "accuracy": correct / len(y)}]


def default_hooks(config: RunConfig) -> list:
    """Probes, evaluation, and the measurements named in ``config.measure`` (gpu_check.measure)."""
    return [ProbeHook(config), EvalHook(config)] + measurement_hooks(config)


# ---------------------------------------------------------------------------------------------
# The loop
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class RunSummary:
    status: str                  # 'complete' | 'diverged'
    next_step: int
    steps: int
    wall_s: float                # this invocation, first step to end
    train_s: float
    hook_s: dict
    checkpoint_s: float
    probe_share: float           # probe seconds / wall seconds
    steps_per_s: float           # training steps (all networks advanced once) per wall second
    probe_every: int
    final: dict                  # network -> last train record
    datasets: dict
    message: str = ""
    cumulative: dict = field(default_factory=dict)   # the same timings over all invocations
    measure_cost: dict = field(default_factory=dict)  # gpu_check.measure.cost_table of this invocation


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def train_step(net: NetworkRun, inputs, target) -> tuple:
    """One SGD update unless the loss is not finite.  Returns (loss, correct or None, finite)."""
    net.optimizer.zero_grad(set_to_none=True)
    out = net.model(inputs)
    loss = net.model.loss(out, target)
    value = float(loss.detach())
    if not math.isfinite(value):
        return value, None, False
    loss.backward()
    net.optimizer.step()
    correct = net.model.correct(out.detach(), target)
    return value, None if correct is None else int(correct), True


def check_fresh_dir(run_dir: str) -> None:
    occupied = records.occupied_by(run_dir)
    if occupied:
        raise RunError(f"{run_dir} already holds a run ({', '.join(occupied)}): pass --resume to continue "
                       "it, or choose a new --out")


def check_run_config(run_dir: str) -> None:
    """The config.json a resumed run continues: present and a run's config, else RunError naming it
    (a resume over a missing or corrupt one leaves a run every other tool rejects)."""
    try:
        records.read_run_meta(run_dir)
    except records.RunConfigError as err:
        raise RunError(f"cannot resume: {err}") from None


@dataclass
class OpenRun:
    """A run directory opened for training: what run_training and gpu_check.fast_dln's stacks
    start from (``open_run``)."""

    config: RunConfig
    run_dir: str
    nets: list                      # NetworkRun per network of the config, restored on resume
    hooks: list
    writer: Optional[records.RecordWriter]     # None when ``complete``
    timing: dict                    # seconds accumulated over earlier invocations
    start: int                      # the first step this invocation trains
    resumed: bool
    complete: bool = False          # the checkpoint is past the last step: nothing to do


def open_run(config: RunConfig, run_dir: str, device: torch.device, *, resume: bool = False, hooks=None,
             log=None, route: Optional[str] = None) -> OpenRun:
    """Open ``run_dir`` for ``config``: check it (a fresh directory, or a checkpoint of this
    config), seed the process's RNGs, build the networks and their hooks, restore a checkpoint's
    state and RNGs and truncate the records to it, write config.json (fresh runs), open the
    record files and write the 'start' / 'resume' event (with ``route`` when given).  A resume of
    a run killed before its first checkpoint starts afresh (its files are removed)."""
    log = log or (lambda msg: print(msg, file=sys.stderr))
    os.makedirs(run_dir, exist_ok=True)
    ckpt_path = os.path.join(run_dir, records.CHECKPOINT)
    saved = None
    if resume and not os.path.lexists(ckpt_path) and os.path.isfile(os.path.join(run_dir, records.CONFIG)):
        # a run killed before its first checkpoint (its config.json is written first): nothing to
        # resume, so it starts again; a directory that never held a run stays an error (load below)
        log(f"{run_dir}: no checkpoint yet (the run stopped before its first one): starting from step 0")
        # the dead start's files: its config and records (appended to, so they must go)
        for name in os.listdir(run_dir):
            if name in (records.CONFIG, records.SUMMARY) or name.endswith(".jsonl"):
                os.remove(os.path.join(run_dir, name))
        resume = False
    if resume:
        saved = checkpoint.load(ckpt_path)
        check_run_config(run_dir)
        diffs = resume_mismatches(config_from_dict(saved["config"]), config)
        if diffs:
            raise checkpoint.CheckpointError("the configuration does not match the checkpoint in "
                                             f"{run_dir}: " + "; ".join(diffs))
        if saved["next_step"] > config.steps:
            log(f"{run_dir}: the run is already complete ({config.steps} steps); nothing to do")
            return OpenRun(config, run_dir, [], [], None, dict(saved["timing"]), saved["next_step"], True, True)
    else:
        check_fresh_dir(run_dir)

    if device.type == "cpu":      # process-wide, like the seeds below: a run owns its process
        torch.set_num_threads(config.cpu_threads)
    torch.manual_seed(config.seed)
    np.random.seed(config.seed)
    random.seed(config.seed)
    nets = [prepare_network(config, name, device) for name in config.networks()]
    hooks = default_hooks(config) if hooks is None else hooks
    files = [records.METRICS, records.EVENTS] + [h.file for h in hooks if h.file not in (records.METRICS,)]
    files = list(dict.fromkeys(files))
    timing = {"wall_s": 0.0, "train_s": 0.0, "checkpoint_s": 0.0, **{f"{h.name}_s": 0.0 for h in hooks}}

    if saved is not None:
        try:
            records.truncate_records(run_dir, saved["file_sizes"])
        except ValueError as err:       # a record file cut below what the checkpoint saw
            raise RunError(f"cannot resume: {err}") from None
        for net in nets:
            state = saved["networks"][net.name]
            net.model.load_state_dict(state["model"])
            net.optimizer.load_state_dict(state["optimizer"])
            _check_data_order(net, state["data_order"], min(saved["next_step"], config.steps))
        checkpoint.set_rng_states(saved["rng"])
        start = saved["next_step"]
        timing.update({k: v for k, v in saved["timing"].items() if k in timing})
    else:
        start = 0
        records.atomic_write_json(os.path.join(run_dir, records.CONFIG), run_metadata(config, device, nets))

    writer = records.RecordWriter(run_dir, files)
    event = {"event": "resume" if saved else "start", "step": start, "time": time.time(),
             "git": records.git_revision(), "device": records.device_description(device)}
    writer.write(records.EVENTS, [event if route is None else {**event, "route": route}])
    return OpenRun(config, run_dir, nets, hooks, writer, timing, start, saved is not None)


def run_training(config: RunConfig, run_dir: str, *, resume: bool = False, hooks=None,
                 progress: bool = True, stop_after: int = None, log=None) -> RunSummary:
    """Train (or continue) the run of ``config`` in ``run_dir``; see the module docstring."""
    log = log or (lambda msg: print(msg, file=sys.stderr))
    device = resolve_device(config.device)
    run = open_run(config, run_dir, device, resume=resume, hooks=hooks, log=log)
    if run.complete:
        return load_summary(run_dir)
    nets, hooks, writer, timing, start = run.nets, run.hooks, run.writer, run.timing, run.start
    ckpt_path = os.path.join(run_dir, records.CHECKPOINT)
    session = {k: 0.0 for k in timing}
    last, trained, next_step = {}, 0, start
    status, message = "complete", ""
    bar = _progress_bar(config, start, progress)
    t_begin = time.perf_counter()
    try:
        for step in range(start, config.steps + 1):
            if stop_after is not None and step == stop_after:
                raise SimulatedInterruption(f"simulated interruption before step {step}")
            for net in nets:
                ctx = StepContext(step, net, *net.batch(step), config)
                net.model.set_step(step)
                probe_time = run_hooks(hooks, ctx, device, writer, session)
                if step == config.steps:            # the final parameters: hooks only
                    next_step = step + 1
                    continue
                row = _train_and_record(ctx, device, writer, session, probe_time)
                last[net.name] = row
                if not math.isfinite(row["loss"]):
                    status = "diverged"
                    message = (f"training diverged: {net.name} loss is {row['loss']} at step {step} "
                               f"(norm {config.norm}); stopped before the update. Records up to step "
                               f"{step} are kept in {run_dir}")
                    break
            if status != "complete":
                next_step = step
                break
            if step < config.steps:
                trained, next_step = trained + 1, step + 1
                bar.update(1)
                if trained == 1:
                    _restart_clock(bar)     # the first step carries the step-0 probe: not a rate
                if step % 25 == 0:
                    bar.set_postfix({n: f"{r['loss']:.4g}" for n, r in last.items()}, refresh=False)
                if next_step % config.checkpoint_every == 0 or next_step == config.steps:
                    t0 = time.perf_counter()
                    session["wall_s"] = t0 - t_begin
                    save_checkpoint(ckpt_path, config, next_step, nets, writer, add_timing(timing, session))
                    session["checkpoint_s"] += time.perf_counter() - t0
        session["wall_s"] = time.perf_counter() - t_begin
        total = add_timing(timing, session)
        if status == "complete":
            t0 = time.perf_counter()
            save_checkpoint(ckpt_path, config, config.steps + 1, nets, writer, total)   # hooks at t = steps done
            session["checkpoint_s"] += time.perf_counter() - t0
        writer.write(records.EVENTS, [{"event": status, "step": next_step, "time": time.time()}])
    except KeyboardInterrupt:
        # Ctrl-C: the records end at the last whole line; --resume continues from the checkpoint
        writer.write(records.EVENTS, [{"event": "interrupted", "step": next_step, "time": time.time()}])
        raise
    finally:
        bar.close()
        writer.close()
    return write_summary(run, status, message, next_step, trained, session, total, last)


def run_hooks(hooks, ctx: StepContext, device, writer, session: dict) -> float:
    """Every hook due at this step, under a preserved RNG; returns the seconds spent probing."""
    probe_time = 0.0
    for hook in hooks:
        if not hook.due(ctx.step, ctx.net):
            continue
        _sync(device)
        t0 = time.perf_counter()
        with preserved_rng([device]):
            rows = hook(ctx)
        _sync(device)
        dt = time.perf_counter() - t0
        session[f"{hook.name}_s"] += dt
        probe_time += dt if hook.name == "probes" else 0.0
        writer.write(hook.file, rows)
        if hasattr(hook, "events"):
            writer.write(records.EVENTS, hook.events(ctx))
    return probe_time


def _train_and_record(ctx: StepContext, device, writer, session: dict, probe_time: float) -> dict:
    t0 = time.perf_counter()
    loss, correct, _ = train_step(ctx.net, ctx.inputs, ctx.target)
    _sync(device)
    dt = time.perf_counter() - t0
    session["train_s"] += dt
    row = {"step": ctx.step, "network": ctx.net.name, "split": "train", "loss": loss,
           "accuracy": None if correct is None else correct / len(ctx.target),
           "step_time_s": dt, "probe_time_s": probe_time}
    writer.write(records.METRICS, [row])
    return row


def add_timing(a: dict, b: dict) -> dict:
    return {k: a.get(k, 0.0) + b.get(k, 0.0) for k in set(a) | set(b)}


def save_checkpoint(path, config, next_step, nets, writer, timing):
    checkpoint.save(path, config=config_to_dict(config), next_step=next_step,
                    networks={n.name: {"model": n.model.state_dict(), "optimizer": n.optimizer.state_dict(),
                                       "data_order": n.data_order(min(next_step, config.steps))}
                              for n in nets},
                    file_sizes=writer.sizes(), timing=timing)


def _check_data_order(net: NetworkRun, saved: dict, step: int) -> None:
    """The data order is a function of (seed, step); the saved one must agree with it."""
    now = net.data_order(step)
    same = all((np.array_equal(np.asarray(saved[k]), np.asarray(v)) if k in saved else False)
               for k, v in now.items())
    if not same:
        raise checkpoint.CheckpointError(f"the checkpoint's data order for {net.name} at step {step} differs "
                                         "from the one this code generates: the data code or seed changed")


def _restart_clock(bar) -> None:
    """Time the bar's rate and ETA from now on: the steps so far stay counted, their time is not
    (the first step of an invocation also pays for the step-0 probes and warm-up, ~100x a step)."""
    if bar.disable:
        return
    n = bar.n
    bar.reset()
    bar.initial = bar.n = bar.last_print_n = n
    bar.refresh()


def _progress_bar(config: RunConfig, start: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=config.steps, initial=start, file=sys.stderr, disable=not enabled,
                desc=f"{config.preset}/{config.norm}", unit="step", dynamic_ncols=True)


def write_summary(run: OpenRun, status: str, message: str, next_step: int, trained: int, session: dict,
                  total: dict, last: dict) -> RunSummary:
    """The run's summary (this invocation's ``session`` timings, the ``total`` over all, the
    measurements' cost table), written to summary.json and returned."""
    summary = _summary(run.config, status, message, next_step, trained, session, total, last, run.nets)
    summary = replace(summary, measure_cost=cost_table(run.hooks, session["train_s"], trained, session["wall_s"]))
    records.atomic_write_json(os.path.join(run.run_dir, records.SUMMARY), summary_dict(summary))
    return summary


def _summary(config, status, message, next_step, trained, session, total, last, nets) -> RunSummary:
    wall = session["wall_s"]
    return RunSummary(
        status=status, next_step=next_step, steps=config.steps, wall_s=wall,
        train_s=session["train_s"],
        hook_s={k[:-2]: v for k, v in session.items() if k not in ("wall_s", "train_s", "checkpoint_s")},
        checkpoint_s=session["checkpoint_s"],
        probe_share=session.get("probes_s", 0.0) / wall if wall > 0 else 0.0,
        steps_per_s=trained / wall if wall > 0 else 0.0, probe_every=config.probe_every,
        final=last, datasets={n.name: n.dataset for n in nets}, message=message,
        cumulative={**total, "probe_share": total.get("probes_s", 0.0) / total["wall_s"] if total.get("wall_s") else 0.0})


def summary_dict(s: RunSummary) -> dict:
    from dataclasses import asdict

    return asdict(s)


def load_summary(run_dir: str) -> RunSummary:
    import json

    with open(os.path.join(run_dir, records.SUMMARY), encoding="utf-8") as f:
        return RunSummary(**json.load(f))


def describe(s: RunSummary) -> str:
    """The run summary, as printed at the end of a run."""
    lines = [f"status: {s.status} ({s.steps} of {s.steps} steps)" if s.status == "complete" else
             f"status: {s.status} at step {min(s.next_step, s.steps)} of {s.steps}"]
    for name, dataset in s.datasets.items():
        last = s.final.get(name, {})
        acc = last.get("accuracy")
        lines.append(f"  {name}: data {dataset}; last train loss {last.get('loss')}"
                     + (f", accuracy {acc:.3f}" if isinstance(acc, float) else ""))
    hooks = ", ".join(f"{k} {v:.2f} s" for k, v in s.hook_s.items())
    lines.append(f"  time: {s.wall_s:.2f} s wall, {s.train_s:.2f} s training, {hooks}, "
                 f"checkpoints {s.checkpoint_s:.2f} s; {s.steps_per_s:.2f} steps/s")
    lines.append(f"  probe share: {100 * s.probe_share:.1f}% of this run's wall time "
                 f"(probe every {s.probe_every} steps; budget {100 * PROBE_BUDGET:.0f}%)"
                 + ("" if s.probe_share <= PROBE_BUDGET else f"  -- OVER the {100 * PROBE_BUDGET:.0f}% budget"))
    lines += describe_costs(s.measure_cost)
    if s.message:
        lines.append(s.message)
    return "\n".join(lines)


def run_metadata(config: RunConfig, device: torch.device, nets) -> dict:
    """config.json: everything needed to trace a result back to its code and rerun it."""
    return {**records.provenance(device), "config": config_to_dict(config), "seed": config.seed,
            "models": {n.name: describe_model(n.model) for n in nets},
            "datasets": {n.name: n.dataset for n in nets},
            "torch_threads": torch.get_num_threads()}
