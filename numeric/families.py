"""Instance families: N BatchNorm channels at a time, each reproducible from (seed, chunk).

An instance of the BatchNorm-channel setting is (y, gamma, beta, eps, g, H, lam): a batch
y in R^m of one channel, the BatchNorm parameters, the gradient g = dL/dz and Hessian
H = d^2L/dz^2 of a loss head at z = BN(y), and the bound lambda on ||X||_2 of Theorems 4.4 and
C.1.  Instances are drawn in *chunks* of one batch size m, one loss head and one group (below);
a chunk's random stream is ``np.random.default_rng([seed, group, head, m])``, so any chunk can be
redrawn alone and the same seed gives the same instances.

Every catalogue below (batch sizes, kinds of batch, gradient modes, heads, groups) carries
its own description; ``python -m numeric.families --doc docs/instance-families.md`` writes
them, with the ranges of every scale, to the documentation.
"""
from __future__ import annotations

import math
import sys
from dataclasses import dataclass

import numpy as np

from numeric import losses
from numeric.hessians import DiagLowRank
from numeric.quantities import OPS, bn_channel_quantities
from theory import bn, cli
from theory.fileio import atomic_write_text

# ---------------------------------------------------------------------------------------------
# Catalogues (name -> description); the order is part of the seed derivation, append only
# ---------------------------------------------------------------------------------------------

M_SMALL = (2, 3, 4, 5, 6, 8, 11, 16, 23, 32, 45, 64)
M_LARGE = (128, 256, 512, 1024, 2048, 4096)
M_GRID = M_SMALL + M_LARGE
# Full m x m Jacobians and Hessians (Facts C.2, the Appendix C Hessian) and the maxima of
# Theorem C.1 cost O(m^3) per instance: computed for m <= FULL_MATRIX_MAX_M.
FULL_MATRIX_MAX_M = 64
# Dense H up to this m; above it H is kept diagonal-plus-low-rank (numeric.hessians).
DENSE_MAX_M = 64
# Share of a group's instances drawn at m > 64 (the rest are spread over M_SMALL).
LARGE_M_SHARE = 0.1

Y_KINDS = {
    "gaussian": "i.i.d. standard normal entries",
    "uniform": "i.i.d. uniform on [-1, 1]",
    "heavy-tailed": "exp(2 N(0,1)): log-normal, a few entries dominate the variance",
    "two-valued": "two distinct values, split at a random position (every batch of m = 2 is one)",
    "one-outlier": "1e-3-scale normal noise plus one entry of size 10^U(0,3)",
    "offset": "standard normal shifted by up to 10 standard deviations (mean far from 0)",
    "integer": "integers in [-3, 3] (ties; a constant draw gets +1 on its first entry)",
}
G_MODES = {
    "generic": "a standard normal direction",
    "near-yhat": "y_hat/||y_hat|| + delta n, delta = 10^U(-8,-1): g nearly parallel to y_hat",
    "near-ones": "1/sqrt(m) + delta n: g nearly parallel to the all-ones vector",
    "near-orthogonal": "P n/||P n|| + delta (+-1/sqrt(m) +- y_hat/||y_hat||): g nearly orthogonal to 1 and y_hat",
    "one-hot": "e_k: the gradient of a single sample (an outlier in g)",
}
HEADS = {
    "quadratic-psd": "L quadratic, H = B B^T/m (B standard normal; above m = 64 diagonal |N| plus rank 4 PSD), g by G_MODES",
    "quadratic-indefinite": "L quadratic, H = (B + B^T)/(2 sqrt m) (above m = 64 diagonal N plus rank 4 of both signs), g by G_MODES",
    "quadratic-lowrank": "L quadratic, H = U diag(s) U^T of rank 2, s of both signs, g by G_MODES",
    "squared-error": "L = ||z - t||^2/(2m) with t chosen so that g follows G_MODES; H = I/m",
    "softmax-ce": "softmax cross-entropy through a linear head z_b a + c_b (K = 4 classes, random labels); H diagonal",
    "mlp": "one-hidden-layer tanh MLP head (width 8) per sample, squared error to a random target; H diagonal",
}
GROUPS = {
    "free-eps0": "eps = 0; every head; full matrices for m <= 64",
    "free-eps": "eps = 1e-5 (torch's default); every head; full matrices for m <= 64",
    "relative-norm-eps0": ("eps = 0, m >= 3; H replaced by H + t v v^T with t chosen so that H preserves the "
                           "relative norms of g and v = grad_y_bn (Theorem 4.2's second display, Theorem C.1's "
                           "'same conditions'); t may be negative, so a PSD head's H can become indefinite (a "
                           "counterexample's label is read off its exact H); the maxima of Theorem C.1 for m <= 64"),
}
GROUP_EPS = {"free-eps0": 0.0, "free-eps": 1e-5, "relative-norm-eps0": 0.0}
SCALES = {
    "y scale": "10^U(-3, 3) times the kind's spread, plus a shift of N(0,1) spreads",
    "gamma": "+-10^U(-2, 2) (both signs)",
    "beta": "+-10^U(-3, 3) (both signs)",
    "||g||": "10^U(-3, 3) for heads that take g from G_MODES",
    "H scale": "10^U(-3, 3) for the quadratic heads",
    "lambda": "10^U(-2, 2)",
    "eps": "0 or 1e-5, by group",
}
# In the relative-norm group, t v v^T is added only where v is not nearly parallel to g
# (sin^2 angle(g, v) >= this); otherwise the construction divides by ~0 and the float
# constraint would hold only to ~u/sin^2, so such draws are redrawn with a generic g.
MIN_SIN_SQ = 1e-2


