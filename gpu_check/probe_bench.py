"""Benchmark: what a probe costs, per BatchNorm layer and channel, and its share of a run.

    python -m gpu_check.probe_bench [--models dln-paper vgg-cpu resnet] [--repeats 3] [--json]
                                    [--run PRESET --out DIR]

For each model, measured in this process on one torch thread (as the runs train):

* ``step_s``: one training step (forward, loss, backward, SGD update);
* ``probe_s``: one probe (gpu_check.probing.Probe.measure: the float64 shadow, hooks, every
  Hessian form, lambda, the registry);
  both medians over ``--repeats`` rounds of STEP_SAMPLES steps and one probe, so that they share
  the machine's load of the moment;
* ``hessian``: how the probe computed its Hessian forms (the chain sweep, or Hessian-vector
  products and why) and, for a sweep, ``products_s``: the same probe by Hessian-vector products
  (the strongest alternative, which any model can take), timed in the same rounds, and the ratio;
* ``per_layer_channel_s`` = probe_s / (sites x channels), and per BatchNorm layer the seconds
  per probed channel of its Hessian-vector products and lambda (``per_site_channel_s``: the
  layers near the input cost the most, their products run through the whole network);
* ``share`` = probe time / run time of the preset's schedule (probes at every ``probe_every``
  steps and at the last), estimated from the two measured times:
  n_probes probe_s / (steps step_s + n_probes probe_s);
* what the runs' budget (gpu_check.train.PROBE_BUDGET, 5%) asks of the same two times:
  ``probe_s_within_budget``, the longest probe that keeps the preset's schedule within it, and
  ``every_within_budget``, the shortest probe interval that keeps today's probe within it (None
  when even probes at the first and last step alone exceed it).

``dln-paper`` and ``vgg-cpu`` are the presets' networks at their probe intervals and channel
counts; ``resnet`` is a ResNet-style CIFAR network (BatchNorm2d after bias-free convolutions,
three residual stages, 64 random 16 x 16 images a step) built here, probed on vgg-cpu's
schedule.  ``--run PRESET --out DIR``
also trains the preset for real and reports the probe share its summary measured.

The estimate leaves out checkpoints and evaluation (a real run's share is a little lower) and
depends on the load: a loaded CPU slows the many small ops of a training step more than a
probe's larger ones.  ``--run`` measures the real thing.  The machine and its load average are
printed with the results.
"""
from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from typing import Optional

import numpy as np

import torch
import torch.nn as nn
import torch.nn.functional as F

from gpu_check.config import PRESETS, ConfigError, preset
from gpu_check.probes import ProbeError
from gpu_check.train import PROBE_BUDGET
from theory import cli

MODELS = ("dln-paper", "vgg-cpu", "resnet")
STEP_SAMPLES = 20
# The ResNet-style model's batch: 64 images of 16 x 16 (a probe of it at 32 x 32 and batch 128
# takes about 90 s on this project's loaded 2-core CPU; the cost per site scales with m).
RESNET_BATCH, RESNET_SIDE = 64, 16


@dataclass(frozen=True)
class ProbeCost:
    model: str
    sites: int
    channels: int
    step_s: float
    probe_s: float
    per_layer_channel_s: float
    probes_per_run: int
    steps: int
    share: float
    per_site_channel_s: dict     # layer -> its seconds per probed channel (last probe)
    probe_s_within_budget: float       # the longest probe that keeps this schedule within the budget
    every_within_budget: Optional[int]  # the shortest interval that keeps this probe within it
    hessian: str = ""                  # how the probe computed its Hessian forms (and why)
    products_s: Optional[float] = None  # the same probe by Hessian-vector products, in the same rounds
                                        # (None where the probe takes them anyway)


class ResNetStyle(nn.Module):
    """A CIFAR ResNet in miniature: a stem and three stages of two basic blocks (widths 8, 16,
    32; stride 2 between stages, 1x1 projection shortcuts), BatchNorm2d after every bias-free
    convolution, global average pooling, a linear classifier."""

    def __init__(self, widths=(8, 16, 32), classes=10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, widths[0], 3, padding=1, bias=False), nn.BatchNorm2d(widths[0]), nn.ReLU())
        blocks, c = [], widths[0]
        for i, w in enumerate(widths):
            for b in range(2):
                blocks.append(BasicBlock(c, w, stride=2 if (b == 0 and i > 0) else 1))
                c = w
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Linear(c, classes)

    def forward(self, x):
        return self.head(self.blocks(self.stem(x)).mean((2, 3)))


