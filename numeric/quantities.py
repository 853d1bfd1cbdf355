"""Build the ``Quantities`` of N float64 instances, vectorised (no loop per instance).

``bn_channel_quantities`` is the entry point for one BatchNorm channel per instance.  The
measured values (gradient and Hessian forms through BatchNorm) are taken from the caller when
given (the trajectory probes pass what double backward measured on the real network) and are
otherwise computed from the derived closed forms of theory.bn in O(m^2) per instance.
"""
from __future__ import annotations

import numpy as np

from numeric.hessians import DiagLowRank, StructuredOps
from theory import bn
from theory.ops import NumpyOps
from theory.quantities import Quantities

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
                          H_vv=None, hess_bn_vv=None, lam=None, full_matrices=False,
                          weight_space_maxima=False) -> Quantities:
    """Quantities of N BatchNorm channels.

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
    mu, sigma, y_hat = bn.batch_statistics(OPS, y, m, eps)
    values = dict(m=np.full(n, float(m)), gamma=gamma, beta=beta, eps=eps, y=y, mu=mu, sigma=sigma,
                  y_hat=y_hat, g=g)
    v = bn.grad_y_bn(OPS, g, y_hat, sigma, gamma, m) if grad_y_bn is None \
        else bn.validate_same_shape(y, grad_y_bn, "grad_y_bn")
    values["grad_y_bn"] = v
    if isinstance(H, DiagLowRank):
        if H.shape != (n, m, m):
            raise bn.BatchNormInputError(f"H has shape {H.shape}, expected {(n, m, m)}")
        if not all(np.isfinite(x).all() for x in (H.diag, H.U, H.s)):
            raise bn.BatchNormInputError("H contains NaN or Inf")
        if full_matrices or weight_space_maxima:
            H = H.dense()
        else:
            values["H_frob"] = H.frob()
            values["H_gg"] = H.bilinear(g, g)
            values["H_vv"] = H.bilinear(v, v)
            values["hess_bn_vv"] = bn.hessian_bn_bilinear(STRUCTURED_OPS, H, g, y_hat, sigma, gamma, m, v, v)
            H = None
    if H is not None:
        H = np.asarray(H, dtype=np.float64)
        if H.ndim == 2:
            H = H[None]
        if H.shape != (n, m, m):
            raise bn.BatchNormInputError(f"H has shape {H.shape}, expected {(n, m, m)}")
        if not np.isfinite(H).all():
            raise bn.BatchNormInputError("H contains NaN or Inf")
        values["H"] = H
        values["H_frob"] = np.sqrt(OPS.frob_sq(H))
        # quadratic forms through BLAS (numeric.hessians.StructuredOps): same values, ~8x faster
        values["H_gg"] = STRUCTURED_OPS.bilinear(H, g, g)
        values["H_vv"] = STRUCTURED_OPS.bilinear(H, v, v)
        values["hess_bn_vv"] = bn.hessian_bn_bilinear(STRUCTURED_OPS, H, g, y_hat, sigma, gamma, m, v, v)
        if full_matrices:
            values["hess_bn"] = bn.hessian_bn_matrix(OPS, H, g, y_hat, sigma, gamma, m)
    if full_matrices:
        values["jac_z_y"] = bn.jacobian_z_y(OPS, y_hat, sigma, gamma, m)
    for name, given in (("H_gg", H_gg), ("H_vv", H_vv), ("hess_bn_vv", hess_bn_vv)):
        if given is not None:
            values[name] = _scalar_array(given, n, name)
    if lam is not None:
        lam = _scalar_array(lam, n, "lam")
        if (lam <= 0).any():
            raise bn.BatchNormInputError(f"lambda must be > 0, got {lam[lam <= 0][0]!r}")
        values["lam"] = lam
        values["gW_max"] = max_weight_grad_norm_sq(g, lam)
        values["gW_hat_max"] = max_weight_grad_norm_sq(v, lam)
        if weight_space_maxima:
            if H is None:
                raise bn.BatchNormInputError("the maxima of Theorem C.1 need H")
            from numeric.maxima import max_weight_space_smoothness
            hess_bn = values.get("hess_bn")
            if hess_bn is None:
                hess_bn = bn.hessian_bn_matrix(OPS, H, g, y_hat, sigma, gamma, m)
            values["betaW_max"] = max_weight_space_smoothness(g, H, lam)
            values["betaW_hat_max"] = max_weight_space_smoothness(v, hess_bn, lam)
    return Quantities(OPS, values)


def max_weight_grad_norm_sq(u, lam, ops=OPS):
    """max_{||X||_2 <= lam} ||X^T u||^2 = lam^2 ||u||^2, (N,).

    ||X^T u|| <= ||X||_2 ||u|| for every X, with equality at X = lam u e_1^T/||u||, so the maximum
    over the spectral-norm ball is attained and equals lam^2 ||u||^2 for any input width d >= 1.
    """
    return lam**2 * ops.vec_sq(u)
