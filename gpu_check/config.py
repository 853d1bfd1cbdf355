"""One frozen configuration for a training run, and the named presets.

A preset is a named ``RunConfig`` instance; command-line flags override its fields through
``with_overrides`` (never by mutation).  Readings of what Appendix A leaves open are recorded
next to the field that encodes them.

A run trains one or two networks ("dln", "vgg") side by side: every step advances each network
once.  The ``smoke`` preset trains a tiny version of both; the paper presets train one.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Optional

# noisy-none: Algorithm 1's noise on the unnormalised linear output (no normalisation): Section
# 2.1's "adding the same amount of noise to the activations of the standard network".
NORMS = ("none", "bn", "noisy-bn", "l1", "l2", "linf", "noisy-none")
DEVICES = ("auto", "cpu", "cuda")
PROBE_DTYPES = ("float64", "float32")
# Optional measurements of Sections 2-3 (gpu_check.measure): Definition 2.1's ICS, the landscape
# along the gradient, the distributions of sampled units.
MEASUREMENTS = ("ics", "landscape", "distributions")

# The normalisations whose map is the training-mode BatchNorm y -> gamma*(y - mu)/sigma + beta,
# so the statements of Section 4 are about them (noisy-bn: the BN map followed by the noise, which
# the probes treat as part of the downstream loss).  The l_p layers are a different map.
BATCHNORM_KINDS = ("bn", "noisy-bn")

# VGG-11 ("configuration A" of Simonyan & Zisserman), CIFAR form: 3x3 convolutions (padding 1),
# 'M' = 2x2 max-pooling, one linear classifier on the 1x1x512 output.  Appendix A says only
# "VGG-like network, a standard convolutional architecture [26]" and reports 83% / 80% test
# accuracy without augmentation; VGG-11 with a single linear classifier is our reading (the common
# CIFAR adaptation, which reaches accuracies of that order).  A norm layer follows each convolution.
VGG11_LAYOUT = (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M")


class ConfigError(ValueError):
    """A configuration value outside its domain; the message names the field and the value."""


@dataclass(frozen=True)
class NoiseConfig:
    """Constants of Algorithm 1 ("noisy" BatchNorm); the values are those of Appendix A.2.1."""

    n_mu: float = 0.5       # mu_j^t ~ U(-n_mu, n_mu)
    n_sigma: float = 1.25   # sigma_j^t ~ U(1, n_sigma)
    r_mu: float = 0.1       # m_ij^t ~ U(mu_j^t - r_mu, mu_j^t + r_mu)
    r_sigma: float = 0.1    # s_ij^t ~ N(sigma_j^t, r_sigma), r_sigma read as a standard deviation


@dataclass(frozen=True)
class DLNConfig:
    """The deep linear network of Appendix A.1(2): minimise ||W_1 ... W_k x - A x||_2^2."""

    depth: int = 25          # k
    width: int = 10          # A and every W_i are width x width
    n_samples: int = 1000    # full batch: dataset size = batch size
    # Appendix A: "the learning rate is 10^-6".  Reading: the l2 loss is *summed* over the 1000
    # samples (||W_1...W_k X - A X||_F^2 for the data matrix X), not averaged; with the mean the
    # step would be 1000x smaller and 10,000 steps of lr 1e-6 would barely move the weights.
    lr: float = 1e-6


@dataclass(frozen=True)
class VGGConfig:
    """The VGG-like network of Appendix A.1(1) on CIFAR-10 (or its synthetic stand-in)."""

    layout: tuple = VGG11_LAYOUT
    image_size: int = 32
    n_train: int = 50_000    # first n_train training images (all of CIFAR-10's 50,000 by default)
    n_test: int = 10_000     # first n_test test images, evaluated every eval_every steps
    batch_size: int = 128
    lr: float = 0.1          # plain SGD, no momentum, no weight decay, no augmentation (App. A)
    eval_every: int = 1000


@dataclass(frozen=True)
class RunConfig:
    preset: str
    steps: int
    probe_every: int          # probe every K steps (step 0 included); 0 disables probes
    checkpoint_every: int
    norm: str = "bn"
    probe_channels: int = 8   # channels sampled (reproducibly, fixed for the run) per norm layer
    probe_dtype: str = "float64"  # probes run a float64 copy of the network on the same batch
    seed: int = 0
    device: str = "auto"
    # torch intra-op threads on the CPU.  These networks are small: one thread is fastest (no
    # synchronisation), is not disturbed by other processes, and keeps runs bitwise reproducible
    # whatever the machine's core count.
    cpu_threads: int = 1
    data: Optional[str] = None    # CIFAR-10 directory; None = the synthetic stand-in
    # epsilon of every normalisation layer: torch's default.  0 is allowed and is the paper's
    # BatchNorm (the registry's eps = 0 'printed' variants then apply to the probes); a constant
    # channel then has no defined y_hat and the loss turns NaN, which stops the run.
    bn_eps: float = 1e-5
    bn_momentum: float = 0.1      # running-statistics momentum (evaluation mode only)
    noise: NoiseConfig = field(default_factory=NoiseConfig)
    dln: Optional[DLNConfig] = None
    vgg: Optional[VGGConfig] = None
    measure: tuple = ()           # names from MEASUREMENTS, run as hooks (gpu_check.measure)
    measure_every: int = 0        # measure every K steps; 0 = about 25 points per run

    def networks(self) -> tuple:
        """Names of the networks this run trains, in the order every step advances them."""
        return tuple(name for name in ("dln", "vgg") if getattr(self, name) is not None)


# ---------------------------------------------------------------------------------------------
# Presets
# ---------------------------------------------------------------------------------------------

PRESETS = {
    # Appendix A, deep linear network: full-batch GD, 10,000 steps, lr 1e-6.  A probe of its 24
    # BN layers costs ~0.1 s per channel by the chain sweep (4 directions a channel through up
    # to 23 layers; ~0.4 s by Hessian-vector products) against ~9 ms a step: 6 of the 10
    # channels, K = 2500 (5 probes), ~3.5% of the run.
    "dln-paper": RunConfig(preset="dln-paper", steps=10_000, probe_every=2500, checkpoint_every=1000,
                           probe_channels=6, dln=DLNConfig()),
    # Appendix A, VGG: SGD, lr 0.1, batch 128, 15,000 steps, no augmentation.  Probe interval
    # and channels are an estimate (no GPU was available to measure): 7 probes of 4 channels.
    "vgg-paper": RunConfig(preset="vgg-paper", steps=15_000, probe_every=2500, checkpoint_every=1000,
                           probe_channels=4, vgg=VGGConfig()),
    # A VGG-11 with every width divided by 8 on a 10,000-image subset: the paper's shape and
    # optimiser, sized to finish on a 2-core CPU within 10 minutes even when the other core is
    # busy (measured: ~50-65 ms a step on one thread, ~75 ms with the machine loaded).  A float64
    # probe of 2 channels a layer costs ~2.3 s by the chain sweep (~6 s by Hessian-vector
    # products; float64 convolutions are slow on a CPU): K = 1000, 6 probes, ~4% of the run.
    "vgg-cpu": RunConfig(preset="vgg-cpu", steps=5_000, probe_every=1000, checkpoint_every=500,
                         probe_channels=2,
                         vgg=VGGConfig(layout=(8, "M", 16, "M", 32, 32, "M", 64, 64, "M", 64, 64, "M"),
                                       n_train=10_000, n_test=2_000, eval_every=500)),
    # vgg-cpu on real images: scikit-learn's handwritten digits (gpu_check.data.DIGITS; 1500 train /
    # 297 test, 8x8 upsampled to 32x32), so the VGG claims are also judged on a real image set on a
    # CPU.  Smaller than vgg-cpu's 10,000 images because that is all the set has; every other
    # setting is vgg-cpu's.  Labelled 'sklearn-digits ... NOT CIFAR-10' in every record.
    "vgg-digits": RunConfig(preset="vgg-digits", steps=5_000, probe_every=1000, checkpoint_every=500,
                            probe_channels=2, data="sklearn:digits",
                            vgg=VGGConfig(layout=(8, "M", 16, "M", 32, 32, "M", 64, 64, "M", 64, 64, "M"),
                                          n_train=1500, n_test=297, eval_every=500)),
    # Both networks, tiny: used by the tests, well under 30 s on a CPU (about 1 s in-process).
    # The DLN's lr suits its 64-sample summed loss: at 1e-3 the unnormalised DLN diverges.
    "smoke": RunConfig(preset="smoke", steps=12, probe_every=4, checkpoint_every=4, probe_channels=2,
                       dln=DLNConfig(depth=6, width=4, n_samples=64, lr=3e-4),
                       vgg=VGGConfig(layout=(4, "M", 8, "M"), image_size=8, n_train=256, n_test=64,
                                     batch_size=32, lr=0.05, eval_every=6)),
}


def preset(name: str) -> RunConfig:
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigError(f"unknown preset {name!r}; presets are: {', '.join(PRESETS)}") from None


def with_overrides(config: RunConfig, **overrides) -> RunConfig:
    """A copy of ``config`` with the given top-level fields replaced; None means 'keep'."""
    names = {f.name for f in fields(RunConfig)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise ConfigError(f"unknown configuration field(s) {unknown}; fields are {sorted(names)}")
    return validate(replace(config, **{k: v for k, v in overrides.items() if v is not None}))


def with_learning_rate(config: RunConfig, lr: Optional[float]) -> RunConfig:
    """A copy of ``config`` in which every network it trains (dln, vgg) has learning rate ``lr``
    (``--lr``); None means 'keep the preset's'."""
    if lr is None:
        return config
    check_learning_rate(lr)
    nets = {name: replace(getattr(config, name), lr=float(lr)) for name in config.networks()}
    return validate(replace(config, **nets))


