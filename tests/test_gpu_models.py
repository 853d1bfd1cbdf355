"""gpu_check.models: the networks of Appendix A, Glorot-initialised."""
import math

import pytest
import torch
import torch.nn as nn

from gpu_check.config import VGG11_LAYOUT, preset, with_overrides
from gpu_check.models import build_model


pytestmark = pytest.mark.usefixtures("one_cpu_thread")


def test_dln_paper_is_25_square_10x10_linear_layers_without_biases():
    model = build_model(preset("dln-paper"), "dln")
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert len(linears) == 25
    assert all(tuple(m.weight.shape) == (10, 10) and m.bias is None for m in linears)


def test_dln_normalises_every_layer_but_the_output_layer():
    model = build_model(with_overrides(preset("dln-paper"), norm="bn"), "dln")
    assert [name for name, _ in model.norm_blocks()] == [f"fc{i:02d}" for i in range(1, 25)]
    assert build_model(with_overrides(preset("dln-paper"), norm="none"), "dln").norm_blocks() == []


def test_vgg_paper_has_a_norm_layer_after_each_of_its_eight_convolutions():
    model = build_model(with_overrides(preset("vgg-paper"), norm="noisy-bn"), "vgg")
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [w for w in VGG11_LAYOUT if w != "M"]
    assert len(model.norm_blocks()) == 8
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 10)


def test_weights_are_glorot_uniform_and_biases_zero():
    model = build_model(preset("dln-paper"), "dln")
    w = torch.cat([m.weight.flatten() for m in model.modules() if isinstance(m, nn.Linear)])
    bound = math.sqrt(6 / (10 + 10))                 # Glorot & Bengio: U(-b, b), b = sqrt(6/(fan_in+fan_out))
    assert w.abs().max() <= bound
    # variance of U(-b, b) is b^2/3; the sample variance of n draws has standard error
    # var sqrt((kurtosis - 1)/n) = var sqrt(0.8/n) (kurtosis 1.8); allow 4 of them
    var = bound**2 / 3
    assert abs(w.var().item() - var) < 4 * var * math.sqrt(0.8 / w.numel())
    vgg = build_model(preset("smoke"), "vgg")
    assert all(m.bias.abs().max() == 0 for m in vgg.modules() if isinstance(m, (nn.Conv2d, nn.Linear)))


def test_initialisation_depends_on_the_seed_not_on_the_global_rng():
    c = preset("smoke")
    torch.manual_seed(123)
    a = build_model(c, "vgg").state_dict()
    torch.manual_seed(456)
    b = build_model(c, "vgg").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    other = build_model(with_overrides(c, seed=1), "vgg").state_dict()
    assert not torch.equal(a["classifier.weight"], other["classifier.weight"])
