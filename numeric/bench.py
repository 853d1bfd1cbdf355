"""Benchmark: the closed forms of theory.bn against torch.func on the same instances.

    python -m numeric.bench [--json] [--sizes 32 256 1024] [--quick]

Two cases, per instance, at each batch size m:

* ``grad-norm`` (Theorem 4.1): ||nabla_y L_hat||^2 for L(z) = ||z - t||^2/2 composed with the
  training-mode BatchNorm map.  Ours: z, g = z - t and theory.bn.grad_y_bn, O(m).  torch.func:
  vmap(grad(L o BN)).
* ``hessian-forms`` (Theorem 4.2): v^T (d^2 L_hat/dy^2) v and v^T H v, v = nabla_y L_hat, for a
  quadratic L(z) = z^T H z/2 + <b, z> with a dense symmetric H per instance.  Ours:
  numeric.one_pass.quadratic_head_hessian_forms, O(m^2) and one pass over each H (g = Hz + b and
  the Gram matrix of H on span{g, 1, y_hat} together, then theory.bn.hessian_forms_from_gram).
  torch.func: vmap(hessian(L o BN)) and vmap(grad(...)), then the two forms; and the vmapped
  Hessian-vector product (jvp of grad).  The pass runs in numeric.native's C kernel where this
  machine compiles it (the machine line says which); ``numpy_pass_us`` times the NumPy pass on
  the same instances.

Both sides run on the same float64 instances in one process; each timing is the least time of one
call over at least REPEATS calls and MIN_TIMED_S of CPU time, divided by the number of instances.  The results are compared (max relative difference)
before any time is reported.  Timed on the 2-core CPU of this project's machine; OpenBLAS is
pinned to one thread (see theory.report) and so is torch.  Times are the CPU time of the process
(time.process_time, all its threads, user and system): the machine is shared with other jobs
(load average 3-5 while they run on 2 cores), and wall-clock time then counts the time slices
the scheduler gives them; for these one-thread computations CPU time equals wall-clock time on
an idle machine.  The read bandwidth of the memory-bound limit is timed the same way.
"""
from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from dataclasses import asdict, dataclass  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Optional  # noqa: E402

import numpy as np  # noqa: E402

from numeric import native, one_pass  # noqa: E402
from numeric.quantities import STRUCTURED_OPS as OPS  # noqa: E402
from theory import bn, cli  # noqa: E402

SIZES = (32, 256, 1024)
# At m = 2 (eps = 0) the gradient through BatchNorm is exactly 0 for every batch: both sides are
# rounding noise and their relative difference means nothing, so the benchmark starts at m = 3.
# The largest: the Hessian case holds H (m x m float64) per instance, and torch.func's vmap(hessian)
# several times that; at m = 4096 one H is 128 MiB.
MIN_SIZE, MAX_SIZE = 3, 4096
WHY_SIZE = f"at m = 2 the gradient through BatchNorm is exactly 0, nothing to compare; above {MAX_SIZE} H does not fit"
# Instances per size for the smoke run (--quick): noisy timings, the same code paths.
QUICK = {"grad-norm": {32: 200, 256: 20, 1024: 4}, "hessian-forms": {32: 50, 256: 4, 1024: 1}}
# The full run sizes each case's working set (all instances' inputs together) to at least
# WORKING_SET_LLC_MULTIPLE times the last-level cache, so that H really streams from memory and
# the memory-bound limit below is the relevant one; MAX_INSTANCES caps the small-m cases, whose
# per-instance cost is then measured on >= 10^4 instances anyway.
WORKING_SET_LLC_MULTIPLE = 4
MAX_INSTANCES = 20000
# torch.func sides run over blocks of instances of about this many input bytes, so that their
# vmapped intermediates stay within memory (the same instances, the same total work).
TORCH_BLOCK_BYTES = 8 * 2**20
REPEATS = 5
MIN_TIMED_S = 0.5           # each timing repeats its call until this much CPU time is spent ...
MAX_REPEATS = 200           # ... or this many calls
# Agreement required before timings are reported: both sides are float64 evaluations of the
# same map; rounding of O(m) (gradient) and O(m^2) (Hessian) sums stays far below 1e-8.
AGREEMENT = 1e-8
FLOAT64_BYTES = 8
# When sysfs does not say (not Linux), the L3 of this project's 2-core EPYC machine.
DEFAULT_LLC_BYTES = 32 * 2**20


