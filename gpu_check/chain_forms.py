"""The probe's Hessian forms by second-order forward propagation, for models that are a chain of layers.

A probe needs, per site and probed channel j, five bilinear forms of the loss's Hessians:
g^T H g, v^T H v, y_hat^T H y_hat, y_hat^T H v (H = d^2 L/dz^2) and v^T H_hat v (H_hat =
d^2 L/dy^2).  gpu_check.probes gets them from Hessian-vector products (reverse over reverse
autograd), which works on any model.  When the probed forward pass is a *chain* -- every layer
call takes exactly the previous call's output (or a contiguous reshape of it) and the loss
depends on the chain only through the model's output -- the same forms follow from one forward
sweep of first-order tangents, because for a chain f_K o ... o f_1 and directions a, b

    a^T (d^2 L) b = sum over layers k of  < dL/d(out_k), f_k''[a_k, b_k] >  +  a_K^T (d^2 loss/d out^2) b_K

with a_k, b_k the directions pushed forward to layer k's input (Jacobian-vector products) and
dL/d(out_k) the gradient at its output, which one ordinary backward pass gives.  The layers
this module knows are linear (Linear, Conv1d/2d/3d, eval-mode BatchNorm, Flatten, Identity) or
piecewise linear (ReLU, MaxPool), so their f_k'' is 0 (as autograd's is), except training-mode
BatchNorm, whose second derivative is written out below in closed form; the loss's Hessian is
applied by autograd to the output's tangents (the loss is the user's closure, any function of
the output).  The tangents of all of a site's directions are one float64 tensor, pushed through
each layer once: the K convolutions of K directions are one im2col matrix product.  That is a
Jacobian-vector product per direction and layer where the general path runs a forward and a
backward pass of the double-backward graph, without autograd's per-node overhead (a probe,
2026-12-02, one CPU thread: dln-paper 0.5-0.7 s against 2.4-2.7 s, vgg-cpu 2.0-2.3 s against
5.7-6.8 s; gpu_check.probe_bench).

Nothing here is an approximation: the forms are the same exact derivatives, rounded differently;
tests/test_chain_forms.py checks them against the Hessian-vector-product path on chains of every
layer kind this module knows, and every probe that sweeps checks its site nearest the output
the same way (gpu_check.probes.ModelProbe's audit, in the run's events).  A model that is not
such a chain (a residual connection, an operation between layers outside a module, an unknown
layer, a BatchNorm module that maps z further without naming the map, a loss that reads an
intermediate activation) is reported with the reason and probed by Hessian-vector products
instead.  A module that returns scale * z + shift and says so (``probe_after_z``, as the
project's noisy-bn does for Algorithm 1's noise) is swept: its tangents are scaled.

What a sweep means for the registry's identities.  Theorem 4.2's exact variants relate v^T H_hat v
to forms of H through BatchNorm's Jacobian and second derivative.  By Hessian-vector products the
two sides come from torch's own derivative formulas; by the sweep, v^T H_hat v passes through this
module's closed form of BatchNorm's second derivative, so on a chain the identity compares that
closed form with the registry's (two derivations, written independently) and the audit compares
it with autograd.  That is why this module does not call theory.bn's bn_curvature_bilinear and
grad_y_bn, the registry's BatchNorm calculus: a probe is a measurement, and a measurement built
from the formulas it is checked against would meet the exact identities by construction.  The
closed form here is a second derivation on purpose (in r = 1/sigma and its derivatives, for
tangents batched as (C, *spatial, K, n)), checked against autograd's, not against the registry.

BatchNorm's second derivative.  Per channel, with y_c = y - mean(y), sigma^2 = Var(y) + eps,
r = 1/sigma, y_hat = y_c r and directions a, b in y:  p_a = mean(y_c a),
q_ab = mean(a_c b_c) (a_c = a - mean(a)),

    d y_hat [a]      = r (a_c - y_hat r p_a)
    d^2 y_hat [a, b] = a_c r'_b + b_c r'_a + y_c r''_ab,   r'_a = -p_a r^3,
                       r''_ab = 3 p_a p_b r^5 - q_ab r^3

(sigma^2 along y + s a + t b is sigma^2 + 2 s p_a + 2 t p_b + ..., and r = (sigma^2)^(-1/2)), so
with z = gamma y_hat + beta and g = dL/dz the layer adds
gamma [r'_b <g, a_c> + r'_a <g, b_c> + r''_ab <g, y_c>] summed over the channels.
"""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field
from functools import cached_property
from typing import Optional

