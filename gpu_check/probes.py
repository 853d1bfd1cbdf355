"""Probes: the quantities of every statement, measured on the real network at a training step.

At a probed step t, on the batch of training step t and before its update, for every
normalisation layer of BatchNorm kind and a fixed, reproducible sample of its channels j:

    y_j     pre-BN activations of channel j, flattened over the batch dims     (m,)
    z_j     BN output gamma*y_hat + beta (before Algorithm 1's noise, for noisy-bn)
    g_j     dL/dz_j                                                             (m,)
    v_j     dL/dy_j, the gradient through BatchNorm (grad_y_bn)                 (m,)
    H_gg    g^T H g,  H_vv = v^T H v,   H = d^2 L/dz_j^2            (double backward w.r.t. z)
    hess_bn_vv = v^T (d^2 L/dy_j^2) v                                (double backward w.r.t. y)
    lam     ||X||_2 of the layer input matrix X (m x d): the batch of inputs for a fully
            connected layer, the im2col patches (n*H*W x C_in*3*3) for a convolution, whose
            product with the filter W_.j is y_j

Each Hessian-vector product is one backward pass of the first-order graph (create_graph)
with a vector that is zero outside channel j, so the quadratic form is of the channel's
m x m block of the Hessian, never formed.  The quantities then go, in float64, through
numeric.quantities.bn_channel_quantities and theory.evaluate.evaluate_all: every formula is
the registry's; nothing here restates one.

"The identical non-BN network" (Theorems 4.1, 4.2, 4.4, C.1).  Following the paper's setup
(Figure 7; the proof of Thm 4.1 ends "exploiting dL_hat/dz_j = dL/dy"), it is the network with
the same weights everywhere in which layer j's output feeds the rest of the network directly,
evaluated where that output equals the BN network's z_j.  Concretely it is the BN network with
the probed BN layer folded into its linear layer, W' = (gamma/sigma) W and b' = beta -
gamma mu/sigma (per channel; exact on this batch, Observation 4.3's construction run
backwards).  Its gradient and Hessian w.r.t. its layer output are therefore g = dL/dz and
H = d^2 L/dz^2 of the BN network, which is what is measured; tests/test_gpu_probes.py builds
that folded network explicitly and checks its gradient equals g.

Precision.  The probe runs a float64 copy of the network (the float32 weights and inputs
converted exactly), so measured values carry float64 rounding -- the rounding the registry's
tolerances are derived for.  Probes never move the BatchNorm running statistics.

Cost.  A probe is 3 Hessian-vector products per probed channel, each a backward pass through
the double-backward graph of everything downstream of the layer (see quadratic_forms).  On the
CPU a float64 convolution is ~8x slower than a float32 one, so VGG probes are expensive there;
the presets' probe intervals are set from measured costs to keep probes under 15% of a run.
"""
from __future__ import annotations

import contextlib
import copy
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from gpu_check.config import BATCHNORM_KINDS, RunConfig
from numeric.quantities import bn_channel_quantities
from theory.bn import BatchNormInputError
from theory.evaluate import evaluate_all

_CHANNEL_STREAM = 17
_GRAM_CHUNK = 16   # images per chunk when accumulating the im2col Gram matrix X^T X
_HVP_ELEMENTS = 1 << 26   # at most this many elements in one batch of Hessian-vector products


@dataclass(frozen=True)
class LayerMeasurement:
    """What one probe measured at one layer, float64 numpy; N = number of probed channels."""

    layer: str
    channels: np.ndarray    # (N,) channel indices
    y: np.ndarray           # (N, m)
    g: np.ndarray           # (N, m)  dL/dz
    grad_y_bn: np.ndarray   # (N, m)  dL/dy through BatchNorm
    gamma: np.ndarray       # (N,)
    beta: np.ndarray        # (N,)
    eps: float
    H_gg: np.ndarray        # (N,)
    H_vv: np.ndarray        # (N,)
    H_yv: np.ndarray        # (N,)  y_hat^T H v  (thm-4.2/exact-epsilon)
    H_yy: np.ndarray        # (N,)  y_hat^T H y_hat
    hess_bn_vv: np.ndarray  # (N,)
    lam: object             # (N,) the layer's ||X||_2, repeated per channel; None if X = 0


