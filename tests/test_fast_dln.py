"""The moment route (gpu_check.fast_dln): its forward pass is the network's, its grid points follow
their separate eager runs within float32 rounding, write the same probes, resume and diverge as
separate runs do."""
import os
from dataclasses import replace

import numpy as np
import pytest
import torch

from gpu_check import fast_dln, records
from gpu_check.config import preset, validate, with_learning_rate, with_overrides
from gpu_check.train import SimulatedInterruption, prepare_network, run_training

# A DLN-only run small enough for many tests (the smoke preset's DLN, without its VGG).
TINY = validate(replace(preset("smoke"), vgg=None, steps=12, probe_every=4, checkpoint_every=5))
WALL_CLOCK = ("step_time_s", "probe_time_s")
# float64 unit roundoff 2^-53 times a generous condition estimate of the moment algebra (sums of
# n ~ 1e2 products through depth ~ 10 layers, each with a d x d product): 1e-16 * 1e2 * 1e2 * 10.
MOMENT_FLOAT64_TOLERANCE = 1e-10
# float32 unit roundoff 2^-24 ~ 6e-8 times the length of the longest float32 sum an eager step
# makes at step 0 (the summed loss: n * d = 1e4 squared residuals): the loss of one forward pass
# in float32 is within this of its exact value, and the moment route's (float64) is far closer.
FLOAT32_STEP0_TOLERANCE = 2.0 ** -24 * 1e4
# The batched route computes in float32 like the eager run, in another summation order: two float32
# trajectories whose rounding errors are of one size.  Measured over 100 dln-paper steps, the
# stack's distance from the float64 trajectory is at most 1.7x the eager run's (noisy-bn, l1 and
# linf at lr 1e-6 and 1e-7, seeds 0, 1; the vmap route it replaced: 2.0x); a factor of 4 leaves
# room for other seeds, and a wrong gradient, update or noise moves a trajectory by far more.
FLOAT32_ORDER_FACTOR = 4.0


def comparable(run_dir, name):
    return [{k: v for k, v in r.items() if k not in WALL_CLOCK}
            for r in records.read_jsonl(os.path.join(run_dir, name))]


def losses(run_dir):
    return np.array([float(r["loss"]) for r in records.read_jsonl(os.path.join(run_dir, records.METRICS))])


@pytest.mark.parametrize("norm", fast_dln.MOMENT_NORMS)
def test_moment_loss_and_gradient_equal_the_real_networks_in_float64(norm, one_cpu_thread):
    cfgs = [with_overrides(TINY, norm=norm, seed=s) for s in range(3)]
    nets = [prepare_network(c, "dln", torch.device("cpu")) for c in cfgs]
    gen = torch.Generator().manual_seed(5)
    for net in nets:                            # gamma, beta away from 1, 0 so that they matter
        for _, block in net.model.norm_blocks():
            block.norm.weight.data.uniform_(0.5, 1.5, generator=gen)
            block.norm.bias.data.uniform_(-0.5, 0.5, generator=gen)
    models = [n.model.double() for n in nets]
    moments = fast_dln.data_moments([n.inputs for n in nets], [n.targets for n in nets])
    W = torch.stack([torch.stack([b.linear.weight for _, b in m.blocks()]) for m in models]).detach().requires_grad_(True)
    leaves, gammas, betas = [W], [None] * (TINY.dln.depth - 1), [None] * (TINY.dln.depth - 1)
    if norm != "none":
        g = torch.stack([torch.stack([b.norm.weight for _, b in m.norm_blocks()]) for m in models]).detach().requires_grad_(True)
        b = torch.stack([torch.stack([b.norm.bias for _, b in m.norm_blocks()]) for m in models]).detach().requires_grad_(True)
        leaves += [g, b]
        gammas, betas = list(g.unbind(1)), list(b.unbind(1))
    loss, _ = fast_dln.moment_forward(norm, TINY.bn_eps, list(W.unbind(1)), gammas, betas, moments)
    grads = torch.autograd.grad(loss.sum(), leaves)
    for k, (m, net) in enumerate(zip(models, nets)):
        with torch.no_grad():
            for _, block in m.norm_blocks():
                block.norm.update_running = False
        real = m.loss(m(net.inputs.double()), net.targets.double())
        assert abs(float(loss[k].detach()) - float(real.detach())) <= MOMENT_FLOAT64_TOLERANCE * abs(float(real.detach()))
        real_grads = torch.autograd.grad(real, [b.linear.weight for _, b in m.blocks()])
        for i, rg in enumerate(real_grads):
            assert torch.allclose(grads[0][k, i], rg, rtol=MOMENT_FLOAT64_TOLERANCE,
                                  atol=MOMENT_FLOAT64_TOLERANCE * float(rg.abs().max()))