def _log_uniform(rng, lo, hi, n):
    return 10.0 ** rng.uniform(lo, hi, n)


def _signs(rng, n):
    return np.where(rng.random(n) < 0.5, -1.0, 1.0)


# ---------------------------------------------------------------------------------------------
# Batches y
# ---------------------------------------------------------------------------------------------

def sample_batches(rng, n, m):
    """y (n, m) and the kind index of each row (into Y_KINDS)."""
    kinds = rng.integers(0, len(Y_KINDS), n)
    d = rng.standard_normal((n, m))                                # gaussian (kind 0)
    names = list(Y_KINDS)
    k = {name: kinds == i for i, name in enumerate(names)}
    d = np.where(k["uniform"][:, None], rng.uniform(-1, 1, (n, m)), d)
    d = np.where(k["heavy-tailed"][:, None], np.exp(2 * rng.standard_normal((n, m))), d)
    split = rng.integers(1, m, n) if m > 1 else np.ones(n, int)
    two = np.where(np.arange(m)[None] < split[:, None], 0.0, 1.0) * rng.uniform(0.5, 2, n)[:, None]
    d = np.where(k["two-valued"][:, None], two + rng.standard_normal(n)[:, None], d)
    out = 1e-3 * rng.standard_normal((n, m))
    out[np.arange(n), rng.integers(0, m, n)] += _signs(rng, n) * _log_uniform(rng, 0, 3, n)
    d = np.where(k["one-outlier"][:, None], out, d)
    offset = rng.standard_normal((n, m)) + (_signs(rng, n) * rng.uniform(0, 10, n))[:, None]
    d = np.where(k["offset"][:, None], offset, d)
    d = np.where(k["integer"][:, None], rng.integers(-3, 4, (n, m)).astype(float), d)
    constant = np.ptp(d, axis=1) == 0
    d[constant, 0] += 1.0
    scale = _log_uniform(rng, -3, 3, n)
    shift = rng.standard_normal(n) * scale * np.where(k["offset"], 0.0, 1.0)
    y = d * scale[:, None] + shift[:, None]
    # a shift far above the spread can round a two-valued batch to a constant one: redraw as gaussian
    flat = np.ptp(y, axis=1) == 0
    y[flat] = rng.standard_normal((int(flat.sum()), m)) * scale[flat, None]
    kinds[flat] = 0
    return y, kinds


# ---------------------------------------------------------------------------------------------
# Gradients g and Hessians H
# ---------------------------------------------------------------------------------------------

