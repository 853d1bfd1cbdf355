"""gpu_check.chain_forms: the chain sweep gives the Hessian forms that Hessian-vector products give,
on chains of every layer kind it knows, and a model that is not such a chain is probed by
Hessian-vector products with the reason said."""
import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from gpu_check import chain_forms
from gpu_check.chain_forms import im2col, sweep_tolerance
from gpu_check.config import DLNConfig, VGGConfig, preset, with_overrides
from gpu_check.models import build_model
from gpu_check.probes import HESSIAN_FORMS, ModelProbe, forms_disagreement

pytestmark = pytest.mark.usefixtures("one_cpu_thread")

FORMS = HESSIAN_FORMS


def both_ways(model, closure, channels=3):
    """The probe's measurements of ``model`` by the chain sweep and by Hessian-vector products,
    and the sweep's probe (its hessian_method says how it computed them)."""
    sweep = ModelProbe(model, channels=channels, seed=0)
    products = ModelProbe(model, channels=channels, seed=0, chain_sweep=False)
    by_sweep, errors = sweep.measure(0, closure)
    assert not errors
    by_products, errors = products.measure(0, closure)
    assert not errors
    assert products.audit is None
    return by_sweep, by_products, sweep


def disagreement(by_sweep, by_products) -> float:
    """The largest forms_disagreement over the sites."""
    worst = 0.0
    for a, b in zip(by_sweep, by_products):
        assert a.layer == b.layer and (a.channels == b.channels).all()
        worst = max(worst, forms_disagreement({k: getattr(a, k) for k in FORMS}, {k: getattr(b, k) for k in FORMS}))
    return worst


def tolerance(model, by_products) -> float:
    """sweep_tolerance at the largest m of the sites, with every leaf layer of the model (and the
    loss) after the site: the loosest of the sites' own tolerances."""
    layers = sum(1 for m in model.modules() if next(m.children(), None) is None) + 1
    return sweep_tolerance(max(b.y.shape[1] for b in by_products), layers)


def generic(model):
    """gamma, beta away from 1, 0 and running statistics away from 0, 1: a generic point."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                if m.affine:
                    m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                    m.bias.copy_(torch.rand(m.bias.shape, generator=g) - 0.5)
                if m.running_mean is not None:
                    m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g))
                    m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
    return model


def images(n=6, c=3, side=8, classes=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, c, side, side, generator=g), torch.randint(0, classes, (n,), generator=g)


# ---------------------------------------------------------------------------------------------
# Chains of every layer kind the sweep knows
# ---------------------------------------------------------------------------------------------

def mlp():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 7), nn.BatchNorm1d(7), nn.ReLU(), nn.Linear(7, 6, bias=False),
                          nn.BatchNorm1d(6, affine=False), nn.ReLU(inplace=True), nn.Linear(6, 3))
    g = torch.Generator().manual_seed(0)
    x, t = torch.randn(12, 5, generator=g), torch.randn(12, 3, generator=g)
    return generic(model).train(), lambda m: ((m(x) - t) ** 2).sum()


def cnn():
    """Strided, dilated and grouped convolutions with and without bias, an eval-mode BatchNorm
    inside the chain (an affine map), max-pooling, Flatten, cross-entropy."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 6, 3, padding=2, dilation=2, groups=2, bias=False), nn.BatchNorm2d(6), nn.ReLU(),
        nn.Conv2d(6, 8, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(8, affine=False),
        nn.BatchNorm2d(8), nn.ReLU(inplace=True), nn.Flatten(), nn.Linear(8 * 2 * 2, 4))
    generic(model).train()
    model[9].eval()                     # running statistics: not a site, a per-channel affine map
    x, t = images()
    return model, lambda m: F.cross_entropy(m(x), t)


def conv1d():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv1d(2, 4, 3, padding=1, bias=False), nn.BatchNorm1d(4), nn.ReLU(),
                          nn.MaxPool1d(2), nn.Conv1d(4, 3, 3), nn.BatchNorm1d(3), nn.Flatten(), nn.Linear(3 * 2, 2))
    g = torch.Generator().manual_seed(0)
    x, t = torch.randn(5, 2, 8, generator=g), torch.randn(5, 2, generator=g)
    return generic(model).train(), lambda m: F.mse_loss(m(x), t)


