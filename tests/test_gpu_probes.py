"""gpu_check.probes: what double backward measures on the real network equals what the
numeric layer computes from the same inputs, and the rows go through the registry."""
import dataclasses

import numpy as np
import pytest
import torch


from gpu_check.config import DLNConfig, VGGConfig, preset, with_overrides
from gpu_check.models import build_model
from gpu_check.probes import (Prober, capturing, channel_rows, evaluate_measurement, fold_batchnorm,
                              input_spectral_norm, measure, probe_channels, probe_rows)
from numeric.quantities import bn_channel_quantities
from theory import bn
from theory.evaluate import ROUNDING_SAFETY, UNIT_ROUNDOFF, evaluate_all
from theory.statements import BY_ID

# Tiny networks whose channels have small m (so the full m x m Hessian can be built column by
# column): a 4-layer DLN on 16 samples (m = 16), a two-convolution VGG on 4 images of 4x4
# (m = 4*4*4 = 64 and 4*2*2 = 16).
TINY = dataclasses.replace(
    with_overrides(preset("smoke"), probe_channels=2),
    dln=DLNConfig(depth=4, width=3, n_samples=16, lr=1e-3),
    vgg=VGGConfig(layout=(3, "M", 4, "M"), image_size=4, n_train=8, n_test=4, batch_size=4, lr=0.05))


pytestmark = pytest.mark.usefixtures("one_cpu_thread")


def tiny_batch(network, seed=0):
    g = torch.Generator().manual_seed(seed)
    if network == "dln":
        x = torch.randn(16, 3, generator=g, dtype=torch.float64)
        return x, x @ torch.randn(3, 3, generator=g, dtype=torch.float64).T
    return torch.randn(4, 3, 4, 4, generator=g, dtype=torch.float64), torch.tensor([0, 3, 3, 7])


def tiny_model(network, norm="bn"):
    model = build_model(with_overrides(TINY, norm=norm), network).double()
    with torch.no_grad():                       # gamma, beta away from 1, 0: a generic point
        for _, b in model.norm_blocks():
            b.norm.weight.uniform_(0.5, 1.5)
            b.norm.bias.uniform_(-0.5, 0.5)
    return model.train()


def basis_position(z, j, b):
    """Index in z of entry b of channel j's flattened (n, h, w) values (channel_rows' order)."""
    rest = np.unravel_index(b, (z.shape[0],) + tuple(z.shape[2:]))
    return (rest[0], j) + tuple(rest[1:])


def full_channel_hessians(model, x, t, layer, chans):
    """d^2L/dz_j^2 (N, m, m) for each channel j, one Hessian-vector product per column."""
    with capturing(model) as cap:
        loss = model.loss(model(x), t)
    z = cap[layer]["z"]
    gz, = torch.autograd.grad(loss, z, create_graph=True)
    m = z.numel() // z.shape[1]
    H = np.zeros((len(chans), m, m))
    for k, j in enumerate(chans):
        for b in range(m):
            e = torch.zeros_like(z)
            e[basis_position(z, j, b)] = 1.0
            col, = torch.autograd.grad(gz, z, grad_outputs=e, retain_graph=True)
            H[k, :, b] = channel_rows(col, torch.tensor([j]))[0].numpy()
    return H


@pytest.mark.parametrize("network", ["dln", "vgg"])
def test_measured_gradient_and_hessian_forms_equal_the_numeric_layer_on_the_same_inputs(network):
    model = tiny_model(network)
    x, t = tiny_batch(network)
    channels = {name: np.arange(b.norm.weight.numel()) for name, b in model.norm_blocks()}
    depth = len(list(model.blocks()))
    for meas in measure(model, x, t, channels):
        H = full_channel_hessians(model, x, t, meas.layer, meas.channels)
        q = bn_channel_quantities(meas.y, meas.g, meas.gamma, meas.beta, meas.eps, H=H)  # closed forms
        m = meas.y.shape[1]
        # Two float64 evaluations of one quantity, each a chain through <= depth layers whose inner
        # products have length <= m: the registry's budget ROUNDING_SAFETY m u per layer of the chain,
        # relative to the size of the terms (|u|^2 ||H||_F for a quadratic form u^T H u).
        tol = ROUNDING_SAFETY * m * UNIT_ROUNDOFF * depth
        h_frob = np.sqrt((H**2).sum((1, 2)))
        hat_frob = np.sqrt((bn.hessian_bn_matrix(q.ops, H, q.g, q.y_hat, q.sigma, q.gamma, m) ** 2).sum((1, 2)))
        v_sq, g_sq = (meas.grad_y_bn**2).sum(1), (meas.g**2).sum(1)
        grad_scale = np.abs(meas.gamma) / q.sigma * np.sqrt(g_sq) * 3
        assert np.all(np.abs(meas.grad_y_bn - q.grad_y_bn).max(1) <= tol * grad_scale)
        assert np.all(np.abs(meas.H_gg - q.H_gg) <= tol * g_sq * h_frob)
        assert np.all(np.abs(meas.H_vv - q.H_vv) <= tol * v_sq * h_frob)
        yhat_sq = (q.y_hat**2).sum(1)
        assert np.all(np.abs(meas.H_yy - q.H_yy) <= tol * yhat_sq * h_frob)
        assert np.all(np.abs(meas.H_yv - q.H_yv) <= tol * np.sqrt(yhat_sq * v_sq) * h_frob)
        assert np.all(np.abs(meas.hess_bn_vv - q.hess_bn_vv) <= tol * v_sq * (hat_frob + h_frob * q.gamma**2 / q.sigma**2))
        # and the registry sees the same verdicts from both
        measured = {(r.statement_id, r.variant): r for r in evaluate_measurement(meas)}
        for r in evaluate_all(q.with_values(lam=meas.lam)):
            if (r.statement_id, r.variant) in measured and np.any(r.applicable):
                assert list(measured[(r.statement_id, r.variant)].verdicts) == list(r.verdicts), r.statement_id


