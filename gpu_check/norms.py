"""The normalisation choice: one layer type, seven kinds.

    none      no layer
    bn        training-mode BatchNorm: z = gamma (y - mu)/sqrt(var + eps) + beta (torch's kernel)
    noisy-bn  bn followed by the noise of Algorithm 1 (Appendix A.2.1)
    noisy-none  no normalisation, the noise of Algorithm 1 on the linear output y itself (Section
              2.1: "adding the same amount of noise to the activations of the standard
              (non-BatchNorm) network prevents it from training entirely"); no gamma, beta
    l1/l2/linf  Section 3.3: subtract the batch mean, divide by the average l_p norm of the
              activations taken *before* the mean is subtracted, then gamma, beta

Statistics are per channel (dim 1) over every other dimension: the batch for fully connected
layers, batch x height x width for convolutions ("treating the height and width dimensions as
part of the batch", Appendix A.2.1).  Evaluation mode uses running estimates, as torch does.

Readings of Section 3.3 ("normalizes them by the average of their l_p-norm (before shifting the
mean), for p = 1, 2, inf"), per channel over the n values a_i of the batch:
    l1:   s = mean_i |a_i| + eps
    l2:   s = sqrt(mean_i a_i^2 + eps)       (the eps placement of torch's BatchNorm)
    linf: s = max_i |a_i| + eps              (the l_inf 'average' is the maximum)
eps is the run's explicit ``bn_eps``, never a hidden constant.

Readings of Algorithm 1: a_ij, "the batch-normalized activation", is the BN layer's output
after gamma and beta (Section 2.1: noise "injected *after* BatchNorm layers"); N(sigma, r_sigma)
has standard deviation r_sigma; "time t" is the training step, so every forward pass of step t
(including a probe's) draws the same noise, and the next step draws afresh; evaluation mode
adds no noise.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from gpu_check.config import NORMS, NoiseConfig

LP_KINDS = {"l1": 1, "l2": 2, "linf": float("inf")}
NOISE_ONLY = "noisy-none"
NOISY_KINDS = ("noisy-bn", NOISE_ONLY)      # the kinds that add Algorithm 1's noise
_NOISE_STREAM = 11   # SeedSequence stream of the noisy-BN draws


def reduce_dims(y: torch.Tensor) -> tuple:
    """Every dimension but the channel dimension 1: (0,) for (n, C), (0, 2, 3) for (n, C, H, W)."""
    return (0,) + tuple(range(2, y.dim()))


def channel_view(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """(C,) -> (1, C, 1, ...) broadcastable against ``like``."""
    return v.view((1, -1) + (1,) * (like.dim() - 2))


# ---------------------------------------------------------------------------------------------
# Algorithm 1: "noisy" BatchNorm
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class NoiseSample:
    mu: torch.Tensor      # (C,)  mu_j^t ~ U(-n_mu, n_mu)             line 7
    sigma: torch.Tensor   # (C,)  sigma_j^t ~ U(1, n_sigma)            line 8
    shift: torch.Tensor   # like a: m_ij^t ~ U(mu_j - r_mu, mu_j + r_mu)  line 12
    scale: torch.Tensor   # like a: s_ij^t ~ N(sigma_j, r_sigma)        line 13


def noise_generator(seed: int, layer_index: int, step: int, device) -> torch.Generator:
    """The generator of one layer's draws at one time step: a function of (seed, layer, step), so
    a probe's forward pass at step t sees exactly the noise of training step t, and a resumed run
    the noise of the uninterrupted one."""
    state = np.random.SeedSequence([seed, _NOISE_STREAM, layer_index, step]).generate_state(2, np.uint32)
    gen = torch.Generator(device=device)
    gen.manual_seed(int(state[0]) << 32 | int(state[1]))
    return gen


def sample_noise(gen: torch.Generator, shape: tuple, cfg: NoiseConfig, device, out: tuple = None) -> NoiseSample:
    """Draw the parameters of D_j^t and the per-activation noise of Algorithm 1, float32.
    shape = (n, C, ...): every position of dims 0, 2, 3, ... is a 'sample i'.  ``out``: optional
    (shift, scale) float32 tensors of ``shape``, of any strides, that receive the noise (the
    batched DLN route writes each network's noise into its slice of a stack); the values are the
    same either way: each operation below rounds to float32 in place or not alike."""
    C = shape[1]
    kw = dict(generator=gen, device=device, dtype=torch.float32)
    mu = (2 * torch.rand(C, **kw) - 1) * cfg.n_mu                         # (C,)
    sigma = 1 + torch.rand(C, **kw) * (cfg.n_sigma - 1)                   # (C,)
    if out is None:
        out = (torch.empty(shape, device=device, dtype=torch.float32),
               torch.empty(shape, device=device, dtype=torch.float32))
    shift, scale = out
    # shift = mu_j + (2 u - 1) r_mu, u ~ U(0, 1)                                            shape
    torch.mul(torch.rand(shape, **kw), 2, out=shift).sub_(1).mul_(cfg.r_mu).add_(channel_view(mu, shift))
    # scale = sigma_j + r_sigma e, e ~ N(0, 1)                                                shape
    torch.mul(torch.randn(shape, **kw), cfg.r_sigma, out=scale).add_(channel_view(sigma, scale))
    return NoiseSample(mu, sigma, shift, scale)


def apply_noise(a: torch.Tensor, noise: NoiseSample) -> torch.Tensor:
    """a_ij <- s_ij a_ij + m_ij (line 14), in the dtype of ``a``."""
    return noise.scale.to(a.dtype) * a + noise.shift.to(a.dtype)


# ---------------------------------------------------------------------------------------------
# The layer
# ---------------------------------------------------------------------------------------------

class Normalisation(nn.Module):
    """A normalisation layer of one kind over ``channels`` channels (dim 1).

    ``forward`` = ``perturb(normalise(y))``; ``normalise`` is the map the statements are about
    (for bn and noisy-bn, the training-mode BatchNorm map y -> z), ``perturb`` is Algorithm 1's
    noise (noisy-bn) or the identity.  It implements gpu_check.probes.ProbeableNormalisation, so
    a probe sees y and z of the BatchNorm map (before the noise) of kinds bn and noisy-bn.
    """

    def __init__(self, kind: str, channels: int, *, eps: float, momentum: float,
                 noise: NoiseConfig, seed: int, layer_index: int):
        super().__init__()
        if kind not in NORMS or kind == "none":
            raise ValueError(f"normalisation kind {kind!r} is not one of {[k for k in NORMS if k != 'none']}")
        self.kind, self.eps, self.momentum = kind, eps, momentum
        self.noise_cfg, self.seed, self.layer_index = noise, seed, layer_index
        self.channels = channels
        if kind == NOISE_ONLY:             # the standard network's layer: nothing to learn here
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        else:
            self.weight = nn.Parameter(torch.ones(channels))    # gamma
            self.bias = nn.Parameter(torch.zeros(channels))     # beta
        self.register_buffer("running_mean", torch.zeros(channels))
        self.register_buffer("running_scale", torch.ones(channels))  # var (bn) or the l_p scale
        self.step = 0                  # the time step t of Algorithm 1, set by the training loop
        self.update_running = True     # measurements switch this off: they must not move the buffers
        self.probe_site = None         # set by gpu_check.probes (ProbeableNormalisation)
        self._noise_cache = None       # (step, shape, device) and its NoiseSample (``_drawn_noise``)

    # gpu_check.probes.ProbeableNormalisation: the BatchNorm map's y, z, gamma, beta and eps
    @property
    def is_batchnorm(self) -> bool:
        return self.kind in ("bn", "noisy-bn")

    @property
    def num_features(self) -> int:
        return self.weight.numel()

    @property
    def gamma(self) -> torch.Tensor:
        return self.weight

    @property
    def beta(self) -> torch.Tensor:
        return self.bias

    def normalise(self, y: torch.Tensor) -> torch.Tensor:
        if self.kind == NOISE_ONLY:
            return y
        update = self.training and self.update_running
        if self.kind in ("bn", "noisy-bn") and self.eps == 0 and self.training:
            return self._batchnorm_without_epsilon(y, update)
        if self.kind in ("bn", "noisy-bn"):
            return F.batch_norm(y, self.running_mean if update or not self.training else None,
                                self.running_scale if update or not self.training else None,
                                self.weight, self.bias, training=self.training,
                                momentum=self.momentum, eps=self.eps)
        dims = reduce_dims(y)
        if self.training:
            mu = y.mean(dims)                                                 # (C,)
            p = LP_KINDS[self.kind]
            if p == 1:
                s = y.abs().mean(dims) + self.eps                             # (C,)
            elif p == 2:
                s = torch.sqrt((y * y).mean(dims) + self.eps)                 # (C,)
            else:
                s = y.abs().amax(dims) + self.eps                             # (C,)
            if update:
                with torch.no_grad():
                    self.running_mean.lerp_(mu.detach().to(self.running_mean.dtype), self.momentum)
                    self.running_scale.lerp_(s.detach().to(self.running_scale.dtype), self.momentum)
        else:
            mu, s = self.running_mean, self.running_scale
        y_hat = (y - channel_view(mu, y)) / channel_view(s, y)
        return channel_view(self.weight, y) * y_hat + channel_view(self.bias, y)

    def _batchnorm_without_epsilon(self, y: torch.Tensor, update: bool) -> torch.Tensor:
        """The paper's BatchNorm (eps = 0), which torch's kernel refuses: the same map written out."""
        dims = reduce_dims(y)
        mu = y.mean(dims)                                                     # (C,)
        centred = y - channel_view(mu, y)
        var = (centred * centred).mean(dims)                                  # (C,) biased
        if update:
            n = y.numel() // y.shape[1]
            with torch.no_grad():   # running variance unbiased, as torch keeps it
                self.running_mean.lerp_(mu.detach().to(self.running_mean.dtype), self.momentum)
                self.running_scale.lerp_((var * n / (n - 1)).detach().to(self.running_scale.dtype), self.momentum)
        y_hat = centred / channel_view(torch.sqrt(var), y)
        return channel_view(self.weight, y) * y_hat + channel_view(self.bias, y)

    def perturb(self, z: torch.Tensor, noise: NoiseSample = None) -> torch.Tensor:
        """Algorithm 1's noise on z (noisy kinds in training mode; else z): drawn from the
        generator of (seed, layer, step), or ``noise`` when given -- gpu_check.fast_dln's batched
        route draws each network's noise from that same generator and passes the stack's."""
        if self.kind not in NOISY_KINDS or not self.training:
            return z
        if noise is None:
            noise = self._drawn_noise(tuple(z.shape), z.device)
        return apply_noise(z, noise)

    def _drawn_noise(self, shape: tuple, device) -> NoiseSample:
        """The draw of (seed, layer, step) for ``shape``: drawn once, kept until the step or the
        shape changes (the measurements and probes of a step make many forward passes, each of
        which would draw the same values again)."""
        key = (self.step, shape, torch.device(device))
        if self._noise_cache is None or self._noise_cache[0] != key:
            gen = noise_generator(self.seed, self.layer_index, self.step, device)
            self._noise_cache = (key, sample_noise(gen, shape, self.noise_cfg, device))
        return self._noise_cache[1]

    def probe_after_z(self, z: torch.Tensor):
        """What ``perturb`` does to z in this forward pass (gpu_check.probes.ProbeableNormalisation):
        None for the identity, else (scale, shift) of Algorithm 1's noise, z -> scale z + shift."""
        if self.kind not in NOISY_KINDS or not self.training:
            return None
        noise = self._drawn_noise(tuple(z.shape), z.device)
        return noise.scale.to(z.dtype), noise.shift.to(z.dtype)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        if self.probe_site is not None:
            y = self.probe_site("y", y)
        z = self.normalise(y)
        if self.probe_site is not None:
            z = self.probe_site("z", z)
        return self.perturb(z)

    def extra_repr(self) -> str:
        return f"{self.kind}, channels={self.channels}, eps={self.eps}"
