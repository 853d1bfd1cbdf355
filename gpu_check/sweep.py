"""Command line: a grid of training runs, on this machine or on a Ray cluster.

    python -m gpu_check.sweep --preset P [P ...] --norm N [N ...] --lr LR [LR ...] \\
        --seed S [S ...] --out DIR [--grid FILE] [--executor local|ray] [--address ADDR] \\
        [--jobs K] [--route auto|separate] [--stack K] [gpu_check.run options]

Each point is an ordinary run directory DIR/<preset>/<norm>/lr<LR>/seed<S> (see gpu_check.grid);
DIR/grid.json records the grid.  Rerunning skips complete (and diverged) points and resumes
partial ones.  A run that diverges ends with status 'diverged' and the grid goes on.  DLN points
are trained in stacks (gpu_check.fast_dln) unless --route separate: none, bn and l2 by the exact
moment route, noisy-bn, l1 and linf by the batched route; every other point is a separate run.

Executors: ``local`` runs the tasks in --jobs processes (1: in this process); ``ray`` runs each
task (a point or a stack) as a Ray task: a local Ray instance by default, an existing cluster
with --address, one GPU per task when the cluster has GPUs, one CPU otherwise; a task whose
worker dies is retried and resumes from its checkpoint.  On a cluster, --out must be a file
system every node mounts at the same path.

Exit status: 0 every point complete or diverged, 1 some point failed (listed), 2 bad input
(one line on stderr; nothing written), 130 Ctrl-C (partial points resume on the next call).
"""
from __future__ import annotations

import os
import socket
import sys
import time

from gpu_check import grid as G
from gpu_check import readings
from gpu_check.config import DEVICES, MEASUREMENTS, NORMS, PRESETS, ConfigError
from gpu_check.data import DataError, check_source
from theory import cli

EXECUTORS = ("local", "ray")
EXIT_FAILED = 1
# ``--address`` is probed with a plain TCP connection before Ray is asked to join: Ray's own
# connection attempts retry for minutes; an unreachable address must fail within this bound.
CONNECT_TIMEOUT_S = 10.0
RAY_MAX_RETRIES = 3


def parser():
    p = cli.parser("python -m gpu_check.sweep", __doc__)
    p.add_argument("--preset", nargs="+", choices=list(PRESETS), metavar="P", help=f"presets: {', '.join(PRESETS)}")
    p.add_argument("--norm", nargs="+", choices=list(NORMS), metavar="N", help=f"norms: {', '.join(NORMS)}")
    p.add_argument("--lr", nargs="+", metavar="LR",
                   help="learning rates; each sets the learning rate of every network the preset trains")
    p.add_argument("--seed", nargs="+", type=cli.seed, metavar="S")
    p.add_argument("--grid", metavar="FILE", help="the grid as TOML (preset, norm, lr, seed, [options]); "
                   "flags given on the command line replace its entries")
    p.add_argument("--out", required=True, metavar="DIR", help="the grid's directory")
    p.add_argument("--executor", choices=EXECUTORS, default="local")
    p.add_argument("--address", metavar="ADDR", help="join the Ray cluster at ADDR (host:port) instead of "
                   "starting a local instance (--executor ray)")
    p.add_argument("--jobs", type=cli.positive_int, default=1, metavar="K",
                   help="local executor: tasks run at once, one process each (default 1: in this process)")
    p.add_argument("--route", choices=G.ROUTES, default="auto",
                   help="auto: DLN points in stacks (none/bn/l2 by the moment route, noisy-bn/l1/linf by the "
                   "batched route); separate: every point a separate eager run")
    p.add_argument("--stack", type=cli.positive_int, default=16, metavar="K",
                   help="at most K DLN points in one stack (default 16)")
    p.add_argument("--ray-logs", action="store_true", help="show Ray's own log output")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    g = p.add_argument_group("options of gpu_check.run shared by every point")
    g.add_argument("--steps", type=cli.positive_int)
    g.add_argument("--probe-every", type=cli.non_negative_int)
    g.add_argument("--probe-channels", type=cli.positive_int)
    g.add_argument("--checkpoint-every", type=cli.positive_int)
    g.add_argument("--bn-eps", type=float)
    g.add_argument("--cpu-threads", type=cli.positive_int)
    g.add_argument("--device", choices=list(DEVICES))
    g.add_argument("--data", metavar="DIR", help="CIFAR-10 directory, or sklearn:digits (preset vgg-digits)")
    g.add_argument("--measure", metavar="LIST", help=f"comma-separated: {','.join(MEASUREMENTS)}")
    g.add_argument("--measure-every", type=cli.non_negative_int, metavar="K")
    return p


