"""gpu_check.probes: what double backward measures on the real network equals what the
numeric layer computes from the same inputs, and the rows go through the registry."""
import contextlib
import copy
import dataclasses

import numpy as np
import pytest
import torch


from gpu_check.config import DLNConfig, VGGConfig, preset, with_overrides
from gpu_check.models import build_model
from gpu_check.probes import (ModelProbe, ProbeError, SiteRecorder, channel_rows, evaluate_measurement,
                              input_spectral_norms, probe_channels, probe_rows)
from gpu_check.train import probe_of
from numeric.quantities import bn_channel_quantities
from theory import bn
from theory.bn import BatchNormInputError
from theory.ops import TorchOps
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


def measure(model, x, t, channels):
    """The probe's measurements of ``model`` (a float64 tiny network) on (x, t) at the given
    channels (layer name -> indices)."""
    names = {b.norm: n for n, b in model.norm_blocks()}
    core = ModelProbe(model, channels=1, seed=0, names=names)
    core.channels = {n: np.asarray(channels.get(n, [0])) for n in core.channels}
    measurements, errors = core.measure(0, lambda m: m.loss(m(x), t))
    assert not errors
    return [m for m in measurements if m.layer in channels]


@contextlib.contextmanager
def capturing(model):
    """The sites of a forward pass of ``model`` (hooks of gpu_check.probes), by layer name."""
    recorder = SiteRecorder(model, {b.norm: n for n, b in model.norm_blocks()})
    try:
        with recorder.record() as sites:
            yield _ByName(sites)
    finally:
        recorder.remove()


class _ByName:
    """The sites recorded so far, looked up by layer name."""

    def __init__(self, sites):
        self.sites = sites

    def __getitem__(self, name):
        return next(s for s in self.sites if s.name == name)


def fold_batchnorm(model, layer: str, inputs):
    """The "identical non-BN network" of a probed layer, built explicitly: a copy of ``model``
    in which layer ``layer``'s BatchNorm is folded into its linear map, W' = (gamma/sigma) W,
    b' = gamma (b - mu)/sigma + beta, with mu, sigma the batch statistics (theory.bn) of
    ``inputs`` (so its output equals z on this batch), and no normalisation there."""
    clone = copy.deepcopy(model)
    block = dict(model.norm_blocks())[layer]
    seen = {}
    handle = block.linear.register_forward_hook(lambda mod, inp, y: seen.setdefault("y", y.detach()))
    with torch.no_grad():
        model(inputs)
    handle.remove()
    y = channel_rows(seen["y"], torch.arange(seen["y"].shape[1]))              # (C, m)
    mu, sigma, _ = bn.batch_statistics(TorchOps(), y, y.shape[1], block.norm.eps)   # (C,), (C,)
    scale = block.norm.weight.detach() / sigma                               # (C,)
    target = dict(clone.norm_blocks())[layer]
    old = target.linear
    if isinstance(old, torch.nn.Linear):
        new = torch.nn.Linear(old.in_features, old.out_features, bias=True).to(old.weight)
    else:
        new = torch.nn.Conv2d(old.in_channels, old.out_channels, old.kernel_size, padding=old.padding).to(old.weight)
    bias = old.bias.detach() if old.bias is not None else torch.zeros_like(mu)
    with torch.no_grad():
        new.weight.copy_(old.weight * scale.view((-1,) + (1,) * (old.weight.dim() - 1)))
        new.bias.copy_(scale * (bias - mu) + block.norm.bias.detach())
    target.linear, target.norm = new, None
    return clone


def basis_position(z, j, b):
    """Index in z of entry b of channel j's flattened (n, h, w) values (channel_rows' order)."""
    rest = np.unravel_index(b, (z.shape[0],) + tuple(z.shape[2:]))
    return (rest[0], j) + tuple(rest[1:])