def float64_reference(config, steps):
    """The exact-arithmetic stand-in: the same run's losses with the network in float64."""
    net = prepare_network(config, "dln", torch.device("cpu"))
    model = net.model.double()
    x, t = net.inputs.double(), net.targets.double()
    opt = torch.optim.SGD(model.parameters(), lr=config.dln.lr)
    out = []
    for step in range(steps):
        model.set_step(step)                    # noisy-bn: the noise of step t (a function of seed, layer, t)
        opt.zero_grad()
        loss = model.loss(model(x), t)
        out.append(float(loss.detach()))
        loss.backward()
        opt.step()
    return np.array(out)


@pytest.mark.slow
@pytest.mark.parametrize("norm", tuple(fast_dln.ROUTES))
def test_dln_paper_grid_points_follow_their_eager_runs_for_100_steps_within_float32_rounding(norm, tmp_path,
                                                                                            one_cpu_thread):
    """The paper's 25-layer DLN at two learning rates: at step 0 the stacked loss is the eager loss
    within float32 rounding; over 100 steps the moment route (float64 inside) stays at least as
    close to the float64 trajectory as the eager float32 run does (so whatever separates it from
    the eager run is the eager run's own rounding), the batched route (float32) within
    FLOAT32_ORDER_FACTOR of it; probes at step 0 are identical."""
    base = with_overrides(preset("dln-paper"), norm=norm, steps=100, probe_every=100, probe_channels=1,
                          checkpoint_every=100)
    configs = [with_learning_rate(base, lr) for lr in (1e-6, 1e-7)]
    fast = [str(tmp_path / f"fast{i}") for i in range(2)]
    fast_dln.train_stack([(c, d, False) for c, d in zip(configs, fast)])
    for i, c in enumerate(configs):
        eager = str(tmp_path / f"eager{i}")
        run_training(c, eager, progress=False)
        a, b, ref = losses(fast[i]), losses(eager), float64_reference(c, 100)
        assert len(a) == len(b) == 100
        assert abs(a[0] - b[0]) <= FLOAT32_STEP0_TOLERANCE * abs(b[0])
        factor = 1.0 if norm in fast_dln.MOMENT_NORMS else FLOAT32_ORDER_FACTOR
        assert np.max(np.abs(a - ref) / ref) <= factor * np.max(np.abs(b - ref) / ref)
        pa, pb = comparable(fast[i], records.PROBES), comparable(eager, records.PROBES)
        assert [r for r in pa if r["step"] == 0] == [r for r in pb if r["step"] == 0]
        key = lambda r: (r["step"], r["layer"], r["channel"], r["statement"], r["variant"])   # noqa: E731
        assert [key(r) for r in pa] == [key(r) for r in pb]     # the same probes at step 100
        assert bool(pa) == (norm in ("bn", "noisy-bn"))


@pytest.mark.parametrize("norm", ("bn", "noisy-bn", "linf"))
def test_an_interrupted_stack_resumes_to_the_same_records(norm, tmp_path, one_cpu_thread):
    configs = [with_overrides(TINY, norm=norm, seed=s) for s in (0, 1)]
    whole = [str(tmp_path / f"whole{s}") for s in (0, 1)]
    cut = [str(tmp_path / f"cut{s}") for s in (0, 1)]
    fast_dln.train_stack([(c, d, False) for c, d in zip(configs, whole)])
    with pytest.raises(SimulatedInterruption):
        fast_dln.train_stack([(c, d, False) for c, d in zip(configs, cut)], stop_after=8)   # checkpoint at 5
    summaries = fast_dln.train_stack([(c, d, True) for c, d in zip(configs, cut)])
    assert [s.status for s in summaries] == ["complete", "complete"]
    for a, b in zip(whole, cut):
        for name in (records.METRICS, records.PROBES):
            assert comparable(a, name) == comparable(b, name), name
        assert [e["event"] for e in records.read_jsonl(os.path.join(b, records.EVENTS)) if e["event"] != "probe"] == [
            "start", "resume", "complete"]


def test_a_point_interrupted_as_a_separate_run_resumes_in_a_stack(tmp_path, one_cpu_thread):
    c = with_overrides(TINY, norm="l2")
    d = str(tmp_path / "p")
    with pytest.raises(SimulatedInterruption):
        run_training(c, d, progress=False, stop_after=7)
    [summary] = fast_dln.train_stack([(c, d, True)])
    assert summary.status == "complete" and summary.next_step == TINY.steps + 1
    run_training(c, str(tmp_path / "eager"), progress=False)
    a, b = losses(d), losses(str(tmp_path / "eager"))
    assert len(a) == len(b) == TINY.steps
    assert np.all(np.abs(a - b) <= FLOAT32_STEP0_TOLERANCE * np.abs(b))