import torch
import torch.nn.functional as F

from theory.bn import batch_statistics
from theory.ops import TorchOps
from theory.vocab import ROUNDING_SAFETY, UNIT_ROUNDOFF

def sweep_tolerance(m: int, layers: int, dtype=torch.float64) -> float:
    """How far the chain sweep's forms may differ from Hessian-vector products' (relative to each
    form's rounding scale, gpu_check.probes.forms_disagreement): both are the same exact
    derivatives, rounded differently.  Each pushes a direction through the ``layers`` layers after
    the site (the loss counted as one), each layer a few inner products of length <= m, so in the
    rounding model of theory.vocab (an inner product of length m: relative error <= m u) the two
    differ by at most about ROUNDING_SAFETY x layers x m x u, u the unit roundoff of the probe's
    ``dtype`` (theory.vocab.UNIT_ROUNDOFF for float64).  Measured far below it in float64: at most
    3e-14 on the 25-layer dln-paper chain (m = 1000; at initialisation and after its 10,000 steps)
    against 1.8e-10; an error of any rule is O(1) (tests/test_chain_forms.py breaks one)."""
    u = UNIT_ROUNDOFF if dtype == torch.float64 else torch.finfo(dtype).eps / 2
    return float(ROUNDING_SAFETY * max(int(layers), 1) * max(int(m), 1) * u)


# At most this many float64 elements in one im2col copy of a sweep (128 MiB): a convolution over
# more samples is done in parts.
IM2COL_ELEMENTS = 1 << 24
# At most this many float64 elements in one tangent tensor (K directions x the activation's
# size): 256 MiB; a site's channels are swept in groups that fit (every pair of a channel's
# directions stays in one group).
TANGENT_ELEMENTS = 1 << 25

_CONVOLUTIONS = (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d)
_MAX_POOL = {torch.nn.MaxPool1d: F.max_pool1d, torch.nn.MaxPool2d: F.max_pool2d,
             torch.nn.MaxPool3d: F.max_pool3d}
_PASS_THROUGH = (torch.nn.Identity,)
# The layers whose output channel c depends on input channel c only: a sweep's channel support
# passes through them (a reshape, a Linear layer or a convolution mixes the channels).
_PER_CHANNEL = ("batchnorm", "batchnorm+scale", "affine", "relu", "maxpool")


def _is_leaf(module) -> bool:
    return next(module.children(), None) is None


@dataclass
class Call:
    """One call of a leaf module in the probed forward pass."""

    module: torch.nn.Module
    input: torch.Tensor          # as the module received it (before a probe site's copy)
    output: torch.Tensor         # as the rest of the network received it
    input_version: int           # the input's version counter when the call began
    output_version: int          # the output's when it returned: an in-place change after would
                                 # make the recorded values stale


class ChainRecorder:
    """Hooks on every leaf module of a model and on the model itself: the calls of one forward
    pass, in order, and the model's outputs.  Register it after the probe's site hooks: its
    pre-hooks go first (they see a layer's input before a site copies it), its forward hooks last
    (they see the output the network goes on with)."""

    def __init__(self, model):
        self.active = False
        self.calls: list = []
        self.outputs: list = []
        self._handles = []
        for m in model.modules():
            if _is_leaf(m):
                self._handles.append(m.register_forward_pre_hook(self._pre, prepend=True))
                self._handles.append(m.register_forward_hook(self._post))
        self._handles.append(model.register_forward_hook(self._root))
        self._pending: dict = {}

    def remove(self) -> None:
        for h in self._handles:
            h.remove()

    @contextlib.contextmanager
    def record(self):
        self.calls, self.outputs, self._pending, self.active = [], [], {}, True
        try:
            yield self
        finally:
            self.active = False

    def clear(self) -> None:
        self.calls, self.outputs, self._pending = [], [], {}

    def _pre(self, module, args):
        if self.active:
            x = args[0] if args and isinstance(args[0], torch.Tensor) else None
            self._pending.setdefault(id(module), []).append((x, None if x is None else x._version))

    def _post(self, module, args, output):
        if not self.active:
            return
        x, version = self._pending.get(id(module), [(None, None)]).pop()
        if x is not None and isinstance(output, torch.Tensor):
            self.calls.append(Call(module, x, output, version, output._version))
        else:
            self.calls.append(Call(module, None, None, 0, 0))

    def _root(self, module, args, output):
        if self.active:
            self.outputs.append(output)


