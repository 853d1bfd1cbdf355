"""Array back-ends over which every formula of the toolkit is written once.

A statement of the paper, and the BatchNorm calculus it rests on, is written as a function of
an ``Ops`` object and the quantities of one BatchNorm channel.  The same function is then
evaluated

* by ``NumpyOps``   on N instances at once (scalars ``(N,)``, vectors ``(N, m)``, matrices
  ``(N, m, m)``) -- the numeric layer and the trajectory probes;
* by ``SympyOps``   on one fully symbolic or exact-rational batch (``sympy.Matrix``) -- the
  symbolic layer for m = 2..6 and the exact certification of counterexamples;
* by ``InvariantOps`` for a general, symbolic batch size m: a vector is a linear combination
  of the basis vectors 1, y_hat and g whose Gram matrix is known in closed form, and a
  quadratic form of H on two basis vectors is a symbol -- the symbolic layer for general m;
* by ``TorchOps``   on torch tensors (tests against autograd).

Only the handful of operations below are needed; a formula that needs another one is a sign
that it should be phrased through these.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import sympy as sp


class NumpyOps:
    """Vectorised float64 evaluation: scalars (N,), vectors (N, m), matrices (N, m, m)."""

    name = "numpy"

    @staticmethod
    def dot(a, b):
        return np.einsum("ni,ni->n", a, b)

    @staticmethod
    def total(a):
        return a.sum(axis=-1)

    @staticmethod
    def scale(s, a):  # scalar (N,) times vector (N, m)
        return np.asarray(s)[..., None] * a

    @staticmethod
    def scale_matrix(s, a):  # scalar (N,) times matrix (N, m, m)
        return np.asarray(s)[..., None, None] * a

    @staticmethod
    def ones_like(a):
        return np.ones_like(a)

    @staticmethod
    def eye_like(a):  # (N, m) -> (N, m, m) identity
        return np.broadcast_to(np.eye(a.shape[-1]), a.shape + a.shape[-1:])

    @staticmethod
    def outer(a, b):
        return np.einsum("ni,nj->nij", a, b)

    @staticmethod
    def matvec(A, v):
        return np.einsum("nij,nj->ni", A, v)

    @staticmethod
    def matmul(A, B):
        return A @ B

    @staticmethod
    def bilinear(H, a, b):  # a^T H b, H (N, m, m); a batched mat-vec (8x faster than a 3-operand einsum)
        return np.einsum("ni,ni->n", a, (H @ b[..., None])[..., 0])

    @staticmethod
    def sqrt(x):
        return np.sqrt(x)

    @staticmethod
    def abs(x):
        return np.abs(x)

    @staticmethod
    def frob_sq(A):
        return np.einsum("nij,nij->n", A, A)

    @staticmethod
    def vec_sq(a):
        return np.einsum("ni,ni->n", a, a)

    # data matrices X (N, n, d) of the Lemma 4.5 model ------------------------------------------
    @staticmethod
    def gram(X):  # X^T X, (N, d, d)
        return np.swapaxes(X, -1, -2) @ X

    @staticmethod
    def rmatvec(X, t):  # X^T t, (N, d)
        return (np.swapaxes(X, -1, -2) @ t[..., None])[..., 0]

    @staticmethod
    def solve(A, b):  # A^{-1} b, (N, d)
        return np.linalg.solve(A, b[..., None])[..., 0]

    @staticmethod
    def centre_rows(X, n):  # X minus its mean row, (N, n, d)
        return X - X.sum(axis=-2, keepdims=True) / n

    @staticmethod
    def positive_part(x):
        return np.maximum(x, 0.0)

    @staticmethod
    def with_ones_column(X):  # [X, 1], (N, n, d + 1): the inputs of a layer with a bias
        return np.concatenate([X, np.ones(X.shape[:-1] + (1,))], axis=-1)

    @staticmethod
    def leading(w, k):  # the first k entries, (N, k)
        return w[..., :k]

    @staticmethod
    def append_scalars(a, *scalars):  # (N, k) and s scalars (N,) -> (N, k + s)
        return np.concatenate([a, np.stack(scalars, axis=-1)], axis=-1)


class TorchOps:
    """The same operations on torch tensors (float64 in the tests)."""

    name = "torch"

    def __init__(self):
        import torch

        self.t = torch

    def dot(self, a, b):
        return (a * b).sum(-1)

    def total(self, a):
        return a.sum(-1)

    def scale(self, s, a):
        return s[..., None] * a

    def scale_matrix(self, s, a):
        return s[..., None, None] * a

    def ones_like(self, a):
        return self.t.ones_like(a)

    def eye_like(self, a):
        return self.t.eye(a.shape[-1], dtype=a.dtype, device=a.device).expand(*a.shape, a.shape[-1])

    def outer(self, a, b):
        return a[..., :, None] * b[..., None, :]

    def matvec(self, A, v):
        return (A @ v[..., None])[..., 0]

    def matmul(self, A, B):
        return A @ B

    def bilinear(self, H, a, b):
        return (a * self.matvec(H, b)).sum(-1)

    def sqrt(self, x):
        return self.t.sqrt(x)

    def abs(self, x):
        return self.t.abs(x)

    def frob_sq(self, A):
        return (A * A).sum((-1, -2))

    def vec_sq(self, a):
        return (a * a).sum(-1)


class SympyOps:
    """One instance, exact: scalars are SymPy expressions, vectors m x 1 Matrices."""

    name = "sympy"

    @staticmethod
    def dot(a, b):
        return (a.T * b)[0, 0]

    @staticmethod
    def total(a):
        return sum(a)

    @staticmethod
    def scale(s, a):
        return s * a

    scale_matrix = scale

    @staticmethod
    def ones_like(a):
        return sp.ones(a.shape[0], 1)

    @staticmethod
    def eye_like(a):
        return sp.eye(a.shape[0])

    @staticmethod
    def outer(a, b):
        return a * b.T

    @staticmethod
    def matvec(A, v):
        return A * v

    @staticmethod
    def matmul(A, B):
        return A * B

    @staticmethod
    def bilinear(H, a, b):
        return (a.T * H * b)[0, 0]

    @staticmethod
    def sqrt(x):
        return sp.sqrt(x)

    @staticmethod
    def abs(x):
        return sp.Abs(x)

    @staticmethod
    def frob_sq(A):
        return sum(e**2 for e in A)

    @staticmethod
    def vec_sq(a):
        return sum(e**2 for e in a)

    # data matrices X (n x d) of the Lemma 4.5 model ---------------------------------------------
    @staticmethod
    def gram(X):
        return X.T * X

    @staticmethod
    def rmatvec(X, t):
        return X.T * t

    @staticmethod
    def solve(A, b):  # raises sympy's NonInvertibleMatrixError (a ValueError) for a singular A
        return A.LUsolve(b)

    @staticmethod
    def centre_rows(X, n):
        return X - sp.ones(n, 1) * (sp.ones(1, n) * X) / n

    @staticmethod
    def positive_part(x):
        return sp.Max(x, 0)

    @staticmethod
    def with_ones_column(X):
        return X.row_join(sp.ones(X.shape[0], 1))

    @staticmethod
    def leading(w, k):
        return w[:k, :]

    @staticmethod
    def append_scalars(a, *scalars):
        return a.col_join(sp.Matrix(scalars))


# ---------------------------------------------------------------------------------------------
# General m: vectors in span{1, y_hat, g}
# ---------------------------------------------------------------------------------------------

BASIS = ("one", "yhat", "g")


@dataclass(frozen=True)
class SpanVector:
    """A vector c_one * 1 + c_yhat * y_hat + c_g * g of R^m, m symbolic."""

    coef: tuple  # (c_one, c_yhat, c_g), SymPy expressions

    def __add__(self, other):
        return SpanVector(tuple(a + b for a, b in zip(self.coef, other.coef)))

    def __sub__(self, other):
        return SpanVector(tuple(a - b for a, b in zip(self.coef, other.coef)))

    def __neg__(self):
        return SpanVector(tuple(-a for a in self.coef))

    def __mul__(self, s):
        return SpanVector(tuple(s * a for a in self.coef))

    __rmul__ = __mul__


@dataclass(frozen=True)
class SymbolicHessian:
    """H = d^2 L / dz^2 known only through its bilinear forms on the basis (symbols H_ab)."""

    forms: dict  # {(a, b): symbol} for a <= b in BASIS order


class InvariantOps:
    """General batch size m: inner products come from the Gram matrix of {1, y_hat, g}.

    gram[(a, b)] holds <a, b>: <1,1> = m, <1,y_hat> = 0 (y_hat is centred), <y_hat,y_hat> = m*rho
    (rho = 1 without epsilon), <1,g>, <y_hat,g>, <g,g> as symbols.
    """

    name = "invariant"

    def __init__(self, gram: dict, basis: tuple = BASIS):
        self.gram = gram
        self.names = basis

    def basis(self, which: str) -> SpanVector:
        return SpanVector(tuple(sp.Integer(1 if b == which else 0) for b in self.names))

    def _pair(self, table, a, b):
        return table[(a, b)] if (a, b) in table else table[(b, a)]

    def dot(self, a: SpanVector, b: SpanVector):
        return sp.expand(
            sum(ca * cb * self._pair(self.gram, ba, bb)
                for ca, ba in zip(a.coef, self.names) for cb, bb in zip(b.coef, self.names))
        )

    def total(self, a: SpanVector):
        return self.dot(a, self.basis("one"))

    @staticmethod
    def scale(s, a: SpanVector):
        return a * s

    def ones_like(self, a):
        return self.basis("one")

    def bilinear(self, H: SymbolicHessian, a: SpanVector, b: SpanVector):
        return sp.expand(
            sum(ca * cb * self._pair(H.forms, ba, bb)
                for ca, ba in zip(a.coef, self.names) for cb, bb in zip(b.coef, self.names))
        )

    def vec_sq(self, a):
        return self.dot(a, a)

    @staticmethod
    def sqrt(x):
        return sp.sqrt(x)

    @staticmethod
    def abs(x):
        return sp.Abs(x)


Ops = Any  # one of the classes above (duck-typed)


# ---------------------------------------------------------------------------------------------
# Interval arithmetic (certification of counterexamples)
# ---------------------------------------------------------------------------------------------

# Working precision of the interval back-end.  Certification needs >= 50 correct digits; the
# formulas are chains of at most a few hundred operations at m <= 64, each widening an interval
# by ~10^-dps relatively, so 60 digits leave > 55 after cancellation of terms of equal size.
INTERVAL_DIGITS = 60


class IntervalOps:
    """One instance in mpmath interval arithmetic: scalars are intervals, vectors m x 1 and
    matrices m x m interval matrices of a private mpmath context with ``digits`` decimal
    digits (the module-wide ``mpmath.iv`` context and its precision are left alone).

    Every result is an interval that provably contains the exact value of the formula at the
    (exact) inputs; a sign is certain when the interval excludes 0.  Inputs are converted with
    ``IntervalOps.number``: a float is taken at its exact binary value, a ``Fraction`` or an
    integer as the interval enclosing it.
    """

    name = "interval"

    def __init__(self, digits: int = INTERVAL_DIGITS):
        from mpmath.ctx_iv import MPIntervalContext

        if digits < 50:
            raise ValueError(f"interval certification needs >= 50 digits, got {digits}")
        self.ctx = MPIntervalContext()
        self.ctx.dps = digits
        self.digits = digits

    # conversion ------------------------------------------------------------------------------
    def number(self, x):
        """An interval enclosing x (float: its exact binary value; Fraction/int: exact or enclosing)."""
        from fractions import Fraction

        if isinstance(x, Fraction):
            return self.ctx.mpf(x.numerator) / self.ctx.mpf(x.denominator)
        if isinstance(x, (int, np.integer)):
            return self.ctx.mpf(int(x))
        if isinstance(x, (float, np.floating)):
            return self.ctx.mpf(float(x))
        return self.ctx.mpf(x)

    def vector(self, values):
        return self.ctx.matrix([[self.number(v)] for v in values])

    def matrix(self, rows):
        return self.ctx.matrix([[self.number(v) for v in row] for row in rows])

    # the operations of the other back-ends ---------------------------------------------------
    def dot(self, a, b):
        return self.ctx.fsum(a[i, 0] * b[i, 0] for i in range(a.rows))

    def total(self, a):
        return self.ctx.fsum(a[i, 0] for i in range(a.rows))

    @staticmethod
    def scale(s, a):
        return a * s

    scale_matrix = scale

    def ones_like(self, a):
        return self.ctx.matrix([[1] for _ in range(a.rows)])

    def eye_like(self, a):
        return self.ctx.eye(a.rows)

    @staticmethod
    def outer(a, b):
        return a * b.T

    @staticmethod
    def matvec(A, v):
        return A * v

    @staticmethod
    def matmul(A, B):
        return A * B

    def bilinear(self, H, a, b):
        return self.dot(a, H * b)

    def sqrt(self, x):
        return self.ctx.sqrt(x)

    @staticmethod
    def abs(x):
        return abs(x)

    def frob_sq(self, A):
        return self.ctx.fsum(A[i, j] ** 2 for i in range(A.rows) for j in range(A.cols))

    def vec_sq(self, a):
        return self.ctx.fsum(a[i, j] ** 2 for i in range(a.rows) for j in range(a.cols))