def _unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def sample_gradients(rng, y_hat, modes):
    """Unit directions (n, m) of g for the given mode indices (into G_MODES)."""
    n, m = y_hat.shape
    names = list(G_MODES)
    noise = _unit(rng.standard_normal((n, m)))
    delta = _log_uniform(rng, -8, -1, n)[:, None]
    ones = np.ones((n, m)) / math.sqrt(m)
    yh = _unit(y_hat)
    proj = bn.project_out_mean_and_yhat(OPS, rng.standard_normal((n, m)), y_hat, m)
    # at m = 2 (eps = 0) the complement of {1, y_hat} is {0}: fall back to the noise direction
    proj_norm = np.linalg.norm(proj, axis=-1, keepdims=True)
    proj = np.where(proj_norm > 1e-8 * math.sqrt(m), proj / np.where(proj_norm > 0, proj_norm, 1), noise)
    out = noise.copy()
    pick = {name: (modes == i)[:, None] for i, name in enumerate(names)}
    out = np.where(pick["near-yhat"], _unit(yh + delta * noise), out)
    out = np.where(pick["near-ones"], _unit(ones + delta * noise), out)
    tilt = delta * (_signs(rng, n)[:, None] * ones + _signs(rng, n)[:, None] * yh)
    out = np.where(pick["near-orthogonal"], _unit(proj + tilt), out)
    hot = np.zeros((n, m))
    hot[np.arange(n), rng.integers(0, m, n)] = 1.0
    out = np.where(pick["one-hot"], hot, out)
    return out


def sample_quadratic_hessian(rng, head, n, m, dense):
    """H for a quadratic head, unit scale: (n, m, m) if dense else DiagLowRank."""
    if head == "quadratic-lowrank":
        H = DiagLowRank(np.zeros((n, m)), rng.standard_normal((n, m, 2)) / math.sqrt(m), rng.standard_normal((n, 2)))
        return H.dense() if dense else H
    if dense:
        B = rng.standard_normal((n, m, m))
        if head == "quadratic-psd":
            return B @ np.swapaxes(B, 1, 2) / m
        return (B + np.swapaxes(B, 1, 2)) / (2 * math.sqrt(m))
    U = rng.standard_normal((n, m, 4)) / math.sqrt(m)
    if head == "quadratic-psd":
        return DiagLowRank(np.abs(rng.standard_normal((n, m))), U, np.abs(rng.standard_normal((n, 4))))
    return DiagLowRank(rng.standard_normal((n, m)), U, rng.standard_normal((n, 4)))


def _scale_h(H, s):
    if isinstance(H, DiagLowRank):
        return DiagLowRank(H.diag * s[:, None], H.U, H.s * s[:, None])
    return H * s[:, None, None]


def head_at_z(rng, head, z, y_hat, modes, dense):
    """(g, H) of the head at z (n, m); H dense (n, m, m) if `dense`, else DiagLowRank."""
    n, m = z.shape
    if head.startswith("quadratic") or head == "squared-error":
        g = sample_gradients(rng, y_hat, modes) * _log_uniform(rng, -3, 3, n)[:, None]
        if head == "squared-error":
            at = losses.squared_error(z, z - m * g)
            g, H = at.g, at.H
        else:
            H = _scale_h(sample_quadratic_hessian(rng, head, n, m, dense), _log_uniform(rng, -3, 3, n))
    elif head == "softmax-ce":
        K = 4
        at = losses.softmax_cross_entropy(z, rng.standard_normal((n, K)) * _log_uniform(rng, -1, 1, n)[:, None],
                                          rng.standard_normal((n, m, K)), rng.integers(0, K, (n, m)))
        g, H = at.g, at.H
    elif head == "mlp":
        w = 8
        at = losses.mlp_head(z, rng.standard_normal((n, w)), rng.standard_normal((n, w)),
                             rng.standard_normal((n, w)) / math.sqrt(w), rng.standard_normal((n, m)))
        g, H = at.g, at.H
    else:
        raise ValueError(f"unknown loss head {head!r}; heads: {', '.join(HEADS)}")
    if dense and isinstance(H, DiagLowRank):
        H = H.dense()
    return g, H


# ---------------------------------------------------------------------------------------------
# "H preserves the relative norms of g and v": H + t v v^T
# ---------------------------------------------------------------------------------------------

def relative_norm_shift(ops, H_gg, H_vv, g, v):
    """t such that H + t v v^T satisfies v^T H v ||g||^2 = g^T H g ||v||^2 (over an ops back-end).

    With H' = H + t v v^T: v^T H' v = H_vv + t ||v||^4 and g^T H' g = H_gg + t <g,v>^2, so
    t = (H_gg ||v||^2 - H_vv ||g||^2) / (||v||^2 (||v||^2 ||g||^2 - <g,v>^2)); defined when
    v != 0 and v is not parallel to g.
    """
    gg, vv, gv = ops.dot(g, g), ops.dot(v, v), ops.dot(g, v)
    return (H_gg * vv - H_vv * gg) / (vv * (vv * gg - gv**2))