def probe_channels(seed: int, network: str, layer_index: int, n_channels: int, k: int) -> np.ndarray:
    """A reproducible sample of min(k, n_channels) channels of one layer, sorted; fixed for a run."""
    net = {"dln": 0, "vgg": 1}[network]
    rng = np.random.default_rng([seed, _CHANNEL_STREAM, net, layer_index])
    return np.sort(rng.choice(n_channels, size=min(k, n_channels), replace=False))


def channel_rows(t: torch.Tensor, channels) -> torch.Tensor:
    """(n, C, ...) -> (len(channels), m): channel j's values over every batch dim, in (n, h, w) order."""
    return t.transpose(0, 1)[channels].reshape(len(channels), -1)


def input_spectral_norm(x: torch.Tensor, linear: torch.nn.Module):
    """||X||_2 for the input matrix X with y_.j = X W_.j (+ bias).  x: (n, d) or (n, C, H, W).
    None when X is zero (then lambda > 0 of Theorems 4.4 and C.1 cannot bound it)."""
    if x.dim() == 2:
        X = x.detach().double()                                            # (m, d)
        gram = X.T @ X                                                     # (d, d)
    else:
        k, pad = linear.kernel_size, linear.padding
        d = x.shape[1] * k[0] * k[1]
        gram = torch.zeros(d, d, dtype=torch.float64, device=x.device)
        for start in range(0, x.shape[0], _GRAM_CHUNK):
            patches = F.unfold(x[start:start + _GRAM_CHUNK].detach().double(), k, padding=pad)  # (c, d, HW)
            gram += torch.einsum("cip,cjp->ij", patches, patches)
    top = float(torch.linalg.eigvalsh(gram)[-1])                             # largest eigenvalue of X^T X
    return math.sqrt(top) if top > 0 else None


@contextlib.contextmanager
def capturing(model):
    """While active, each normalisation block stores its input x and its norm's y, z (with graph)."""
    blocks = model.norm_blocks()
    captures = {}
    for name, block in blocks:
        captures[name] = {}
        block.capture = captures[name]
        block.norm.capture = captures[name]
        block.norm.update_running = False
    try:
        yield captures
    finally:
        for _, block in blocks:
            block.capture = None
            block.norm.capture = None
            block.norm.update_running = True


def channel_vectors(t: torch.Tensor, channels) -> torch.Tensor:
    """(K, *t.shape): the k-th is t restricted to channel channels[k] (zero elsewhere)."""
    out = torch.zeros((len(channels),) + tuple(t.shape), dtype=t.dtype, device=t.device)
    for k, j in enumerate(channels):
        out[k, :, j] = t[:, j]
    return out


