"""A grid of training runs: presets x norms x learning rates x seeds, one run directory each.

    DIR/grid.json                                   the grid: axes, shared options, points
    DIR/<preset>/<norm>/lr<LR>/seed<S>/             an ordinary run directory (gpu_check.run's files)

The learning rate is written canonically (``lr_name``: the shortest decimal that round-trips, in
scientific form: 1e-3 and 0.001 both give ``lr1e-3``), so equal rates are one point.  A point's
state is read from its directory: *complete* or *diverged* (summary.json says so; never rerun),
*partial* (a checkpoint: resumed from it), *new* (nothing, or files from a start that died
before its first checkpoint: those are cleared and the run starts afresh).

A point is run under a lock file in its directory (``RunLock``), so two executors never train
one point at once, also when DIR is on a file system shared by several machines (a Ray cluster):
the lock records host, process id and a random token and is created with O_CREAT | O_EXCL; its
holder refreshes its modification time every LOCK_HEARTBEAT_S.  A lock is stale when its holder
is a dead process on this host, or when its heartbeat is older than LOCK_STALE_S (a holder on
another host that died or lost the file system); a stale lock is broken under a second
O_EXCL file, so two contenders cannot both break it.  grid.json itself is rewritten under the
same kind of lock (DIR/.grid.lock), merged with the points on disk at that moment, so two sweeps
started into one DIR keep each other's points.

DLN points are trained in stacks (gpu_check.fast_dln): by the moment route (none, bn, l2) or the
batched route (noisy-bn, l1, linf; from MIN_STACK points); every other point is a separate run
(gpu_check.train.run_training).  Both write the same run directory.
"""
from __future__ import annotations

import json
import os
import secrets
import socket
import threading
import time
from dataclasses import dataclass
from decimal import Decimal
from itertools import product
from typing import Optional

from gpu_check import records
from gpu_check.config import (NORMS, PRESETS, ConfigError, RunConfig, check_learning_rate,
                              config_to_dict, preset, with_learning_rate, with_overrides)

GRID_FILE = "grid.json"
GRID_FORMAT = 1
LOCK_FILE = ".lock"
# Held while grid.json is read, merged and rewritten: two sweeps with the same options into one
# DIR (two machines of a cluster, or a second invocation for more seeds) each add their points
# to what is on disk at that moment, so neither drops the other's.
GRID_LOCK_FILE = ".grid.lock"
LOCK_HEARTBEAT_S = 10.0
# A live holder refreshes its lock every LOCK_HEARTBEAT_S; 12 missed heartbeats (and a clock
# skew between hosts well under a minute) mean the holder is gone.
LOCK_STALE_S = 12 * LOCK_HEARTBEAT_S
ROUTES = ("auto", "separate")
# Options of gpu_check.run a grid shares by all its points (RunConfig field names).
OPTIONS = ("steps", "probe_every", "probe_channels", "checkpoint_every", "bn_eps", "cpu_threads", "device",
           "data", "measure", "measure_every")
# Options that may differ between two invocations of one grid (where it runs, not what it computes).
FREE_OPTIONS = ("device",)


class GridError(ValueError):
    """A grid that cannot be run as given; the message names the problem and the value."""


class LockedError(RuntimeError):
    """A run directory held by a live executor."""


def lr_name(lr: float) -> str:
    """The canonical text of a learning rate: shortest round-trip decimal, scientific form
    ('1e-3' for 1e-3 and 0.001, '2.5e-7', '1e-1' for 0.1)."""
    value = check_learning_rate(lr)
    mantissa, _, exponent = f"{Decimal(repr(value)).normalize():e}".partition("e")
    return f"{mantissa}e{int(exponent)}"


@dataclass(frozen=True)
class GridPoint:
    preset: str
    norm: str
    lr: float
    seed: int

    @property
    def name(self) -> str:
        """DIR-relative path: <preset>/<norm>/lr<LR>/seed<S>."""
        return f"{self.preset}/{self.norm}/lr{lr_name(self.lr)}/seed{self.seed}"


