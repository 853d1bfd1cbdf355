"""gpu_check.norms: standard, noisy (Algorithm 1) and l_p normalisations."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import stats


from gpu_check.config import NoiseConfig
from gpu_check.norms import Normalisation, apply_noise, noise_generator, sample_noise

ALGORITHM_1 = NoiseConfig()      # n_mu = 0.5, n_sigma = 1.25, r_mu = r_sigma = 0.1 (Appendix A.2.1)
EPS = 1e-5
# Significance for the distribution tests: the draws are seeded, so a test either always passes
# or always fails; 1e-3 only guards against having chosen an unlucky seed for a correct sampler.
P_MIN = 1e-3


pytestmark = pytest.mark.usefixtures("one_cpu_thread")


def layer(kind, channels, **kw):
    return Normalisation(kind, channels, eps=EPS, momentum=0.1, noise=ALGORITHM_1, seed=7, layer_index=3, **kw)


def test_bn_is_torch_training_mode_batchnorm_over_batch_height_and_width():
    y = torch.randn(6, 4, 5, 5, dtype=torch.float64)
    bn = layer("bn", 4).double()
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([1.0, 2.0, -1.0, 0.5]))
        bn.bias.copy_(torch.tensor([0.0, 1.0, 2.0, 3.0]))
    z = bn(y)
    mu = y.mean((0, 2, 3), keepdim=True)
    var = y.var((0, 2, 3), unbiased=False, keepdim=True)
    expected = bn.weight.view(1, -1, 1, 1) * (y - mu) / torch.sqrt(var + EPS) + bn.bias.view(1, -1, 1, 1)
    torch.testing.assert_close(z, expected)


def test_noisy_bn_output_is_s_times_bn_plus_m_with_the_draws_of_its_step():
    torch.manual_seed(0)
    y = torch.randn(8, 3, 4, 4)
    noisy = layer("noisy-bn", 3)
    noisy.step = 5
    out = noisy(y)
    gen = noise_generator(7, 3, 5, y.device)
    draws = sample_noise(gen, tuple(y.shape), ALGORITHM_1, y.device)
    bn = F.batch_norm(y, None, None, noisy.weight, noisy.bias, training=True, eps=EPS)
    assert torch.equal(out, draws.scale * bn + draws.shift)
    assert torch.equal(out, apply_noise(bn, draws))


def test_noise_written_into_given_tensors_of_any_strides_is_the_draw_itself_bit_for_bit():
    """sample_noise(out=...) (the batched DLN route writes each network's noise transposed into a
    stack) gives the values of a plain draw, which are Algorithm 1's lines 12-13 written out."""
    for shape in ((1000, 10), (6, 3, 4, 5)):
        plain = sample_noise(noise_generator(7, 3, 5, "cpu"), shape, ALGORITHM_1, "cpu")
        stack = torch.empty((2,) + tuple(reversed(shape)))
        given = sample_noise(noise_generator(7, 3, 5, "cpu"), shape, ALGORITHM_1, "cpu",
                             out=(stack[0].permute(*reversed(range(len(shape)))),
                                  stack[1].permute(*reversed(range(len(shape))))))
        gen = noise_generator(7, 3, 5, "cpu")          # the draws in order: mu, sigma, shift's u, scale's e
        kw = dict(generator=gen, dtype=torch.float32)
        mu = (2 * torch.rand(shape[1], **kw) - 1) * ALGORITHM_1.n_mu
        sigma = 1 + torch.rand(shape[1], **kw) * (ALGORITHM_1.n_sigma - 1)
        view = (1, -1) + (1,) * (len(shape) - 2)
        shift = mu.view(view) + (2 * torch.rand(shape, **kw) - 1) * ALGORITHM_1.r_mu
        scale = sigma.view(view) + torch.randn(shape, **kw) * ALGORITHM_1.r_sigma
        for d in (plain, given):
            assert torch.equal(d.mu, mu) and torch.equal(d.sigma, sigma)
            assert torch.equal(d.shift, shift) and torch.equal(d.scale, scale)
        assert torch.equal(stack[0].permute(*reversed(range(len(shape)))), shift)


