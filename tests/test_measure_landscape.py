"""gpu_check.measure_landscape: loss and gradient along the gradient (Section 3.1, Appendix A.2.2)."""
import numpy as np
import pytest
import torch

from gpu_check.config import preset, with_overrides
from gpu_check.measure_hook import frozen_statistics, loss_at
from gpu_check.measure_landscape import (STEP_RANGES, LandscapeHook, along_gradient, learning_rate,
                                         random_direction, step_sizes)
from gpu_check.train import StepContext, prepare_network

# float64 closed forms: the walk and the norms are a few dozen flops per entry
CLOSED_FORM_RTOL = 1e-10


def quadratic(seed=0, d=7):
    """L(theta) = 1/2 theta^T A theta - b^T theta over a parameter dict split in two tensors."""
    g = torch.Generator().manual_seed(seed)
    M = torch.randn(d, d, generator=g, dtype=torch.float64)
    A = M @ M.T + torch.eye(d, dtype=torch.float64)                     # (d, d) SPD
    b = torch.randn(d, generator=g, dtype=torch.float64)
    theta = torch.randn(d, generator=g, dtype=torch.float64)

    def loss(p):
        th = torch.cat([p["u"], p["v"].reshape(-1)])
        return 0.5 * th @ A @ th - b @ th

    return A, b, theta, loss, {"u": theta[:3].clone(), "v": theta[3:].reshape(2, 2).clone()}


def test_gradient_predictiveness_of_a_quadratic_matches_its_closed_form():
    A, b, theta, loss, params = quadratic()
    etas = step_sizes(0.01, *STEP_RANGES["dln"])
    land = along_gradient(loss, params, etas)
    g = A @ theta - b                                                    # grad L(theta)
    Ag = A @ g
    # grad L(theta - eta g) - g = -eta A g, so the change is eta ||A g||, linear in eta
    np.testing.assert_allclose(land.grad_change, etas * float(Ag.norm()), rtol=CLOSED_FORM_RTOL)
    # L(theta - eta g) = L(theta) - eta g.g + eta^2/2 g.A g
    L0 = float(0.5 * theta @ A @ theta - b @ theta)
    expected = L0 - etas * float(g @ g) + 0.5 * etas ** 2 * float(g @ Ag)
    np.testing.assert_allclose(land.losses, expected, rtol=CLOSED_FORM_RTOL)
    assert land.loss0 == pytest.approx(L0, rel=CLOSED_FORM_RTOL)
    # effective beta = ||A g|| / ||g||: the curvature of A along g, whatever eta
    assert land.beta_eff == pytest.approx(float(Ag.norm() / g.norm()), rel=CLOSED_FORM_RTOL)
    np.testing.assert_allclose(land.distance, etas * float(g.norm()), rtol=CLOSED_FORM_RTOL)


def test_a_linear_loss_has_a_perfectly_predictive_gradient():
    c = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    land = along_gradient(lambda p: c @ p["w"], {"w": torch.zeros(3, dtype=torch.float64)}, [0.1, 1.0, 10.0])
    assert np.all(land.grad_change == 0) and land.beta_eff == 0
    np.testing.assert_allclose(land.losses, -np.array([0.1, 1.0, 10.0]) * float(c @ c))


def test_step_sizes_span_appendix_a22_ranges_times_the_learning_rate():
    vgg = step_sizes(0.1, *STEP_RANGES["vgg"])
    assert vgg[0] == pytest.approx(0.05) and vgg[-1] == pytest.approx(0.4)     # eta = 0.4 cap of Figure 4
    dln = step_sizes(1e-6, *STEP_RANGES["dln"])
    assert dln[0] == pytest.approx(1e-8) and dln[-1] == pytest.approx(3e-5)
    assert np.all(np.diff(np.log(dln)) > 0)
    with pytest.raises(ValueError, match="lr=0"):
        step_sizes(0.0, 0.5, 4.0)


@pytest.mark.parametrize("network", ["dln", "vgg"])
def test_the_hook_walks_the_real_network_without_moving_it(network):
    config = with_overrides(preset("smoke"), norm="bn")
    net = prepare_network(config, network, torch.device("cpu"))
    before = {k: v.clone() for k, v in net.model.state_dict().items()}
    x, t = net.batch(0)
    row, = LandscapeHook(config)(StepContext(0, net, x, t, config))
    lr = learning_rate(net.optimizer)
    assert row["etas"][0] == pytest.approx(lr * STEP_RANGES[network][0])
    assert row["etas"][-1] == pytest.approx(lr * STEP_RANGES[network][1])
    assert all(torch.equal(before[k], v) for k, v in net.model.state_dict().items())
    assert all(p.grad is None for p in net.model.parameters())
    with torch.no_grad(), frozen_statistics(net.model):
        assert row["loss0"] == pytest.approx(float(loss_at(net.model, dict(net.model.named_parameters()), x, t)))
    assert row["loss_min"] <= min(row["losses"]) and row["grad_change_max"] == max(row["grad_change"])
    assert row["beta_eff"] > 0


def test_several_learning_rates_have_no_single_step_size():
    w1, w2 = torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([{"params": [w1], "lr": 0.1}, {"params": [w2], "lr": 0.2}])
    with pytest.raises(ValueError, match=r"\[0.1, 0.2\]"):
        learning_rate(opt)


def test_the_random_direction_walk_of_a_quadratic_matches_its_closed_form():
    """Section 3.2's other directions: along d, grad L(theta - eta d) - g = -eta A d, so the change
    is eta ||A d|| and the effective beta ||A d|| / ||d||; each tensor of d has its gradient's norm."""
    A, b, theta, loss, params = quadratic()
    etas = step_sizes(0.01, *STEP_RANGES["dln"])
    direction_of = random_direction(seed=3, network="dln", step=40)
    grads = {"u": (A @ theta - b)[:3], "v": (A @ theta - b)[3:].reshape(2, 2)}
    d_parts = direction_of(grads)
    for n in grads:
        assert float(d_parts[n].norm()) == pytest.approx(float(grads[n].norm()), rel=CLOSED_FORM_RTOL)
    d = torch.cat([d_parts["u"], d_parts["v"].reshape(-1)])
    land = along_gradient(loss, params, etas, direction_of)
    g = A @ theta - b
    Ad = A @ d
    np.testing.assert_allclose(land.grad_change, etas * float(Ad.norm()), rtol=CLOSED_FORM_RTOL)
    L0 = float(0.5 * theta @ A @ theta - b @ theta)
    np.testing.assert_allclose(land.losses, L0 - etas * float(g @ d) + 0.5 * etas ** 2 * float(d @ Ad),
                               rtol=CLOSED_FORM_RTOL)
    assert land.beta_eff == pytest.approx(float(Ad.norm() / d.norm()), rel=CLOSED_FORM_RTOL)
    # not the gradient, drawn from (seed, network, step) alone
    assert abs(float(d @ g) / float(d.norm() * g.norm())) < 0.99
    again = direction_of(grads)
    assert all(torch.equal(again[n], d_parts[n]) for n in grads)
    other = random_direction(seed=3, network="dln", step=41)(grads)
    assert not torch.equal(other["u"], d_parts["u"])
