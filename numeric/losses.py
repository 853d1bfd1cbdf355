"""Loss heads L(z) of the instance families: the gradient g = dL/dz and Hessian H = d^2L/dz^2
at the BatchNorm output z (N, m), in closed form, vectorised over N instances.

Each head is a small pure function returning a ``LossAtZ``.  The closed forms sit beside the
definition they differentiate (written in the docstring) and are checked against torch.func
(grad / hessian of the same definition, float64) in tests/test_numeric_losses.py.

A quadratic head needs no formula: any pair (g, H) is the gradient and Hessian at z of the
quadratic L(w) = <g, w - z> + (w - z)^T H (w - z)/2, so the quadratic families draw (g, H)
directly (numeric.families).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from numeric.hessians import DiagLowRank


@dataclass(frozen=True)
class LossAtZ:
    loss: np.ndarray   # (N,)
    g: np.ndarray      # (N, m) dL/dz
    H: object          # DiagLowRank or (N, m, m) d^2L/dz^2


def _diagonal(diag):
    n, m = diag.shape
    return DiagLowRank(diag, np.zeros((n, m, 0)), np.zeros((n, 0)))


def squared_error(z, target) -> LossAtZ:
    """L = (1/2m) sum_b (z_b - t_b)^2:  g = (z - t)/m,  H = I/m.   z, target (N, m)."""
    m = z.shape[-1]
    r = z - target                                              # (N, m)
    return LossAtZ(0.5 * np.einsum("ni,ni->n", r, r) / m, r / m, _diagonal(np.full(z.shape, 1.0 / m)))


def softmax_cross_entropy(z, head, offsets, labels) -> LossAtZ:
    """Softmax cross-entropy through a linear head, one channel z_b feeding K logits:

        logits_b = z_b a + c_b   (a = head (N, K), c = offsets (N, m, K)),
        L = (1/m) sum_b [logsumexp(logits_b) - logits_b[label_b]].

    Samples are independent, so H is diagonal:
        g_b = <a, p_b - e_{label_b}>/m,   H_bb = (<a*a, p_b> - <a, p_b>^2)/m,   p_b = softmax(logits_b).
    """
    m = z.shape[-1]
    logits = z[:, :, None] * head[:, None, :] + offsets             # (N, m, K)
    shift = logits.max(-1, keepdims=True)
    e = np.exp(logits - shift)
    lse = np.log(e.sum(-1)) + shift[..., 0]                          # (N, m)
    p = e / e.sum(-1, keepdims=True)                                 # (N, m, K)
    picked = np.take_along_axis(logits, labels[..., None], -1)[..., 0]
    a_label = np.take_along_axis(np.broadcast_to(head[:, None, :], p.shape), labels[..., None], -1)[..., 0]
    a_p = np.einsum("nk,nbk->nb", head, p)                           # (N, m) <a, p_b>
    g = (a_p - a_label) / m
    h = (np.einsum("nk,nbk->nb", head**2, p) - a_p**2) / m
    return LossAtZ((lse - picked).sum(-1) / m, g, _diagonal(h))


def mlp_head(z, w1, b1, w2, target) -> LossAtZ:
    """A one-hidden-layer tanh MLP applied to each z_b, squared error to t_b:

        o_b = <w2, tanh(z_b w1 + b1)>,   L = (1/2m) sum_b (o_b - t_b)^2     (w1, b1, w2 (N, h)).

    With u = tanh(z_b w1 + b1): do/dz = <w2, (1 - u^2) w1>, d2o/dz2 = <w2, -2u(1 - u^2) w1^2>,
        g_b = (o_b - t_b) do/dz / m,   H_bb = ((do/dz)^2 + (o_b - t_b) d2o/dz2)/m   (diagonal).
    """
    m = z.shape[-1]
    u = np.tanh(z[:, :, None] * w1[:, None, :] + b1[:, None, :])     # (N, m, h)
    o = np.einsum("nbh,nh->nb", u, w2)                               # (N, m)
    slope = 1 - u**2
    do = np.einsum("nbh,nh->nb", slope, w1 * w2)
    d2o = np.einsum("nbh,nh->nb", -2 * u * slope, w1**2 * w2)
    r = o - target
    return LossAtZ(0.5 * np.einsum("nb,nb->n", r, r) / m, r * do / m, _diagonal((do**2 + r * d2o) / m))