def preserve_relative_norms(H, g, v):
    """(H', ok): H + t v v^T for the rows where v is not nearly parallel to g; ok (n,) marks them."""
    gg, vv, gv = (np.einsum("ni,ni->n", a, b) for a, b in ((g, g), (v, v), (g, v)))
    with np.errstate(divide="ignore", invalid="ignore"):
        ok = (vv > 0) & (vv * gg - gv**2 >= MIN_SIN_SQ * vv * gg)
    if isinstance(H, DiagLowRank):
        H_gg, H_vv = H.bilinear(g, g), H.bilinear(v, v)
    else:
        H_gg, H_vv = OPS.bilinear(H, g, g), OPS.bilinear(H, v, v)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(ok, relative_norm_shift(OPS, H_gg, H_vv, g, v), 0.0)
    if isinstance(H, DiagLowRank):
        return H.plus_rank_one(t, v), ok
    return H + t[:, None, None] * np.einsum("ni,nj->nij", v, v), ok


# ---------------------------------------------------------------------------------------------
# Chunks
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class BnChunk:
    """n instances of one batch size, head and group, with what was drawn for each."""

    group: str
    head: np.ndarray       # (n,) index into HEADS
    m: int
    y: np.ndarray          # (n, m)
    gamma: np.ndarray      # (n,)
    beta: np.ndarray       # (n,)
    eps: np.ndarray        # (n,)
    g: np.ndarray          # (n, m)
    H: object              # (n, m, m) or DiagLowRank
    lam: np.ndarray        # (n,)
    y_kind: np.ndarray     # (n,) index into Y_KINDS
    g_mode: np.ndarray     # (n,) index into G_MODES (-1 where the head sets g)
    full: bool             # full matrices and Theorem C.1 maxima are computed

    @property
    def n(self) -> int:
        return self.y.shape[0]

    def quantities(self, grad_y_bn=None):
        """The registry's quantities of the chunk (grad_y_bn: a replacement for the measured v)."""
        return bn_channel_quantities(self.y, self.g, self.gamma, self.beta, self.eps, H=self.H, lam=self.lam,
                                     grad_y_bn=grad_y_bn, full_matrices=self.full,
                                     weight_space_maxima=self.full and self.group == "relative-norm-eps0")

    def take(self, index) -> "BnChunk":
        index = np.asarray(index)
        H = self.H.take(index) if isinstance(self.H, DiagLowRank) else self.H[index]
        return BnChunk(self.group, self.head[index], self.m, self.y[index], self.gamma[index], self.beta[index],
                       self.eps[index], self.g[index], H, self.lam[index], self.y_kind[index],
                       self.g_mode[index], self.full)

    def reversed(self) -> "BnChunk":
        """Every batch in reverse order: the same instances up to a permutation of the batch."""
        H = DiagLowRank(self.H.diag[:, ::-1], self.H.U[:, ::-1], self.H.s) if isinstance(self.H, DiagLowRank) \
            else self.H[:, ::-1, ::-1]
        return BnChunk(self.group, self.head, self.m, self.y[:, ::-1], self.gamma, self.beta, self.eps,
                       self.g[:, ::-1], H, self.lam, self.y_kind, self.g_mode, self.full)

    def instance(self, i: int) -> dict:
        """Instance i as plain float64 arrays (H dense), every input by name."""
        H = self.H.take([i]).dense()[0] if isinstance(self.H, DiagLowRank) else self.H[i]
        return dict(m=self.m, y=self.y[i], gamma=float(self.gamma[i]), beta=float(self.beta[i]),
                    eps=float(self.eps[i]), g=self.g[i], H=H, lam=float(self.lam[i]),
                    group=self.group, head=list(HEADS)[self.head[i]], y_kind=list(Y_KINDS)[self.y_kind[i]],
                    g_mode=list(G_MODES)[self.g_mode[i]] if self.g_mode[i] >= 0 else "head")


def chunk_rng(seed: int, group: str, head: str, m: int):
    return np.random.default_rng([seed, list(GROUPS).index(group), list(HEADS).index(head), m])


