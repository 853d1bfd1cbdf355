"""Theorem 4.2's forms of a quadratic loss head with a dense H, reading each H once.

For L(z) = z^T H z/2 + <b, z> (H symmetric, m x m, dense) at z = gamma y_hat + beta 1, the
forms v^T (d^2 L_hat/dy^2) v and v^T H v (v = nabla_y L_hat) are forms of H on vectors of
span{g, 1, y_hat}, g = H z + b: they follow exactly from the 3 x 3 Gram matrix K = B^T H B,
B = [g, 1, y_hat] (theory.bn.hessian_forms_from_gram).  Evaluated directly they take three
passes over H (g = Hz + b; H(Pv); Hv); at m = 1024 an H is 8 MiB and each pass streams it from
memory.  K needs one pass, although g depends on H, because H is symmetric:

    row i of H gives (H1)_i and (H y_hat)_i, hence g_i = gamma (H y_hat)_i + beta (H1)_i + b_i;
    g^T H g = sum_i g_i (2 s_i + H_ii g_i),  s_i = sum_{j<i} H_ij g_j,
    1^T H g = <H1, g>,  y_hat^T H g = <H y_hat, g>,  1^T H 1 = <1, H1>,
    1^T H y_hat = <1, H y_hat>,  y_hat^T H y_hat = <y_hat, H y_hat>,

where s_i needs only the g_j of rows above i, known by the time row i is read.  In blocks R of
rows: one product H[R, :] @ [1, y_hat, z, g_known] (g_known = g on the rows already done, 0
elsewhere) gives (H1)_R, (H y_hat)_R, (Hz)_R = g_R - b_R and s_R at once; the
diagonal block H[R, R], still in cache, adds g_R^T H[R, R] g_R.  So g^T H g = sum_R (2 <g_R, s_R> + g_R^T H[R, R] g_R).

Precondition: H symmetric (a Hessian d^2 L/dz^2 is, and every statement of the registry assumes
it).  The pass takes g^T H g from the block lower triangle of H and 1^T H g from the rows of H;
for a non-symmetric H these are not the forms of H (nor of (H + H^T)/2), and the result differs
from the three-pass evaluation (tests/test_numeric_one_pass.py shows it).  It is not checked here:
checking would read every H a second time, transposed, which is the cost this module removes.

Two implementations of the pass, the same arithmetic: float64 C-contiguous inputs go through
numeric.native's C kernel (row by row: g_known is then g on rows < i, so s_i is the row's product
with it, no diagonal block); any other dtype (the exact tests' SymPy rationals) or a strided view
takes the NumPy pass below, as does every input when no C compiler works (numeric.native.status
says which).  ``native=False`` forces the NumPy pass (the tests compare the two).
"""
from __future__ import annotations

import numpy as np

from numeric import native as native_kernels
from theory import bn
from theory.ops import NumpyOps

OPS = NumpyOps()
FLOAT64_BYTES = 8
# Rows of H per block.  Measured on this machine's EPYC core (OpenBLAS 0.3.31, one thread) at
# m = 1024, 16 instances (128 MiB), time of the product H[R, :] @ X alone over the whole H, as a
# multiple of summing the same bytes: 1.8x at 64 and 128 rows, 3.8x at 256 (OpenBLAS changes
# kernel there).  128 keeps the Python loop short (m/128 steps).
ROW_BLOCK = 128
# Instances are processed in chunks whose row blocks together hold at most this many bytes: the
# whole computation of a chunk (statistics, pass, forms) then runs on arrays in cache, NumPy's
# per-call cost is shared by the chunk, and a chunk's row blocks are still in cache when their
# diagonal blocks are read a second time.  Measured at m = 1024 (8 or 16 instances per chunk)
# and m = 32 (1024 instances): 4, 8 and 16 MiB within the noise of this shared machine (+-15%),
# 1 MiB slower (NumPy's per-call cost).
STEP_BYTES = 8 * 2**20


