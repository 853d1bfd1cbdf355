"""gpu_check.measure_ics: Definition 2.1 measured on the real networks, through the registry."""
import copy

import numpy as np
import pytest
import torch

from gpu_check.config import preset, with_overrides
from gpu_check.measure_hook import frozen_statistics
from gpu_check.measure_ics import (ICSHook, ics_gradients, ics_rows, ics_values, network_layers,
                                   next_parameters)
from gpu_check.train import StepContext, prepare_network

SMOKE = preset("smoke")
CPU = torch.device("cpu")
# Two float32 computations of one gradient along different code paths (functional_call and
# autograd.grad vs module.backward): float32 unit roundoff 6e-8 times ~100 for the sums of the
# backward pass through a few layers.
F32_RTOL = 1e-5


def smoke_net(network, norm="bn", step=0):
    config = with_overrides(SMOKE, norm=norm)
    net = prepare_network(config, network, CPU)
    net.model.set_step(step)
    return config, net


def state(net):
    return {k: v.clone() for k, v in net.model.state_dict().items()}


@pytest.mark.parametrize("norm", ["none", "bn", "noisy-bn", "l2"])
@pytest.mark.parametrize("network", ["dln", "vgg"])
def test_ics_of_the_first_layer_is_exactly_zero(network, norm):
    _, net = smoke_net(network, norm, step=3)
    x, t = net.batch(3)
    layers = ics_gradients(net.model, net.optimizer, x, t)
    first = layers[0]
    assert first.index == 1 and torch.equal(first.G, first.G_prime)      # bitwise, not approximately
    row = ics_rows(3, network, layers)[0]
    assert row["ics_l2"] == 0.0 and row["ics_cosine"] == pytest.approx(1.0)
    assert row["check"]["statement"] == "def-2.1" and row["check"]["verdict"] == "equality"
    assert all(r["ics_l2"] > 0 for r in ics_rows(3, network, layers)[1:])   # and later layers do shift


@pytest.mark.parametrize("network", ["dln", "vgg"])
def test_ics_is_zero_when_the_preceding_layers_learning_rate_is_zero(network):
    _, net = smoke_net(network, "bn")
    x, t = net.batch(0)
    layers = network_layers(net.model)
    params = dict(net.model.named_parameters())
    i = len(layers) - 1                                   # measure the last layer
    frozen = [params[n] for layer in layers[:i] for n in layer.params]
    rest = [params[n] for layer in layers[i:] for n in layer.params]
    still = torch.optim.SGD([{"params": frozen, "lr": 0.0}, {"params": rest, "lr": 0.05}])
    last = ics_gradients(net.model, still, x, t)[i]
    assert torch.equal(last.G, last.G_prime)
    moving = ics_gradients(net.model, torch.optim.SGD(net.model.parameters(), lr=0.05), x, t)[i]
    assert ics_values(moving.G, moving.G_prime)["ics_l2"] > 0     # the same layer with the update on


def test_G_and_G_prime_follow_definition_2_1_with_an_explicit_update():
    """G is the training gradient of W_i; G' is the gradient of W_i in a copy of the network whose
    layers 1..i-1 took the SGD step W - lr * grad (all their parameters), on the same batch."""
    _, net = smoke_net("dln", "bn")
    x, t = net.batch(0)
    lr = net.optimizer.param_groups[0]["lr"]
    measured = ics_gradients(net.model, net.optimizer, x, t)
    layers = network_layers(net.model)

    ref = copy.deepcopy(net.model)
    with frozen_statistics(ref):
        ref.loss(ref(x), t).backward()
    grads = {n: p.grad.clone() for n, p in ref.named_parameters()}
    for i, layer in enumerate(layers):
        assert torch.allclose(measured[i].G, grads[layer.weight], rtol=F32_RTOL, atol=0)
        moved = copy.deepcopy(net.model)
        with torch.no_grad():
            for n, p in moved.named_parameters():
                if any(n in earlier.params for earlier in layers[:i]):
                    p -= lr * grads[n]
        with frozen_statistics(moved):
            moved.loss(moved(x), t).backward()
        expected = dict(moved.named_parameters())[layer.weight].grad
        assert torch.allclose(measured[i].G_prime, expected, rtol=F32_RTOL, atol=F32_RTOL * expected.abs().max())


def test_the_update_is_the_optimisers_own_step_momentum_included():
    _, net = smoke_net("vgg", "bn")
    x, t = net.batch(0)
    opt = torch.optim.SGD(net.model.parameters(), lr=0.05, momentum=0.9)
    for step in range(2):                                   # build momentum state
        opt.zero_grad()
        net.model.loss(net.model(x), t).backward()
        opt.step()
    opt.zero_grad()
    grads = {n: torch.randn_like(p) for n, p in net.model.named_parameters()}
    before, buffers = state(net), copy.deepcopy(opt.state_dict())
    predicted = next_parameters(opt, net.model, grads)
    for k, v in opt.state_dict()["state"].items():                     # the live momentum is untouched
        assert torch.equal(v["momentum_buffer"], buffers["state"][k]["momentum_buffer"])
    twin, twin_opt = copy.deepcopy(net.model), None
    twin_opt = torch.optim.SGD(twin.parameters(), lr=0.05, momentum=0.9)
    twin_opt.load_state_dict(opt.state_dict())
    for n, p in twin.named_parameters():
        p.grad = grads[n].clone()
    twin_opt.step()
    for n, p in twin.named_parameters():
        assert torch.equal(predicted[n], p.detach()), n
    assert all(torch.equal(before[k], v) for k, v in net.model.state_dict().items())   # model untouched
    assert all(p.grad is None for p in net.model.parameters())


def test_ics_values_are_the_registry_l2_and_cosine():
    g = torch.tensor([[3.0, 0.0], [0.0, 4.0]])
    gp = torch.tensor([[0.0, 0.0], [0.0, 4.0]])
    v = ics_values(g, gp)
    assert v["ics_l2"] == pytest.approx(3.0) and v["grad_norm"] == pytest.approx(5.0)
    assert v["ics_cosine"] == pytest.approx(16.0 / 20.0)
    assert np.isnan(ics_values(g, torch.zeros_like(g))["ics_cosine"])    # no direction: NaN, not patched


def test_the_hook_leaves_weights_running_statistics_and_grads_alone_and_writes_every_layer():
    config, net = smoke_net("vgg", "bn")
    before = state(net)
    x, t = net.batch(0)
    rows = ICSHook(config)(StepContext(0, net, x, t, config))
    assert [r["index"] for r in rows] == list(range(1, len(network_layers(net.model)) + 1))
    assert rows[-1]["layer"] == "vgg/classifier" and rows[0]["layer"] == "vgg/conv01"
    assert all(torch.equal(before[k], v) for k, v in net.model.state_dict().items())
    assert all(p.grad is None for p in net.model.parameters())


def test_layers_run_from_the_input_to_the_output_and_own_their_norm_parameters():
    _, net = smoke_net("dln", "bn")
    layers = network_layers(net.model)
    assert [l.name for l in layers] == [f"fc{i:02d}" for i in range(1, SMOKE.dln.depth + 1)]
    assert layers[0].params == ("layers.0.linear.weight", "layers.0.norm.weight", "layers.0.norm.bias")
    assert layers[-1].params == (f"layers.{SMOKE.dln.depth - 1}.linear.weight",)     # the unnormalised output layer