class BasicBlock(nn.Module):
    def __init__(self, c_in, c_out, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.short = nn.Identity() if stride == 1 and c_in == c_out else \
            nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x):
        h = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(h)) + self.short(x))


def _setup(name: str):
    """(model, optimiser, x, t, loss_fn, probe, schedule preset) of one benchmarked model."""
    from gpu_check.train import prepare_network, probe_of

    if name == "resnet":
        config = preset("vgg-cpu")
        gen = torch.Generator().manual_seed(0)
        model = ResNetStyle().train()
        x = torch.randn(RESNET_BATCH, 3, RESNET_SIDE, RESNET_SIDE, generator=gen)
        t = torch.randint(0, 10, (RESNET_BATCH,), generator=gen)
        opt = torch.optim.SGD(model.parameters(), lr=config.vgg.lr)
        from gpu_check.probing import Probe
        probe = Probe(model, None, every=config.probe_every, channels=config.probe_channels, seed=config.seed)
        return model, opt, x, t, F.cross_entropy, probe, config
    config = preset(name)
    network = config.networks()[0]
    net = prepare_network(config, network, torch.device("cpu"))
    x, t = net.batch(0)
    return net.model, net.optimizer, x, t, net.model.loss, probe_of(config, network, net.model), config


def probes_per_run(steps: int, every):
    """Probes of a run of ``steps`` steps that probes at every ``every`` steps and at the last
    (gpu_check.train's schedule: steps 0, every, 2 every, ... and ``steps``); ``every`` may be an
    array of intervals."""
    return steps // every + 1 + (steps % every != 0)


def estimated_share(steps: int, step_s: float, probe_s: float, n_probes):
    """The probes' share of a run's time: n_probes probe_s / (steps step_s + n_probes probe_s)."""
    return n_probes * probe_s / (steps * step_s + n_probes * probe_s)


def probe_seconds_within(budget: float, steps: int, step_s: float, n_probes: int) -> float:
    """The longest probe whose ``n_probes`` probes keep the share within ``budget``:
    n p / (S s + n p) <= b  <=>  p <= b / (1 - b) S s / n."""
    return budget / (1 - budget) * steps * step_s / n_probes


def interval_within(budget: float, steps: int, step_s: float, probe_s: float) -> Optional[int]:
    """The shortest probe interval (1 .. steps) whose schedule keeps the share within ``budget``,
    or None when none does (the first and last probe alone exceed it)."""
    every = np.arange(1, steps + 1)
    within = np.flatnonzero(estimated_share(steps, step_s, probe_s, probes_per_run(steps, every)) <= budget)
    return int(every[within[0]]) if within.size else None