# ---------------------------------------------------------------------------------------------
# Is the forward pass a chain this module can sweep?
# ---------------------------------------------------------------------------------------------

def admissible_reshape(before, after) -> bool:
    """The reshapes a sweep follows: none, or (n, C, *spatial) flattened to (n, C S)."""
    before, after = tuple(before), tuple(after)
    return after == before or (len(before) > 2 and after == (before[0], math.prod(before[1:])))


def _same_values(previous: torch.Tensor, following: torch.Tensor) -> bool:
    """``following`` is ``previous`` or a contiguous, admissible reshape of the same memory (a
    flatten or view of the samples' features)."""
    if following is previous:
        return True
    return (following.data_ptr() == previous.data_ptr() and following.numel() == previous.numel()
            and following.dtype == previous.dtype and following.is_contiguous() and previous.is_contiguous()
            and admissible_reshape(previous.shape, following.shape))


def _layer_kind(call: Call, site) -> Optional[str]:
    """The rule for one call: 'batchnorm' (a probe site), 'batchnorm+scale' (a site whose module
    scales z elementwise after it, ``after_z_scale``), 'affine' (BatchNorm on running statistics),
    'linear', 'conv', 'relu', 'maxpool', 'reshape'; None for an unknown layer."""
    m = call.module
    if site is not None:
        if call.output is site.z_out:
            return "batchnorm"
        return "batchnorm+scale" if after_z_scale(call, site) is not None else None
    if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
        uses_batch = m.training or m.running_mean is None
        return None if uses_batch else "affine"
    if isinstance(m, torch.nn.Linear):
        return "linear" if call.input.dim() == 2 else None        # on (n, d): its features are dim 1
    if type(m) in _CONVOLUTIONS and m.padding_mode == "zeros" and not isinstance(m.padding, str):
        return "conv"
    if isinstance(m, torch.nn.ReLU):
        return "relu"
    if type(m) in _MAX_POOL:
        return "maxpool"
    if isinstance(m, torch.nn.Dropout) and (not m.training or m.p == 0):
        return "reshape"                                         # the identity
    if isinstance(m, (torch.nn.Flatten,) + _PASS_THROUGH):
        return "reshape" if admissible_reshape(call.input.shape, call.output.shape) else None
    return None


def after_z_scale(call: Call, site) -> Optional[torch.Tensor]:
    """The elementwise scale s of a site whose module returned s z + m (its ``probe_after_z``, e.g.
    Algorithm 1's noise), when its output is exactly that (recomputed, compared bitwise); else None."""
    after = getattr(call.module, "probe_after_z", None)
    pair = after(site.z_out) if callable(after) else None
    if pair is None:
        return None
    scale, shift = pair
    return scale if torch.equal(call.output, scale * site.z_out + shift) else None


@dataclass(frozen=True)
class Chain:
    """The layer calls of a chain, each with its rule and (for BatchNorm) its probe site."""

    calls: tuple
    kinds: tuple
    site_call: tuple      # site index -> index of its call in ``calls``
    output: torch.Tensor  # the model's output (the last call's output or a reshape of it)