@dataclass(frozen=True)
class BenchRow:
    m: int
    case: str
    instances: int
    ours_us: float
    torch_func_us: float            # vmap(grad) for grad-norm; vmap(hessian) for hessian-forms
    speedup: float
    torch_hvp_us: Optional[float]   # vmap of a Hessian-vector product (jvp of grad); None for grad-norm
    speedup_vs_hvp: Optional[float]
    numpy_pass_us: Optional[float]  # ours with the NumPy pass instead of the C kernel; None for grad-norm
    bytes_per_instance: int         # input bytes that must be read once per instance
    limit_us: float                 # bytes_per_instance / read bandwidth (the highest measured in the run)
    ours_over_limit: float          # ours_us / limit_us (1 = memory-bound optimum)
    working_set_mib: float
    max_rel_diff: float


def last_level_cache_bytes() -> int:
    """Size of the largest CPU cache (sysfs), or DEFAULT_LLC_BYTES where sysfs does not say."""
    sizes = []
    for path in Path("/sys/devices/system/cpu/cpu0/cache").glob("index*/size"):
        text = path.read_text().strip().upper()
        unit = {"K": 2**10, "M": 2**20, "G": 2**30}.get(text[-1:], 1)
        sizes.append(int(text.rstrip("KMG")) * unit)
    return max(sizes) if sizes else DEFAULT_LLC_BYTES


def read_bandwidth(llc_bytes: int) -> float:
    """Bytes per second of one core summing a float64 array WORKING_SET_LLC_MULTIPLE times the
    LLC: a read stream, the access pattern of reading each instance's H once."""
    a = np.ones(WORKING_SET_LLC_MULTIPLE * llc_bytes // FLOAT64_BYTES)
    seconds, _ = _best(lambda: np.add.reduce(a), REPEATS)
    return a.nbytes / seconds


def bytes_per_instance(case: str, m: int) -> int:
    """Inputs each instance must read: y and t (grad-norm); H, y and b (hessian-forms); plus
    gamma and beta."""
    if case == "grad-norm":
        return FLOAT64_BYTES * (2 * m + 2)
    return FLOAT64_BYTES * (m * m + 2 * m + 2)


def instance_count(case: str, m: int, quick: bool, llc_bytes: int) -> int:
    if quick:
        return QUICK[case].get(m, 1)
    need = -(-WORKING_SET_LLC_MULTIPLE * llc_bytes // bytes_per_instance(case, m))
    return int(min(MAX_INSTANCES, max(need, 1)))


def instances(seed, n, m, with_H=True):
    rng = np.random.default_rng([seed, m, n])
    y = rng.standard_normal((n, m))
    t = rng.standard_normal((n, m))
    H = None
    if with_H:
        B = rng.standard_normal((n, m, m)) / np.sqrt(m)
        H = 0.5 * (B + np.swapaxes(B, 1, 2))
    b = rng.standard_normal((n, m))
    gamma = rng.uniform(0.5, 2.0, n)
    beta = rng.standard_normal(n)
    return y, t, H, b, gamma, beta


# ----------------------------------------------------------------------------------- ours

def ours_grad_norm(y, t, gamma, beta):
    m = y.shape[1]
    mu, sigma, y_hat = bn.batch_statistics(OPS, y, m, 0.0)
    z = OPS.scale(gamma, y_hat) + OPS.scale(beta, OPS.ones_like(y))
    v = bn.grad_y_bn(OPS, z - t, y_hat, sigma, gamma, m)
    return OPS.vec_sq(v)


def ours_hessian_forms(y, H, b, gamma, beta, native_pass=True):
    """The Theorem 4.2 forms, reading each H once from memory (numeric.one_pass)."""
    return one_pass.quadratic_head_hessian_forms(y, H, b, gamma, beta, native=native_pass)


# ---------------------------------------------------------------------------------- torch

def _torch_fns():
    import torch
    from torch.func import grad, hessian, jvp, vmap

    # one thread, like ours (OpenBLAS pinned above): a like-for-like per-instance cost on a
    # shared 2-core machine, where torch's thread pool otherwise makes timings vary 100x
    torch.set_num_threads(1)

    def bn_map(y, gamma, beta):                      # training-mode BatchNorm, biased variance, eps = 0
        mu = y.mean()
        sigma = ((y - mu) ** 2).mean().sqrt()
        return gamma * (y - mu) / sigma + beta

    def squared(y, t, gamma, beta):
        return 0.5 * ((bn_map(y, gamma, beta) - t) ** 2).sum()

    def quadratic(y, H, b, gamma, beta):
        z = bn_map(y, gamma, beta)
        return 0.5 * z @ H @ z + b @ z

    def grad_norm(y, t, gamma, beta):
        v = vmap(grad(squared))(y, t, gamma, beta)
        return (v * v).sum(-1)

    def hessian_forms(y, H, b, gamma, beta):
        v = vmap(grad(quadratic))(y, H, b, gamma, beta)
        hess = vmap(hessian(quadratic))(y, H, b, gamma, beta)
        return torch.einsum("ni,nij,nj->n", v, hess, v), torch.einsum("ni,nij,nj->n", v, H, v)

    def one_hvp_forms(y, H, b, gamma, beta):
        # the strongest torch.func route for a quadratic form: a Hessian-vector product
        # (forward-over-reverse), never forming the m x m Hessian
        f = lambda y_: quadratic(y_, H, b, gamma, beta)  # noqa: E731
        v = grad(f)(y)
        _, hv = jvp(grad(f), (y,), (v,))
        return v @ hv, v @ (H @ v)

    def hvp_forms(y, H, b, gamma, beta):
        return vmap(one_hvp_forms)(y, H, b, gamma, beta)

    return torch, grad_norm, hessian_forms, hvp_forms


def _blocks(fn, block, *arrays):
    """fn over consecutive blocks of instances, outputs concatenated: bounds the memory of
    torch.func's vmapped intermediates (vmap(hessian) holds several (N, m, m) tensors)."""
    import torch
    parts = [fn(*(a[i:i + block] for a in arrays)) for i in range(0, arrays[0].shape[0], block)]
    if isinstance(parts[0], tuple):
        return tuple(torch.cat([p[k] for p in parts]) for k in range(len(parts[0])))
    return torch.cat(parts)


def _best(fn, repeats):
    """(the least CPU time of one call, its output) over at least ``repeats`` calls and at least
    MIN_TIMED_S in all: the best of 5 calls of a few milliseconds each (ours at m = 1024) varied
    1.4-2.5x the memory-bound limit between two runs on this shared machine, whose memory
    bandwidth dips for tens of milliseconds at a time."""
    best = float("inf")
    out = None
    spent, calls = 0.0, 0
    while calls < repeats or (spent < MIN_TIMED_S and calls < MAX_REPEATS):
        start = time.process_time()
        out = fn()
        elapsed = time.process_time() - start
        best, spent, calls = min(best, elapsed), spent + elapsed, calls + 1
    return best, out


def _rel(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(a) + np.abs(b), np.finfo(float).tiny)))