@dataclass(frozen=True)
class Grid:
    """The axes and the options every point shares (RunConfig overrides, OPTIONS only)."""

    presets: tuple
    norms: tuple
    lrs: tuple
    seeds: tuple
    options: tuple = ()            # sorted ((field, value), ...)
    route: str = "auto"

    def points(self) -> list:
        return [GridPoint(p, n, lr, s) for p, n, lr, s in product(self.presets, self.norms, self.lrs, self.seeds)]

    def config(self, point: GridPoint) -> RunConfig:
        opts = dict(self.options)
        return with_learning_rate(with_overrides(preset(point.preset), norm=point.norm, seed=point.seed, **opts),
                                  point.lr)

    def to_dict(self) -> dict:
        return {"format": GRID_FORMAT, "presets": list(self.presets), "norms": list(self.norms),
                "lrs": [lr_name(lr) for lr in self.lrs], "seeds": list(self.seeds),
                "options": {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.options},
                "points": [{"preset": p.preset, "norm": p.norm, "lr": lr_name(p.lr), "seed": p.seed,
                            "dir": p.name} for p in self.points()]}


def make_grid(presets, norms, lrs, seeds, options: Optional[dict] = None, route: str = "auto") -> Grid:
    """A validated Grid; GridError (or ConfigError) names the first bad value."""
    options = {k: v for k, v in (options or {}).items() if v is not None}
    for axis, values in (("preset", presets), ("norm", norms), ("lr", lrs), ("seed", seeds)):
        if not values:
            raise GridError(f"empty grid: no {axis} given")
    for p in presets:
        if p not in PRESETS:
            raise GridError(f"unknown preset {p!r}; presets are: {', '.join(PRESETS)}")
    for n in norms:
        if n not in NORMS:
            raise GridError(f"unknown norm {n!r}; norms are: {', '.join(NORMS)}")
    given = {}
    for lr in lrs:
        given.setdefault(check_learning_rate(lr), []).append(lr)
    lrs = tuple(check_learning_rate(lr) for lr in lrs)
    for s in seeds:
        if not isinstance(s, int) or isinstance(s, bool) or s < 0:
            raise GridError(f"seed {s!r}: seeds are non-negative integers")
    for axis, values, key in (("preset", presets, str), ("norm", norms, str), ("lr", lrs, lr_name),
                              ("seed", seeds, int)):
        seen = {}
        for v in values:
            k = key(v)
            if k in seen:
                if axis == "lr":
                    raise GridError(f"duplicate lr: {' and '.join(map(str, given[v]))} are the same point (lr{k})")
                raise GridError(f"duplicate {axis} {v!r}")
            seen[k] = v
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise GridError(f"unknown grid option(s) {unknown}; options are: {', '.join(OPTIONS)}")
    if "measure" in options and not isinstance(options["measure"], tuple):
        options["measure"] = tuple(options["measure"])
    if route not in ROUTES:
        raise GridError(f"unknown route {route!r}; routes are: {', '.join(ROUTES)}")
    grid = Grid(tuple(presets), tuple(norms), lrs, tuple(seeds), tuple(sorted(options.items())), route)
    for point in grid.points():          # every point's configuration is valid before anything runs
        grid.config(point)
    return grid


def load_toml(path: str) -> dict:
    """A grid file: top-level keys preset, norm, lr, seed (lists or single values) and a table
    [options] of gpu_check.run options (RunConfig field names: steps, probe_every, ...)."""
    try:
        import tomllib
    except ModuleNotFoundError:          # Python 3.10
        import tomli as tomllib
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise GridError(f"--grid {path!r}: no such file") from None
    except tomllib.TOMLDecodeError as e:
        raise GridError(f"--grid {path!r}: not valid TOML ({e})") from None
    unknown = sorted(set(data) - {"preset", "norm", "lr", "seed", "options"})
    if unknown:
        raise GridError(f"--grid {path!r}: unknown key(s) {unknown}; keys are preset, norm, lr, seed, [options]")
    as_list = lambda v: v if isinstance(v, list) else [v]     # noqa: E731
    out = {k: as_list(data[k]) for k in ("preset", "norm", "lr", "seed") if k in data}
    if "options" in data:
        if not isinstance(data["options"], dict):
            raise GridError(f"--grid {path!r}: 'options' must be a table")
        out["options"] = dict(data["options"])
    return out