TINY = with_overrides(preset("smoke"), probe_channels=2)


def project_network(name, norm="bn"):
    config = with_overrides(TINY, norm=norm)
    config = config.__class__(**{**config.__dict__, "dln": DLNConfig(depth=5, width=4, n_samples=16, lr=1e-3),
                                 "vgg": VGGConfig(layout=(4, "M", 6, 6, "M"), image_size=8, n_train=8, n_test=4,
                                                  batch_size=6, lr=0.05)})
    model = build_model(config, name).train()
    with torch.no_grad():
        for _, b in model.norm_blocks():
            b.norm.weight.uniform_(0.5, 1.5)
            b.norm.bias.uniform_(-0.5, 0.5)
    g = torch.Generator().manual_seed(0)
    if name == "dln":
        x = torch.randn(16, 4, generator=g)
        t = x @ torch.randn(4, 4, generator=g)
    else:
        x, t = images(side=8, classes=10)
    return model, lambda m: m.loss(m(x), t)


CHAINS = {"mlp": mlp, "cnn": cnn, "conv1d": conv1d,
          "dln": lambda: project_network("dln"), "vgg": lambda: project_network("vgg")}


@pytest.mark.parametrize("name", sorted(CHAINS))
def test_the_chain_sweep_gives_the_forms_hessian_vector_products_give(name):
    model, closure = CHAINS[name]()
    by_sweep, by_products, probe = both_ways(model, closure)
    assert probe.hessian_method == "chain sweep"
    assert len(by_sweep) == len(by_products) > 0
    assert disagreement(by_sweep, by_products) <= tolerance(model, by_products)
    # every probe checks its last site against Hessian-vector products, and records it
    assert probe.audit["layer"] == by_sweep[-1].layer and probe.audit["disagreement"] <= probe.audit["tolerance"]
    for a, b in zip(by_sweep, by_products):             # the first-order quantities are the same pass
        assert np.array_equal(a.g, b.g) and np.array_equal(a.grad_y_bn, b.grad_y_bn)
        assert (a.lam is None) == (b.lam is None)
        if a.lam is not None:
            np.testing.assert_allclose(a.lam, b.lam, rtol=1e-12)


def test_the_comparison_and_each_probes_audit_see_a_broken_rule(monkeypatch):
    """Without BatchNorm's second-order part the sweep's forms are wrong by far more than the
    agreement tolerance: the comparison above can fail, and the probe's own audit warns."""
    model, closure = mlp()
    real = chain_forms.batchnorm_sweep

    def without_second_order(bn, A, pairs):
        out, second = real(bn, A, pairs)
        return out, torch.zeros_like(second)

    monkeypatch.setattr(chain_forms, "batchnorm_sweep", without_second_order)
    with pytest.warns(UserWarning, match="differ from Hessian-vector products"):
        by_sweep, by_products, probe = both_ways(model, closure)
    assert probe.hessian_method == "chain sweep"
    assert disagreement(by_sweep, by_products) > 1e-3            # O(1), not rounding
    assert probe.audit["disagreement"] > 1e-3


@pytest.mark.parametrize("name", ["dln", "vgg"])
def test_noisy_batchnorm_is_swept_through_the_noise_its_module_names(name):
    """Algorithm 1's noise after z, scale * z + shift (Normalisation.probe_after_z): the sweep
    scales the tangents by it, after the site and after every noisy layer downstream."""
    model, closure = project_network(name, norm="noisy-bn")
    model.set_step(3)
    by_sweep, by_products, probe = both_ways(model, closure)
    assert probe.hessian_method == "chain sweep"
    assert disagreement(by_sweep, by_products) <= tolerance(model, by_products)


class AfterZ(nn.Module):
    """A protocol module (gpu_check.probes.ProbeableNormalisation) that returns 2 z + 1, with or
    without saying so through probe_after_z."""

    is_batchnorm = True

    def __init__(self, c, says):
        super().__init__()
        self.num_features, self.eps, self.probe_site, self.says = c, 1e-3, None, says
        self.gamma = self.beta = None

    def probe_after_z(self, z):
        return (torch.full_like(z, 2.0), torch.ones_like(z)) if self.says else None

    def forward(self, y):
        if self.probe_site is not None:
            y = self.probe_site("y", y)
        z = F.batch_norm(y, None, None, training=True, eps=self.eps)
        if self.probe_site is not None:
            z = self.probe_site("z", z)
        return 2 * z + 1