def quadratic_forms(grad: torch.Tensor, wrt: torch.Tensor, vectors: torch.Tensor) -> torch.Tensor:
    """u_k^T (d grad / d wrt) u_k for each of the K vectors u_k (K, *wrt.shape) -> (K,).

    ``grad`` = dL/d``wrt`` computed with create_graph, so d grad/d wrt is the Hessian of L
    w.r.t. ``wrt``.  For fully connected layers the K products are one batched backward pass
    (a vmap over the vectors, in chunks of at most _HVP_ELEMENTS elements); for convolutions a
    loop, because the vmap of the convolution double backward is slower than K passes (CPU,
    measured: 0.53 s vs 0.25 s per vector at the first layer of vgg-cpu).
    """
    if wrt.dim() > 2:
        return torch.stack([
            (u * torch.autograd.grad(grad, wrt, grad_outputs=u, retain_graph=True)[0]).sum()
            for u in vectors])
    per_chunk = max(1, _HVP_ELEMENTS // max(1, wrt.numel()))
    out = []
    for s in range(0, vectors.shape[0], per_chunk):
        u = vectors[s:s + per_chunk]
        Hu = torch.autograd.grad(grad, wrt, grad_outputs=u, retain_graph=True, is_grads_batched=True)[0]
        out.append((u * Hu).flatten(1).sum(1))
    return torch.cat(out)


def hessian_vector_products(grad: torch.Tensor, wrt: torch.Tensor, vectors: torch.Tensor) -> torch.Tensor:
    """H u_k for each of the K vectors u_k (K, *wrt.shape) -> (K, *wrt.shape), H = d grad/d wrt
    (``grad`` computed with create_graph); batched like ``quadratic_forms``."""
    if wrt.dim() > 2:
        return torch.stack([torch.autograd.grad(grad, wrt, grad_outputs=u, retain_graph=True)[0] for u in vectors])
    per_chunk = max(1, _HVP_ELEMENTS // max(1, wrt.numel()))
    return torch.cat([torch.autograd.grad(grad, wrt, grad_outputs=vectors[s:s + per_chunk], retain_graph=True,
                                          is_grads_batched=True)[0]
                      for s in range(0, vectors.shape[0], per_chunk)])


def normalised(y: torch.Tensor, eps: float) -> torch.Tensor:
    """y_hat = (y - mu)/sqrt(Var + eps) per channel (dim 1), the batch statistics of training-mode BatchNorm."""
    dims = [d for d in range(y.dim()) if d != 1]
    centred = y - y.mean(dims, keepdim=True)
    return centred / torch.sqrt((centred**2).mean(dims, keepdim=True) + eps)


def measure(model, inputs, target, channels: dict) -> list:
    """Measure every probed layer.  ``channels``: layer name -> channel indices.  The model must
    be in training mode; its parameters are not changed and get no .grad."""
    if not model.training:
        raise ValueError("probes measure the training-mode network: call model.train() first")
    with capturing(model) as cap:
        loss = model.loss(model(inputs), target)
    names = [n for n in channels if n in cap]
    zs = [cap[n]["z"] for n in names]
    ys = [cap[n]["y"] for n in names]
    grads = torch.autograd.grad(loss, zs + ys, create_graph=True)
    gz, gy = grads[:len(names)], grads[len(names):]
    blocks = dict(model.norm_blocks())
    out = []
    for i, name in enumerate(names):
        chans = [int(c) for c in channels[name]]
        n = len(chans)
        z, y, g_full, v_full = zs[i], ys[i], gz[i], gy[i]
        G = channel_vectors(g_full.detach(), chans)                            # (n, *z.shape)
        V = channel_vectors(v_full.detach(), chans)                            # (n, *y.shape)
        on_z = quadratic_forms(g_full, z, torch.cat([G, V]))                   # (2n,) g^T H g, v^T H v
        hess_vv = quadratic_forms(v_full, y, V)                                # (n,)  v^T H_hat v
        norm = blocks[name].norm
        Y = channel_vectors(normalised(y.detach(), float(norm.eps)), chans)     # (n, *z.shape) y_hat
        HY = hessian_vector_products(g_full, z, Y)                             # (n, *z.shape) H y_hat
        H_yy, H_yv = (Y * HY).flatten(1).sum(1), (V * HY).flatten(1).sum(1)    # (n,), (n,)
        lam = input_spectral_norm(cap[name]["x"], blocks[name].linear)
        idx = torch.as_tensor(chans, device=y.device)
        out.append(LayerMeasurement(
            layer=name, channels=np.asarray(chans),
            y=_np(channel_rows(y, idx)), g=_np(channel_rows(g_full, idx)),
            grad_y_bn=_np(channel_rows(v_full, idx)),
            gamma=_np(norm.weight[idx]), beta=_np(norm.bias[idx]), eps=float(norm.eps),
            H_gg=_np(on_z[:n]), H_vv=_np(on_z[n:]), H_yv=_np(H_yv), H_yy=_np(H_yy), hess_bn_vv=_np(hess_vv),
            lam=None if lam is None else np.full(n, lam)))
    return out


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().to("cpu", torch.float64).numpy()


def evaluate_measurement(m: LayerMeasurement) -> list:
    """Every registry variant on one layer's measurement, through the numeric layer."""
    q = bn_channel_quantities(m.y, m.g, m.gamma, m.beta, m.eps, grad_y_bn=m.grad_y_bn,
                              H_gg=m.H_gg, H_vv=m.H_vv, H_yv=m.H_yv, H_yy=m.H_yy, hess_bn_vv=m.hess_bn_vv,
                              lam=m.lam)
    return evaluate_all(q)


def probe_rows(step: int, network: str, m: LayerMeasurement, results) -> list:
    """One record per (channel, applicable variant): the fields the issue asks for, plus the
    relation, tolerance and verdict the registry computed."""
    rows = []
    for r in results:
        for i in np.flatnonzero(np.asarray(r.applicable, dtype=bool)):
            rows.append({
                "step": step, "network": network, "layer": f"{network}/{m.layer}",
                "channel": int(m.channels[i]), "m": int(m.y.shape[1]),
                "statement": r.statement_id, "variant": r.variant, "relation": r.relation,
                "lhs": float(r.lhs[i]), "rhs": float(r.rhs[i]), "slack": float(r.slack[i]),
                "rel_slack": float(r.rel_slack[i]), "tolerance": float(r.tolerance[i]),
                "verdict": str(r.verdicts[i]),
            })
    return rows


def fold_batchnorm(model, layer: str, inputs):
    """The "identical non-BN network" of a probed layer, built explicitly: a copy of ``model``
    in which layer ``layer``'s BatchNorm is folded into its linear map, W' = (gamma/sigma) W,
    b' = gamma (b - mu)/sigma + beta, with mu, sigma the batch statistics of ``inputs`` (so its
    output equals z on this batch), and no normalisation there.  Every other weight is shared
    by value.  (Noisy BN's noise is not carried over: use it for standard BN.)"""
    clone = copy.deepcopy(model)
    blocks = dict(model.norm_blocks())
    with capturing(model) as cap, torch.no_grad():
        model(inputs)
    y = cap[layer]["y"].detach()
    dims = (0,) + tuple(range(2, y.dim()))
    mu = y.mean(dims)                                                         # (C,)
    sigma = torch.sqrt(y.var(dims, unbiased=False) + blocks[layer].norm.eps)  # (C,)
    norm = blocks[layer].norm
    scale = norm.weight.detach() / sigma                                      # (C,)
    target = dict(clone.norm_blocks())[layer]
    old = target.linear
    if isinstance(old, torch.nn.Linear):
        new = torch.nn.Linear(old.in_features, old.out_features, bias=True).to(old.weight)
    else:
        new = torch.nn.Conv2d(old.in_channels, old.out_channels, old.kernel_size, padding=old.padding).to(old.weight)
    bias = old.bias.detach() if old.bias is not None else torch.zeros_like(mu)
    with torch.no_grad():
        new.weight.copy_(old.weight * scale.view((-1,) + (1,) * (old.weight.dim() - 1)))
        new.bias.copy_(scale * (bias - mu) + norm.bias.detach())
    target.linear, target.norm = new, None
    return clone


class Prober:
    """The probe of one network of a run: its channel sample and its float64 shadow copy."""

    def __init__(self, config: RunConfig, network: str, model):
        self.config, self.network = config, network
        self.enabled = config.norm in BATCHNORM_KINDS and config.probe_every > 0
        self.channels = {
            name: probe_channels(config.seed, network, i, block.norm.weight.numel(), config.probe_channels)
            for i, (name, block) in enumerate(model.norm_blocks())} if self.enabled else {}
        self._shadow = None
        self.dtype = torch.float64 if config.probe_dtype == "float64" else torch.float32

    def due(self, step: int) -> bool:
        return self.enabled and step % self.config.probe_every == 0

    def shadow(self, model):
        """The network at the probe dtype with the current weights (created once, then refreshed)."""
        if self.dtype == torch.float32:
            return model
        if self._shadow is None:
            self._shadow = copy.deepcopy(model).to(self.dtype)
        self._shadow.load_state_dict(model.state_dict())
        self._shadow.train()
        return self._shadow

    def __call__(self, step: int, model, inputs, target) -> list:
        shadow = self.shadow(model)
        shadow.set_step(step)
        if inputs.is_floating_point():
            inputs = inputs.to(self.dtype)
        if target.is_floating_point():
            target = target.to(self.dtype)
        rows = []
        for m in measure(shadow, inputs, target, self.channels):
            try:
                rows += probe_rows(step, self.network, m, evaluate_measurement(m))
            except BatchNormInputError as e:   # e.g. a constant channel with eps = 0, NaN activations
                rows.append({"step": step, "network": self.network, "layer": f"{self.network}/{m.layer}",
                             "error": str(e)})
        return rows