def chain_of(recorder: ChainRecorder, sites) -> tuple:
    """(Chain, '') when the recorded forward pass is a chain of known layers, else (None, why)."""
    calls = recorder.calls
    if len(recorder.outputs) != 1 or not isinstance(recorder.outputs[0], torch.Tensor):
        return None, f"the closure called the model {len(recorder.outputs)} times, or it returned no tensor"
    if not calls:
        return None, "the model called no layer module"
    waiting: dict = {}                      # id(module) -> its sites not yet matched to a call, in order
    for i, s in enumerate(sites):
        waiting.setdefault(id(s.module), []).append(i)
    kinds, site_call = [], [None] * len(sites)
    for c, call in enumerate(calls):
        if call.input is None:
            return None, f"{type(call.module).__name__} did not take and return one tensor"
        if c > 0 and not _same_values(calls[c - 1].output, call.input):
            return None, (f"the input of call {c + 1} ({type(call.module).__name__}) is not the output of the "
                          "layer before it (an operation outside a module, or a branch)")
        pending = waiting.get(id(call.module), [])
        site = None
        if pending:                         # a site's calls come in the order of its module's calls
            s = pending.pop(0)
            site, site_call[s] = sites[s], c
        kind = _layer_kind(call, site)
        if kind is None:
            return None, (f"{type(call.module).__name__} is not a layer the chain sweep knows" if site is None else
                          f"{type(call.module).__name__} does more after BatchNorm (its output is not z, nor an "
                          "elementwise affine map of z that its probe_after_z names)")
        kinds.append(kind)
    if any(c is None for c in site_call):
        return None, "a BatchNorm site is not a call of the chain"
    output = recorder.outputs[0]
    if not _same_values(calls[-1].output, output):
        return None, "the model's output is not its last layer's output (or a flatten of it)"
    latest = {}            # tensor -> the version the last call that took or returned it saw
    for c, call in enumerate(calls):
        if c > 0 and call.input_version != calls[c - 1].output_version:
            return None, f"the input of {type(call.module).__name__} was changed in place before the call"
        latest[id(call.input)], latest[id(call.output)] = (call.input, call.input_version), (call.output, call.output_version)
    for t, version in latest.values():     # only a layer of the chain itself (ReLU(inplace=True)) may change one
        if t._version != version:
            return None, "an activation of the chain was changed in place after the layer that made it"
    return Chain(tuple(calls), tuple(kinds), tuple(site_call), output), ""


def loss_reads_only(loss: torch.Tensor, output: torch.Tensor, chain: Chain, sites) -> bool:
    """Whether the loss's autograd graph reaches the chain only through ``output``: a walk from
    the loss that stops at the output's node meets no node of a layer's input or output."""
    inside, leaves = set(), set()
    for t in [c.input for c in chain.calls] + [c.output for c in chain.calls] + [s.y for s in sites] + [s.z for s in sites]:
        if t.grad_fn is not None:
            inside.add(t.grad_fn)
        elif t.requires_grad:
            leaves.add(id(t))
    stop = output.grad_fn
    seen, todo = set(), [loss.grad_fn]
    while todo:
        node = todo.pop()
        if node is None or node in seen or node is stop:
            continue
        seen.add(node)
        if node in inside or id(getattr(node, "variable", None)) in leaves:
            return False
        todo.extend(n for n, _ in node.next_functions)
    return True


# ---------------------------------------------------------------------------------------------
# The layer rules.  A sweep holds the tangents of K directions of an activation of shape
# (n, C, *spatial) as one tensor (C, *spatial, K, n): channels outermost, so that a Linear layer
# or a convolution (as im2col) is one matrix product whose columns are the K n samples, and
# BatchNorm's per-channel sums are batched products; the samples innermost, so that im2col copies
# runs of K n contiguous numbers and flattening (n, C, *spatial) to (n, C S) is free.
# ---------------------------------------------------------------------------------------------

def to_sweep(D: torch.Tensor) -> torch.Tensor:
    """Directions (K, n, C, *spatial) -> tangents (C, *spatial, K, n)."""
    d = D.dim()
    return D.permute(*range(2, d), 0, 1).contiguous()


def from_sweep(A: torch.Tensor) -> torch.Tensor:
    """Tangents (C, *spatial, K, n) -> (K, n, C, *spatial)."""
    d = A.dim()
    return A.permute(d - 2, d - 1, *range(d - 2))


def directions(fields, channels: torch.Tensor) -> torch.Tensor:
    """(C, *spatial, F N, n): direction f N + k is fields[f] (n, C, *spatial) restricted to channel
    channels[k] (0 elsewhere), for F fields and N channels, built in the sweep's layout."""
    t0 = fields[0]
    N, d = len(channels), t0.dim()
    out = t0.new_zeros((t0.shape[1],) + tuple(t0.shape[2:]) + (len(fields) * N, t0.shape[0]))
    k = torch.arange(N, device=t0.device)
    for f, t in enumerate(fields):
        out[channels, ..., f * N + k, :] = t[:, channels].permute(1, *range(2, d), 0)    # (N, *spatial, n)
    return out


