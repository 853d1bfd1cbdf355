"""Deep linear networks for Definition 2.1 (internal covariate shift), in closed form.

A k-layer deep linear network f(x) = W_k ... W_1 x (square layers of width d), squared loss
on one batch, L = ||W_k ... W_1 X - T||_F^2 / (2 n).  With R = (W_k...W_1 X - T)/n the layer
gradients are

    G_i = (W_k ... W_{i+1})^T R (W_{i-1} ... W_1 X)^T,                     (d, d)

G'_i is the same gradient after layers 1..i-1 take their gradient step W <- W - eta G from the
same batch (Definition 2.1: W_1^{(t+1)}, ..., W_{i-1}^{(t+1)}, W_i^{(t)}, ..., W_k^{(t)}), and
for layer 1 nothing precedes it, so G'_1 is computed by the same function with no layer
updated.  Vectorised over N instances; checked against torch.autograd in the tests.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from theory.ops import NumpyOps
from theory.quantities import Quantities

OPS = NumpyOps()
DEPTHS = (2, 3, 4, 5)
WIDTHS = (2, 3, 4, 8)
BATCH = 16


@dataclass(frozen=True)
class DlnInstances:
    """N deep linear networks at one step: weights (k, N, d, d), batch X (N, d, n), targets T."""

    weights: tuple      # k arrays (N, d, d), layer 1 first
    X: np.ndarray       # (N, d, n)
    T: np.ndarray       # (N, d, n)
    lr: np.ndarray      # (N,) step size eta
    layer: int          # the layer i (1-based) of G_{t,i}


def _chain(mats, d, n):
    """Product mats[-1] @ ... @ mats[0], identity when empty.  (N, d, d)."""
    out = np.broadcast_to(np.eye(d), (n, d, d)).copy()
    for W in mats:
        out = W @ out
    return out


def layer_gradient(weights, X, T, i):
    """G_i (N, d, d) of L = ||W_k...W_1 X - T||_F^2/(2n) w.r.t. W_i (1-based)."""
    N, d, n = X.shape
    below = _chain(weights[: i - 1], d, N) @ X                 # (N, d, n)  W_{i-1}...W_1 X
    above = _chain(weights[i:], d, N)                          # (N, d, d)  W_k...W_{i+1}
    R = (_chain(weights, d, N) @ X - T) / n                    # (N, d, n)
    return np.swapaxes(above, 1, 2) @ R @ np.swapaxes(below, 1, 2)


def gradients_before_and_after(inst: DlnInstances, i: int):
    """(G_i, G'_i), each (N, d, d): G'_i after layers 1..i-1 step with their own G from this batch."""
    G_all = [layer_gradient(inst.weights, inst.X, inst.T, j) for j in range(1, i)]
    updated = tuple(W - inst.lr[:, None, None] * G for W, G in zip(inst.weights[: i - 1], G_all)) \
        + tuple(inst.weights[i - 1:])
    return layer_gradient(inst.weights, inst.X, inst.T, i), layer_gradient(updated, inst.X, inst.T, i)


def sample_dln(seed: int, n: int, depth: int, width: int, part: int = 0) -> DlnInstances:
    """N networks of one depth and width, reproducible from (seed, depth, width): Glorot-scale
    weights, Gaussian inputs, targets from a random linear map, eta = 10^U(-3,-1), layer i
    uniform in 2..k.  Part k > 0 (a piece of a large request, numeric.sweep) has its own stream."""
    if depth < 2 or width < 1 or n < 1:
        raise ValueError(f"a DLN family needs depth >= 2, width >= 1, n >= 1; got {depth}, {width}, {n}")
    rng = np.random.default_rng([seed, 97, depth, width] + ([part] if part else []))
    weights = tuple(rng.standard_normal((n, width, width)) / np.sqrt(width) for _ in range(depth))
    X = rng.standard_normal((n, width, BATCH))
    T = rng.standard_normal((n, width, width)) @ X
    lr = 10.0 ** rng.uniform(-3, -1, n)
    layer = int(rng.integers(2, depth + 1))
    return DlnInstances(weights, X, T, lr, layer)


def dln_quantities(inst: DlnInstances) -> Quantities:
    """G, G' of the chosen layer and of layer 1, flattened to (N, d*d) (Frobenius = Euclidean)."""
    G, G_prime = gradients_before_and_after(inst, inst.layer)
    G1, G1_prime = gradients_before_and_after(inst, 1)
    n = G.shape[0]
    return Quantities(OPS, dict(G=G.reshape(n, -1), G_prime=G_prime.reshape(n, -1),
                                G_first=G1.reshape(n, -1), G_first_prime=G1_prime.reshape(n, -1)))


def plan(instances: int) -> tuple:
    """(depth, width, n) chunks with at least `instances` networks in total."""
    cells = [(k, w) for k in DEPTHS for w in WIDTHS]
    per = -(-instances // len(cells))
    return tuple((k, w, per) for k, w in cells)


def markdown_section() -> list:
    return ["## Definition 2.1: deep linear networks", "",
            f"Depth k in {DEPTHS}, width d in {WIDTHS}, a batch of {BATCH} Gaussian inputs, targets A x with A",
            "standard normal, weights N(0, 1/d), step size eta = 10^U(-3, -1), the layer i of G_{t,i} uniform in",
            "2..k; G and G' in closed form (numeric.dln).  Layer 1 gives the identity ICS_{t,1} = 0.", ""]