def full_channel_hessians(model, x, t, layer, chans):
    """d^2L/dz_j^2 (N, m, m) for each channel j, one Hessian-vector product per column."""
    with capturing(model) as cap:
        loss = model.loss(model(x), t)
    z = cap[layer].z
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
    g, = torch.autograd.grad(loss, cap[name].z)
    folded = fold_batchnorm(model, name, x)
    block = dict(folded.blocks())[name]
    assert block.norm is None                                        # no BN at that layer
    seen = {}
    block.linear.register_forward_hook(lambda mod, inp, y: seen.setdefault("y", y).retain_grad())
    out_folded = folded(x)
    folded.loss(out_folded, t).backward()
    # same outputs on this batch, and its layer-output gradient is the BN network's g = dL/dz
    torch.testing.assert_close(seen["y"].detach(), cap[name].z.detach(), rtol=1e-12, atol=1e-12)
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
    with pytest.raises(ProbeError, match="eval mode"):
        measure(model, *tiny_batch("dln"), {"fc01": np.array([0])})


def test_the_probe_of_noisy_bn_sees_the_noise_of_the_training_step_it_probes():
    config = with_overrides(TINY, norm="noisy-bn")
    model = build_model(config, "vgg").train()
    x, t = (a.float() if a.is_floating_point() else a for a in tiny_batch("vgg"))
    probe = probe_of(config, "vgg", model)
    seen = []

    def closure(m):
        loss = m.loss(m(x), t)             # x is float32: the shadow's pre-hook casts it
        seen.append(loss.item())
        return loss

    model.set_step(3)
    train_loss = model.loss(model(x), t).item()
    probe.measure(3, closure)
    assert seen[-1] == pytest.approx(train_loss, rel=1e-5)       # float32 vs float64 of one map
    model.set_step(4)
    probe.measure(4, closure)
    assert seen[-1] != pytest.approx(train_loss, rel=1e-5)       # step 4 draws other noise


def test_probed_channels_are_a_reproducible_sample_fixed_for_the_run():
    a = probe_channels(0, 1, 2, 64, 8)
    assert np.array_equal(a, probe_channels(0, 1, 2, 64, 8))
    assert len(set(a)) == 8 and np.all(np.diff(a) > 0)
    assert not np.array_equal(a, probe_channels(0, 1, 3, 64, 8))
    assert not np.array_equal(a, probe_channels(0, 0, 2, 64, 8))      # another network of the run
    assert np.array_equal(probe_channels(0, 0, 0, 10, 20), np.arange(10))


def test_lambda_is_the_spectral_norm_of_the_im2col_matrix_that_makes_a_convolution_linear():
    conv = torch.nn.Conv2d(3, 5, 3, padding=1).double()
    x = torch.randn(2, 3, 6, 6, dtype=torch.float64)
    X = torch.nn.functional.unfold(x, 3, padding=1).transpose(1, 2).reshape(-1, 27)   # (n*H*W, 27)
    y = conv(x)
    y_j = channel_rows(y, torch.tensor([4]))[0]
    torch.testing.assert_close(y_j, X @ conv.weight[4].reshape(-1) + conv.bias[4])
    lam, note = input_spectral_norms(x, conv, [4])
    assert note == "" and lam[0] == pytest.approx(torch.linalg.matrix_norm(X, 2).item(), rel=1e-12)
    fc = torch.randn(7, 4, dtype=torch.float64)
    lam, _ = input_spectral_norms(fc, torch.nn.Linear(4, 4), [0, 3])
    assert lam == pytest.approx([torch.linalg.matrix_norm(fc, 2).item()] * 2, rel=1e-12)


def test_lambdas_gram_matrix_accumulated_over_chunks_of_samples_is_the_whole_batchs(monkeypatch):
    from gpu_check import probes
    conv = torch.nn.Conv2d(4, 6, 3, padding=1, groups=2, bias=False).double()
    x = torch.randn(5, 4, 6, 6, dtype=torch.float64)
    whole = probes.input_matrix_grams(x, conv)
    monkeypatch.setattr(probes, "_GRAM_ELEMENTS", 2 * 4 * 9 * 36)       # two samples' patches a chunk
    for a, b in zip(whole, probes.input_matrix_grams(x, conv)):
        torch.testing.assert_close(a, b, rtol=1e-13, atol=1e-12)


