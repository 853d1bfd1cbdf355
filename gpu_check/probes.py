"""Probes: the quantities of every statement, measured on any torch model at a training step.

``ModelProbe(model, channels, seed)`` keeps a float64 *shadow* copy of ``model`` and, at a
probed step, runs the user's closure ``loss = closure(shadow)`` on it (training mode, autocast
off, floating inputs cast to float64), with hooks on every normalisation layer of BatchNorm kind
and on every Linear / Conv layer.  For every call of such a layer in that forward pass (a *site*)
and a fixed, reproducible sample of its channels j:

    y_j     the layer's input, channel j flattened over every other dim (n, h, w)  (m,)
    z_j     its training-mode BatchNorm output gamma*y_hat + beta (before anything the layer
            does after BatchNorm, e.g. Algorithm 1's noise)                          (m,)
    g_j     dL/dz_j                                                                    (m,)
    v_j     dL/dy_j, the gradient through BatchNorm only (grad_y_bn)                   (m,)
    H_gg    g^T H g,  H_vv = v^T H v,   H = d^2 L/dz_j^2            (double backward w.r.t. z)
    hess_bn_vv = v^T (d^2 L/dy_j^2) v                                (double backward w.r.t. y)
    lam     ||X||_2 of the input matrix X (m x d) of the Linear / Conv layer whose output *is* y
            (found by hooks, not by module order): the batch of inputs for a Linear layer, the
            im2col patches of the group of j (with the layer's stride, padding and dilation) for
            a convolution, so that y_j = X W_.j (+ b_j).  Where no such layer feeds the site, or
            X = 0, lam is absent and the rows of Theorems 4.4 and C.1 say why (``lam_note``).

The five Hessian forms come one of two ways, the same exact derivatives rounded differently:

* the chain sweep (gpu_check.chain_forms), when the forward pass is a chain of layers it knows
  (Linear, Conv, BatchNorm, noisy BatchNorm, ReLU, MaxPool, Flatten: the project's DLN and VGG,
  with bn or noisy-bn) and the loss reads
  the chain only through the model's output: the directions g, v, y_hat of each channel (and v at
  y) are pushed forward through the layers after the site as first-order tangents, and each
  BatchNorm layer adds its second derivative in closed form, the loss its Hessian by autograd;
* Hessian-vector products otherwise (any model): each a backward pass of the first-order graph
  (create_graph) with a vector that is zero outside channel j, so the quadratic form is of the
  channel's m x m block of the Hessian, which is never formed (``hessian_products``: H g, H v and
  H y_hat at z, H_hat v at y, four products per channel, the fewest that give these five forms
  without using an identity the registry checks).  The shadow's convolutions run with their
  adjoint as a differentiable backward (``_ConvolutionWithAdjoint``: the same gradient as torch's,
  without the weight term torch's convolution double backward computes and drops).

``ModelProbe.hessian_method`` says which, and why not the sweep; the run's events log records it.
tests/test_chain_forms.py checks the two against each other on chains of every layer kind the
sweep knows.  The measured values then go, in float64, through
numeric.quantities.bn_channel_quantities and theory.evaluate.evaluate_all: every formula is the
registry's; nothing here restates one.

Which layers.  Every ``torch.nn.BatchNorm1d/2d/3d`` and ``SyncBatchNorm`` (any subclass of
torch's ``_BatchNorm``) in training mode, and any module implementing ``ProbeableNormalisation``
(the project's ``gpu_check.norms.Normalisation`` of kind bn / noisy-bn does).  BatchNorm applied
through ``torch.nn.functional.batch_norm`` outside such a module has no module to hook.

A layer called k > 1 times in one forward pass is k sites, named ``name#1`` ... ``name#k``: each
call is its own training-mode BatchNorm map (its own batch, statistics, g, v and H, with the
gamma, beta and eps the calls share), and every statement is about one such map.  Its channel
sample is the layer's, shared by its calls.

"The identical non-BN network" (Theorems 4.1, 4.2, 4.4, C.1).  Following the paper's setup
(Figure 7; the proof of Thm 4.1 ends "exploiting dL_hat/dz_j = dL/dy"), it is the network with
the same weights everywhere in which the site's output feeds the rest of the network directly,
evaluated where that output equals the BN network's z_j: the BN layer folded into its linear
layer (Observation 4.3's construction run backwards).  Its gradient and Hessian w.r.t. its layer
output are g = dL/dz and H = d^2 L/dz^2 of the BN network, which is what is measured;
tests/test_gpu_probes.py builds that folded network explicitly and checks its gradient equals g.

Isolation.  The site's input is handed to BatchNorm as a copy (``y.clone()``) and its output to
the rest of the network as a copy, so dL/dy is the gradient through BatchNorm alone even when y
also feeds a skip connection, and an in-place operation after BatchNorm (ReLU(inplace=True))
cannot overwrite the captured z.  The copies are exact; they exist only in the shadow.

Cost.  Both ways push four directions per probed channel through every layer after the site,
so a probe of a depth-L chain costs 4 x channels x sum over sites of (layers downstream) layer
passes: O(L^2) per channel.  A Hessian-vector product runs a forward and a backward pass of the
double-backward graph per layer and vector, through autograd's engine; the sweep runs one
Jacobian-vector product per layer for all of a site's directions at once (K convolutions as one
matrix product), which is 4-6x faster on the project's networks (gpu_check.probe_bench measures it).
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import math
import random
import time
import warnings
from dataclasses import dataclass
from typing import Callable, Optional, Protocol, runtime_checkable

import numpy as np
import scipy.linalg
import torch
import torch.nn.functional as F

from gpu_check.chain_forms import (TANGENT_ELEMENTS, BatchNormPoint, Chain, ChainRecorder, ChainSweep, LossCurvature,
                                  chain_of, directions, im2col, loss_reads_only, sweep_tolerance)
from numeric.quantities import bn_channel_quantities
from theory.bn import BatchNormInputError
from theory.evaluate import evaluate_all
from theory.statements import STATEMENTS
from theory.vocab import Verdict

_CHANNEL_STREAM = 17
_GRAM_ELEMENTS = 1 << 22  # patch numbers per chunk when accumulating the im2col Gram matrix X^T X (32 MiB)
# At most this many elements in one batch of Hessian-vector products: 512 KiB of float64 per
# tensor, so a batch's tensors stay in the cache (dln-paper, CPU time of a probe's products,
# chunks of 6 vectors 2.25 s vs all 24 of a site at once 3.16 s; chunks of 1 vector 4.57 s).
_HVP_ELEMENTS = 1 << 16
# The Hessian forms of a LayerMeasurement, in the order forms_by_* return them.
HESSIAN_FORMS = ("H_gg", "H_vv", "H_yy", "H_yv", "hess_bn_vv")
# The quantities that need lambda (Theorems 4.4 and C.1): without lam their variants are not
# applicable, and the probe says why.
LAMBDA_QUANTITIES = ("lam", "gW_max", "gW_hat_max")


class ProbeError(ValueError):
    """Bad input to a probe: the message names the problem and the value."""


# ---------------------------------------------------------------------------------------------
# Which modules are normalisation layers of BatchNorm kind
# ---------------------------------------------------------------------------------------------

@runtime_checkable
class ProbeableNormalisation(Protocol):
    """A custom normalisation module the probe can attach to.

    is_batchnorm   True when the module's map is training-mode BatchNorm (in training mode)
    num_features   C, the channels (dim 1 of its input)
    gamma, beta    (C,) tensors, or None for gamma = 1, beta = 0
    eps            the epsilon of its BatchNorm map (float, >= 0)
    probe_site     None, or set by a probe to a callable f(kind, tensor) -> tensor.  While set,
                   forward passes its input through ``y = self.probe_site("y", y)`` before
                   normalising and the BatchNorm output through ``z = self.probe_site("z", z)``
                   right after, and uses what they return.

    Optional: ``probe_after_z(z)`` -> None when the module returns z itself, or (scale, shift),
    tensors of z's shape, when it returns scale * z + shift (Algorithm 1's noise): then the chain
    sweep (gpu_check.chain_forms) can push tangents through it.  Without it, a module that does
    more after z is probed by Hessian-vector products.
    """

    is_batchnorm: bool
    num_features: int
    gamma: Optional[torch.Tensor]
    beta: Optional[torch.Tensor]
    eps: float
    probe_site: Optional[Callable]


def is_torch_batchnorm(module) -> bool:
    return isinstance(module, torch.nn.modules.batchnorm._BatchNorm)


def is_normalisation(module) -> bool:
    """A BatchNorm module of torch, or a module implementing ProbeableNormalisation as BatchNorm."""
    if is_torch_batchnorm(module):
        return True
    return isinstance(module, ProbeableNormalisation) and bool(module.is_batchnorm)


def normalisations(model) -> list:
    """(name, module) of every normalisation layer of BatchNorm kind, in named_modules order."""
    return [(name, m) for name, m in model.named_modules() if is_normalisation(m)]


def find_normalisations(model) -> list:
    """normalisations(model), refusing a model without any (nothing to probe)."""
    found = normalisations(model)
    if not found:
        raise ProbeError(
            f"{type(model).__name__} has no BatchNorm module (torch.nn.BatchNorm1d/2d/3d, SyncBatchNorm, or a "
            "module implementing gpu_check.probes.ProbeableNormalisation): there is nothing to probe. BatchNorm "
            "applied through torch.nn.functional.batch_norm cannot be hooked; wrap it in a module")
    if torch.distributed.is_available() and torch.distributed.is_initialized() \
            and torch.distributed.get_world_size() > 1 \
            and any(isinstance(m, torch.nn.SyncBatchNorm) for _, m in found):
        raise ProbeError("SyncBatchNorm across "
                         f"{torch.distributed.get_world_size()} processes: its batch statistics span "
                         "processes the probe cannot see; probe it in a single process")
    return found


def affine_parameters(module) -> tuple:
    """(gamma, beta, eps) of a normalisation layer; gamma = 1, beta = 0 where it has none."""
    if is_torch_batchnorm(module):
        gamma, beta, eps = module.weight, module.bias, module.eps
    else:
        gamma, beta, eps = module.gamma, module.beta, module.eps
    C = num_features(module)
    device = next((t.device for t in (gamma, beta) if t is not None), None)
    ones = torch.ones(C, dtype=torch.float64, device=device)
    gamma = ones if gamma is None else gamma.detach()
    beta = torch.zeros_like(ones) if beta is None else beta.detach()
    return gamma, beta, float(eps)


def uses_batch_statistics(module) -> bool:
    """Whether the layer's map is now training-mode BatchNorm (torch's BatchNorm without running
    statistics normalises by the batch's in eval mode too)."""
    if is_torch_batchnorm(module):
        return module.training or module.running_mean is None
    return module.training