def _rows(t: torch.Tensor) -> torch.Tensor:
    """(n, C, *spatial) -> (C, S, n): channel c's values, spatial position by sample."""
    return t.reshape(t.shape[0], t.shape[1], -1).permute(1, 2, 0)


@dataclass(frozen=True)
class BatchNormPoint:
    """What a BatchNorm site's sweeps need of it, computed once per probe: its batch statistics
    at y and dL/dz there, per channel."""

    m: int                # n S, the channel's batch
    r: torch.Tensor       # (C,)   1/sigma = (Var(y) + eps)^(-1/2)
    g_sum: torch.Tensor   # (C,)   sum of g = dL/dz
    g_yc: torch.Tensor    # (C,)   <g, y_c>, y_c = y - mean(y)
    gamma: torch.Tensor   # (C,)
    basis: torch.Tensor   # (C S, 3, n) rows 1, y_c, g at each (channel, spatial position)

    # the factors of batchnorm_sweep, computed on first use, once per probe
    @cached_property
    def r2(self):
        return (self.r ** 2)[:, None]                                      # (C, 1)

    @cached_property
    def three_r2(self):
        return 3 * self.r2

    @cached_property
    def gamma_r3(self):
        return (self.gamma * self.r ** 3)[:, None]                         # (C, 1)

    @cached_property
    def scale(self):
        return (self.gamma * self.r)[:, None, None]                        # (C, 1, 1)

    @staticmethod
    def at(y: torch.Tensor, g: torch.Tensor, gamma: torch.Tensor, eps: float) -> "BatchNormPoint":
        Y, G = _rows(y), _rows(g)                                          # (C, S, n)
        C, S, n = Y.shape
        # the batch statistics of the BatchNorm map: the registry's definition (theory.bn)
        mu, sigma, _ = batch_statistics(TorchOps(), Y.reshape(C, S * n), S * n, eps)   # (C,), (C,)
        yc = Y - mu[:, None, None]
        basis = torch.stack([torch.ones_like(yc), yc, G], 2).reshape(C * S, 3, n)
        return BatchNormPoint(S * n, 1 / sigma, G.sum((1, 2)), (G * yc).sum((1, 2)), gamma, basis)


@dataclass(frozen=True)
class Pairs:
    """The direction pairs (i, j) whose forms a sweep accumulates, planned once per sweep: <a_i, a_j>
    is read from the squared norms of all directions (i = j) and the products of the others."""

    i: torch.Tensor       # (P,)
    j: torch.Tensor       # (P,)
    off_i: object         # the pairs with i != j: index tensors, or slices where they are runs
    off_j: object         # (a probe's pairs (y_hat_k, v_k) are: no copy of the directions)
    column: torch.Tensor  # (P,) each pair's column in cat(squared norms (K), off products)

    @staticmethod
    def of(pairs: torch.Tensor, K: int) -> "Pairs":
        i, j = pairs[:, 0], pairs[:, 1]
        off = (i != j).nonzero().flatten()
        column = i.clone()
        column[off] = K + torch.arange(len(off), device=pairs.device)
        return Pairs(i, j, _as_run(i[off]), _as_run(j[off]), column)

    def inner(self, a: torch.Tensor) -> torch.Tensor:
        """(C, P) <a_i, a_j> over the samples of a (C, S, K, n)."""
        return torch.cat([(a * a).sum((1, 3)), (a[:, :, self.off_i] * a[:, :, self.off_j]).sum((1, 3))],
                         1)[:, self.column]


def _as_run(index: torch.Tensor):
    """slice(a, a + N) when ``index`` is a, a + 1, ..., a + N - 1; else ``index``."""
    values = index.tolist()
    if values and values == list(range(values[0], values[0] + len(values))):
        return slice(values[0], values[0] + len(values))
    return index