@pytest.mark.parametrize("stride, padding, dilation, groups", [(2, 1, 1, 1), (1, 2, 2, 1), (2, 0, 1, 3), (1, 1, 1, 2)])
def test_lambda_of_a_strided_dilated_grouped_convolution_is_that_of_the_patches_of_the_channels_group(
        stride, padding, dilation, groups):
    conv = torch.nn.Conv2d(6, 6, 3, stride=stride, padding=padding, dilation=dilation, groups=groups,
                           bias=False).double()
    x = torch.randn(3, 6, 9, 9, dtype=torch.float64)
    y = conv(x)
    per = 6 // groups
    for j in range(6):
        grp = j // per                                     # channel j reads input channels of group grp
        X = torch.nn.functional.unfold(x[:, grp * per:(grp + 1) * per], 3, dilation=dilation, padding=padding,
                                       stride=stride).transpose(1, 2).reshape(-1, per * 9)   # (m, d)
        torch.testing.assert_close(channel_rows(y, torch.tensor([j]))[0], X @ conv.weight[j].reshape(-1))
        lam, note = input_spectral_norms(x, conv, [j])
        assert note == "" and lam[0] == pytest.approx(torch.linalg.matrix_norm(X, 2).item(), rel=1e-12)


def test_lambda_is_not_claimed_for_a_layer_without_an_im2col_matrix():
    conv = torch.nn.Conv2d(2, 2, 3, padding=1, padding_mode="reflect").double()
    lam, note = input_spectral_norms(torch.randn(2, 2, 4, 4, dtype=torch.float64), conv, [0])
    assert lam is None and "padding_mode 'reflect'" in note
    lam, note = input_spectral_norms(torch.zeros(4, 3, dtype=torch.float64), torch.nn.Linear(3, 2), [0])
    assert lam is None and "is 0" in note


# Two float64 evaluations of one convolution gradient (or Hessian-vector product) that may sum
# their at most 2 * C_in/groups * prod(kernel) <= 64 terms in different orders: relative error
# <= 64 u each (Higham's bound n u for a sum of n terms), twice through tanh's derivatives.
ADJOINT_RTOL = 4 * 64 * UNIT_ROUNDOFF


@pytest.mark.parametrize("dims, options, x_shape, w_shape", [
    (2, dict(stride=2, padding=1, dilation=2, groups=2), (3, 4, 11, 9), (6, 2, 3, 3)),
    (1, dict(stride=3, padding=2), (2, 3, 17), (5, 3, 4)),
    (3, dict(stride=(1, 2, 1), padding=(0, 1, 1)), (2, 2, 5, 6, 7), (3, 2, 2, 3, 3)),
    (2, dict(), (2, 3, 5, 5), (4, 3, 3, 3))])
def test_the_probes_convolution_with_adjoint_backward_gives_torchs_gradient_and_hessian_vector_products(
        dims, options, x_shape, w_shape):
    """The shadow's convolutions run with their adjoint as a differentiable backward
    (probes._AdjointConvolutions); g and H u through them are torch's own, for strides that leave
    a remainder (output_padding), dilation, groups and 1-3 spatial dims."""
    from gpu_check.probes import _AdjointConvolutions
    conv = {1: torch.nn.functional.conv1d, 2: torch.nn.functional.conv2d, 3: torch.nn.functional.conv3d}[dims]
    gen = torch.Generator().manual_seed(dims)
    x = torch.randn(x_shape, dtype=torch.float64, generator=gen).requires_grad_()
    w = torch.randn(w_shape, dtype=torch.float64, generator=gen)
    b = torch.randn(w_shape[0], dtype=torch.float64, generator=gen)
    u = torch.randn(x_shape, dtype=torch.float64, generator=gen)
    results = {}
    for adjoint in (False, True):
        with _AdjointConvolutions() if adjoint else contextlib.nullcontext():
            y = conv(x, w, b, **options)
        assert (type(y.grad_fn).__name__ == "_ConvolutionWithAdjointBackward") == adjoint
        g, = torch.autograd.grad((torch.tanh(y) ** 2).sum(), x, create_graph=True)
        Hu, = torch.autograd.grad(g, x, u)
        results[adjoint] = (g.detach(), Hu)
    for mine, torchs in zip(results[True], results[False]):
        assert (mine - torchs).abs().max() <= ADJOINT_RTOL * torchs.abs().max()