# ---------------------------------------------------------------------------------------------
# grid.json
# ---------------------------------------------------------------------------------------------

def _identity(d: dict) -> dict:
    """What must agree between grid.json and a new invocation: the shared options (FREE_OPTIONS aside)."""
    return {k: v for k, v in d["options"].items() if k not in FREE_OPTIONS}


def check_out(grid: Grid, out: str) -> list:
    """Raise GridError when ``out`` holds something else than this grid (another grid's options,
    or files that are not a grid).  Returns the points recorded there before (to keep in grid.json)."""
    if os.path.exists(out) and not os.path.isdir(out):
        raise GridError(f"--out {out!r} is a file, not a directory")
    path = os.path.join(out, GRID_FILE)
    if not os.path.isfile(path):
        if os.path.isdir(out) and set(os.listdir(out)) - {GRID_LOCK_FILE, GRID_LOCK_FILE + ".break"}:
            raise GridError(f"--out {out!r} is not empty and holds no {GRID_FILE}: choose an empty or new directory")
        return []
    try:
        with open(path, encoding="utf-8") as f:
            old = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise GridError(f"{path} cannot be read: {e}") from None
    if old.get("format") != GRID_FORMAT:
        raise GridError(f"{path} has format {old.get('format')!r}; this code reads format {GRID_FORMAT}")
    new = grid.to_dict()
    if _identity(old) != _identity(new):
        diff = sorted(k for k in set(_identity(old)) | set(_identity(new))
                      if _identity(old).get(k) != _identity(new).get(k))
        raise GridError(f"--out {out!r} holds a different grid (options {', '.join(diff)} differ: "
                        f"{ {k: _identity(old).get(k) for k in diff} } there, { {k: _identity(new).get(k) for k in diff} } "
                        "asked): choose another --out")
    return old.get("points", [])


def _points_on_disk(out: str) -> list:
    try:
        with open(os.path.join(out, GRID_FILE), encoding="utf-8") as f:
            return json.load(f).get("points", [])
    except FileNotFoundError:
        return []
    except (OSError, json.JSONDecodeError) as e:
        raise GridError(f"{os.path.join(out, GRID_FILE)} cannot be read: {e}") from None


def write_grid(grid: Grid, out: str, earlier: list, command: list) -> None:
    """DIR/grid.json: the grid's axes and options, and every point ever run in DIR (earlier
    invocations may have run other points with the same options).  Under DIR/.grid.lock the
    points are merged with those on disk at the moment of writing, so a sweep that started
    meanwhile (and read grid.json before this one wrote it) loses none of its points."""
    d = grid.to_dict()
    names = {p["dir"] for p in d["points"]}
    os.makedirs(out, exist_ok=True)
    with RunLock(out, name=GRID_LOCK_FILE):
        kept, seen = [], set(names)
        for p in _points_on_disk(out) + list(earlier):
            if p["dir"] not in seen:
                kept.append(p)
                seen.add(p["dir"])
        d["points"] = kept + d["points"]
        d["command"] = command
        records.atomic_write_json(os.path.join(out, GRID_FILE), d)


def grid_run_dirs(path: str) -> list:
    """The run directories of the grid in ``path`` (those that hold a run), in grid.json order."""
    with open(os.path.join(path, GRID_FILE), encoding="utf-8") as f:
        d = json.load(f)
    return [os.path.join(path, p["dir"]) for p in d["points"]
            if os.path.isfile(os.path.join(path, p["dir"], records.CONFIG))]


def expand_runs(paths) -> list:
    """Run directories from ``paths``: a grid directory (holding grid.json) stands for its runs."""
    out = []
    for p in paths:
        out += grid_run_dirs(p) if os.path.isfile(os.path.join(p, GRID_FILE)) else [p]
    return out