def batchnorm_sweep(bn: BatchNormPoint, A: torch.Tensor, pairs: Pairs) -> tuple:
    """Training-mode BatchNorm at ``bn``: (tangents of z, the second-order part of the bilinear
    form of each pair (P,)); A: tangents of y, (C, *spatial, K, n).  Per channel and pair (a, b):
    gamma [r'_b <g, a_c> + r'_a <g, b_c> + r''_ab <g, y_c>]
    = gamma r^3 [(3 r^2 p_a p_b - q_ab) <g, y_c> - (p_b <g, a_c> + p_a <g, b_c>)] (module docstring)."""
    C, K, n = A.shape[0], A.shape[-2], A.shape[-1]
    S, m = bn.basis.shape[0] // C, bn.m
    a = A.reshape(C * S, K, n)
    sums = torch.bmm(bn.basis, a.transpose(1, 2))                          # (C S, 3, K): sum a, sum y_c a, sum g a
    sums = sums.view(C, 3, K) if S == 1 else sums.view(C, S, 3, K).sum(1)
    ma, p = sums[:, 0] / m, sums[:, 1] / m                                 # (C, K) mean(a), mean(y_c a)
    at = torch.stack([ma, p, sums[:, 2] - ma * bn.g_sum[:, None]], 1)     # (C, 3, K) with <g, a_c>
    (ma_i, p_i, ga_i), (ma_j, p_j, ga_j) = at[:, :, pairs.i].unbind(1), at[:, :, pairs.j].unbind(1)
    q = pairs.inner(a.view(C, S, K, n)) / m - ma_i * ma_j                  # (C, P) mean(a_c b_c)
    second = (bn.gamma_r3 * ((bn.three_r2 * p_i * p_j - q) * bn.g_yc[:, None]
                             - (p_j * ga_i + p_i * ga_j))).sum(0)          # (P,)
    coef = torch.stack([ma, p * bn.r2], 2) * bn.scale                      # (C, K, 2): z = gamma r (a_c - y_hat r p)
    if S > 1:
        coef = coef[:, None].expand(C, S, K, 2).reshape(C * S, K, 2)
    out = torch.baddbmm((a.view(C, S * K, n) * bn.scale).view(C * S, K, n), coef, bn.basis[:, :2], alpha=-1)
    return out.view(A.shape), second


def _affine(call: Call, A: torch.Tensor) -> torch.Tensor:
    m = call.module
    scale = torch.rsqrt(m.running_var.to(A.dtype) + m.eps)
    if m.weight is not None:
        scale = scale * m.weight.to(A.dtype)
    return A * scale.view((-1,) + (1,) * (A.dim() - 1))