@pytest.mark.parametrize("network", ["dln", "vgg"])
def test_the_identical_non_bn_network_is_bn_folded_into_the_layer_and_has_gradient_g(network):
    model = tiny_model(network)
    x, t = tiny_batch(network)
    name = model.norm_blocks()[0][0]
    with capturing(model) as cap:
        out = model(x)
        loss = model.loss(out, t)
    g, = torch.autograd.grad(loss, cap[name]["z"])
    folded = fold_batchnorm(model, name, x)
    block = dict(folded.blocks())[name]
    assert block.norm is None                                        # no BN at that layer
    seen = {}
    block.linear.register_forward_hook(lambda mod, inp, y: seen.setdefault("y", y).retain_grad())
    out_folded = folded(x)
    folded.loss(out_folded, t).backward()
    # same outputs on this batch, and its layer-output gradient is the BN network's g = dL/dz
    torch.testing.assert_close(seen["y"].detach(), cap[name]["z"].detach(), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(out_folded.detach(), out.detach(), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(seen["y"].grad, g, rtol=1e-10, atol=1e-12)


def test_probe_rows_carry_step_layer_channel_statement_variant_sides_and_slacks():
    model = tiny_model("vgg")
    x, t = tiny_batch("vgg")
    meas = measure(model, x, t, {"conv01": np.array([1, 2])})[0]
    rows = probe_rows(7, "vgg", meas, evaluate_measurement(meas))
    assert rows
    for r in rows:
        assert {"step", "layer", "channel", "statement", "variant", "lhs", "rhs", "slack", "rel_slack",
                "tolerance"} <= set(r)
        assert r["step"] == 7 and r["layer"] == "vgg/conv01" and r["channel"] in (1, 2)
        assert r["statement"] in BY_ID
        assert r["variant"] in [v.name for v in BY_ID[r["statement"]].variants]
    assert {r["statement"] for r in rows} >= {"fact-c1", "thm-4.1", "thm-4.2"}


def test_a_probe_changes_no_parameter_gradient_or_running_statistic():
    model = tiny_model("vgg")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x, t = tiny_batch("vgg")
    measure(model, x, t, {"conv01": np.array([0]), "conv02": np.array([3])})
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())


def test_measure_refuses_an_eval_mode_network():
    model = tiny_model("dln").eval()
    with pytest.raises(ValueError, match="training-mode"):
        measure(model, *tiny_batch("dln"), {"fc01": np.array([0])})


def test_the_probe_of_noisy_bn_sees_the_noise_of_the_training_step_it_probes():
    config = with_overrides(TINY, norm="noisy-bn")
    model = build_model(config, "vgg").train()
    x, t = (a.float() if a.is_floating_point() else a for a in tiny_batch("vgg"))
    prober = Prober(config, "vgg", model)
    model.set_step(3)
    train_loss = model.loss(model(x), t).item()
    shadow = prober.shadow(model)
    shadow.set_step(3)
    with capturing(shadow):
        probe_loss = shadow.loss(shadow(x.double()), t).item()
    assert probe_loss == pytest.approx(train_loss, rel=1e-5)     # float32 vs float64 of one map
    shadow.set_step(4)
    with capturing(shadow):
        assert shadow.loss(shadow(x.double()), t).item() != pytest.approx(train_loss, rel=1e-5)


def test_probed_channels_are_a_reproducible_sample_fixed_for_the_run():
    a = probe_channels(0, "vgg", 2, 64, 8)
    assert np.array_equal(a, probe_channels(0, "vgg", 2, 64, 8))
    assert len(set(a)) == 8 and np.all(np.diff(a) > 0)
    assert not np.array_equal(a, probe_channels(0, "vgg", 3, 64, 8))
    assert np.array_equal(probe_channels(0, "dln", 0, 10, 20), np.arange(10))


def test_lambda_is_the_spectral_norm_of_the_im2col_matrix_that_makes_a_convolution_linear():
    conv = torch.nn.Conv2d(3, 5, 3, padding=1).double()
    x = torch.randn(2, 3, 6, 6, dtype=torch.float64)
    X = torch.nn.functional.unfold(x, 3, padding=1).transpose(1, 2).reshape(-1, 27)   # (n*H*W, 27)
    y = conv(x)
    y_j = channel_rows(y, torch.tensor([4]))[0]
    torch.testing.assert_close(y_j, X @ conv.weight[4].reshape(-1) + conv.bias[4])
    assert input_spectral_norm(x, conv) == pytest.approx(torch.linalg.matrix_norm(X, 2).item(), rel=1e-12)
    fc = torch.randn(7, 4, dtype=torch.float64)
    assert input_spectral_norm(fc, torch.nn.Linear(4, 4)) == pytest.approx(torch.linalg.matrix_norm(fc, 2).item(), rel=1e-12)