def gram_one_pass(H, y_hat, b, gamma, beta, *, row_block=ROW_BLOCK, native=True):
    """g = H z + b (z = gamma y_hat + beta 1) and K = B^T H B (theory.bn.SpanGram), reading H once.

    H (N, m, m) symmetric, y_hat and b (N, m), gamma and beta (N,).  Works for any dtype numpy
    can multiply, object arrays of SymPy rationals included (the exact tests).  Returns
    (g, SpanGram).  ``native``: take the C kernel where it applies (row_block is then unused).
    """
    passed = native_kernels.gram_pass(H, y_hat, b, gamma, beta) if native else None
    if passed is not None:
        H1, Hy, g, s, gg = passed
        return g, _span_gram(gg, H1, Hy, g, y_hat)
    n, m = y_hat.shape
    row_block = max(1, min(row_block, m))
    dtype = np.result_type(H, y_hat, b, gamma, beta)
    # the right-hand side [1, y_hat, z, g_known], column-major per instance; OpenBLAS multiplies a
    # block of rows by 4 such columns faster than by 3 (1.8x against 2.1x the time of a sum), so
    # z = gamma y_hat + beta 1 rides along: (Hz)_R + b_R is g_R without further arithmetic
    XT = np.empty((n, 4, m), dtype=dtype)
    XT[:, 0] = 1
    XT[:, 1] = y_hat
    XT[:, 2] = np.asarray(gamma)[:, None] * y_hat + np.asarray(beta)[:, None]
    XT[:, 3] = 0
    X = XT.swapaxes(1, 2)                          # (N, m, 4), a view
    g = XT[:, 3]                                   # (N, m): g_known, complete after the pass
    PT = np.empty((n, 4, m), dtype=dtype)          # [H1, H y_hat, Hz, s], written column-major
    P = PT.swapaxes(1, 2)                          # (N, m, 4) view: BLAS writes it in place
    D = np.empty((n, m, 1), dtype=dtype)           # H[R, R] g_R, block by block
    for r in range(0, m, row_block):
        R = slice(r, r + row_block)
        np.matmul(H[:, R, :], X, out=P[:, R])                              # (N, |R|, 4)
        np.add(PT[:, 2, R], b[:, R], out=g[:, R])                          # g_R = (Hz)_R + b_R
        np.matmul(H[:, R, R], X[:, R, 3:], out=D[:, R])                    # H[R, R] g_R, from cache
    H1, Hy, s = PT[:, 0], PT[:, 1], PT[:, 3]
    return g.copy(), _span_gram(np.einsum("ni,ni->n", g, 2 * s + D[..., 0]), H1, Hy, g, y_hat)


def _span_gram(gg, H1, Hy, g, y_hat):
    """K = B^T H B from g^T H g and the products H1, H y_hat of the pass."""
    dot = lambda u, w: np.einsum("ni,ni->n", u, w)  # noqa: E731
    return bn.SpanGram(gg=gg, g1=dot(H1, g), gy=dot(Hy, g), one_one=H1.sum(axis=-1), one_y=Hy.sum(axis=-1),
                       yy=dot(y_hat, Hy))


def quadratic_head_hessian_forms(y, H, b, gamma, beta, eps=0.0, *, row_block=ROW_BLOCK, step_bytes=STEP_BYTES,
                                 native=True):
    """(v^T (d^2 L_hat/dy^2) v, v^T H v), each (N,), for L(z) = z^T H z/2 + <b, z> at z = BN(y), with
    v = nabla_y L_hat: one pass over each H (gram_one_pass), then theory.bn.hessian_forms_from_gram,
    in chunks of instances (STEP_BYTES).

    y, b (N, m); H (N, m, m) symmetric; gamma, beta (N,); eps >= 0 scalar or (N,).
    """
    n, m = y.shape
    eps = np.broadcast_to(np.asarray(eps, dtype=np.float64), (n,))
    chunk = max(1, step_bytes // (FLOAT64_BYTES * max(1, min(row_block, m)) * m))
    parts = []
    for i in range(0, n, chunk):
        I = slice(i, i + chunk)
        _, sigma, y_hat = bn.batch_statistics(OPS, y[I], m, eps[I])
        g, gram = gram_one_pass(H[I], y_hat, b[I], gamma[I], beta[I], row_block=row_block, native=native)
        parts.append(bn.hessian_forms_from_gram(OPS, gram, g, y_hat, sigma, gamma[I], m))
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