def test_a_diverging_point_leaves_the_stack_and_the_others_go_on(tmp_path, one_cpu_thread):
    ok, bad = with_overrides(TINY, norm="none"), with_learning_rate(with_overrides(TINY, norm="none"), 1.0)
    dirs = [str(tmp_path / "ok"), str(tmp_path / "bad")]
    s_ok, s_bad = fast_dln.train_stack([(ok, dirs[0], False), (bad, dirs[1], False)])
    assert s_ok.status == "complete" and s_bad.status == "diverged"
    assert "diverged" in s_bad.message and not np.isfinite(losses(dirs[1])[-1])
    assert records.read_jsonl(os.path.join(dirs[1], records.EVENTS))[-1]["event"] == "diverged"
    alone = str(tmp_path / "alone")
    fast_dln.train_stack([(ok, alone, False)])
    assert np.allclose(losses(alone), losses(dirs[0]), rtol=FLOAT32_STEP0_TOLERANCE, atol=0)


@pytest.mark.parametrize("norm", fast_dln.BATCHED_NORMS)
def test_a_batched_stack_has_the_eager_step_0_its_probes_and_running_statistics(norm, tmp_path, one_cpu_thread):
    configs = [with_overrides(TINY, norm=norm, seed=s, steps=3) for s in (0, 1)]
    for i, c in enumerate(configs):
        run_training(c, str(tmp_path / f"eager{i}"), progress=False)
    fast_dln.train_stack([(c, str(tmp_path / f"fast{i}"), False) for i, c in enumerate(configs)])
    for i in range(2):
        a, b = str(tmp_path / f"fast{i}"), str(tmp_path / f"eager{i}")
        assert abs(losses(a)[0] - losses(b)[0]) <= FLOAT32_STEP0_TOLERANCE * abs(losses(b)[0])
        pa, pb = comparable(a, records.PROBES), comparable(b, records.PROBES)
        assert bool(pb) == (norm == "noisy-bn")                                       # probes: BN kinds only
        assert [r for r in pa if r["step"] == 0] == [r for r in pb if r["step"] == 0]
        sa = torch.load(os.path.join(a, records.CHECKPOINT), weights_only=True)["networks"]["dln"]["model"]
        sb = torch.load(os.path.join(b, records.CHECKPOINT), weights_only=True)["networks"]["dln"]["model"]
        assert sa.keys() == sb.keys()
        for k in sa:
            assert torch.allclose(sa[k], sb[k], rtol=1e-4, atol=1e-6), k


def test_a_batched_stack_draws_each_networks_noise_from_its_own_seed_layer_and_step(one_cpu_thread, tmp_path):
    """noisy-bn: network k's slice of the stack's noise at step t is, bit for bit, what its separate
    run's layer draws at t (sample_noise from noise_generator(seed, layer, t)); networks of one seed
    at other learning rates share it."""
    from gpu_check.norms import noise_generator, sample_noise

    configs = [with_learning_rate(with_overrides(TINY, norm="noisy-bn", seed=s), lr)
               for s, lr in ((0, 3e-4), (1, 3e-4), (0, 1e-4))]
    members = [fast_dln._open(c, str(tmp_path / str(i)), False, torch.device("cpu"), "test")
               for i, c in enumerate(configs)]
    stack = fast_dln.BatchedStack(members)
    n, d = TINY.dln.n_samples, TINY.dln.width
    for step in (0, 7):
        noise = stack.noise(step)
        assert len(noise) == TINY.dln.depth - 1
        for k, c in enumerate(configs):
            for i, (_, block) in enumerate(members[k].net.model.norm_blocks()):
                own = sample_noise(noise_generator(c.seed, block.norm.layer_index, step, "cpu"), (n, d), c.noise, "cpu")
                assert torch.equal(noise[i].shift.view(3, d, n)[k].T, own.shift)
                assert torch.equal(noise[i].scale.view(3, d, n)[k].T, own.scale)
                assert torch.equal(noise[i].mu.view(3, d)[k], own.mu)
    assert not torch.equal(stack.noise(0)[0].shift, stack.noise(1)[0].shift)
    for m in members:
        m.writer.close()


def test_the_route_refuses_what_it_cannot_train():
    with pytest.raises(fast_dln.StackError, match="norm"):
        fast_dln.train_stack([(with_overrides(TINY, norm="noisy-none"), "/nonexistent", False)])
    assert not fast_dln.supports(preset("smoke"))          # trains a VGG too
    with pytest.raises(fast_dln.StackError, match="share"):
        fast_dln.train_stack([(with_overrides(TINY, norm="bn"), "/x", False),
                              (with_overrides(TINY, norm="bn", steps=5), "/y", False)])