# ---------------------------------------------------------------------------------------------
# A point's state and its lock
# ---------------------------------------------------------------------------------------------

def point_state(run_dir: str) -> str:
    """'complete' | 'diverged' | 'partial' | 'new' (see the module docstring)."""
    summary = os.path.join(run_dir, records.SUMMARY)
    if os.path.isfile(summary):
        with open(summary, encoding="utf-8") as f:
            status = json.load(f).get("status")
        if status in ("complete", "diverged"):
            return status
    if os.path.isfile(os.path.join(run_dir, records.CHECKPOINT)):
        return "partial"
    return "new"


def clear_dead_start(run_dir: str) -> None:
    """Remove the files of a start that died before its first checkpoint (nothing to resume)."""
    if not os.path.isdir(run_dir):
        return
    for name in os.listdir(run_dir):
        path = os.path.join(run_dir, name)
        if name != LOCK_FILE and os.path.isfile(path):
            os.remove(path)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RunLock:
    """An exclusive lock on one run directory that holds on a shared file system (see the
    module docstring).  ``with RunLock(dir, wait_s=...):``; LockedError when a live holder
    keeps it for longer than ``wait_s``."""

    def __init__(self, run_dir: str, wait_s: float = LOCK_STALE_S + LOCK_HEARTBEAT_S,
                 heartbeat_s: float = LOCK_HEARTBEAT_S, stale_s: float = LOCK_STALE_S, name: str = LOCK_FILE):
        self.path = os.path.join(run_dir, name)
        self.wait_s, self.heartbeat_s, self.stale_s = wait_s, heartbeat_s, stale_s
        self.token = secrets.token_hex(8)
        self._stop = threading.Event()
        self._thread = None

    def holder(self) -> Optional[dict]:
        try:
            with open(self.path, encoding="utf-8") as f:
                info = json.loads(f.read() or "{}")
            info["age_s"] = time.time() - os.path.getmtime(self.path)
            return info
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def stale(self, info: dict) -> bool:
        if info.get("host") == socket.gethostname() and isinstance(info.get("pid"), int):
            if not _pid_alive(info["pid"]):
                return True
        return info["age_s"] > self.stale_s

    def _create(self) -> bool:
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w") as f:
            json.dump({"host": socket.gethostname(), "pid": os.getpid(), "token": self.token,
                       "since": time.time()}, f)
            f.flush()
            os.fsync(f.fileno())
        return True

    def _break(self, info: dict) -> None:
        """Remove a stale lock, unless another contender is breaking it or it changed meanwhile."""
        guard = self.path + ".break"
        try:
            fd = os.open(guard, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                if time.time() - os.path.getmtime(guard) > self.stale_s:
                    os.remove(guard)      # a breaker that died while breaking
            except FileNotFoundError:
                pass
            return
        os.close(fd)
        try:
            now = self.holder()
            if now is not None and now.get("token") == info.get("token") and self.stale(now):
                os.remove(self.path)
        finally:
            os.remove(guard)

    def acquire(self) -> "RunLock":
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        deadline = time.monotonic() + self.wait_s
        while not self._create():
            info = self.holder()
            if info is not None and self.stale(info):
                self._break(info)
                continue
            if time.monotonic() > deadline:
                who = f"{info.get('host')}:{info.get('pid')}" if info else "?"
                raise LockedError(f"{os.path.dirname(self.path)} is being run by {who} (lock {self.path})")
            time.sleep(min(1.0, self.heartbeat_s))
        self._thread = threading.Thread(target=self._beat, daemon=True)
        self._thread.start()
        return self

    def _beat(self) -> None:
        while not self._stop.wait(self.heartbeat_s):
            try:
                os.utime(self.path)
            except FileNotFoundError:
                return

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        info = self.holder()
        if info is not None and info.get("token") == self.token:
            os.remove(self.path)

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()


# ---------------------------------------------------------------------------------------------
# Running points
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PointResult:
    name: str             # DIR-relative run directory
    status: str           # complete | diverged | skipped-complete | skipped-diverged | failed
    final_loss: dict      # network -> last training loss
    wall_s: float         # this invocation's wall seconds for the point (a stack's: its share)
    route: str            # separate | moments(K=..) | -
    resumed: bool = False
    message: str = ""


@dataclass(frozen=True)
class Task:
    """A unit of work for an executor: one point (separate run) or a stack of DLN points."""

    out: str
    points: tuple          # GridPoints
    configs: tuple         # their RunConfigs (config_to_dict form, so a task pickles plainly)
    stacked: bool = False
    start_step: int = 0    # the step its points resume from (0: a fresh start)

    @property
    def names(self) -> list:
        return [p.name for p in self.points]


def plan(grid: Grid, out: str, stack_size: int = 16) -> tuple:
    """(tasks, skipped results): complete and diverged points are not run; DLN points a stack can
    train (route 'auto'; gpu_check.fast_dln.ROUTES) are grouped by their stack key and resume step
    into stacks of at most ``stack_size`` when there are at least MIN_STACK of them."""
    from gpu_check import fast_dln

    skipped, single, stacks = [], [], {}
    for point in grid.points():
        cfg = grid.config(point)
        run_dir = os.path.join(out, point.name)
        state = point_state(run_dir)
        if state in ("complete", "diverged"):
            skipped.append(_skipped(point, run_dir, state))
            continue
        start = _checkpoint_step(run_dir) if state == "partial" else 0
        if grid.route == "auto" and fast_dln.supports(cfg):
            stacks.setdefault((fast_dln.stack_key(cfg), start), []).append((point, cfg))
        else:
            single.append((point, cfg, start))
    tasks = []
    for (_, start), group in stacks.items():
        if len(group) < fast_dln.MIN_STACK[fast_dln.route_name(group[0][1])]:
            single += [(p, c, start) for p, c in group]    # too few points for a stack to beat separate runs
            continue
        # a seed's points side by side: a stack split into parts keeps them together (noisy-bn's
        # noise is a function of the seed, drawn once per seed in a stack)
        group.sort(key=lambda pc: (pc[1].seed, pc[0].name))
        for i in range(0, len(group), stack_size):
            part = group[i:i + stack_size]
            tasks.append(Task(out, tuple(p for p, _ in part), tuple(config_to_dict(c) for _, c in part), True,
                              start))
    tasks += [Task(out, (p,), (config_to_dict(c),), False, start) for p, c, start in single]
    return tasks, skipped


def balance(tasks: list, workers: int) -> list:
    """Split stacks so that there are at least ``workers`` tasks when there are enough points
    (a stack of K costs about as much as a stack of 1, so a lone stack would idle the other workers)."""
    from gpu_check import fast_dln
    from gpu_check.config import config_from_dict

    def splittable(t):
        return t.stacked and len(t.points) >= 2 * fast_dln.MIN_STACK[fast_dln.route_name(config_from_dict(t.configs[0]))]
    tasks = list(tasks)
    while len(tasks) < workers:
        big = max((t for t in tasks if splittable(t)), key=lambda t: len(t.points), default=None)
        if big is None:
            break
        # halve it, at the seed boundary nearest the middle when there is one (plan sorts by seed)
        cuts = [i for i in range(1, len(big.points)) if big.points[i].seed != big.points[i - 1].seed]
        h = min(cuts, key=lambda i: abs(2 * i - len(big.points))) if cuts else len(big.points) // 2
        tasks.remove(big)
        tasks += [Task(big.out, big.points[:h], big.configs[:h], True, big.start_step),
                  Task(big.out, big.points[h:], big.configs[h:], True, big.start_step)]
    return tasks


def longest_first(tasks: list, seconds_per_run) -> list:
    """The tasks, the longest expected first: workers that take tasks in order then finish close
    together (the longest-processing-time rule; started last, a long task runs on alone while the
    other workers idle).  A task's expected seconds are the sum over its points of
    ``seconds_per_run(config_dict)`` (a whole run's measured seconds, a stacked point's share of
    its stack) times the share of the run's steps still to go."""
    def expected(task):
        return sum(seconds_per_run(c) * max(0, c["steps"] - task.start_step) / max(1, c["steps"])
                   for c in task.configs)
    return sorted(tasks, key=expected, reverse=True)      # stable: equal estimates keep plan's order


def _checkpoint_step(run_dir: str) -> int:
    from gpu_check import checkpoint
    return int(checkpoint.load(os.path.join(run_dir, records.CHECKPOINT))["next_step"])


def _skipped(point: GridPoint, run_dir: str, state: str) -> PointResult:
    with open(os.path.join(run_dir, records.SUMMARY), encoding="utf-8") as f:
        s = json.load(f)
    return PointResult(point.name, f"skipped-{state}", {k: v.get("loss") for k, v in s.get("final", {}).items()},
                       0.0, "-", message=s.get("message", ""))


def _result(point: GridPoint, summary, route: str, resumed: bool) -> PointResult:
    return PointResult(point.name, summary.status, {k: v.get("loss") for k, v in summary.final.items()},
                       summary.wall_s, route, resumed, summary.message)


def run_task_safely(task: Task, *, on_done=None) -> list:
    """``run_task``, with the errors a point can meet (a lock held by a live executor, a checkpoint
    of another configuration, a data directory that went away, a full disk) turned into 'failed'
    results naming the error, so that the rest of the grid goes on.  Other exceptions are bugs
    and propagate."""
    from gpu_check.checkpoint import CheckpointError
    from gpu_check.data import DataError
    from gpu_check.fast_dln import StackError
    from gpu_check.train import RunError

    finished = {}

    def done(result):
        finished[result.name] = result
        if on_done:
            on_done(result)
    try:
        return run_task(task, on_done=done)
    except (LockedError, CheckpointError, RunError, DataError, StackError, ConfigError, OSError) as e:
        out = []
        for p in task.points:
            if p.name not in finished:
                done(PointResult(p.name, "failed", {}, 0.0, "-", message=f"{type(e).__name__}: {e}"))
            out.append(finished[p.name])
        return out


def run_task(task: Task, *, on_done=None) -> list:
    """Run one task in this process (the executors call this); returns its PointResults.

    Each point is locked for the whole task; a start that died before its first checkpoint is
    cleared; partial points resume.  ``on_done(result)`` is called as each point ends."""
    from gpu_check import fast_dln
    from gpu_check.config import config_from_dict
    from gpu_check.train import run_training

    configs = [config_from_dict(c) for c in task.configs]
    dirs = [os.path.join(task.out, p.name) for p in task.points]
    locks = []
    try:
        for d in dirs:
            locks.append(RunLock(d).acquire())
        items, results = [], [None] * len(dirs)
        for i, (p, c, d) in enumerate(zip(task.points, configs, dirs)):
            state = point_state(d)
            if state in ("complete", "diverged"):          # finished by someone else meanwhile
                results[i] = _skipped(p, d, state)
                if on_done:
                    on_done(results[i])
                continue
            if state == "new":
                clear_dead_start(d)
            items.append((i, c, d, state == "partial"))
        if task.stacked and items:
            # a stack killed while writing its checkpoints leaves its points one checkpoint apart:
            # each start step is a stack of its own
            by_start = {}
            for item in items:
                by_start.setdefault(_checkpoint_step(item[2]) if item[3] else 0, []).append(item)
            for group in by_start.values():
                def done(j, summary, group=group):
                    i, _, _, resumed = group[j]
                    results[i] = _result(task.points[i], summary,
                                         f"{fast_dln.route_name(configs[0])}(K={len(group)})", resumed)
                    if on_done:
                        on_done(results[i])
                fast_dln.train_stack([(c, d, r) for _, c, d, r in group], device=configs[0].device, on_done=done)
        else:
            for i, c, d, resumed in items:
                summary = run_training(c, d, resume=resumed, progress=False, log=lambda m: None)
                results[i] = _result(task.points[i], summary, "separate", resumed)
                if on_done:
                    on_done(results[i])
        return results
    finally:
        for lock in locks:
            lock.release()