def sample_chunk(seed: int, group: str, head: str, m: int, n: int) -> BnChunk:
    """n instances of the BatchNorm-channel setting, reproducible from (seed, group, head, m)."""
    if group not in GROUPS:
        raise ValueError(f"unknown group {group!r}; groups: {', '.join(GROUPS)}")
    if head not in HEADS:
        raise ValueError(f"unknown loss head {head!r}; heads: {', '.join(HEADS)}")
    if m < 2 or n < 1:
        raise ValueError(f"a chunk needs m >= 2 and n >= 1, got m = {m}, n = {n}")
    rng = chunk_rng(seed, group, head, m)
    eps = np.full(n, GROUP_EPS[group])
    y, kinds = sample_batches(rng, n, m)
    _, sigma, y_hat = bn.batch_statistics(OPS, y, m, eps)
    gamma = _signs(rng, n) * _log_uniform(rng, -2, 2, n)
    beta = _signs(rng, n) * _log_uniform(rng, -3, 3, n)
    z = bn.bn_forward(OPS, y, m, gamma, beta, eps)
    takes_g = head.startswith("quadratic") or head == "squared-error"
    modes = rng.integers(0, len(G_MODES), n) if takes_g else np.full(n, -1)
    dense = m <= DENSE_MAX_M
    g, H = head_at_z(rng, head, z, y_hat, np.maximum(modes, 0), dense)
    lam = _log_uniform(rng, -2, 2, n)
    if group == "relative-norm-eps0":
        H0 = H
        v = bn.grad_y_bn(OPS, g, y_hat, sigma, gamma, m)
        H, ok = preserve_relative_norms(H0, g, v)
        if not ok.all() and takes_g:
            # where v came out (nearly) parallel to g, redraw g generically and construct again
            bad = ~ok
            g, modes = g.copy(), modes.copy()
            g[bad] = sample_gradients(rng, y_hat[bad], np.zeros(int(bad.sum()), int)) \
                * np.linalg.norm(g[bad], axis=-1, keepdims=True)
            modes[bad] = 0
            v = bn.grad_y_bn(OPS, g, y_hat, sigma, gamma, m)
            H, ok = preserve_relative_norms(H0, g, v)
    return BnChunk(group, np.full(n, list(HEADS).index(head)), m, y, gamma, beta, eps, g, H, lam, kinds, modes,
                   full=m <= FULL_MATRIX_MAX_M)


def merge_chunks(chunks) -> BnChunk:
    """One chunk of several of the same group and m (fewer, larger vectorised evaluations)."""
    first = chunks[0]
    if any(c.group != first.group or c.m != first.m for c in chunks):
        raise ValueError("only chunks of one group and one batch size merge")
    if all(isinstance(c.H, DiagLowRank) for c in chunks):
        k = max(c.H.U.shape[2] for c in chunks)

        def pad(c):
            extra = k - c.H.U.shape[2]
            return (np.concatenate([c.H.U, np.zeros(c.H.U.shape[:2] + (extra,))], axis=2),
                    np.concatenate([c.H.s, np.zeros((c.n, extra))], axis=1))
        padded = [pad(c) for c in chunks]
        H = DiagLowRank(np.concatenate([c.H.diag for c in chunks]), np.concatenate([p[0] for p in padded]),
                        np.concatenate([p[1] for p in padded]))
    else:
        H = np.concatenate([c.H.dense() if isinstance(c.H, DiagLowRank) else c.H for c in chunks])

    def cat(name):
        return np.concatenate([getattr(c, name) for c in chunks])
    return BnChunk(first.group, cat("head"), first.m, cat("y"), cat("gamma"), cat("beta"), cat("eps"), cat("g"), H,
                   cat("lam"), cat("y_kind"), cat("g_mode"), first.full)


@dataclass(frozen=True)
class ChunkSpec:
    group: str
    head: np.ndarray       # (n,) index into HEADS
    m: int
    n: int


def _spread(total, ms, weights):
    w = np.asarray(weights, float)
    w = w / w.sum()
    counts = np.floor(total * w).astype(int)
    counts[: total - counts.sum()] += 1
    return dict(zip(ms, counts))


