"""Benchmark: grid points of a preset trained as separate eager runs and by the fastest exact route.

    python -m gpu_check.bench [--json] [--preset dln-paper] [--norm N ...] [--k 1 4 16] [--steps 100]

--norm defaults to the norms the preset's grid trains (default_norms: for dln-paper every norm
but noisy-none).

For each norm and each K, the same K grid points (seeds 0..K-1 at the preset's learning rate)
are trained for --steps steps twice, in this process, with the same thread count (the preset's
``cpu_threads``) and the same records written (config, metrics, events, checkpoints, summary;
probes and measurements off on both sides, so that the numbers are the training's): once as K
separate runs (gpu_check.train.run_training), once by the route the grid uses for that norm
(gpu_check.grid.plan: a DLN's stack -- the moment route for none/bn/l2, the batched route for
noisy-bn/l1/linf from MIN_STACK points -- separate runs otherwise).  Rows:

    {"preset", "norm", "k", "separate_steps_per_s", "fast_steps_per_s", "speedup", "route", "compile_s"}

model-steps per second = K x steps / wall seconds; ``compile_s`` is the one-time preparation of
the fast route (0 for both routes, which compile nothing), reported apart and counted in a
grid's time.  Each side is warmed up once (one point, a few steps) before it is timed.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time

from gpu_check import grid as G
from gpu_check.config import NORMS, PRESETS
from theory import cli

DEFAULT_K = (1, 4, 16)
WARMUP_STEPS = 5


class BenchError(Exception):
    """A benchmarked point did not complete: one line, exit 2."""


def _grid(preset: str, norm: str, k: int, steps: int, route: str) -> G.Grid:
    from gpu_check.config import preset as get

    cfg = get(preset)
    lr = cfg.dln.lr if cfg.dln is not None else cfg.vgg.lr
    return G.make_grid([preset], [norm], [lr], list(range(k)),
                       {"steps": steps, "probe_every": 0, "checkpoint_every": max(1, steps // 2)}, route)


def _time(grid: G.Grid, work: str) -> tuple:
    """(wall seconds, route of the tasks) to run every point of ``grid`` in ``work``, in-process."""
    tasks, _ = G.plan(grid, work)
    t0 = time.perf_counter()
    results = [r for t in tasks for r in G.run_task(t)]
    wall = time.perf_counter() - t0
    bad = [r for r in results if r.status != "complete"]
    if bad:
        # a point that diverged or failed trained fewer steps than timed: its speed means nothing
        raise BenchError(f"benchmark run {bad[0].name} ended {bad[0].status} ({bad[0].message}); a benchmark "
                         "times training: choose norms and a preset that train")
    return wall, sorted({r.route.split("(")[0] for r in results})[0]


def measure(preset: str, norm: str, k: int, steps: int, work: str) -> dict:
    rows = {}
    for route in ("separate", "auto"):
        d = os.path.join(work, f"{norm}-{k}-{route}")
        _time(_grid(preset, norm, 1, WARMUP_STEPS, route), d + "-warmup")
        rows[route] = _time(_grid(preset, norm, k, steps, route), d)
    sep, (fast, route) = rows["separate"][0], rows["auto"]
    return {"preset": preset, "norm": norm, "k": k, "separate_steps_per_s": k * steps / sep,
            "fast_steps_per_s": k * steps / fast, "speedup": sep / fast, "route": route, "compile_s": 0.0}


def run(preset: str, norms, ks, steps: int) -> list:
    import torch

    from gpu_check.config import preset as get

    torch.set_num_threads(get(preset).cpu_threads)
    work = tempfile.mkdtemp(prefix="gpu_check-bench-")
    try:
        return [measure(preset, n, k, steps, work) for n in norms for k in ks]
    finally:
        shutil.rmtree(work, ignore_errors=True)


def default_norms(preset: str) -> list:
    """The norms a grid of ``preset`` trains: a DLN-only preset's are gpu_check.readings.DLN_NORMS
    (noisy-none, Section 2.1's noise in a standard network, is a VGG claim: at the DLN's printed lr
    it diverges within a few steps, and a benchmark run must train); a preset with a VGG, every norm."""
    from gpu_check.config import preset as get
    from gpu_check.readings import DLN_NORMS

    return list(DLN_NORMS) if get(preset).vgg is None else list(NORMS)


def parser():
    p = cli.parser("python -m gpu_check.bench", __doc__)
    p.add_argument("--json", action="store_true", help="rows as JSON on stdout")
    p.add_argument("--preset", choices=list(PRESETS), default="dln-paper")
    p.add_argument("--norm", nargs="+", choices=list(NORMS), metavar="N",
                   help="norms to time (default: those the preset's grid trains; see default_norms)")
    p.add_argument("--k", nargs="+", type=cli.positive_int, default=list(DEFAULT_K), metavar="K",
                   help="grid points trained together (default 1 4 16)")
    p.add_argument("--steps", type=cli.positive_int, default=100, help="steps per point (default 100)")
    return p


def _body(args) -> int:
    import os as _os

    load = _os.getloadavg()
    rows = run(args.preset, args.norm or default_norms(args.preset), args.k, args.steps)
    if args.json:
        print(json.dumps({"rows": rows, "steps": args.steps, "load_average": list(load)}, indent=1))
        return 0
    print(f"{'norm':9s} {'K':>3s} {'separate steps/s':>17s} {'fast steps/s':>13s} {'speedup':>8s}  route")
    for r in rows:
        print(f"{r['norm']:9s} {r['k']:3d} {r['separate_steps_per_s']:17.1f} {r['fast_steps_per_s']:13.1f} "
              f"{r['speedup']:8.2f}  {r['route']}")
    print(f"{args.steps} steps per point, preset {args.preset}; load average at start {load[0]:.2f}")
    return 0


def main(argv=None) -> int:
    return cli.run(parser(), _body, argv, bad_input=(BenchError,))


if __name__ == "__main__":
    sys.exit(main())
