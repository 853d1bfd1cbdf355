"""Build the ``Quantities`` of N float64 instances, vectorised (no loop per instance).

``bn_channel_quantities`` is the entry point for one BatchNorm channel per instance: it
validates float64 inputs and hands them to theory.quantities.channel_quantities, the one
builder of a channel's quantities.  The measured values (gradient and Hessian forms through
BatchNorm) are taken from the caller when given (the trajectory probes pass what double
backward measured on the real network) and are otherwise computed from the derived closed
forms of theory.bn in O(m^2) per instance.
"""
from __future__ import annotations

import numpy as np

from numeric.hessians import DiagLowRank, StructuredOps
from numeric.maxima import max_weight_space_smoothness
from theory import bn
from theory.ops import NumpyOps
from theory.quantities import MATRICES, Quantities, channel_quantities

OPS = NumpyOps()
STRUCTURED_OPS = StructuredOps()


def _scalar_array(x, n, name):
    a = np.asarray(x, dtype=np.float64)
    a = np.broadcast_to(a, (n,)) if a.ndim == 0 else a
    if a.shape != (n,):
        raise bn.BatchNormInputError(f"{name} has shape {a.shape}, expected ({n},)")
    if not np.isfinite(a).all():
        raise bn.BatchNormInputError(f"{name} contains NaN or Inf: {a[~np.isfinite(a)][0]!r}")
    return a.copy()


def bn_channel_quantities(y, g, gamma, beta=0.0, eps=0.0, *, H=None, grad_y_bn=None, H_gg=None,
                          H_vv=None, H_yv=None, H_yy=None, hess_bn_vv=None, lam=None, full_matrices=False,
                          weight_space_maxima=False) -> Quantities:
    """Quantities of N BatchNorm channels: validated float64 inputs for theory.quantities.channel_quantities.

    y, g: (N, m) pre-BN activations and dL/dz.  gamma, beta, eps: scalars or (N,).
    H: (N, m, m) d^2L/dz^2 (optional), or a numeric.hessians.DiagLowRank (diagonal plus low
    rank, O(m k) per quadratic form; made dense only when full matrices or maxima are asked
    for).  Measured values, when given, are used as they are.
    full_matrices: also the m x m Jacobian and Hessian (O(m^3) per instance; for identities).
    weight_space_maxima: with lam, the maxima over ||X||_2 <= lam of Theorem C.1 (needs H).
    """
    y, eps = bn.validate_batch(y, eps)
    n, m = y.shape
    g = bn.validate_same_shape(y, g, "g")
    gamma = _scalar_array(gamma, n, "gamma")
    if (gamma == 0).any():
        raise bn.BatchNormInputError("gamma = 0: the BN layer is constant and sigma/gamma terms are undefined")
    beta = _scalar_array(beta, n, "beta")
    measured = dict(grad_y_bn=None if grad_y_bn is None else bn.validate_same_shape(y, grad_y_bn, "grad_y_bn"))
    if isinstance(H, DiagLowRank):
        if H.shape != (n, m, m):
            raise bn.BatchNormInputError(f"H has shape {H.shape}, expected {(n, m, m)}")
        if not all(np.isfinite(x).all() for x in (H.diag, H.U, H.s)):
            raise bn.BatchNormInputError("H contains NaN or Inf")
        if full_matrices or weight_space_maxima:
            H = H.dense()
        else:
            measured["H_frob"] = H.frob()
    if H is not None and not isinstance(H, DiagLowRank):
        H = np.asarray(H, dtype=np.float64)
        if H.ndim == 2:
            H = H[None]
        if H.shape != (n, m, m):
            raise bn.BatchNormInputError(f"H has shape {H.shape}, expected {(n, m, m)}")
        if not np.isfinite(H).all():
            raise bn.BatchNormInputError("H contains NaN or Inf")
    for name, given in (("H_gg", H_gg), ("H_vv", H_vv), ("H_yv", H_yv), ("H_yy", H_yy), ("hess_bn_vv", hess_bn_vv)):
        if given is not None:
            measured[name] = _scalar_array(given, n, name)
    if lam is not None:
        lam = _scalar_array(lam, n, "lam")
        if (lam <= 0).any():
            raise bn.BatchNormInputError(f"lambda must be > 0, got {lam[lam <= 0][0]!r}")
    weight_space_maxima = weight_space_maxima and lam is not None     # the maxima are over ||X||_2 <= lam
    if weight_space_maxima and H is None:
        raise bn.BatchNormInputError("the maxima of Theorem C.1 need H")
    # quadratic forms of H through BLAS (numeric.hessians.StructuredOps, which also takes a
    # DiagLowRank H); every other operation is NumpyOps' own
    q = channel_quantities(STRUCTURED_OPS, np.full(n, float(m)), gamma, g, y=y, beta=beta, eps=eps, H=H,
                           lam=lam, measured=measured, matrices=MATRICES if full_matrices else ())
    values = dict(q.values)
    if isinstance(H, DiagLowRank):
        del values["H"]     # only its quadratic forms: the registry's dense formulas read q.H as a matrix
    if weight_space_maxima:
        hess_bn = values.get("hess_bn")
        if hess_bn is None:
            hess_bn = bn.hessian_bn_matrix(OPS, H, g, values["y_hat"], values["sigma"], gamma, m)
        values["betaW_max"] = max_weight_space_smoothness(g, H, lam)
        values["betaW_hat_max"] = max_weight_space_smoothness(values["grad_y_bn"], hess_bn, lam)
        # the BN maximum of the same network with H = 0 (only BatchNorm's own curvature): thm-c1/split-bound
        curvature_only = bn.hessian_bn_matrix(OPS, np.zeros_like(H), g, values["y_hat"], values["sigma"], gamma, m)
        values["betaW_hat0_max"] = max_weight_space_smoothness(values["grad_y_bn"], curvature_only, lam)
    return Quantities(OPS, values)