def test_a_convolution_whose_weight_needs_a_gradient_runs_as_torch_defines_it_under_the_probe():
    from gpu_check.probes import _AdjointConvolutions
    w = torch.randn(2, 3, 3, 3, dtype=torch.float64, requires_grad=True)
    x = torch.randn(1, 3, 5, 5, dtype=torch.float64, requires_grad=True)
    with _AdjointConvolutions():
        y = torch.nn.functional.conv2d(x, w, padding="same")
        z = torch.nn.functional.conv2d(x, w.detach(), padding="same")    # string padding: torch's own too
    assert type(y.grad_fn).__name__ == type(z.grad_fn).__name__ == "ConvolutionBackward0"


@pytest.mark.parametrize("network", ["dln", "vgg"])
def test_batched_and_chunked_hessian_products_equal_one_product_per_vector(network, monkeypatch):
    """hessian_products: z- and y-vectors in one batched pass (entries carry their vector on g or
    on v) give the products of separate passes, whatever the chunk boundaries."""
    from gpu_check import probes
    model = tiny_model(network)
    x, t = tiny_batch(network)
    layer = model.norm_blocks()[0][0]
    with capturing(model) as cap:
        loss = model.loss(model(x), t)
    site = cap[layer]
    gz, gy = torch.autograd.grad(loss, [site.z, site.y], create_graph=True)
    gen = torch.Generator().manual_seed(1)
    U = torch.randn((5,) + tuple(site.z.shape), dtype=torch.float64, generator=gen)
    W = torch.randn((3,) + tuple(site.y.shape), dtype=torch.float64, generator=gen)
    expected_z = torch.stack([torch.autograd.grad(gz, site.z, u, retain_graph=True)[0] for u in U])
    expected_y = torch.stack([torch.autograd.grad(gy, site.y, w, retain_graph=True)[0] for w in W])
    for per_chunk in (1, 2, 3, 8):                # chunks of z only, of both kinds and of y only
        monkeypatch.setattr(probes, "_HVP_ELEMENTS", per_chunk * site.z.numel())
        got = {"z": torch.zeros_like(expected_z), "y": torch.zeros_like(expected_y)}
        for kind, k, P in probes.hessian_products(gz, gy, site.z, site.y, U, W):
            got[kind][k:k + len(P)] += P
        torch.testing.assert_close(got["z"], expected_z, rtol=ADJOINT_RTOL, atol=0)
        torch.testing.assert_close(got["y"], expected_y, rtol=ADJOINT_RTOL, atol=0)


def test_sites_evaluated_as_one_batch_get_the_results_of_their_own_evaluation_and_a_refused_site_its_error():
    from gpu_check.probes import evaluate_measurements
    model = tiny_model("dln")
    x, t = tiny_batch("dln")
    sites = measure(model, x, t, {name: [0, 2] for name, _ in model.norm_blocks()})
    broken = dataclasses.replace(sites[1], gamma=np.zeros_like(sites[1].gamma), layer="broken")  # gamma = 0
    batch = sites + [broken]
    assert len({(m.y.shape[1], m.eps, m.lam is None) for m in batch}) == 1      # one group: one batch
    got = evaluate_measurements(batch)
    assert isinstance(got[-1], BatchNormInputError) and "gamma = 0" in str(got[-1])
    for m, results in zip(sites, got):
        alone = evaluate_measurement(m)
        assert [(r.statement_id, r.variant) for r in results] == [(r.statement_id, r.variant) for r in alone]
        for r, s in zip(results, alone):
            for k in ("applicable", "lhs", "rhs", "slack", "rel_slack", "tolerance", "verdicts"):
                np.testing.assert_array_equal(getattr(r, k), getattr(s, k))