@pytest.mark.parametrize("says", [True, False])
def test_a_module_that_maps_z_further_is_swept_only_when_it_names_the_map(says):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 5), AfterZ(5, says), nn.Linear(5, 2)).train()
    closure = lambda m: ((m(x4) - t2) ** 2).sum()              # noqa: E731
    by_sweep, by_products, probe = both_ways(model, closure)
    if says:
        assert probe.hessian_method == "chain sweep"
        assert disagreement(by_sweep, by_products) <= tolerance(model, by_products)
    else:
        assert "does more after BatchNorm" in probe.hessian_method and disagreement(by_sweep, by_products) == 0


# ---------------------------------------------------------------------------------------------
# Not a chain: Hessian-vector products, and the reason
# ---------------------------------------------------------------------------------------------

class Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(3)
        self.head = nn.Linear(3, 2)

    def forward(self, x):
        return self.head((self.bn(self.conv(x)) + x).mean((2, 3)))


class LinearBatchNormLinear(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 5)
        self.bn = nn.BatchNorm1d(5)
        self.out = nn.Linear(5, 2)


class InPlaceAfter(LinearBatchNormLinear):
    def forward(self, x):
        h = self.bn(self.fc(x))
        h.mul_(2.0)                     # changes the tensor the next layer reads, outside a module
        return self.out(h)


class Remembers(LinearBatchNormLinear):
    """A chain that keeps its hidden activation for a loss term of the closure."""

    def forward(self, x):
        self.hidden = self.bn(self.fc(x))
        return self.out(self.hidden)


def vectors(n=10, d=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g), torch.randn(n, 2, generator=g)


x4, t2 = vectors()
NOT_CHAINS = {
    "residual": (Residual, lambda m: F.cross_entropy(m(images(classes=2)[0]), images(classes=2)[1]),
                 "is not the output of the layer before it"),
    "in place": (InPlaceAfter, lambda m: ((m(x4) - t2) ** 2).sum(), "changed in place before the call"),
    "unknown layer": (lambda: nn.Sequential(nn.Linear(4, 5), nn.BatchNorm1d(5), nn.Tanh(), nn.Linear(5, 2)),
                      lambda m: ((m(x4) - t2) ** 2).sum(), "Tanh is not a layer the chain sweep knows"),
    "two calls": (lambda: nn.Sequential(nn.Linear(4, 5), nn.BatchNorm1d(5), nn.Linear(5, 2)),
                  lambda m: ((m(x4) - t2) ** 2).sum() + m(x4[:6]).sum(), "called the model 2 times"),
    "loss reads a hidden activation": (Remembers, lambda m: ((m(x4) - t2) ** 2).sum() + (m.hidden ** 2).sum(),
                                       "the loss reads an activation other than the model's output"),
}


@pytest.mark.parametrize("case", sorted(NOT_CHAINS))
def test_a_model_that_is_not_a_chain_is_probed_by_hessian_vector_products_and_says_why(case):
    make, closure, why = NOT_CHAINS[case]
    torch.manual_seed(0)
    model = make().train()
    probe = ModelProbe(model, channels=2, seed=0)
    measurements, errors = probe.measure(0, closure)
    assert probe.hessian_method.startswith("Hessian-vector products: ") and why in probe.hessian_method
    reference, _ = ModelProbe(model, channels=2, seed=0, chain_sweep=False).measure(0, closure)
    assert disagreement(measurements, reference) == 0.0        # the same computation


def test_a_probe_keeps_no_tensor_of_the_forward_pass_between_probes():
    model, closure = mlp()
    probe = ModelProbe(model, channels=2, seed=0)
    probe.measure(0, closure)
    assert probe.calls.calls == [] and probe.calls.outputs == []


# ---------------------------------------------------------------------------------------------
# The pieces
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("stride, padding, dilation", [((1, 1), (1, 1), (1, 1)), ((2, 1), (1, 0), (1, 2)),
                                                       ((1, 3), (2, 1), (2, 1))])