def run(sizes=SIZES, quick=False, seed=0) -> list:
    torch, t_grad_norm, t_hessian_forms, t_hvp_forms = _torch_fns()
    llc = last_level_cache_bytes()
    # the read bandwidth is measured before every case, next to our timing, and the limit uses the
    # highest value seen: on this shared machine one measurement taken at a contended moment would
    # make the limit slower, and ours_over_limit smaller, than the machine really allows
    bandwidths = []
    timed = []
    for m in sizes:
        for case in ("grad-norm", "hessian-forms"):
            n = instance_count(case, m, quick, llc)
            y, t, H, b, gamma, beta = instances(seed, n, m, with_H=case == "hessian-forms")
            ty, tt, tH, tb, tg, tbe = (None if a is None else torch.from_numpy(a) for a in (y, t, H, b, gamma, beta))
            # warm-up: the first call of a vmap-ed function traces it
            hvp_s = numpy_s = None
            bandwidths.append(read_bandwidth(llc))
            if case == "grad-norm":
                t_grad_norm(ty[:1], tt[:1], tg[:1], tbe[:1])
                ours_s, ours = _best(lambda: ours_grad_norm(y, t, gamma, beta), REPEATS)
                torch_s, theirs = _best(lambda: _blocks(t_grad_norm, TORCH_BLOCK_BYTES // (8 * m), ty, tt, tg, tbe), REPEATS)
                diff = _rel(ours, theirs.numpy())
            else:
                t_hessian_forms(ty[:1], tH[:1], tb[:1], tg[:1], tbe[:1])
                t_hvp_forms(ty[:1], tH[:1], tb[:1], tg[:1], tbe[:1])
                ours_s, ours = _best(lambda: ours_hessian_forms(y, H, b, gamma, beta), REPEATS)
                numpy_s, numpy_pass = _best(lambda: ours_hessian_forms(y, H, b, gamma, beta, native_pass=False), REPEATS)
                block = max(1, TORCH_BLOCK_BYTES // (8 * m * m))
                torch_s, theirs = _best(lambda: _blocks(t_hessian_forms, block, ty, tH, tb, tg, tbe), 2 if m >= 256 else REPEATS)
                hvp_s, hvp = _best(lambda: _blocks(t_hvp_forms, block, ty, tH, tb, tg, tbe), REPEATS)
                diff = max(_rel(ours[0], theirs[0].numpy()), _rel(ours[1], theirs[1].numpy()),
                           _rel(ours[0], hvp[0].numpy()), _rel(ours[1], hvp[1].numpy()),
                           _rel(ours[0], numpy_pass[0]), _rel(ours[1], numpy_pass[1]))
            if diff > AGREEMENT:
                raise AssertionError(f"{case} at m = {m}: ours and torch.func differ by {diff:.3g} (relative)")
            timed.append((m, case, n, ours_s, torch_s, hvp_s, numpy_s, diff))
    bandwidth = max(bandwidths)
    rows = []
    for m, case, n, ours_s, torch_s, hvp_s, numpy_s, diff in timed:
        nbytes = bytes_per_instance(case, m)
        limit_us = 1e6 * nbytes / bandwidth
        ours_us = 1e6 * ours_s / n
        rows.append(BenchRow(
            m, case, n, ours_us, 1e6 * torch_s / n, torch_s / ours_s,
            None if hvp_s is None else 1e6 * hvp_s / n, None if hvp_s is None else hvp_s / ours_s,
            None if numpy_s is None else 1e6 * numpy_s / n, nbytes, limit_us, ours_us / limit_us, n * nbytes / 2**20, diff))
    return rows, {"llc_bytes": llc, "read_bandwidth_gb_s": bandwidth / 1e9,
                  "read_bandwidth_gb_s_lowest": min(bandwidths) / 1e9, "pass": native.status()}


def format_text(rows, machine) -> str:
    lines = [f"{'m':>5}  {'case':<14} {'N':>6}  {'ours (us)':>10}  {'hessian (us)':>12}  {'x':>5}  "
             f"{'HVP (us)':>9}  {'x':>5}  {'numpy pass':>10}  {'limit (us)':>10}  {'ours/limit':>10}  rel diff"]
    for r in rows:
        hvp = f"{r.torch_hvp_us:>9.1f}  {r.speedup_vs_hvp:>5.1f}" if r.torch_hvp_us is not None else f"{'-':>9}  {'-':>5}"
        numpy_pass = f"{r.numpy_pass_us:>10.2f}" if r.numpy_pass_us is not None else f"{'-':>10}"
        lines.append(f"{r.m:>5}  {r.case:<14} {r.instances:>6}  {r.ours_us:>10.2f}  {r.torch_func_us:>12.1f}  "
                     f"{r.speedup:>5.0f}  {hvp}  {numpy_pass}  {r.limit_us:>10.2f}  {r.ours_over_limit:>10.1f}  {r.max_rel_diff:.1e}")
    lines.append(f"hessian: vmap(grad) for grad-norm, vmap(hessian) for hessian-forms; HVP: vmap of jvp(grad); "
                 f"limit: input bytes / read bandwidth {machine['read_bandwidth_gb_s']:.1f} GB/s (the highest of the "
                 f"run, lowest {machine['read_bandwidth_gb_s_lowest']:.1f}; one core, working set >= "
                 f"{WORKING_SET_LLC_MULTIPLE} x LLC of {machine['llc_bytes'] / 2**20:.0f} MiB); "
                 f"ours: pass {machine['pass']}; numpy pass: ours with numeric.one_pass's NumPy pass (us)")
    ours = {(r.case, r.m): r.ours_us for r in rows}
    ms = sorted({r.m for r in rows})
    if len(ms) >= 2:
        lo, hi = ms[0], ms[-1]
        for case in ("grad-norm", "hessian-forms"):
            if (case, lo) in ours and (case, hi) in ours:
                lines.append(f"growth of ours, {case}: x{ours[(case, hi)] / ours[(case, lo)]:.0f} from m = {lo} to "
                             f"{hi} (m^2 would be x{(hi / lo) ** 2:.0f})")
    return "\n".join(lines) + "\n"


def _bench(args) -> int:
    rows, machine = run(args.sizes, args.quick, args.seed)
    if args.json:
        print(json.dumps({"machine": machine, "rows": [asdict(r) for r in rows]}, indent=2))
    else:
        sys.stdout.write(format_text(rows, machine))
    return 0


def main(argv=None) -> int:
    parser = cli.parser("python -m numeric.bench", __doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true", help="print {\"rows\": [...]} as JSON")
    parser.add_argument("--sizes", type=cli.int_between(MIN_SIZE, MAX_SIZE, WHY_SIZE), nargs="+", default=list(SIZES),
                        metavar="M")
    parser.add_argument("--quick", action="store_true", help="few instances (a smoke test, noisy timings)")
    parser.add_argument("--seed", type=cli.seed, default=0)
    return cli.run(parser, _bench, argv)


if __name__ == "__main__":
    sys.exit(main())