def plan(instances: int) -> tuple:
    """The chunks of a run with at least `instances` instances per group at m <= 64 (and
    LARGE_M_SHARE more at m > 64), spread over the heads.

    Weights over M_SMALL fall as m^-1/2 (more small batches, where the paper's printed
    coefficients differ most and counterexamples are shortest); over M_LARGE as m^-1 (cost).
    """
    if instances < 1:
        raise ValueError(f"instances must be >= 1, got {instances}")
    specs = []
    heads = list(HEADS)
    for group in GROUPS:
        small = [m for m in M_SMALL if not (group == "relative-norm-eps0" and m < 3)]
        alloc = _spread(instances, small, [m**-0.5 for m in small])
        large = max(len(M_LARGE), int(math.ceil(LARGE_M_SHARE * instances)))
        alloc.update(_spread(large, M_LARGE, [m**-1.0 for m in M_LARGE]))
        for m, count in alloc.items():
            per_head = _spread(int(count), heads, [1.0] * len(heads))
            for head in heads:
                if per_head[head] > 0:
                    specs.append(ChunkSpec(group, head, m, int(per_head[head])))
    return tuple(specs)


# ---------------------------------------------------------------------------------------------
# Documentation
# ---------------------------------------------------------------------------------------------

def _table(title, mapping):
    lines = [f"### {title}", "", "| name | what is drawn |", "|---|---|"]
    lines += [f"| `{k}` | {v} |" for k, v in mapping.items()]
    return lines + [""]


def markdown() -> str:
    """docs/instance-families.md, generated from the catalogues above and numeric.dln."""
    from numeric import dln

    out = ["# Instance families", "",
           "<!-- generated by `python -m numeric.families --doc docs/instance-families.md`; do not edit -->", "",
           "Every instance the report evaluates is drawn from the families below, in chunks of one batch size",
           "m, one loss head and one group; a chunk's stream is `np.random.default_rng([seed, group, head, m])`,",
           "so the same seed gives the same instances (tests/test_numeric_families.py checks it).", "",
           "## BatchNorm-channel setting (facts C.1, C.2, the Appendix C Hessian, theorems 4.1, 4.2, 4.4, C.1, observation 4.3)", "",
           f"Batch sizes: m in {', '.join(map(str, M_GRID))} (log-spread); m <= 64 get most instances "
           f"(weights m^-1/2), m > 64 get {LARGE_M_SHARE:.0%} more (weights m^-1).  Full m x m matrices "
           f"(Fact C.2, the Appendix C Hessian) and the maxima of Theorem C.1 for m <= {FULL_MATRIX_MAX_M}; "
           f"above m = {DENSE_MAX_M} the Hessian H is kept as diagonal plus low rank (numeric.hessians).", ""]
    out += _table("Groups", GROUPS)
    out += _table("Kinds of batch y", Y_KINDS)
    out += _table("Loss heads (g and H at z = BN(y))", HEADS)
    out += _table("Gradient modes (heads that take g)", G_MODES)
    out += _table("Scales (per instance, independent)", SCALES)
    out += ["Excluded on purpose: batches whose mean is more than ~10 standard deviations from 0 relative to",
            "their spread.  The centring y - mu then loses log10(|mu|/sigma) digits, which the registry's",
            "rounding tolerance (theory.evaluate) does not model, so identities would show rounding as",
            "violations; exact re-evaluation (numeric.certify) rejects such float 'violations'.", "",
            "## Theorem C.1: the maxima over ||X||_2 <= lambda", "",
            "Computed exactly, not sampled: numeric.maxima solves the trust-region problem max w^T A w over",
            "||w - (lambda^2/2)u|| <= (lambda^2/2)||u|| by eigendecomposition and the secular equation, with a",
            "duality-gap certificate; X, hence S = X X^T, varies while u, A, gamma, sigma are held fixed",
            "(the registry's reading).  Theorem 4.4's maxima are in closed form: lambda^2 ||u||^2.", ""]
    out += dln.markdown_section()
    out += ["## Lemma 4.5: toy regression", "",
            "Instances come from theory.lemma45 (one neuron, identity activation, exact optimum sets).", ""]
    return "\n".join(out)


def _describe(args) -> int:
    text = markdown() + "\n"
    if args.doc:
        try:
            atomic_write_text(args.doc, text)
        except OSError as err:
            raise cli.InputError(f"cannot write {args.doc!r}: {err.strerror or err}") from None
    else:
        sys.stdout.write(text)
    return 0


def main(argv=None) -> int:
    parser = cli.parser("python -m numeric.families", __doc__.split("\n")[0])
    parser.add_argument("--doc", metavar="FILE", help="write the markdown description to FILE (default: stdout)")
    return cli.run(parser, _describe, argv)


if __name__ == "__main__":
    sys.exit(main())
