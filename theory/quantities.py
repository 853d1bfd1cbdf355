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
    "gW_max": "measured max_{||X||_2<=lam} ||nabla_W L||^2 (non-BN network)",
    "gW_hat_max": "measured max_{||X||_2<=lam} ||nabla_W L_hat||^2 (BN network)",
    "betaW_max": "measured max_{||X||_2<=lam} (dL/dW)^T (d^2L/dW^2) (dL/dW) (non-BN)",
    "betaW_hat_max": "measured max_{||X||_2<=lam} of the same for the BN network",
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
