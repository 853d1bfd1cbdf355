"""The paper's two networks (Appendix A.1), Glorot-initialised, with a swappable normalisation.

Both are a sequence of ``NormBlock``s -- a linear map (fully connected or 3x3 convolution)
followed by an optional normalisation layer.  The probes find them as they find the layers of
any model (gpu_check.probes): by type, through hooks; ``norm_blocks`` names them for the records.
"""
from __future__ import annotations

from abc import ABCMeta, abstractmethod

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from gpu_check.config import RunConfig
from gpu_check.norms import Normalisation

_INIT_STREAM = 13


class NormBlock(nn.Module):
    """y = linear(x) (pre-normalisation activations), then z = norm(y) if there is a norm."""

    def __init__(self, linear: nn.Module, norm):
        super().__init__()
        self.linear = linear
        self.norm = norm          # Normalisation or None

    def forward(self, x):
        y = self.linear(x)
        return y if self.norm is None else self.norm(y)


class Network(nn.Module, metaclass=ABCMeta):
    """Common interface of the DLN and the VGG: named blocks, a loss, the noise time step."""

    kind = ""

    block_prefix = "layer"

    def blocks(self) -> list:
        """(name, NormBlock) in the order the input flows through them; names count from 1 in
        that order ('fc01' is the layer applied to x first, i.e. the paper's W_k)."""
        found = [m for m in self.modules() if isinstance(m, NormBlock)]
        width = max(2, len(str(len(found))))
        return [(f"{self.block_prefix}{i + 1:0{width}d}", m) for i, m in enumerate(found)]

    def norm_blocks(self) -> list:
        return [(n, b) for n, b in self.blocks() if b.norm is not None]

    def set_step(self, step: int) -> None:
        for _, b in self.norm_blocks():
            b.norm.step = step

    @abstractmethod
    def loss(self, output, target) -> torch.Tensor:
        """The training loss of a batch: the DLN's summed squared error, the VGG's cross-entropy."""

    def correct(self, output, target):
        """Number of correct predictions, or None for a regression."""
        return None


class DeepLinearNetwork(Network):
    """W_1 ... W_k x (Appendix A.1(2)), square width x width layers without biases.

    With a normalisation, a norm layer follows each of the first k - 1 layers; the output layer
    W_1 (applied last) is not normalised -- it produces the regression prediction (our reading:
    Appendix A does not say where the BatchNorm layers of the DLN sit).
    """

    kind = "dln"
    block_prefix = "fc"

    def __init__(self, depth: int, width: int, make_norm):
        super().__init__()
        self.layers = nn.Sequential(*[
            NormBlock(nn.Linear(width, width, bias=False), make_norm(width, i) if i < depth - 1 else None)
            for i in range(depth)])

    def forward(self, x):          # (n, d) -> (n, d)
        return self.layers(x)

    def loss(self, output, target):
        # ||W_1...W_k X - A X||_F^2, summed over the samples (see DLNConfig.lr for why summed)
        return ((output - target) ** 2).sum()


class VGG(Network):
    """A VGG-like CIFAR network: [conv3x3 -> norm -> ReLU] blocks with 2x2 max-pools ('M')
    as in ``layout``, then one linear classifier."""

    kind = "vgg"
    block_prefix = "conv"

    def __init__(self, layout: tuple, image_size: int, make_norm, classes: int = 10):
        super().__init__()
        layers, c_in, side, index = [], 3, image_size, 0
        for entry in layout:
            if entry == "M":
                layers.append(nn.MaxPool2d(2))
                side //= 2
            else:
                layers += [NormBlock(nn.Conv2d(c_in, entry, 3, padding=1), make_norm(entry, index)),
                           nn.ReLU()]
                c_in, index = entry, index + 1
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(c_in * side * side, classes)

    def forward(self, x):          # (n, 3, s, s) -> (n, classes)
        return self.classifier(self.features(x).flatten(1))

    def loss(self, output, target):
        return F.cross_entropy(output, target)

    def correct(self, output, target):
        return (output.argmax(1) == target).sum()


def glorot_init_(model: nn.Module, seed: int, network_index: int) -> None:
    """Glorot (Xavier) uniform weights, zero biases (Appendix A: "standard Glorot initialization");
    drawn from a generator of (seed, network) so they do not depend on the global RNG."""
    state = np.random.SeedSequence([seed, _INIT_STREAM, network_index]).generate_state(2, np.uint32)
    gen = torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))
    for m in model.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            with torch.no_grad():
                w = torch.empty(m.weight.shape)
                nn.init.xavier_uniform_(w, generator=gen)      # on the CPU: device-independent
                m.weight.copy_(w)
                if m.bias is not None:
                    m.bias.zero_()


def norm_factory(config: RunConfig, network_index: int):
    """make_norm(channels, layer_index) for the run's norm (None for 'none')."""
    def make(channels: int, layer_index: int):
        if config.norm == "none":
            return None
        return Normalisation(config.norm, channels, eps=config.bn_eps, momentum=config.bn_momentum,
                             noise=config.noise, seed=config.seed,
                             layer_index=1000 * network_index + layer_index)
    return make


NETWORK_INDEX = {"dln": 0, "vgg": 1}   # fixed, so a network's init does not depend on its run


def build_model(config: RunConfig, network: str) -> Network:
    """The initialised network named ``network`` ('dln' or 'vgg') of a run, on the CPU."""
    index = NETWORK_INDEX.get(network)
    if network == "dln":
        model = DeepLinearNetwork(config.dln.depth, config.dln.width, norm_factory(config, index))
    elif network == "vgg":
        model = VGG(config.vgg.layout, config.vgg.image_size, norm_factory(config, index))
    else:
        raise ValueError(f"unknown network {network!r}; networks are 'dln' and 'vgg'")
    glorot_init_(model, config.seed, index)
    return model