def check_learning_rate(lr) -> float:
    """``lr`` as a float, or ConfigError when it is not a finite positive number."""
    try:
        value = float(lr)
    except (TypeError, ValueError):
        raise ConfigError(f"learning rate {lr!r} is not a number") from None
    if not (math.isfinite(value) and value > 0):
        raise ConfigError(f"learning rate {lr!r}: it must be finite and > 0")
    return value


def validate(config: RunConfig) -> RunConfig:
    """Return ``config`` unchanged, or raise ConfigError naming the first bad field and value."""
    def need(ok, message):
        if not ok:
            raise ConfigError(message)

    need(config.norm in NORMS, f"unknown norm {config.norm!r}; norms are: {', '.join(NORMS)}")
    need(config.device in DEVICES, f"unknown device {config.device!r}; devices are: {', '.join(DEVICES)}")
    need(config.probe_dtype in PROBE_DTYPES, f"probe_dtype {config.probe_dtype!r} is not one of {PROBE_DTYPES}")
    need(config.steps >= 1, f"steps = {config.steps}: a run needs at least 1 step")
    need(config.probe_every >= 0, f"probe_every = {config.probe_every}: must be >= 0 (0 disables probes)")
    need(config.checkpoint_every >= 1, f"checkpoint_every = {config.checkpoint_every}: must be >= 1")
    need(config.probe_channels >= 1, f"probe_channels = {config.probe_channels}: must be >= 1")
    need(config.bn_eps >= 0, f"bn_eps = {config.bn_eps}: epsilon must be >= 0")
    need(config.cpu_threads >= 1, f"cpu_threads = {config.cpu_threads}: must be >= 1")
    need(config.seed >= 0, f"seed = {config.seed}: seeds are non-negative integers")
    unknown = [m for m in config.measure if m not in MEASUREMENTS]
    need(isinstance(config.measure, tuple) and not unknown and len(set(config.measure)) == len(config.measure),
         f"measure = {config.measure!r}: unknown or repeated measurement {unknown or list(config.measure)}; "
         f"measurements are: {', '.join(MEASUREMENTS)}")
    need(config.measure_every >= 0, f"measure_every = {config.measure_every}: must be >= 0 (0 = automatic)")
    need(config.networks(), f"preset {config.preset!r} trains no network (dln and vgg are both None)")
    if config.dln is not None:
        d = config.dln
        need(d.depth >= 2, f"dln.depth = {d.depth}: a deep linear network needs >= 2 layers")
        need(d.width >= 1 and d.n_samples >= 2, f"dln width {d.width} / n_samples {d.n_samples} too small "
             "(BatchNorm needs a batch of >= 2)")
        need(math.isfinite(d.lr) and d.lr > 0, f"dln.lr = {d.lr}: the learning rate must be finite and positive")
    if config.vgg is not None:
        v = config.vgg
        pools = sum(1 for e in v.layout if e == "M")
        need(v.image_size % (2 ** pools) == 0,
             f"vgg.image_size = {v.image_size} is not divisible by 2^{pools} (the layout's max-pools)")
        need(v.image_size <= 32, f"vgg.image_size = {v.image_size}: CIFAR-10 images are 32x32")
        need(2 <= v.batch_size <= v.n_train,
             f"vgg.batch_size = {v.batch_size} must be in [2, n_train = {v.n_train}]")
        need(math.isfinite(v.lr) and v.lr > 0, f"vgg.lr = {v.lr}: the learning rate must be finite and positive")
        need(v.eval_every >= 1, f"vgg.eval_every = {v.eval_every}: must be >= 1")
    if config.data is not None:
        need(config.vgg is not None, f"--data {config.data!r} given, but preset {config.preset!r} has no "
             "VGG network: the DLN's data is always generated from the seed")
    return config


