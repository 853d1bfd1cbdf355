"""Internal covariate shift, Definition 2.1, measured per layer on the real network (Figure 3).

    G_{t,i}  = grad_{W_i} L(W_1^(t),   ..., W_{i-1}^(t),   W_i^(t), ..., W_k^(t); x^(t), y^(t))
    G'_{t,i} = grad_{W_i} L(W_1^(t+1), ..., W_{i-1}^(t+1), W_i^(t), ..., W_k^(t); x^(t), y^(t))
    ICS_{t,i} = ||G_{t,i} - G'_{t,i}||_2, and cos(G_{t,i}, G'_{t,i}) (Figure 3)

Both numbers are the registry's (theory.statements ``def-2.1``: ``ics_l2``, ``ics_cosine``),
evaluated on the flattened G, G' in float64 through NumpyOps; nothing here restates them.

Reading (the registry's, made concrete for these networks):
* layer i is the i-th block of the network in the order the input flows through it (``fc01`` ..
  for the DLN, ``conv01`` .. then the ``classifier`` for the VGG); its parameters are the linear
  map's weight and bias and the normalisation's gamma, beta.  W_i in G is the linear map's
  weight (a matrix or a convolution kernel); ||.||_2 is the Frobenius norm of that tensor;
* W^(t+1) is what the run's own optimiser step at t makes of W^(t) with the gradient of the
  same batch (the optimiser is copied with its state, so momentum would be honoured; the
  presets use plain SGD); every parameter of layers 1..i-1 takes its updated value, layer i and
  later keep theirs;
* the batch (x^(t), y^(t)) is the batch of training step t for G and G'; the network is in
  training mode for both (batch statistics, and for noisy BN the noise of step t); running
  statistics do not move.
Layer 1 has no preceding layer: G' is computed at exactly the parameters of G, so its ICS is
0 (``def-2.1``/``first-layer-zero``, checked through theory.evaluate at every measurement).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch

from gpu_check.measure_hook import MeasurementHook, gradient_at
from theory.evaluate import evaluate_variant
from theory.ops import NumpyOps
from theory.quantities import Quantities
from theory.statements import DEF_2_1, ics_cosine, ics_l2

ICS_FILE = "ics.jsonl"
OPS = NumpyOps()
_FIRST_LAYER_ZERO = next(v for v in DEF_2_1.variants if v.name == "first-layer-zero")


@dataclass(frozen=True)
class Layer:
    """Layer i of Definition 2.1: its name, the parameter W_i of G, and all its parameters."""

    name: str
    weight: str       # parameter name of W_i
    params: tuple     # every parameter name of the layer (updated when a later layer is measured)


def network_layers(model) -> list:
    """Layers 1..k, input to output: each NormBlock (``model.blocks()`` order), then the
    parameters outside any block grouped by their top-level module (the VGG's classifier),
    which follow the blocks in both networks."""
    names = {id(p): n for n, p in model.named_parameters()}
    layers, seen = [], set()
    for block_name, block in model.blocks():
        params = tuple(names[id(p)] for p in block.parameters())
        layers.append(Layer(block_name, names[id(block.linear.weight)], params))
        seen.update(params)
    rest = {}
    for n, _ in model.named_parameters():
        if n not in seen:
            rest.setdefault(n.split(".")[0], []).append(n)
    for module, params in rest.items():
        weight = f"{module}.weight" if f"{module}.weight" in params else params[0]
        layers.append(Layer(module, weight, tuple(params)))
    return layers


def next_parameters(optimizer: torch.optim.Optimizer, model, grads: dict) -> dict:
    """W^(t+1): the optimiser's own step from the model's parameters with gradients ``grads``,
    taken on copies (the model, its .grad and the optimiser's state are untouched)."""
    index = {id(p): n for n, p in model.named_parameters()}
    copies = {n: p.detach().clone() for n, p in model.named_parameters()}
    groups = []
    for group in optimizer.param_groups:
        names = [index[id(p)] for p in group["params"]]
        for n in names:
            copies[n].grad = grads[n].detach().clone()
        groups.append({**{k: v for k, v in group.items() if k != "params"}, "params": [copies[n] for n in names]})
    shadow = type(optimizer)(groups)
    # state_dict() holds references to the live state (momentum buffers): copy it, or the
    # shadow step would advance the training optimiser's buffers
    shadow.load_state_dict(copy.deepcopy(optimizer.state_dict()))
    with torch.no_grad():
        shadow.step()
    return {n: p.detach() for n, p in copies.items()}


@dataclass(frozen=True)
class LayerICS:
    layer: str
    index: int                 # i, from 1 (the layer the input meets first)
    G: torch.Tensor            # G_{t,i}, shaped like W_i
    G_prime: torch.Tensor      # G'_{t,i}


def ics_gradients(model, optimizer, inputs, target) -> list:
    """G and G' of every layer (see the module docstring); one backward pass for G and the
    update, then one per layer for G'.  The model's parameters, buffers and .grad are unchanged."""
    layers = network_layers(model)
    theta = {n: p.detach() for n, p in model.named_parameters()}
    grads, _ = gradient_at(model, theta, inputs, target, list(theta))
    theta_next = next_parameters(optimizer, model, grads)
    out = []
    for i, layer in enumerate(layers):
        mixed = dict(theta)
        for earlier in layers[:i]:
            mixed.update({n: theta_next[n] for n in earlier.params})
        g_prime, _ = gradient_at(model, mixed, inputs, target, [layer.weight])
        out.append(LayerICS(layer.name, i + 1, grads[layer.weight].detach(), g_prime[layer.weight].detach()))
    return out


def _flat64(t: torch.Tensor) -> np.ndarray:
    return t.detach().to("cpu", torch.float64).reshape(1, -1).numpy()     # (1, P)


def ics_values(G: torch.Tensor, G_prime: torch.Tensor) -> dict:
    """The registry's ICS numbers on one layer: ics_l2, ics_cosine, and the norms of G and G'.
    A zero gradient has no direction: its cosine is NaN (recorded as such, never patched)."""
    q = Quantities(OPS, {"G": _flat64(G), "G_prime": _flat64(G_prime)})
    with np.errstate(invalid="ignore", divide="ignore"):
        l2, cos = float(ics_l2(q)[0]), float(ics_cosine(q)[0])
    return {"ics_l2": l2, "ics_cosine": cos, "grad_norm": float(np.sqrt(OPS.vec_sq(q.G))[0]),
            "grad_prime_norm": float(np.sqrt(OPS.vec_sq(q.G_prime))[0])}


def first_layer_check(G: torch.Tensor, G_prime: torch.Tensor) -> dict:
    """``def-2.1``/``first-layer-zero`` through theory.evaluate on layer 1's G and G'."""
    q = Quantities(OPS, {"G_first": _flat64(G), "G_first_prime": _flat64(G_prime)})
    r = evaluate_variant(DEF_2_1, _FIRST_LAYER_ZERO, q)
    return {"statement": r.statement_id, "variant": r.variant, "slack": float(r.slack[0]),
            "tolerance": float(r.tolerance[0]), "verdict": str(r.verdicts[0])}


def ics_rows(step: int, network: str, layers: list) -> list:
    rows = []
    for m in layers:
        row = {"step": step, "network": network, "layer": f"{network}/{m.layer}", "index": m.index,
               **ics_values(m.G, m.G_prime)}
        g = row["grad_norm"]
        row["ics_rel"] = row["ics_l2"] / g if g > 0 else float("nan")
        if m.index == 1:
            row["check"] = first_layer_check(m.G, m.G_prime)
        rows.append(row)
    return rows


class ICSHook(MeasurementHook):
    """Definition 2.1 at every K-th step, every layer -> ics.jsonl."""

    name, file = "ics", ICS_FILE

    def measure(self, ctx) -> list:
        net = ctx.net
        return ics_rows(ctx.step, net.name, ics_gradients(net.model, net.optimizer, ctx.inputs, ctx.target))
