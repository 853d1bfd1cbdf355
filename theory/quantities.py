"""The quantities a statement is evaluated on, whatever layer produced them.

A ``Quantities`` bundle holds an ``ops`` back-end (theory.ops) and named values.  Two kinds:

* *inputs* of one BatchNorm channel (m, gamma, beta, eps, y, g, H, lam, ...) and the batch
  statistics that follow from them by definition (mu, sigma, y_hat);
* *measured* values -- the true derivative of the BatchNorm loss (``grad_y_bn``,
  ``hess_bn_vv``, ...), the true maximum over inputs X (``gW_hat_max``), the true distance to
  an optimum set (``bn_opt_dist_sq``) -- that each layer obtains in its own way: SymPy
  differentiation of the definition (symbolic), the derived closed forms of theory.bn
  (numeric), double backward on the real network (gpu_check).

A statement (theory.statements) compares a measured value with the formula the paper prints.
Names below are the vocabulary shared by every layer.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from theory import bn

QUANTITY_DOC = {
    # inputs of one BatchNorm channel
    "m": "batch size (number of values the channel is normalised over)",
    "gamma": "BatchNorm scale gamma",
    "beta": "BatchNorm shift beta",
    "eps": "BatchNorm epsilon (0 in the paper, 1e-5 in torch)",
    "y": "pre-BN activations y = Wx of the channel, (m,)",
    "mu": "batch mean of y",
    "sigma": "sqrt(biased batch variance + eps)",
    "y_hat": "(y - mu)/sigma",
    "g": "dL/dz at z = BN(y): the gradient the paper calls dL/dy of the identical non-BN network",
    "H": "d^2 L/dz^2 at z, (m, m)",
    "lam": "lambda: the bound on the spectral norm of the layer input X",
    # measured
    "grad_y_bn": "measured nabla_y L_hat (gradient through BatchNorm), (m,)",
    "jac_z_y": "measured Jacobian dz/dy, (m, m)",
    "hess_bn": "measured Hessian d^2 L_hat/dy^2, (m, m)",
    "hess_bn_vv": "measured v^T (d^2 L_hat/dy^2) v with v = grad_y_bn",
    "H_vv": "v^T H v with v = grad_y_bn",
    "H_gg": "g^T H g",
    "H_yv": "y_hat^T H v with v = grad_y_bn (probes: the Hessian-vector product H y_hat dotted with v, or "
            "the chain sweep's bilinear form of y_hat and v)",
    "H_yy": "y_hat^T H y_hat (probes: the same product H y_hat dotted with y_hat, or the chain sweep's form)",
    "gW_max": "measured max_{||X||_2<=lam} ||nabla_W L||^2 (non-BN network)",
    "gW_hat_max": "measured max_{||X||_2<=lam} ||nabla_W L_hat||^2 (BN network)",
    "betaW_max": "measured max_{||X||_2<=lam} (dL/dW)^T (d^2L/dW^2) (dL/dW) (non-BN)",
    "betaW_hat_max": "measured max_{||X||_2<=lam} of the same for the BN network",
    "betaW_hat0_max": ("measured max_{||X||_2<=lam} of the same for the BN network with H = 0 (BatchNorm's own "
                       "curvature only)"),
    # toy regression model for Lemma 4.5
    "W0": "initialisation W_0",
    "W_star": "closest optimum of the standard network",
    "bn_opt_dist_sq": "measured squared distance from W_0 to the closest optimum of the BN network",
    # network setting for Definition 2.1
    "G": "G_{t,i}: gradient of layer i before the update",
    "G_prime": "G'_{t,i}: gradient of layer i after layers 1..i-1 are updated",
    "G_first": "G_{t,1} of the first layer",
    "G_first_prime": "G'_{t,1} of the first layer (no preceding layer to update)",
}


@dataclass(frozen=True)
class Quantities:
    """Named values of N instances (or one exact instance) plus the back-end that combines them."""

    ops: Any
    values: Mapping[str, Any] = field(default_factory=dict)

    def __getattr__(self, name):
        try:
            return self.values[name]
        except KeyError:
            raise AttributeError(
                f"quantity {name!r} is not available here; available: {sorted(self.values)}") from None

    def has(self, names) -> bool:
        return all(n in self.values and self.values[n] is not None for n in names)

    def missing(self, names) -> list:
        return [n for n in names if n not in self.values or self.values[n] is None]

    def with_values(self, **more) -> "Quantities":
        return Quantities(self.ops, {**self.values, **more})


# ---------------------------------------------------------------------------------------------
# One BatchNorm channel: the builder every layer uses
# ---------------------------------------------------------------------------------------------

# Measured values a caller may supply (SymPy differentiation of the definition, autograd on the
# network); each one missing is computed from the closed forms of theory.bn.
MEASURED = ("grad_y_bn", "jac_z_y", "hess_bn", "hess_bn_vv", "H_frob", "H_gg", "H_vv", "H_yv", "H_yy",
            "gW_max", "gW_hat_max")
# The m x m matrices, built only on request (O(m^3) per instance).
MATRICES = ("jac_z_y", "hess_bn")


def max_weight_grad_norm_sq(ops, u, lam):
    """max_{||X||_2 <= lam} ||X^T u||^2 = lam^2 ||u||^2 (Theorem 4.4's g_j and hat g_j, with u = g or v).

    ||X^T u|| <= ||X||_2 ||u|| for every X, with equality at X = lam u e_1^T/||u||, so the maximum
    over the spectral-norm ball is attained and equals lam^2 ||u||^2 for any input width d >= 1.
    """
    return lam**2 * ops.vec_sq(u)


def channel_quantities(ops, m, gamma, g, *, y=None, beta=None, eps=None, statistics=None, H=None,
                       lam=None, measured=None, matrices=()) -> Quantities:
    """The registry's quantities of one BatchNorm channel over ``ops`` (N instances or one batch).

    m, gamma, g    batch size, BatchNorm scale, g = dL/dz at z (vectors in ops' layout).
    y, beta, eps   the batch, shift and epsilon; mu, sigma, y_hat follow from y and eps by
                   theory.bn.batch_statistics.  ``statistics = (mu, sigma, y_hat)`` replaces that
                   where the caller holds them in another form (sigma as the symbol defined by
                   sigma^2 = Var + eps; y_hat as a basis vector of the invariant algebra).
    H              d^2L/dz^2 at z, in any form ``ops.bilinear`` accepts: gives H, H_frob (where
                   ops can square a matrix), H_gg = g^T H g, H_vv = v^T H v, H_yv = y_hat^T H v,
                   H_yy = y_hat^T H y_hat and hess_bn_vv.
    lam            the bound on ||X||_2: gives lam, gW_max and gW_hat_max.
    measured       {name: value} among MEASURED, used as given; the forms of a measured matrix
                   come from it (hess_bn_vv = v^T hess_bn v for a measured hess_bn).
    matrices       names among MATRICES to build: jac_z_y, and hess_bn (needs H).

    v = grad_y_bn throughout.  None values are left out, so ``q.has`` says what is available.
    """
    measured = {k: val for k, val in (measured or {}).items() if val is not None}
    unknown = sorted(set(measured) - set(MEASURED)) + sorted(set(matrices) - set(MATRICES))
    if unknown:
        raise ValueError(f"channel_quantities: unknown quantities {unknown}; measured ones are {MEASURED}, "
                         f"matrices {MATRICES}")
    if statistics is None:
        if y is None:
            raise ValueError("channel_quantities needs the batch y or its statistics (mu, sigma, y_hat)")
        statistics = bn.batch_statistics(ops, y, m, eps)
    mu, sigma, y_hat = statistics
    values = {name: val for name, val in dict(m=m, gamma=gamma, beta=beta, eps=eps, y=y, mu=mu, sigma=sigma,
                                                 y_hat=y_hat, g=g, H=H, lam=lam).items() if val is not None}

    def put(name, compute):
        values[name] = measured[name] if name in measured else compute()
        return values[name]

    v = put("grad_y_bn", lambda: bn.grad_y_bn(ops, g, y_hat, sigma, gamma, m))
    if "jac_z_y" in matrices or "jac_z_y" in measured:
        put("jac_z_y", lambda: bn.jacobian_z_y(ops, y_hat, sigma, gamma, m))
    if "hess_bn" in measured or ("hess_bn" in matrices and H is not None):
        put("hess_bn", lambda: bn.hessian_bn_matrix(ops, H, g, y_hat, sigma, gamma, m))
    if H is not None:
        # the invariant algebra knows H only through its forms on span{1, y_hat, g}: no H_frob there
        if hasattr(ops, "frob_sq"):
            put("H_frob", lambda: ops.sqrt(ops.frob_sq(H)))
        put("H_gg", lambda: ops.bilinear(H, g, g))
        put("H_vv", lambda: ops.bilinear(H, v, v))
        put("H_yv", lambda: ops.bilinear(H, y_hat, v))
        put("H_yy", lambda: ops.bilinear(H, y_hat, y_hat))
    if "hess_bn" in measured:
        put("hess_bn_vv", lambda: ops.bilinear(measured["hess_bn"], v, v))
    elif H is not None:
        put("hess_bn_vv", lambda: bn.hessian_bn_bilinear(ops, H, g, y_hat, sigma, gamma, m, v, v))
    for name in ("H_frob", "H_gg", "H_vv", "H_yv", "H_yy", "hess_bn_vv"):
        if name in measured:
            values[name] = measured[name]
    if lam is not None:
        put("gW_max", lambda: max_weight_grad_norm_sq(ops, g, lam))
        put("gW_hat_max", lambda: max_weight_grad_norm_sq(ops, v, lam))
    return Quantities(ops, values)