def measure_cost(name: str, repeats: int) -> ProbeCost:
    """``repeats`` rounds, each STEP_SAMPLES training steps then one probe, so both times see the
    machine's load of the same moment; medians over the rounds, after one warm-up round."""
    model, opt, x, t, loss_fn, probe, config = _setup(name)

    def train_step():
        opt.zero_grad(set_to_none=True)
        loss_fn(model(x), t).backward()
        opt.step()

    closure = lambda m: loss_fn(m(x), t)  # noqa: E731
    train_step()
    probe.measure(0, closure)                                              # warm-up
    hessian = probe.core.hessian_method
    sweeps = hessian == "chain sweep"
    step_times, probe_times, product_times = [], [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(STEP_SAMPLES):
            train_step()
        step_times.append((time.perf_counter() - t0) / STEP_SAMPLES)
        probe.measure(0, closure)
        probe_times.append(probe.last_seconds)
        if sweeps:                      # the strongest alternative, at the same moment's load
            probe.core.chain_sweep = False
            probe.measure(0, closure)
            probe.core.chain_sweep = True
            product_times.append(probe.last_seconds)
    if sweeps:
        probe.measure(0, closure)       # the per-site seconds below are the sweep's
    step_s, probe_s = statistics.median(step_times), statistics.median(probe_times)
    sites = len(probe.core.sites_seen)
    channels = max(len(c) for c in probe.core.channels.values())
    n_probes = probes_per_run(config.steps, config.probe_every)
    per_site = {layer: sec / len(probe.core.channels[layer.split("#")[0]])
                for layer, sec in probe.core.site_seconds.items()}
    return ProbeCost(name, sites, channels, step_s, probe_s, probe_s / (sites * channels), n_probes,
                     config.steps, estimated_share(config.steps, step_s, probe_s, n_probes), per_site,
                     probe_seconds_within(PROBE_BUDGET, config.steps, step_s, n_probes),
                     interval_within(PROBE_BUDGET, config.steps, step_s, probe_s), hessian,
                     statistics.median(product_times) if sweeps else None)


def measured_run_share(preset_name: str, out: str) -> dict:
    """Train the preset for real in ``out`` and return its summary's probe share and times."""
    from gpu_check.train import run_training

    summary = run_training(preset(preset_name), out, progress=False)
    return {"preset": preset_name, "probe_share": summary.probe_share, "wall_s": summary.wall_s,
            "probe_s": summary.hook_s.get("probes", 0.0), "train_s": summary.train_s}


def describe(costs, run=None) -> str:
    lines = [f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, 1 thread, "
             f"load average {os.getloadavg()[0]:.1f}",
             f"{'model':10s} {'sites':>5s} {'ch':>3s} {'step ms':>8s} {'probe s':>8s} {'s/site/ch':>10s} "
             f"{'probes':>6s} {'steps':>6s} {'share':>6s}"]
    for c in costs:
        lines.append(f"{c.model:10s} {c.sites:5d} {c.channels:3d} {1e3 * c.step_s:8.2f} {c.probe_s:8.3f} "
                     f"{c.per_layer_channel_s:10.4f} {c.probes_per_run:6d} {c.steps:6d} {100 * c.share:5.1f}%")
    for c in costs:
        first_and_last = estimated_share(c.steps, c.step_s, c.probe_s, probes_per_run(c.steps, c.steps))
        every = (f"the shortest probe interval within it is {c.every_within_budget} steps" if c.every_within_budget
                 else "no probe interval keeps this probe within it: the probes at the first and last step alone "
                 f"take {100 * first_and_last:.1f}%")
        over = c.probe_s / c.probe_s_within_budget
        lines.append(f"{c.model}: within the {100 * PROBE_BUDGET:.0f}% budget, a probe of this schedule "
                     f"({c.probes_per_run} probes) may take {c.probe_s_within_budget:.3f} s "
                     + (f"({over:.1f}x less than now)" if over > 1 else "(it does)") + f"; {every}")
    for c in costs:
        how = f"{c.model}: Hessian forms by {c.hessian}"
        if c.products_s is not None:
            how += (f"; by Hessian-vector products {c.products_s:.3f} s a probe in the same rounds, "
                    f"{c.products_s / c.probe_s:.1f}x the sweep's")
        lines.append(how)
    for c in costs:
        lines.append(f"{c.model}: seconds per channel at each BatchNorm layer, input side first: "
                     + ", ".join(f"{k} {v:.3f}" for k, v in c.per_site_channel_s.items()))
    if run:
        lines.append(f"run {run['preset']}: probe share {100 * run['probe_share']:.1f}% "
                     f"({run['probe_s']:.1f} s of {run['wall_s']:.1f} s wall)")
    return "\n".join(lines)


def _bench(args) -> int:
    if args.run and not args.out:
        raise cli.InputError("--run needs --out DIR, a new run directory")
    torch.set_num_threads(1)
    costs = [measure_cost(m, args.repeats) for m in args.models]
    run = measured_run_share(args.run, args.out) if args.run else None
    if args.json:
        print(json.dumps({"rows": [asdict(c) for c in costs], "run": run}, indent=2))
    else:
        print(describe(costs, run))
    return 0


def main(argv=None) -> int:
    from gpu_check.train import RunError

    p = cli.parser("python -m gpu_check.probe_bench", __doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS, metavar="MODEL",
                   help=f"models to benchmark: {', '.join(MODELS)}")
    p.add_argument("--repeats", type=cli.positive_int, default=3, help="timed rounds per model (medians reported)")
    p.add_argument("--run", choices=tuple(PRESETS), metavar="PRESET",
                   help="also train PRESET for real and report its measured probe share")
    p.add_argument("--out", metavar="DIR", help="run directory for --run (new)")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    return cli.run(p, _bench, argv, bad_input=(ProbeError, RunError, ConfigError))


if __name__ == "__main__":
    sys.exit(main())