def test_a_given_noise_sample_is_applied_instead_of_a_draw():
    noisy = layer("noisy-bn", 4)
    noisy.step = 5
    y = torch.randn(16, 4, generator=torch.Generator().manual_seed(0))
    other = sample_noise(noise_generator(8, 0, 0, "cpu"), (16, 4), ALGORITHM_1, "cpu")
    z = noisy.normalise(y)
    assert torch.equal(noisy.perturb(z, other), apply_noise(z, other))
    assert not torch.equal(noisy.perturb(z, other), noisy.perturb(z))


def test_noisy_none_adds_the_noise_of_noisy_bn_to_the_unnormalised_output_and_learns_nothing():
    """Section 2.1's standard network with the same noise: y -> s y + m, the draws of noisy-bn's
    step and layer; no gamma or beta; the identity in evaluation mode."""
    torch.manual_seed(0)
    y = torch.randn(8, 3, 4, 4)
    noisy = layer("noisy-none", 3)
    noisy.step = 5
    gen = noise_generator(7, 3, 5, y.device)
    draws = sample_noise(gen, tuple(y.shape), ALGORITHM_1, y.device)
    assert torch.equal(noisy(y), apply_noise(y, draws))
    assert list(noisy.parameters()) == []
    noisy.eval()
    assert torch.equal(noisy(y), y)


def test_noisy_bn_draws_depend_on_the_step_only_and_vanish_in_eval_mode():
    y = torch.randn(8, 3)
    noisy = layer("noisy-bn", 3)
    noisy.step = 5
    a, b = noisy(y), noisy(y)
    noisy.step = 6
    c = noisy(y)
    assert torch.equal(a, b) and not torch.equal(a, c)
    noisy.eval()
    plain = layer("bn", 3)
    plain.load_state_dict(noisy.state_dict())
    plain.eval()
    assert torch.equal(noisy(y), plain(y))


def test_noisy_bn_channel_parameters_follow_algorithm_1_lines_7_and_8():
    C = 4000
    d = sample_noise(noise_generator(0, 0, 0, "cpu"), (2, C), ALGORITHM_1, "cpu")
    mu, sigma = d.mu.double().numpy(), d.sigma.double().numpy()
    assert mu.min() >= -0.5 and mu.max() <= 0.5 and sigma.min() >= 1 and sigma.max() <= 1.25
    assert stats.kstest(mu, "uniform", args=(-0.5, 1.0)).pvalue > P_MIN            # U(-n_mu, n_mu)
    assert stats.kstest(sigma, "uniform", args=(1.0, 0.25)).pvalue > P_MIN         # U(1, n_sigma)


def test_noisy_bn_per_activation_noise_follows_lines_12_and_13_with_height_width_as_batch():
    n, C, H, W = 16, 6, 8, 8
    d = sample_noise(noise_generator(1, 2, 3, "cpu"), (n, C, H, W), ALGORITHM_1, "cpu")
    shift_dev = (d.shift - d.mu.view(1, -1, 1, 1)).double()      # m_ij - mu_j ~ U(-r_mu, r_mu)
    scale_dev = (d.scale - d.sigma.view(1, -1, 1, 1)).double()   # s_ij - sigma_j ~ N(0, r_sigma)
    assert shift_dev.abs().max() <= 0.1 + 1e-6                    # float32 rounding of mu + u
    assert stats.kstest(shift_dev.flatten().numpy(), "uniform", args=(-0.1, 0.2)).pvalue > P_MIN
    assert stats.kstest(scale_dev.flatten().numpy() / 0.1, "norm").pvalue > P_MIN
    # every (sample, h, w) position gets its own draw, the parameters are shared per channel
    assert d.shift[0, 0].unique().numel() == H * W