def config_to_dict(config: RunConfig) -> dict:
    """JSON-ready form (tuples become lists)."""
    return asdict(config)


def config_from_dict(d: dict) -> RunConfig:
    """Inverse of ``config_to_dict`` (for checkpoints and config.json)."""
    d = dict(d)
    d["noise"] = NoiseConfig(**d["noise"])
    d["dln"] = DLNConfig(**d["dln"]) if d.get("dln") is not None else None
    if d.get("vgg") is not None:
        v = dict(d["vgg"])
        v["layout"] = tuple(v["layout"])
        d["vgg"] = VGGConfig(**v)
    d["measure"] = tuple(d.get("measure", ()))
    return RunConfig(**d)


# Fields that may differ between an interrupted run and its resumption: where it runs.
RESUME_FREE_FIELDS = ("device",)


def resume_mismatches(saved: RunConfig, requested: RunConfig) -> list:
    """Top-level fields (other than RESUME_FREE_FIELDS) whose values differ, as 'name: a != b'."""
    out = []
    for f in fields(RunConfig):
        if f.name in RESUME_FREE_FIELDS:
            continue
        a, b = getattr(saved, f.name), getattr(requested, f.name)
        if a != b:
            out.append(f"{f.name}: checkpoint has {a!r}, requested {b!r}")
    return out