def grid_from_args(args) -> G.Grid:
    spec = G.load_toml(args.grid) if args.grid else {}
    options = dict(spec.get("options", {}))
    flags = {"steps": args.steps, "probe_every": args.probe_every, "probe_channels": args.probe_channels,
             "checkpoint_every": args.checkpoint_every, "bn_eps": args.bn_eps, "cpu_threads": args.cpu_threads,
             "device": args.device, "data": args.data, "measure_every": args.measure_every,
             "measure": None if args.measure is None else
             tuple(m.strip() for m in args.measure.split(",") if m.strip())}
    options.update({k: v for k, v in flags.items() if v is not None})
    try:
        check_source(options.get("data"))
    except DataError as e:
        raise cli.InputError(str(e)) from None
    lrs = args.lr or spec.get("lr", [])
    return G.make_grid(args.preset or spec.get("preset", []), args.norm or spec.get("norm", []), lrs,
                       args.seed if args.seed is not None else spec.get("seed", []), options, args.route)


# ---------------------------------------------------------------------------------------------
# Executors: each takes the tasks and calls report(result) as points end
# ---------------------------------------------------------------------------------------------

def run_local(tasks, jobs: int, report) -> None:
    if jobs == 1:
        for task in tasks:
            G.run_task_safely(task, on_done=report)
        return
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed

    with ProcessPoolExecutor(max_workers=jobs, mp_context=mp.get_context("spawn")) as pool:
        futures = [pool.submit(G.run_task_safely, t) for t in tasks]
        for f in as_completed(futures):
            for r in f.result():
                report(r)


def check_address(address: str) -> None:
    """A TCP connection to host:port within CONNECT_TIMEOUT_S, or InputError naming the address."""
    if address == "auto":
        return
    target = address.split("://", 1)[-1]
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        raise cli.InputError(f"--address {address!r}: expected host:port (or 'auto')")
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as e:
        raise cli.InputError(f"--address {address!r} is unreachable ({e.strerror or e})") from None


def ray_module():
    try:
        import ray
    except ImportError:
        raise cli.InputError("--executor ray needs Ray: pip install -e \".[cluster]\"") from None
    return ray


def start_ray(address, show_logs: bool, num_cpus=None):
    """Join the cluster at ``address`` or start a local instance; Ray's logs stay off the
    terminal unless ``show_logs``."""
    import logging

    ray = ray_module()
    if address:
        check_address(address)
    if ray.is_initialized():       # a caller (a test, a notebook) already holds a Ray instance
        return ray
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    kwargs = dict(log_to_driver=show_logs, logging_level=logging.INFO if show_logs else logging.ERROR,
                  include_dashboard=False, configure_logging=True,
                  # workers import this checkout of the package (on a cluster: the same path on a
                  # shared file system, or an installed copy when the path does not exist there)
                  runtime_env={"env_vars": {"PYTHONPATH": repo}})
    if address:
        kwargs["address"] = address
    elif num_cpus is not None:
        kwargs["num_cpus"] = num_cpus
    stderr_fd = None
    if not show_logs:              # Ray's start-up writes to the process's stderr directly
        stderr_fd = os.dup(2)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        os.close(devnull)
    try:
        ray.init(**kwargs)
    except (ConnectionError, RuntimeError, ValueError) as e:
        raise cli.InputError(f"cannot start or join Ray{f' at {address!r}' if address else ''}: "
                             f"{cli.one_line(e)}") from None
    finally:
        if stderr_fd is not None:
            os.dup2(stderr_fd, 2)
            os.close(stderr_fd)
    return ray