def test_noisy_bn_injects_the_mean_and_variance_algorithm_1_prescribes():
    """With gamma = 1, beta = 0 the BN output z has mean 0 and variance var/(var+eps) ~ 1 per
    channel, so a = s z + m has mean mu_j and variance (sigma_j^2 + r_sigma^2) rho + r_mu^2/3."""
    torch.manual_seed(1)
    n, C, H, W = 64, 5, 16, 16
    M = n * H * W
    noisy = layer("noisy-bn", C).double()
    noisy.step = 11
    y = 3.0 + 2.0 * torch.randn(n, C, H, W, dtype=torch.float64)
    a = noisy(y)
    d = sample_noise(noise_generator(7, 3, 11, "cpu"), (n, C, H, W), ALGORITHM_1, "cpu")
    mu_j, sigma_j = d.mu.double(), d.sigma.double()
    rho = (y.var((0, 2, 3), unbiased=False) / (y.var((0, 2, 3), unbiased=False) + EPS))
    var_j = (sigma_j**2 + 0.1**2) * rho + 0.1**2 / 3
    mean_err = (a.mean((0, 2, 3)) - mu_j).abs()
    var_err = (a.var((0, 2, 3), unbiased=False) - var_j).abs()
    # Tolerances: 6 standard errors.  The mean of M draws of variance var_j: sqrt(var_j/M); the
    # variance estimate of a near-Gaussian: var_j sqrt(2/M), doubled for the excess kurtosis of
    # a product s*z (kurtosis of s*z <= 3 (1 + 2 r_sigma^2/sigma^2)^2 < 4).
    assert (mean_err < 6 * torch.sqrt(var_j / M)).all(), mean_err
    assert (var_err < 6 * 2 * var_j * np.sqrt(2 / M)).all(), var_err


@pytest.mark.parametrize("kind, scale", [
    ("l1", lambda y: y.abs().mean(0) + EPS),
    ("l2", lambda y: torch.sqrt((y * y).mean(0) + EPS)),
    ("linf", lambda y: y.abs().amax(0) + EPS),
])
def test_lp_normalisation_centres_then_divides_by_the_lp_average_taken_before_centring(kind, scale):
    y = 2.0 + torch.randn(32, 3, dtype=torch.float64)
    norm = layer(kind, 3).double()
    z = norm(y)
    torch.testing.assert_close(z, (y - y.mean(0)) / scale(y))
    torch.testing.assert_close(z.mean(0), torch.zeros(3, dtype=torch.float64))


def test_running_statistics_move_in_training_but_not_when_a_probe_switches_them_off():
    y = 5 + torch.randn(16, 3)
    for kind in ("bn", "l2"):
        norm = layer(kind, 3)
        norm.update_running = False
        norm(y)
        assert torch.equal(norm.running_mean, torch.zeros(3))
        norm.update_running = True
        norm(y)
        assert norm.running_mean.abs().min() > 0.1


def test_an_unknown_kind_is_refused_by_name():
    with pytest.raises(ValueError, match="'group'"):
        layer("group", 3)


def test_bn_with_epsilon_zero_is_the_papers_map_and_keeps_running_statistics():
    y = 1.0 + 3.0 * torch.randn(10, 2, 3, 3, dtype=torch.float64)
    bn = Normalisation("bn", 2, eps=0.0, momentum=0.5, noise=ALGORITHM_1, seed=0, layer_index=0).double()
    z = bn(y)
    mu = y.mean((0, 2, 3), keepdim=True)
    sigma = y.std((0, 2, 3), unbiased=False, keepdim=True)         # no epsilon
    torch.testing.assert_close(z, (y - mu) / sigma)
    torch.testing.assert_close(bn.running_mean, 0.5 * mu.flatten())
    torch.testing.assert_close(bn.running_scale, 0.5 + 0.5 * y.var((0, 2, 3), unbiased=True))


def test_the_noise_of_a_step_is_drawn_once_and_equals_a_fresh_draw():
    """Many forward passes of one step (a measurement's, a probe's) reuse its draw; a new step or
    a new shape draws afresh, and every draw is the one noise_generator(seed, layer, step) gives."""
    noisy = layer("noisy-bn", 4)
    y = torch.randn(16, 4, generator=torch.Generator().manual_seed(0))
    noisy.step = 5
    first = noisy._drawn_noise((16, 4), "cpu")
    assert noisy._drawn_noise((16, 4), "cpu") is first
    fresh = sample_noise(noise_generator(7, 3, 5, "cpu"), (16, 4), ALGORITHM_1, "cpu")
    assert torch.equal(first.shift, fresh.shift) and torch.equal(first.scale, fresh.scale)
    assert torch.equal(noisy(y), apply_noise(noisy.normalise(y), fresh))
    noisy.step = 6
    assert not torch.equal(noisy._drawn_noise((16, 4), "cpu").shift, fresh.shift)
    assert noisy._drawn_noise((8, 4), "cpu").shift.shape == (8, 4)