def num_features(module) -> int:
    return int(module.num_features)


def describe_normalisations(model) -> list:
    """config.json's account of a model's normalisation layers (names of named_modules)."""
    out = []
    for name, m in normalisations(model):
        d = {"name": name, "type": type(m).__name__, "num_features": num_features(m),
             "eps": float(m.eps), "training": bool(m.training)}
        if is_torch_batchnorm(m):
            d.update(momentum=m.momentum, affine=bool(m.affine), track_running_stats=bool(m.track_running_stats))
        else:
            d.update(momentum=getattr(m, "momentum", None), affine=m.gamma is not None)
        out.append(d)
    return out


def describe_model(model) -> dict:
    """The model as config.json records it: class, parameter count, normalisation layers."""
    return {"class": f"{type(model).__module__}.{type(model).__qualname__}",
            "parameters": int(sum(p.numel() for p in model.parameters())),
            "normalisations": describe_normalisations(model)}


def probe_channels(seed: int, stream: int, layer_index: int, n_channels: int, k: int) -> np.ndarray:
    """A reproducible sample of min(k, n_channels) channels of one layer, sorted; fixed for a run.
    ``stream`` tells networks of one run apart (gpu_check.models.NETWORK_INDEX; 0 for attach)."""
    rng = np.random.default_rng([seed, _CHANNEL_STREAM, stream, layer_index])
    return np.sort(rng.choice(n_channels, size=min(k, n_channels), replace=False))


# ---------------------------------------------------------------------------------------------
# lambda = ||X||_2 of the layer feeding a site
# ---------------------------------------------------------------------------------------------

def channel_rows(t: torch.Tensor, channels) -> torch.Tensor:
    """(n, C, ...) -> (len(channels), m): channel j's values over every other dim, in (n, h, w) order."""
    return t.transpose(0, 1)[channels].reshape(len(channels), -1)