def _ray_task(task):
    return G.run_task_safely(task)


def run_ray(ray, tasks, report) -> None:
    gpus = ray.cluster_resources().get("GPU", 0) > 0
    remote = ray.remote(num_gpus=1, num_cpus=0)(_ray_task) if gpus else ray.remote(num_cpus=1)(_ray_task)
    remote = remote.options(max_retries=RAY_MAX_RETRIES, retry_exceptions=False)
    pending = [remote.remote(t) for t in tasks]
    while pending:
        done, pending = ray.wait(pending, num_returns=1)
        for r in ray.get(done[0]):
            report(r)


# ---------------------------------------------------------------------------------------------
# Progress and the end table
# ---------------------------------------------------------------------------------------------

def table(results, out: str) -> str:
    lines = [f"{'run':44s} {'status':18s} {'final loss':>12s} {'wall s':>8s}  route"]
    for r in results:
        loss = ", ".join(f"{v:.6g}" if isinstance(v, (int, float)) else str(v) for v in r.final_loss.values()) or "-"
        lines.append(f"{r.name:44s} {r.status:18s} {loss:>12s} {r.wall_s:8.1f}  {r.route}")
    lines.append("runs:")
    lines += [f"  {os.path.join(out, r.name)}" for r in results]
    failed = [r for r in results if r.status == "failed"]
    lines += [f"failed: {r.name}: {r.message}" for r in failed]
    return "\n".join(lines)


def _body(args) -> int:
    grid = grid_from_args(args)
    earlier = G.check_out(grid, args.out)
    if args.executor == "local" and (args.address or args.ray_logs):
        raise cli.InputError("--address and --ray-logs are options of --executor ray")
    ray, owned = None, False
    if args.executor == "ray":
        owned = not ray_module().is_initialized()
        ray = start_ray(args.address, args.ray_logs)
    try:
        G.write_grid(grid, args.out, earlier, [sys.executable, "-m", "gpu_check.sweep", *(sys.argv[1:])])
        tasks, skipped = G.plan(grid, args.out, args.stack)
        workers = args.jobs if args.executor == "local" else int(ray.cluster_resources().get("CPU", 1))
        tasks = G.longest_first(G.balance(tasks, workers), readings.seconds_per_run)
        results = {r.name: r for r in skipped}
        from tqdm import tqdm

        bar = tqdm(total=len(grid.points()), initial=len(skipped), file=sys.stderr, disable=args.quiet,
                   desc="grid", unit="run", dynamic_ncols=True)
        t0 = time.perf_counter()

        def report(r):
            results[r.name] = r
            bar.update(1)
        try:
            if ray is not None:
                run_ray(ray, tasks, report)
            else:
                run_local(tasks, args.jobs, report)
        finally:
            bar.close()
    finally:
        if owned:
            ray.shutdown()
    ordered = [results[p.name] for p in grid.points()]
    print(table(ordered, args.out))
    print(f"grid: {len(ordered)} runs in {time.perf_counter() - t0:.1f} s ({len(tasks)} tasks, "
          f"{len(skipped)} skipped as done); {os.path.join(args.out, G.GRID_FILE)}")
    return EXIT_FAILED if any(r.status == "failed" for r in ordered) else 0


def main(argv=None) -> int:
    return cli.run(parser(), _body, argv, bad_input=(G.GridError, ConfigError),
                   interrupted="gpu_check.sweep: interrupted; partial runs resume on the next call")


if __name__ == "__main__":
    sys.exit(main())