def im2col(x: torch.Tensor, kernel, padding, stride, dilation) -> torch.Tensor:
    """The patches of a zero-padded convolution's input x (C, *spatial, N), samples innermost:
    a view (C, *kernel, *out_spatial, N) whose reshape to (C prod(kernel), prod(out) N) is the
    input matrix of the convolution as a matrix product (every column one output position)."""
    C, spatial, d = x.shape[0], x.shape[1:-1], len(kernel)
    if any(padding):
        padded = x.new_zeros((C,) + tuple(s + 2 * q for s, q in zip(spatial, padding)) + (x.shape[-1],))
        padded[(slice(None),) + tuple(slice(q, q + s) for s, q in zip(spatial, padding))] = x
        x = padded
    out = tuple((x.shape[1 + i] - dilation[i] * (kernel[i] - 1) - 1) // stride[i] + 1 for i in range(d))
    st = x.stride()
    return x.as_strided((C,) + tuple(kernel) + out + (x.shape[-1],),
                        (st[0],) + tuple(st[1 + i] * dilation[i] for i in range(d))
                        + tuple(st[1 + i] * stride[i] for i in range(d)) + (st[-1],))


def _convolution(call: Call, A: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
    """A convolution with weight W (C_out, C / groups, *k) (no bias: tangents) as im2col and one
    matrix product per group, over as many of the K n samples at a time as keep the im2col copy
    within IM2COL_ELEMENTS."""
    m = call.module
    C, (K, n) = A.shape[0], A.shape[-2:]
    cols = im2col(A.reshape(A.shape[:-2] + (K * n,)), tuple(m.kernel_size), tuple(m.padding), m.stride, m.dilation)
    out_sp = tuple(cols.shape[1 + len(m.kernel_size):-1])
    G, N = m.groups, K * n
    weights = W.reshape(G, W.shape[0] // G, -1)                            # (G, C_out / G, C / G prod(k))
    step = max(1, IM2COL_ELEMENTS // max(1, cols[..., :1].numel()))
    if step >= N:                                                          # one part: no copy of the output
        rows = cols.reshape(G, -1, math.prod(out_sp) * N)
        return torch.bmm(weights, rows).reshape((W.shape[0],) + out_sp + (K, n))
    out = A.new_empty((G, W.shape[0] // G) + out_sp + (N,))
    for s in range(0, N, step):
        part = cols[..., s:s + step]
        rows = part.reshape(G, -1, math.prod(out_sp) * part.shape[-1])   # (G, C / G prod(k), S_out N')
        out[..., s:s + step] = torch.bmm(weights, rows).view((G, W.shape[0] // G) + out_sp + (part.shape[-1],))
    return out.reshape((W.shape[0],) + out_sp + (K, n))


def max_pool_positions(call: Call) -> torch.Tensor:
    """Where each output of a max-pool layer was taken from, as autograd takes it (the kernel's
    own indices): (C, S_out, 1, n) flat positions in the input's spatial dims."""
    m = call.module
    _, idx = _MAX_POOL[type(m)](call.input, m.kernel_size, m.stride, m.padding, m.dilation,
                                ceil_mode=m.ceil_mode, return_indices=True)  # (n, C, *out)
    return _rows(idx).unsqueeze(2)


def _max_pool(call: Call, A: torch.Tensor, at: torch.Tensor) -> torch.Tensor:
    C, K, n = A.shape[0], A.shape[-2], A.shape[-1]
    picked = A.reshape(C, -1, K, n).gather(1, at.expand(-1, -1, K, -1))
    return picked.reshape(tuple(call.output.shape[1:2]) + tuple(call.output.shape[2:]) + (K, n))


def elementwise(t: torch.Tensor) -> torch.Tensor:
    """An elementwise factor of an activation's shape (n, C, *spatial) in the sweep's layout,
    (C, *spatial, 1, n), so that it multiplies the tangents of every direction."""
    return t.permute(*range(1, t.dim()), 0).unsqueeze(-2).contiguous()


def local_derivative(call: Call, kind: str, site=None):
    """What a layer's rule reads of its forward pass, the same for every site's sweep: ReLU's
    derivative as autograd takes it (1 where output > 0, else 0), a max-pool's positions, the
    scale after a site's z; None for the other layers."""
    if kind == "relu":
        return elementwise((call.output > 0).to(call.output.dtype))
    if kind == "maxpool":
        return max_pool_positions(call)
    if kind == "batchnorm+scale":
        return elementwise(after_z_scale(call, site))
    return None


def reshape_tangents(A: torch.Tensor, before, after) -> torch.Tensor:
    """Tangents of an activation of shape ``before`` as those of its reshape to ``after``: the
    same shape, or (n, C, *spatial) flattened to (n, C S) (the reshapes chain_of admits)."""
    if tuple(before) == tuple(after):
        return A
    return A.reshape(after[1], A.shape[-2], A.shape[-1])


def push(call: Call, kind: str, A: torch.Tensor, support: torch.Tensor = None, local=None) -> torch.Tensor:
    """The tangents of a layer's output from those of its input, (C, *spatial, K, n), for a layer
    without a second-order part (all but training-mode BatchNorm).  ``support``: the input
    channels where A may be nonzero (None: any); a Linear layer or an ungrouped convolution then
    reads only those (a site's directions start on its probed channels: C / N times less work in
    the first layer after the site).  ``local``: local_derivative(call, kind).  A may be
    overwritten."""
    if kind == "linear":
        W = call.module.weight                                             # (C_out, C_in)
        if support is not None:
            W, A = W[:, support], A[support]
        return (W @ A.reshape(A.shape[0], -1)).reshape((W.shape[0],) + tuple(A.shape[1:]))
    if kind == "conv":
        if support is not None and call.module.groups == 1:
            return _convolution(call, A[support], call.module.weight[:, support])
        return _convolution(call, A, call.module.weight)
    if kind == "relu":
        return A.mul_(local)
    if kind == "maxpool":
        return _max_pool(call, A, local)
    if kind == "affine":
        return _affine(call, A)
    if kind == "reshape":
        return reshape_tangents(A, call.input.shape, call.output.shape)
    raise ValueError(f"no tangent rule for layer kind {kind!r}")


# ---------------------------------------------------------------------------------------------
# One site's forms
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class LossCurvature:
    """The loss as a function of the model's output: its gradient with a graph, to apply its
    Hessian to the output's tangents by autograd (None when the loss is linear in the output)."""

    output: torch.Tensor
    grad: Optional[torch.Tensor]

    @staticmethod
    def of(loss: torch.Tensor, output: torch.Tensor) -> "LossCurvature":
        grad, = torch.autograd.grad(loss, output, create_graph=True, retain_graph=True)
        return LossCurvature(output, grad if grad.requires_grad else None)

    def forms(self, A: torch.Tensor, pairs: torch.Tensor) -> torch.Tensor:
        """a_i^T (d^2 loss/d out^2) a_j for each pair (i, j); A: (K, *output.shape)."""
        if self.grad is None:
            return A.new_zeros(pairs.shape[0])
        HA, = torch.autograd.grad(self.grad, self.output, grad_outputs=A, retain_graph=True,
                                  is_grads_batched=True)                   # (K, *output.shape)
        return (A[pairs[:, 0]] * HA[pairs[:, 1]]).flatten(1).sum(1)


@dataclass(frozen=True)
class ChainSweep:
    """What the sweeps of one probe share: the chain, its sites, each site's BatchNormPoint and
    the loss's curvature at the output."""

    chain: Chain
    sites: list
    points: list          # BatchNormPoint of each site (None where the loss does not reach it)
    curvature: LossCurvature
    locals: dict = field(default_factory=dict)   # call index -> local_derivative, made on first use

    def local(self, c: int):
        if c not in self.locals:
            s = self.chain.site_call.index(c) if c in self.chain.site_call else None
            self.locals[c] = local_derivative(self.chain.calls[c], self.chain.kinds[c],
                                              None if s is None else self.sites[s])
        return self.locals[c]

    @property
    def widest(self) -> int:
        """The most elements of one activation along the chain (a direction's tangent at most)."""
        return max(max(c.input.numel(), c.output.numel()) for c in self.chain.calls)

    def site_forms(self, site_index: int, z_dirs: torch.Tensor, y_dirs: torch.Tensor,
                   z_pairs: torch.Tensor, y_pairs: torch.Tensor, channels: torch.Tensor = None) -> tuple:
        """(forms of the z-direction pairs (P_z,), forms of the y-direction pairs (P_y,)) at one
        site: d_i^T H d_j with H = d^2 L/dz^2 for z_dirs (K_z, *z.shape), and with H_hat =
        d^2 L/dy^2 for y_dirs (K_y, *y.shape); pairs (P, 2) index the directions.  ``channels``:
        the channels outside which every direction is 0 (None: unknown).  Directions are in the
        sweep's layout (C, *spatial, K, n) (``directions``)."""
        chain, sites, Kz = self.chain, self.sites, z_dirs.shape[-2]
        both = torch.cat([z_pairs, y_pairs + Kz])                          # over cat(z tangents, y tangents)
        pairs = Pairs.of(both, Kz + y_dirs.shape[-2])
        forms = z_dirs.new_zeros(both.shape[0])
        site = sites[site_index]
        Ay, own = batchnorm_sweep(self.points[site_index], y_dirs, Pairs.of(y_pairs, y_dirs.shape[-2]))
        forms[len(z_pairs):] += own
        A = torch.cat([z_dirs, Ay], -2)                                    # (C, *spatial, K_z + K_y, n)
        if chain.kinds[chain.site_call[site_index]] == "batchnorm+scale":     # the noise after z
            A = A.mul_(self.local(chain.site_call[site_index]))
        shape, support = tuple(site.z.shape), channels
        for c in range(chain.site_call[site_index] + 1, len(chain.calls)):
            call, kind = chain.calls[c], chain.kinds[c]
            if tuple(call.input.shape) != shape:
                A, support = reshape_tangents(A, shape, call.input.shape), None
            if kind in ("batchnorm", "batchnorm+scale"):
                s = chain.site_call.index(c)
                A, second = batchnorm_sweep(self.points[s], A, pairs)
                forms += second
                if kind == "batchnorm+scale":
                    A = A.mul_(self.local(c))
            else:
                A = push(call, kind, A, support, self.local(c))
                if kind not in _PER_CHANNEL:
                    support = None
            shape = tuple(call.output.shape)
        out = self.curvature.output
        A = from_sweep(reshape_tangents(A, shape, out.shape))               # (K, *output shape)
        forms += self.curvature.forms(A.reshape((A.shape[0],) + tuple(out.shape)), both)
        return forms[:len(z_pairs)], forms[len(z_pairs):]
