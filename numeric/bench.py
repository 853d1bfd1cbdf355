"""Benchmark: the closed forms of theory.bn against torch.func on the same instances.

    python -m numeric.bench [--json] [--sizes 32 256 1024] [--quick]

Two cases, per instance, at each batch size m:

* ``grad-norm`` (Theorem 4.1): ||nabla_y L_hat||^2 for L(z) = ||z - t||^2/2 composed with the
  training-mode BatchNorm map.  Ours: z, g = z - t and theory.bn.grad_y_bn, O(m).  torch.func:
  vmap(grad(L o BN)).
* ``hessian-forms`` (Theorem 4.2): v^T (d^2 L_hat/dy^2) v and v^T H v, v = nabla_y L_hat, for a
  quadratic L(z) = z^T H z/2 + <b, z> with a dense H per instance.  Ours: g = H z + b and
  theory.bn.hessian_bn_bilinear, O(m^2) (H mat-vecs through BLAS, numeric.hessians.StructuredOps).  torch.func: vmap(hessian(L o BN)) and
  vmap(grad(...)), then the two forms.

Both sides run on the same float64 instances in one process; each timing is the best of a few
repeats divided by the number of instances.  The results are compared (max relative difference)
before any time is reported.  Timed on the 2-core CPU of this project's machine; OpenBLAS is
pinned to one thread (see theory.report) and so is torch.
"""
from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from dataclasses import asdict, dataclass  # noqa: E402

import numpy as np  # noqa: E402

from numeric.quantities import STRUCTURED_OPS as OPS  # noqa: E402
from theory import bn, cli  # noqa: E402

SIZES = (32, 256, 1024)
# Instances per size: enough for a stable timing of ours, few enough that torch's O(m^3)
# hessian at m = 1024 stays within seconds.
INSTANCES = {"grad-norm": {32: 2000, 256: 500, 1024: 100}, "hessian-forms": {32: 1000, 256: 16, 1024: 2}}
QUICK = {"grad-norm": {32: 200, 256: 20, 1024: 4}, "hessian-forms": {32: 50, 256: 4, 1024: 1}}
REPEATS = 5
# Agreement required before timings are reported: both sides are float64 evaluations of the
# same map; rounding of O(m) (gradient) and O(m^2) (Hessian) sums stays far below 1e-8.
AGREEMENT = 1e-8


@dataclass(frozen=True)
class BenchRow:
    m: int
    case: str
    instances: int
    ours_us: float
    torch_func_us: float
    speedup: float
    max_rel_diff: float


def instances(seed, n, m):
    rng = np.random.default_rng([seed, m, n])
    y = rng.standard_normal((n, m))
    t = rng.standard_normal((n, m))
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


def ours_hessian_forms(y, H, b, gamma, beta):
    m = y.shape[1]
    mu, sigma, y_hat = bn.batch_statistics(OPS, y, m, 0.0)
    z = OPS.scale(gamma, y_hat) + OPS.scale(beta, OPS.ones_like(y))
    g = OPS.matvec(H, z) + b
    v = bn.grad_y_bn(OPS, g, y_hat, sigma, gamma, m)
    return bn.hessian_bn_bilinear(OPS, H, g, y_hat, sigma, gamma, m, v, v), OPS.bilinear(H, v, v)


# ---------------------------------------------------------------------------------- torch

def _torch_fns():
    import torch
    from torch.func import grad, hessian, vmap

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

    return torch, grad_norm, hessian_forms


def _best(fn, repeats):
    best = float("inf")
    out = None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def _rel(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(a) + np.abs(b), np.finfo(float).tiny)))


def run(sizes=SIZES, quick=False, seed=0) -> list:
    torch, t_grad_norm, t_hessian_forms = _torch_fns()
    counts = QUICK if quick else INSTANCES
    rows = []
    for m in sizes:
        for case in ("grad-norm", "hessian-forms"):
            n = counts[case].get(m, max(1, 1024 // m))
            y, t, H, b, gamma, beta = instances(seed, n, m)
            ty, tt, tH, tb, tg, tbe = (torch.from_numpy(a) for a in (y, t, H, b, gamma, beta))
            # warm-up: the first call of a vmap-ed function traces it
            if case == "grad-norm":
                t_grad_norm(ty[:1], tt[:1], tg[:1], tbe[:1])
            else:
                t_hessian_forms(ty[:1], tH[:1], tb[:1], tg[:1], tbe[:1])
            if case == "grad-norm":
                ours_s, ours = _best(lambda: ours_grad_norm(y, t, gamma, beta), REPEATS)
                torch_s, theirs = _best(lambda: t_grad_norm(ty, tt, tg, tbe), REPEATS)
                diff = _rel(ours, theirs.numpy())
            else:
                ours_s, ours = _best(lambda: ours_hessian_forms(y, H, b, gamma, beta), REPEATS)
                torch_s, theirs = _best(lambda: t_hessian_forms(ty, tH, tb, tg, tbe), 2 if m >= 256 else REPEATS)
                diff = max(_rel(ours[0], theirs[0].numpy()), _rel(ours[1], theirs[1].numpy()))
            if diff > AGREEMENT:
                raise AssertionError(f"{case} at m = {m}: ours and torch.func differ by {diff:.3g} (relative)")
            rows.append(BenchRow(m, case, n, 1e6 * ours_s / n, 1e6 * torch_s / n, torch_s / ours_s, diff))
    return rows


def format_text(rows) -> str:
    lines = [f"{'m':>5}  {'case':<14} {'N':>5}  {'ours (us)':>12}  {'torch.func (us)':>16}  {'speedup':>9}  rel diff"]
    for r in rows:
        lines.append(f"{r.m:>5}  {r.case:<14} {r.instances:>5}  {r.ours_us:>12.2f}  {r.torch_func_us:>16.1f}  "
                     f"{r.speedup:>8.0f}x  {r.max_rel_diff:.1e}")
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
    rows = run(args.sizes, args.quick, args.seed)
    if args.json:
        print(json.dumps({"rows": [{k: v for k, v in asdict(r).items()} for r in rows]}, indent=2))
    else:
        sys.stdout.write(format_text(rows))
    return 0


def main(argv=None) -> int:
    parser = cli.parser("python -m numeric.bench", __doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true", help="print {\"rows\": [...]} as JSON")
    parser.add_argument("--sizes", type=cli.int_at_least(2, "BatchNorm needs m >= 2"), nargs="+", default=list(SIZES), metavar="M")
    parser.add_argument("--quick", action="store_true", help="few instances (a smoke test, noisy timings)")
    parser.add_argument("--seed", type=cli.seed, default=0)
    return cli.run(parser, _bench, argv)


if __name__ == "__main__":
    sys.exit(main())
