"""gpu_check.measure_distributions: sampled units' batch distributions and their step-to-step moments."""
import numpy as np
import pytest
import torch

from gpu_check.config import preset, with_overrides
from gpu_check.measure_distributions import (QUANTILES, DistributionHook, moment_changes, sample_units,
                                             unit_statistics)
from gpu_check.train import StepContext, prepare_network

SMOKE = preset("smoke")


def measure(network, norm, step=0):
    config = with_overrides(SMOKE, norm=norm)
    net = prepare_network(config, network, torch.device("cpu"))
    net.model.set_step(step)
    x, t = net.batch(step)
    return DistributionHook(config)(StepContext(step, net, x, t, config))


def test_units_are_a_reproducible_sample_fixed_by_the_seed():
    a = sample_units(0, "vgg", 3, 64)
    assert np.array_equal(a, sample_units(0, "vgg", 3, 64)) and len(a) == 4 and np.all(np.diff(a) > 0)
    assert not np.array_equal(a, sample_units(1, "vgg", 3, 64))
    assert np.array_equal(sample_units(0, "dln", 0, 3), [0, 1, 2])          # fewer channels than asked: all


def test_unit_statistics_are_the_mean_biased_variance_and_quantiles():
    v = torch.tensor([[1.0, 2.0, 3.0, 4.0, 10.0]], dtype=torch.float64)
    s = unit_statistics(v)
    assert s["mean"][0] == pytest.approx(4.0) and s["var"][0] == pytest.approx(10.0)
    np.testing.assert_allclose(s["quantiles"][0], np.quantile(v.numpy()[0], QUANTILES))


def test_batchnorm_fixes_the_first_two_moments_and_noisy_batchnorm_does_not():
    """The known effect Figure 2 is about: at initialisation (gamma = 1, beta = 0) a BN unit has
    batch mean 0 and variance 1 (up to epsilon); Algorithm 1's noise moves both."""
    bn = measure("vgg", "bn")
    out = [r for r in bn if r["where"] == "output"]
    assert all(abs(r["mean"]) < 1e-5 and abs(r["var"] - 1) < 1e-3 for r in out)
    pre = [r for r in bn if r["where"] == "pre-norm"]              # what the normalisation receives
    assert len(pre) == len(out) and max(abs(r["var"] - 1) for r in pre) > 0.05
    noisy = [r for r in measure("vgg", "noisy-bn") if r["where"] == "output"]
    assert max(abs(r["mean"]) for r in noisy) > 0.05 and max(abs(r["var"] - 1) for r in noisy) > 0.05
    plain = measure("vgg", "none")
    assert {r["where"] for r in plain} == {"output"}               # no normalisation: one activation
    assert max(abs(r["var"] - 1) for r in plain) > 0.05            # and nothing normalises it


def test_records_cover_every_block_at_its_batch_size():
    rows = [r for r in measure("dln", "bn") if r["where"] == "output"]
    assert sorted({r["layer"] for r in rows}) == [f"dln/fc{i:02d}" for i in range(1, SMOKE.dln.depth + 1)]
    assert {r["m"] for r in rows} == {SMOKE.dln.n_samples}
    vgg = measure("vgg", "l1")
    side = SMOKE.vgg.image_size
    assert {r["m"] for r in vgg if r["layer"] == "vgg/conv01"} == {SMOKE.vgg.batch_size * side * side}


def test_moment_changes_pair_each_step_with_the_next():
    rows = [{"network": "vgg", "layer": "vgg/conv01", "unit": 2, "step": s, "mean": m, "var": v, "where": "output"}
            for s, m, v in ((0, 0.0, 1.0), (1, 0.5, 2.0), (5, 1.0, 1.0), (6, 0.0, 4.0), (9, 3.0, 3.0))]
    rows.append({**rows[0], "step": 1, "where": "pre-norm", "mean": 7.0})     # another activation: not paired
    assert moment_changes(rows) == [
        {"network": "vgg", "layer": "vgg/conv01", "unit": 2, "step": 0, "d_mean": 0.5, "d_var": 1.0},
        {"network": "vgg", "layer": "vgg/conv01", "unit": 2, "step": 5, "d_mean": -1.0, "d_var": 3.0}]


def test_the_hook_is_due_at_t_and_t_plus_one_for_every_kth_t():
    hook = DistributionHook(with_overrides(SMOKE, steps=100, measure_every=10))
    assert [s for s in range(100 + 1) if hook.due(s, None)][:6] == [0, 1, 10, 11, 20, 21]
    assert hook.due(100, None)