def test_im2col_times_the_weight_is_torchs_convolution(stride, padding, dilation):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, 3, 9, 7, generator=g, dtype=torch.float64)
    w = torch.randn(5, 3, 3, 2, generator=g, dtype=torch.float64)
    cols = im2col(x.movedim(0, -1), (3, 2), padding, stride, dilation)        # (C, 3, 2, *out, n)
    out = (w.reshape(5, -1) @ cols.reshape(3 * 3 * 2, -1)).reshape((5,) + tuple(cols.shape[3:]))
    expected = F.conv2d(x, w, stride=stride, padding=padding, dilation=dilation)
    torch.testing.assert_close(out.movedim(-1, 0), expected, rtol=1e-13, atol=1e-13)


def test_batchnorm_second_derivative_is_autograds_on_one_layer():
    """The closed form of d^2 y_hat [a, b] contracted with g, against autograd's double backward
    of torch's own batch_norm, for an off-diagonal pair and a diagonal one."""
    g = torch.Generator().manual_seed(3)
    y = torch.randn(7, 3, 2, generator=g, dtype=torch.float64)
    gz = torch.randn(7, 3, 2, generator=g, dtype=torch.float64)
    gamma = torch.rand(3, generator=g, dtype=torch.float64) + 0.5
    a, b = torch.randn(2, 7, 3, 2, generator=g, dtype=torch.float64)
    eps = 0.1

    def contracted(yy):
        return (gz * F.batch_norm(yy, None, None, gamma, None, training=True, eps=eps)).sum()

    yv = y.clone().requires_grad_()
    grad, = torch.autograd.grad(contracted(yv), yv, create_graph=True)
    Hb, = torch.autograd.grad(grad, yv, grad_outputs=b, retain_graph=True)
    Ha, = torch.autograd.grad(grad, yv, grad_outputs=a)
    point = chain_forms.BatchNormPoint.at(y, gz, gamma, eps)
    A = chain_forms.to_sweep(torch.stack([a, b]))
    pairs = chain_forms.Pairs.of(torch.tensor([[0, 1], [0, 0]]), 2)
    out, second = chain_forms.batchnorm_sweep(point, A, pairs)
    torch.testing.assert_close(second, torch.stack([(a * Hb).sum(), (a * Ha).sum()]), rtol=1e-12, atol=1e-14)
    z = F.batch_norm(yv, None, None, gamma, None, training=True, eps=eps)
    dummy = torch.zeros_like(z, requires_grad=True)                          # J a = d(J^T u)/du applied to a
    vjp, = torch.autograd.grad(z, yv, grad_outputs=dummy, create_graph=True)
    jvp, = torch.autograd.grad(vjp, dummy, grad_outputs=a)
    torch.testing.assert_close(chain_forms.from_sweep(out)[0], jvp, rtol=1e-12, atol=1e-14)


def test_a_convolution_swept_in_parts_of_its_samples_gives_the_same_forms(monkeypatch):
    """IM2COL_ELEMENTS bounds the im2col copy; a convolution over more samples runs in parts."""
    model, closure = cnn()
    whole, _ = ModelProbe(model, channels=2, seed=0).measure(0, closure)
    monkeypatch.setattr(chain_forms, "IM2COL_ELEMENTS", 50)            # parts of a few samples each
    parts, _ = ModelProbe(model, channels=2, seed=0).measure(0, closure)
    for a, b in zip(whole, parts):
        for k in FORMS:
            np.testing.assert_allclose(getattr(a, k), getattr(b, k), rtol=1e-13, atol=0)


def test_a_float32_probe_audits_its_sweep_within_float32s_rounding_budget():
    """probe_dtype float32 (a run option): the two ways differ by float32 rounding, which the
    audit's tolerance is of; it does not call that a bug."""
    model, closure = project_network("dln")
    probe = ModelProbe(model, channels=2, seed=0, dtype=torch.float32)
    probe.measure(0, closure)
    assert probe.hessian_method == "chain sweep"
    assert probe.audit["tolerance"] == sweep_tolerance(16, 3, torch.float32) > 1e6 * sweep_tolerance(16, 3)
    assert probe.audit["disagreement"] <= probe.audit["tolerance"]