def _conv_padding(conv) -> tuple:
    """The symmetric zero padding of a convolution per spatial dim; ProbeError where there is none."""
    if conv.padding_mode != "zeros":
        raise ProbeError(f"padding_mode {conv.padding_mode!r}: X is not the zero-padded im2col matrix")
    if isinstance(conv.padding, str):
        if conv.padding == "valid":
            return (0,) * len(conv.kernel_size)
        total = [d * (k - 1) for d, k in zip(conv.dilation, conv.kernel_size)]
        if any(t % 2 for t in total):
            raise ProbeError(f"padding='same' with an even receptive field {conv.kernel_size}: asymmetric padding")
        return tuple(t // 2 for t in total)
    return tuple(conv.padding)


def input_matrix_grams(x: torch.Tensor, layer) -> list:
    """X^T X for each group of ``layer`` (one for a Linear layer or an ungrouped convolution):
    X (m x d) is the matrix with y_.j = X W_.j (+ b_j) for the channels j of the group.
    x: the layer's input, (n, d) for Linear, (n, C_in, L) or (n, C_in, H, W) for Conv1d/2d."""
    x = x.detach().to(torch.float64)
    if isinstance(layer, torch.nn.Linear):
        if x.dim() != 2:
            raise ProbeError(f"a Linear layer on input of shape {tuple(x.shape)}: its output channels are "
                             "not dim 1, so y_j is not X W_j")
        return [x.T @ x]                                                       # (d, d)
    if isinstance(layer, torch.nn.modules.conv._ConvTransposeNd) or not isinstance(layer, (torch.nn.Conv1d, torch.nn.Conv2d)):
        raise ProbeError(f"{type(layer).__name__}: lambda is measured for Linear, Conv1d and Conv2d layers")
    pad = _conv_padding(layer)
    k = tuple(layer.kernel_size)
    groups, n = layer.groups, x.shape[0]
    spatial = x.shape[2:]
    # a chunk of samples at a time: its patches, at most _GRAM_ELEMENTS numbers (the batch of im2col)
    per_chunk = max(1, _GRAM_ELEMENTS // (x.shape[1] * math.prod(k) * math.prod(spatial)))
    grams = 0
    for start in range(0, n, per_chunk):
        part = x[start:start + per_chunk].movedim(0, -1).contiguous()                   # (C_in, *spatial, c)
        cols = im2col(part, k, pad, tuple(layer.stride), tuple(layer.dilation))
        rows = cols.reshape(groups, math.prod(cols.shape[:1 + len(k)]) // groups, -1)   # (groups, dim, L c)
        grams = grams + torch.bmm(rows, rows.transpose(1, 2))                           # (groups, dim, dim)
    return list(grams)


def largest_eigenvalue(symmetric: torch.Tensor) -> float:
    """The largest eigenvalue of a symmetric matrix.  On the CPU, LAPACK's solver for a chosen
    eigenvalue (scipy's eigvalsh with subset_by_index: dsyevr, bisection to working accuracy, the
    same accuracy as all eigenvalues; about half the time at 576 x 576); elsewhere torch's."""
    if symmetric.device.type != "cpu":
        return float(torch.linalg.eigvalsh(symmetric)[-1])
    d = symmetric.shape[0]
    return float(scipy.linalg.eigvalsh(symmetric.numpy(), subset_by_index=[d - 1, d - 1])[0])


def input_spectral_norms(x: torch.Tensor, layer, channels) -> tuple:
    """(lam (N,) for the probed ``channels``, '') or (None, why not).  lam_j = ||X_g||_2 for the
    group g of channel j; None when X_g = 0 (lambda > 0 of Theorems 4.4 and C.1 cannot bound it)."""
    try:
        grams = input_matrix_grams(x, layer)
    except ProbeError as e:
        return None, str(e)
    per_group = len(grams)
    out_channels = layer.out_features if isinstance(layer, torch.nn.Linear) else layer.out_channels
    tops = [largest_eigenvalue(g) for g in grams]                             # of X^T X: ||X||_2^2
    lam = np.array([tops[int(j) // (out_channels // per_group)] for j in channels])
    if (lam <= 0).any():
        return None, "the input X of the layer is 0: lambda > 0 cannot bound it"
    return np.sqrt(lam), ""


# ---------------------------------------------------------------------------------------------
# Hooks: the sites of one forward pass
# ---------------------------------------------------------------------------------------------

@dataclass
class Site:
    """One call of one normalisation layer in a forward pass of the shadow."""

    module: torch.nn.Module
    name: str                 # the layer's name; '#k' is added when it is called more than once
    y: torch.Tensor           # the copy of the input BatchNorm consumed (graph leaf of dL/dy)
    z: torch.Tensor = None    # the BatchNorm output
    z_out: torch.Tensor = None  # the copy of z the rest of the network receives
    feeder: object = None     # (Linear/Conv module, its input x) when y is that layer's output
    feeder_note: str = ""     # why there is no feeder


class SiteRecorder:
    """Hooks on a model's normalisation layers and Linear/Conv layers; inactive outside ``record``."""

    def __init__(self, model, names: dict):
        self.names = names                  # module -> layer name
        self.active = False
        self.sites: list = []
        self._pending: dict = {}            # id(module) -> Site awaiting its z
        self._outputs: dict = {}            # id(output tensor) -> (tensor, layer, input x)
        self._skipped: dict = {}            # name -> why a call was not probed
        self._handles = []
        for m in model.modules():
            if isinstance(m, (torch.nn.Linear, torch.nn.modules.conv._ConvNd)):
                self._handles.append(m.register_forward_hook(self._linear_hook))
        for m in names:
            if is_torch_batchnorm(m):
                self._handles.append(m.register_forward_pre_hook(self._bn_pre_hook))
                self._handles.append(m.register_forward_hook(self._bn_hook))
            else:
                m.probe_site = self._protocol_site(m)

    def remove(self) -> None:
        """Take every hook off the model again."""
        for h in self._handles:
            h.remove()
        for m in self.names:
            if not is_torch_batchnorm(m):
                m.probe_site = None

    @contextlib.contextmanager
    def record(self):
        self.sites, self._pending, self._outputs, self._skipped = [], {}, {}, {}
        self.active = True
        try:
            yield self.sites
        finally:               # the caller keeps the list it was given; the recorder keeps no tensor
            self.active = False
            self.sites, self._pending, self._outputs = [], {}, {}

    @property
    def skipped(self) -> dict:
        return dict(self._skipped)

    def _linear_hook(self, module, inputs, output):
        if self.active and inputs and isinstance(output, torch.Tensor):
            self._outputs[id(output)] = (output, module, inputs[0])

    def _on_y(self, module, y):
        if not self.active:
            return y
        if not uses_batch_statistics(module):
            self._skipped[self.names[module]] = "in eval mode: its map uses the running statistics, not the batch's"
            return y
        entry = self._outputs.get(id(y))
        # a copy BatchNorm alone consumes; a leaf when nothing upstream needs a gradient
        site = Site(module, self.names[module], y.clone() if y.requires_grad else y.detach().clone().requires_grad_())
        if entry is not None and entry[0] is y:
            site.feeder = (entry[1], entry[2])
        else:
            made_by = type(y.grad_fn).__name__ if y.grad_fn is not None else "no layer (a leaf tensor)"
            site.feeder_note = (f"the input of {site.name} is not the output of a Linear or Conv layer (it is "
                                f"made by {made_by}), so no input matrix X with y_j = X W_j is known")
        self._pending[id(module)] = site
        return site.y

    def _on_z(self, module, z):
        site = self._pending.pop(id(module), None)
        if site is None:
            return z
        site.z, site.z_out = z, z.clone()
        self.sites.append(site)
        return site.z_out

    def _bn_pre_hook(self, module, args):
        if not self.active:
            return None
        return (self._on_y(module, args[0]),) + tuple(args[1:])

    def _bn_hook(self, module, args, output):
        if not self.active:
            return None
        return self._on_z(module, output)

    def _protocol_site(self, module):
        def site(kind, tensor):
            if kind == "y":
                return self._on_y(module, tensor)
            if kind == "z":
                return self._on_z(module, tensor) if self.active else tensor
            raise ValueError(f"probe_site kind {kind!r}: the protocol passes 'y' or 'z'")
        return site


def site_names(sites) -> list:
    """Layer names of the sites, with '#k' on every call of a layer called more than once."""
    count = {}
    for s in sites:
        count[s.name] = count.get(s.name, 0) + 1
    seen, out = {}, []
    for s in sites:
        seen[s.name] = seen.get(s.name, 0) + 1
        out.append(s.name if count[s.name] == 1 else f"{s.name}#{seen[s.name]}")
    return out


# ---------------------------------------------------------------------------------------------
# Measurement
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class LayerMeasurement:
    """What one probe measured at one site, float64 numpy; N = number of probed channels."""

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
    lam: object             # (N,) ||X||_2 of the channel's input matrix, or None (see lam_note)
    lam_note: str = ""      # why lam is None


def channel_vectors(t: torch.Tensor, channels) -> torch.Tensor:
    """(K, *t.shape): the k-th is t restricted to channel channels[k] (zero elsewhere)."""
    out = torch.zeros((len(channels),) + tuple(t.shape), dtype=t.dtype, device=t.device)
    for k, j in enumerate(channels):
        out[k, :, j] = t[:, j]
    return out


def hessian_products(g_full: torch.Tensor, v_full: torch.Tensor, z: torch.Tensor, y: torch.Tensor,
                     z_vectors: torch.Tensor, y_vectors: torch.Tensor):
    """Yields ("z", k, H u_k ... ) and ("y", l, H_hat w_l ...) in chunks: (kind, first index, (k, *shape)).

    H u for the K ``z_vectors`` (K, *z.shape) and H_hat w for the L ``y_vectors`` (L, *y.shape),
    H = d g/dz = d^2 L/dz^2 and H_hat = d v/dy = d^2 L/dy^2, where ``g_full`` = dL/dz and ``v_full``
    = dL/dy were computed with create_graph: each product is a backward pass of the first-order
    graph (reverse over reverse); the Hessian is never formed.

    For (n, C) tensors the K + L products are batched backward passes over both outputs at once
    (``is_grads_batched``, in chunks of at most _HVP_ELEMENTS elements): entry k carries its vector
    on g for a z-vector or on v for a y-vector, zero on the other output, and only its own block
    (at z, resp. at y) is read, so one pass per chunk serves both kinds.  Otherwise one pass per
    vector, because the vmap of the convolution double backward is not faster than a loop (CPU,
    measured: vgg-cpu's first layer, 8 vectors, 2.6 s looped, 2.4-2.6 s vmapped), and a chunk of
    one product at a time keeps the memory at one tensor of z's size.
    """
    K, L = z_vectors.shape[0], y_vectors.shape[0]
    if not (g_full.requires_grad and v_full.requires_grad):    # no graph: the loss is linear after the site
        yield "z", 0, _products_one_by_one(g_full, z, z_vectors)
        yield "y", 0, _products_one_by_one(v_full, y, y_vectors)
        return
    if z.dim() > 2:
        for k, u in enumerate(z_vectors):
            yield "z", k, torch.autograd.grad(g_full, z, grad_outputs=u, retain_graph=True)[0].unsqueeze(0)
        for k, w in enumerate(y_vectors):
            yield "y", k, torch.autograd.grad(v_full, y, grad_outputs=w, retain_graph=True)[0].unsqueeze(0)
        return
    per_chunk = max(1, _HVP_ELEMENTS // max(1, z.numel()))
    for s in range(0, K + L, per_chunk):
        e = min(K + L, s + per_chunk)
        kz, ky = max(0, min(e, K) - s), max(0, e - max(s, K))      # z- and y-entries of this chunk
        u, w = z_vectors[s:s + kz], y_vectors[max(s, K) - K:max(s, K) - K + ky]
        if ky == 0:
            yield "z", s, torch.autograd.grad(g_full, z, grad_outputs=u, retain_graph=True, is_grads_batched=True)[0]
        elif kz == 0:
            yield "y", s - K, torch.autograd.grad(v_full, y, grad_outputs=w, retain_graph=True,
                                                  is_grads_batched=True)[0]
        else:
            on_g = torch.cat([u, u.new_zeros((ky,) + tuple(z.shape))])                 # (kz + ky, *z.shape)
            on_v = torch.cat([w.new_zeros((kz,) + tuple(y.shape)), w])                 # (kz + ky, *y.shape)
            at_z, at_y = torch.autograd.grad([g_full, v_full], [z, y], grad_outputs=[on_g, on_v],
                                             retain_graph=True, is_grads_batched=True)
            yield "z", s, at_z[:kz]
            yield "y", 0, at_y[kz:]


def _products_one_by_one(gradient: torch.Tensor, at: torch.Tensor, vectors: torch.Tensor) -> torch.Tensor:
    """d(gradient)/d(at) applied to each vector (K, *at.shape); 0 where the gradient has no graph
    or does not depend on ``at`` (its Hessian there is 0)."""
    out = torch.zeros_like(vectors)
    if gradient.requires_grad:
        for k, u in enumerate(vectors):
            product, = torch.autograd.grad(gradient, at, grad_outputs=u, retain_graph=True, allow_unused=True)
            if product is not None:
                out[k] = product
    return out


class _ConvolutionWithAdjoint(torch.autograd.Function):
    """A convolution whose backward is its adjoint written as a differentiable op: grad_x =
    conv_transpose(grad, W), the gradient torch's own convolution backward computes (bitwise equal
    on the CPU, tests/test_gpu_probes.py), so autograd differentiates it like any op.

    Why: torch's double backward of a convolution (ConvolutionBackwardBackward) also computes the
    weight-shaped term conv(ggI, gO) and discards it when no weight gradient is needed, about a
    third of a Hessian-vector product through a CNN (vgg-cpu's first layer: 220 -> 144 ms a vector).
    Only for weights and biases that need no gradient (the shadow's: ModelProbe freezes them)."""

    @staticmethod
    def forward(x, weight, bias, stride, padding, dilation, groups):
        return _CONV[x.dim() - 2](x, weight, bias, stride, padding, dilation, groups)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, weight, _, stride, padding, dilation, groups = inputs
        ctx.save_for_backward(weight)
        ctx.geometry = (tuple(x.shape), stride, padding, dilation, groups)

    @staticmethod
    def backward(ctx, grad):
        weight, = ctx.saved_tensors
        x_shape, stride, padding, dilation, groups = ctx.geometry
        d = len(x_shape) - 2
        k = weight.shape[2:]
        # the output_padding that gives conv_transpose the input's size back
        extra = tuple(x_shape[2 + i] - ((grad.shape[2 + i] - 1) * stride[i] - 2 * padding[i]
                                        + dilation[i] * (k[i] - 1) + 1) for i in range(d))
        grad_x = _CONV_TRANSPOSE[d - 1](grad, weight, None, stride, padding, extra, groups, dilation)
        return grad_x, None, None, None, None, None, None


_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}                 # spatial dims -> convolution
_CONV_TRANSPOSE = (F.conv_transpose1d, F.conv_transpose2d, F.conv_transpose3d)


class _AdjointConvolutions(torch.overrides.TorchFunctionMode):
    """While active, F.conv1d/2d/3d with a weight (and bias) that need no gradient and numeric
    padding run as _ConvolutionWithAdjoint; everything else runs as it is."""

    _names = ("input", "weight", "bias", "stride", "padding", "dilation", "groups")

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        d = _CONVOLUTIONS.get(func)
        if d is not None:
            call = dict(zip(self._names, args), **kwargs)
            x, weight, bias = call["input"], call["weight"], call.get("bias")
            padding = call.get("padding", 0)
            if not isinstance(padding, str) and not weight.requires_grad \
                    and (bias is None or not bias.requires_grad) and x.dim() == d + 2:
                as_tuple = lambda v: tuple(v) if isinstance(v, (tuple, list)) else (int(v),) * d  # noqa: E731
                return _ConvolutionWithAdjoint.apply(x, weight, bias, as_tuple(call.get("stride", 1)),
                                                     as_tuple(padding), as_tuple(call.get("dilation", 1)),
                                                     int(call.get("groups", 1)))
        return func(*args, **kwargs)


_CONVOLUTIONS = {f: d for d, f in _CONV.items()}


def normalised(y: torch.Tensor, eps: float) -> torch.Tensor:
    """y_hat = (y - mu)/sqrt(Var + eps) per channel (dim 1), the batch statistics of training-mode BatchNorm."""
    dims = [d for d in range(y.dim()) if d != 1]
    centred = y - y.mean(dims, keepdim=True)
    return centred / torch.sqrt((centred**2).mean(dims, keepdim=True) + eps)


def scalar_loss(loss, require_graph: bool = True) -> torch.Tensor:
    """The closure's value as a finite scalar tensor with a graph (unless ``require_graph`` is
    False); ProbeError otherwise."""
    if not isinstance(loss, torch.Tensor):
        raise ProbeError(f"the closure returned {type(loss).__name__}, not a torch.Tensor: it must return the "
                         "scalar training loss of the model it is given")
    if loss.numel() != 1:
        raise ProbeError(f"the closure returned a tensor of shape {tuple(loss.shape)}, not a scalar loss")
    if require_graph and not loss.requires_grad:
        raise ProbeError("the closure's loss does not depend on the model it was given (no autograd graph): "
                         "call the model passed to the closure, m(x), not the original")
    value = float(loss.detach())
    if not math.isfinite(value):
        raise ProbeError(f"the loss is {value}: the probe measures derivatives of a finite loss")
    return loss.reshape(())


def forms_disagreement(a: dict, b: dict) -> float:
    """The largest difference between two measurements of a site's Hessian forms (HESSIAN_FORMS ->
    (N,) arrays), each relative to the rounding scale of its kind: the site's largest |form| for a
    quadratic form, and sqrt(max |H_yy| max |H_vv|) for the bilinear y_hat^T H v.  That is its
    Cauchy-Schwarz bound where H is positive semi-definite on the two directions; its own size is
    no scale, for it can be exactly 0 (at a layer that feeds a linear output layer under a squared
    loss, H is a multiple of the identity on the channel, and y_hat is orthogonal to v)."""
    size = {k: float(np.max(np.abs(b[k]))) for k in HESSIAN_FORMS}
    size["H_yv"] = math.sqrt(size["H_yy"] * size["H_vv"])
    worst = 0.0
    for k in HESSIAN_FORMS:
        gap = float(np.max(np.abs(a[k] - b[k])))
        worst = max(worst, gap / size[k] if size[k] > 0 else (0.0 if gap == 0 else math.inf))
    return worst


def direction_fields(site, g_full, v_full) -> tuple:
    """(g, v, y_hat), detached, of z's shape: the fields whose channel restrictions are a site's
    Hessian directions."""
    _, _, eps = affine_parameters(site.module)
    return g_full.detach(), v_full.detach(), normalised(site.y.detach(), float(eps))


def forms_by_hessian_products(site, g_full, v_full, g, v, y_hat, channels) -> tuple:
    """(H_gg, H_vv, H_yy, H_yv, hess_bn_vv), (n,) each, by Hessian-vector products (any model):
    H applied to g, v and y_hat (detached, of z's shape) restricted to each channel, and H_hat to
    v; ``g_full``, ``v_full``: dL/dz and dL/dy with their graphs (create_graph)."""
    G, V, Y = (channel_vectors(t, channels) for t in (g, v, y_hat))        # (n, *z.shape) each
    n = G.shape[0]
    U = torch.cat([G, V, Y])                                               # (3n, *z.shape) H is applied to these
    partner = torch.cat([G, V, V])                                         # ... and read against these
    on_z = G.new_zeros(2, 3 * n)                                           # u^T H u, partner^T H u
    hess_vv = G.new_zeros(n)                                               # v^T H_hat v
    for kind, k, P in hessian_products(g_full, v_full, site.z, site.y, U, V):
        if kind == "z":
            on_z[0, k:k + len(P)] = (U[k:k + len(P)] * P).flatten(1).sum(1)
            on_z[1, k:k + len(P)] = (partner[k:k + len(P)] * P).flatten(1).sum(1)
        else:
            hess_vv[k:k + len(P)] = (V[k:k + len(P)] * P).flatten(1).sum(1)
    return on_z[0, :n], on_z[0, n:2 * n], on_z[0, 2 * n:], on_z[1, 2 * n:], hess_vv


def forms_by_chain_sweep(sweep: ChainSweep, site_index: int, g, v, y_hat, channels) -> tuple:
    """(H_gg, H_vv, H_yy, H_yv, hess_bn_vv), (n,) each, by the chain sweep
    (gpu_check.chain_forms): the same forms, in groups of channels whose tangents fit
    TANGENT_ELEMENTS."""
    n = len(channels)
    per_group = max(1, TANGENT_ELEMENTS // (4 * sweep.widest))
    out = g.new_zeros(5, n)
    for s in range(0, n, per_group):
        chans = torch.as_tensor(channels[s:s + per_group], device=g.device)
        K = len(chans)
        k = torch.arange(K, device=g.device)
        z_pairs = torch.stack([torch.cat([k, K + k, 2 * K + k, 2 * K + k]),       # (g,g) (v,v) (y_hat,y_hat) (y_hat,v)
                               torch.cat([k, K + k, 2 * K + k, K + k])], 1)
        on_z, on_y = sweep.site_forms(site_index, directions([g, v, y_hat], chans), directions([v], chans),
                                      z_pairs, torch.stack([k, k], 1), chans)
        out[:4, s:s + K] = on_z.view(4, K)
        out[4, s:s + K] = on_y
    return tuple(out)


def measure_sites(loss: torch.Tensor, sites, names, channels: dict, seconds: dict = None,
                  chain: Chain = None) -> tuple:
    """Every site's LayerMeasurement.  ``channels``: layer name (without '#k') -> channel indices.
    Returns (measurements, errors) with errors = [(site name, why)] for sites the loss does not reach.
    ``seconds``, when a dict, receives each site's wall time (its Hessian forms and lambda).
    With a ``chain`` (gpu_check.chain_forms.chain_of of this forward pass) the Hessian forms come
    from the chain sweep, otherwise from Hessian-vector products."""
    zs = [s.z for s in sites]
    ys = [s.y for s in sites]
    sweep = None
    if chain is None:
        grads = torch.autograd.grad(loss, zs + ys, create_graph=True, allow_unused=True)
    else:
        curvature = LossCurvature.of(loss, chain.output)
        grads = torch.autograd.grad(loss, zs + ys, retain_graph=True, allow_unused=True)
    gz, gy = grads[:len(sites)], grads[len(sites):]
    if chain is not None:
        sweep = ChainSweep(chain, sites, [None if g is None else
                                          BatchNormPoint.at(s.y.detach(), g.detach(), *affine_parameters(s.module)[::2])
                                          for s, g in zip(sites, gz)], curvature)
    out, errors = [], []
    for i, (site, name) in enumerate(zip(sites, names)):
        if gz[i] is None or gy[i] is None:
            errors.append((name, f"the output of {name} does not reach the loss"))
            continue
        t0 = time.perf_counter()
        chans = [int(c) for c in channels[site.name]]
        y, g_full, v_full = site.y, gz[i], gy[i]
        gamma, beta, eps = affine_parameters(site.module)
        fields = direction_fields(site, g_full, v_full)
        if sweep is None:
            H_gg, H_vv, H_yy, H_yv, hess_vv = forms_by_hessian_products(site, g_full, v_full, *fields, chans)
        else:
            H_gg, H_vv, H_yy, H_yv, hess_vv = forms_by_chain_sweep(sweep, i, *fields, chans)
        if site.feeder is not None:
            lam, note = input_spectral_norms(site.feeder[1], site.feeder[0], chans)
        else:
            lam, note = None, site.feeder_note
        idx = torch.as_tensor(chans, device=y.device)
        out.append(LayerMeasurement(
            layer=name, channels=np.asarray(chans),
            y=_np(channel_rows(y, idx)), g=_np(channel_rows(g_full, idx)),
            grad_y_bn=_np(channel_rows(v_full, idx)),
            gamma=_np(gamma[idx]), beta=_np(beta[idx]), eps=eps,
            H_gg=_np(H_gg), H_vv=_np(H_vv), H_yv=_np(H_yv), H_yy=_np(H_yy), hess_bn_vv=_np(hess_vv),
            lam=lam, lam_note=note))
        if seconds is not None:              # _np moved the results to the CPU: the device is done
            seconds[name] = time.perf_counter() - t0
    return out, errors


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().to("cpu", torch.float64).numpy()


def evaluate_measurement(m: LayerMeasurement) -> list:
    """Every registry variant on one site's measurement, through the numeric layer."""
    q = bn_channel_quantities(m.y, m.g, m.gamma, m.beta, m.eps, grad_y_bn=m.grad_y_bn,
                              H_gg=m.H_gg, H_vv=m.H_vv, H_yv=m.H_yv, H_yy=m.H_yy, hess_bn_vv=m.hess_bn_vv,
                              lam=m.lam)
    return evaluate_all(q)


def evaluate_measurements(measurements) -> list:
    """evaluate_measurement of each site, or the BatchNormInputError that refused it; the sites
    that share m, eps and whether lambda was measured go through the registry as one batch of
    channels (the registry's evaluation is per channel, so each site's results are those of its own
    evaluation; one call instead of one per site: a probe of dln-paper evaluates 24 sites)."""
    groups = {}
    for i, m in enumerate(measurements):
        groups.setdefault((m.y.shape[1], m.eps, m.lam is None), []).append(i)
    out = [None] * len(measurements)
    for members in groups.values():
        batch = [measurements[i] for i in members]
        try:
            results = evaluate_measurement(_concatenated(batch)) if len(batch) > 1 else None
        except BatchNormInputError:           # find the site(s) it refused, one by one
            results = None
        if results is None:
            for i in members:
                try:
                    out[i] = evaluate_measurement(measurements[i])
                except BatchNormInputError as e:
                    out[i] = e
            continue
        start = 0
        for i in members:
            stop = start + len(measurements[i].channels)
            out[i] = [_sliced(r, start, stop) for r in results]
            start = stop
    return out


_PER_CHANNEL = ("applicable", "lhs", "rhs", "slack", "rel_slack", "tolerance", "verdicts")


def _sliced(result, start: int, stop: int):
    return dataclasses.replace(result, **{k: getattr(result, k)[start:stop] for k in _PER_CHANNEL})


def _concatenated(batch) -> LayerMeasurement:
    """One LayerMeasurement holding the channels of sites that share m, eps and lambda's presence."""
    cat = lambda k: np.concatenate([getattr(m, k) for m in batch])   # noqa: E731
    return LayerMeasurement(
        layer="+".join(m.layer for m in batch), channels=cat("channels"), y=cat("y"), g=cat("g"),
        grad_y_bn=cat("grad_y_bn"), gamma=cat("gamma"), beta=cat("beta"), eps=batch[0].eps,
        H_gg=cat("H_gg"), H_vv=cat("H_vv"), H_yv=cat("H_yv"), H_yy=cat("H_yy"), hess_bn_vv=cat("hess_bn_vv"),
        lam=None if batch[0].lam is None else cat("lam"), lam_note=batch[0].lam_note)


def layer_label(network, layer: str) -> str:
    return f"{network}/{layer}" if network else layer


def probe_rows(step: int, network, m: LayerMeasurement, results) -> list:
    """One record per (channel, applicable variant): the sides, slack, relative slack, tolerance
    and verdict the registry computed; plus, when lam is absent, one 'n/a' record per variant
    that only lam keeps from applying, with the reason."""
    rows = []
    layer = layer_label(network, m.layer)
    for r in results:
        for i in np.flatnonzero(np.asarray(r.applicable, dtype=bool)):
            rows.append({
                "step": step, "network": network, "layer": layer,
                "channel": int(m.channels[i]), "m": int(m.y.shape[1]),
                "statement": r.statement_id, "variant": r.variant, "relation": r.relation,
                "lhs": float(r.lhs[i]), "rhs": float(r.rhs[i]), "slack": float(r.slack[i]),
                "rel_slack": float(r.rel_slack[i]), "tolerance": float(r.tolerance[i]),
                "verdict": str(r.verdicts[i]),
            })
    if m.lam is None:
        for statement_id, variant in lambda_variants(m.eps):
            rows.append({"step": step, "network": network, "layer": layer, "statement": statement_id,
                         "variant": variant.name, "relation": variant.relation,
                         "verdict": Verdict.NOT_APPLICABLE.value,
                         "note": f"not applicable: {m.lam_note}"})
    return rows


def lambda_variants(eps: float) -> list:
    """(statement id, variant) of the variants that only lambda keeps from applying to a layer
    with this eps: they need a lambda quantity and nothing else the probe does not measure, and
    their epsilon scope admits eps."""
    measured = {"m", "gamma", "beta", "eps", "y", "mu", "sigma", "y_hat", "g", "grad_y_bn", "H_gg", "H_vv",
                "hess_bn_vv", "H_frob"} | set(LAMBDA_QUANTITIES)
    scope = "positive" if eps > 0 else "zero"
    return [(s.id, v) for s in STATEMENTS for v in s.variants
            if set(v.requires) & set(LAMBDA_QUANTITIES) and set(v.requires) <= measured
            and str(v.epsilon) in (scope, "any")]


# ---------------------------------------------------------------------------------------------
# The shadow and the probe of one model
# ---------------------------------------------------------------------------------------------

_PLAIN = (bool, int, float, str)   # attributes a refresh copies (never None: the probe's own probe_site)


def cast_floating(obj, dtype):
    """Floating tensors in (nested tuples, lists, dicts of) ``obj`` cast to ``dtype``."""
    if isinstance(obj, torch.Tensor):
        return obj.to(dtype) if obj.is_floating_point() else obj
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):
        return type(obj)(*(cast_floating(o, dtype) for o in obj))
    if isinstance(obj, (tuple, list)):
        return type(obj)(cast_floating(o, dtype) for o in obj)
    if isinstance(obj, dict):
        return {k: cast_floating(v, dtype) for k, v in obj.items()}
    return obj


def model_device(model) -> torch.device:
    for t in list(model.parameters()) + list(model.buffers()):
        return t.device
    return torch.device("cpu")


@contextlib.contextmanager
def preserved_rng(devices=()):
    """Run a block without changing any RNG state the training could read: torch (CPU and the
    given CUDA devices), numpy's global state and Python's ``random``."""
    np_state, py_state = np.random.get_state(), random.getstate()
    cuda = [d for d in devices if torch.device(d).type == "cuda"]
    with torch.random.fork_rng(devices=cuda, device_type="cuda"):
        try:
            yield
        finally:
            np.random.set_state(np_state)
            random.setstate(py_state)


@contextlib.contextmanager
def _refuse_calls(model):
    """While active, a forward call of ``model`` raises: a closure must call the shadow it is given."""
    def refuse(module, args):
        raise ProbeError("the closure called the original model: call the model it is given "
                         "(probe.step(step, lambda m: loss_fn(m(x), t))), so the probe leaves the original untouched")
    handle = model.register_forward_pre_hook(refuse)
    try:
        yield
    finally:
        handle.remove()


class ModelProbe:
    """The float64 shadow of a model, its normalisation sites and channel sample.

    ``rows(step, closure)`` measures every site at the model's current weights and returns the
    probe records; it changes nothing of ``model`` (tests/test_gpu_attach.py checks it bitwise).
    """

    def __init__(self, model, channels: int, seed: int, *, names: dict = None, network=None,
                 stream: int = 0, dtype=torch.float64, chain_sweep: bool = True):
        self.model, self.network, self.dtype = model, network, dtype
        norms = find_normalisations(model)
        names = names or {}
        self.layer_names = [names.get(m, name) for name, m in norms]
        self.channels = {self.layer_names[i]: probe_channels(seed, stream, i, num_features(m), channels)
                         for i, (_, m) in enumerate(norms)}
        self.shadow = copy.deepcopy(model).to(dtype)
        # The probe differentiates w.r.t. the sites' y and z only: no parameter of the shadow needs a
        # gradient (the graph is smaller, and _AdjointConvolutions applies to every convolution).
        self.shadow.requires_grad_(False)
        shadow_of = dict(zip(model.modules(), self.shadow.modules()))
        self._pairs = list(shadow_of.items())
        self.recorder = SiteRecorder(self.shadow, {shadow_of[m]: n for (_, m), n in zip(norms, self.layer_names)})
        self.shadow.register_forward_pre_hook(lambda mod, args, kwargs: (cast_floating(args, dtype),
                                                                          cast_floating(kwargs, dtype)),
                                              with_kwargs=True)
        # after the site hooks: it sees a layer's input before a site copies it, its output after
        self.calls = ChainRecorder(self.shadow)
        self.chain_sweep = chain_sweep   # False: Hessian-vector products on every model (comparisons)
        self.device = model_device(model)
        self.sites_seen = None     # the site names of the last probe, with their lambda status
        self.site_seconds = {}     # the last probe's wall time per site
        self.hessian_method = None  # how the last probe got its Hessian forms, and why
        self.audit = None           # the last probe's check of the chain sweep (``_audit``)

    def refresh(self) -> None:
        """The shadow takes the model's current parameters, buffers and plain attributes (training
        mode, Algorithm 1's step, ...), module by module."""
        with torch.no_grad():
            for mine, theirs in self._pairs:
                for key, value in mine._parameters.items():
                    if value is not None:
                        theirs._parameters[key].copy_(value)
                for key, value in mine._buffers.items():
                    if value is not None:
                        theirs._buffers[key].copy_(value)
                for key, value in mine.__dict__.items():
                    if isinstance(value, _PLAIN) and not key.startswith("_"):
                        theirs.__dict__[key] = value

    def measure(self, step: int, closure) -> tuple:
        """(measurements, errors) of every site the closure's forward pass meets at the model's
        current weights; errors = [(site, why)] for sites the loss does not reach."""
        if not self.model.training:
            raise ProbeError(f"the model is in eval mode at probe step {step}: the statements are about "
                             "training-mode BatchNorm; call model.train() before probe.step")
        self.refresh()
        with preserved_rng([self.device]), torch.autocast(self.device.type, enabled=False), \
                _refuse_calls(self.model), self.recorder.record() as sites, self._calls_recorded():
            with _AdjointConvolutions():
                loss = closure(self.shadow)
            # the shadow's parameters are frozen: without a site the loss has no graph, which is not the problem
            loss = scalar_loss(loss, require_graph=bool(sites))
            if not sites:
                raise ProbeError("the closure ran no BatchNorm layer of the model it was given"
                                 + (f" in training mode ({'; '.join(f'{k}: {v}' for k, v in self.recorder.skipped.items())})"
                                    if self.recorder.skipped else ""))
            names = site_names(sites)
            self.site_seconds = {}
            chain = self._chain(loss, sites)
            measurements, errors = measure_sites(loss, sites, names, self.channels, self.site_seconds, chain)
            self.audit = self._audit(loss, chain, sites, names, measurements) if chain is not None else None
        self.sites_seen = [{"layer": layer_label(self.network, n), "lambda": s.feeder is not None,
                            "note": s.feeder_note} for s, n in zip(sites, names)]
        return measurements, errors

    @contextlib.contextmanager
    def _calls_recorded(self):
        if not self.chain_sweep:
            yield
            return
        with self.calls.record():
            try:
                yield
            finally:
                self.calls.clear()    # it keeps no tensor between probes

    def _chain(self, loss, sites):
        """The chain of this forward pass when the sweep applies (gpu_check.chain_forms), else None;
        ``hessian_method`` says which way the forms are computed and why."""
        if not self.chain_sweep:
            self.hessian_method = "Hessian-vector products (the chain sweep is switched off)"
            return None
        chain, why = chain_of(self.calls, sites)
        if chain is not None and not loss_reads_only(loss, chain.output, chain, sites):
            chain, why = None, "the loss reads an activation other than the model's output"
        self.hessian_method = "chain sweep" if chain is not None else f"Hessian-vector products: {why}"
        return chain

    def _audit(self, loss, chain, sites, names, measurements) -> Optional[dict]:
        """The chain sweep's forms at the site nearest the output, measured again by Hessian-vector
        products (cheap there: one or two layers downstream), so that every probe of a run checks
        the sweep against autograd: {layer, disagreement (forms_disagreement: relative to each
        form's rounding scale), tolerance (chain_forms.sweep_tolerance)}; a warning when it
        exceeds it."""
        by_name = {m.layer: m for m in measurements}
        reached = [i for i, name in enumerate(names) if name in by_name]
        if not reached:
            return None
        i = reached[-1]
        site, name = sites[i], names[i]
        swept = by_name[name]
        g_full, v_full = torch.autograd.grad(loss, [site.z, site.y], create_graph=True, retain_graph=True)
        fields = direction_fields(site, g_full, v_full)
        again = forms_by_hessian_products(site, g_full, v_full, *fields, [int(c) for c in swept.channels])
        worst = forms_disagreement({k: getattr(swept, k) for k in HESSIAN_FORMS},
                                   {k: _np(v) for k, v in zip(HESSIAN_FORMS, again)})
        tolerance = sweep_tolerance(swept.y.shape[1], len(chain.calls) - chain.site_call[i] + 1, self.dtype)
        if not worst <= tolerance:
            warnings.warn(f"the chain sweep's Hessian forms at {name} differ from Hessian-vector products' by "
                          f"{worst:.3g} of their size (tolerance {tolerance:.3g}): a bug; please report it")
        return {"layer": layer_label(self.network, name), "disagreement": worst, "tolerance": tolerance}

    def rows(self, step: int, closure) -> list:
        """The probe records of ``step``: every applicable registry variant per site and channel."""
        measurements, errors = self.measure(step, closure)
        out = [{"step": step, "network": self.network, "layer": layer_label(self.network, n), "error": why}
               for n, why in errors]
        for m, results in zip(measurements, evaluate_measurements(measurements)):
            if isinstance(results, BatchNormInputError):   # e.g. a constant channel with eps = 0, gamma = 0, NaN
                out.append({"step": step, "network": self.network, "layer": layer_label(self.network, m.layer),
                            "error": str(results)})
            else:
                out += probe_rows(step, self.network, m, results)
        return out
