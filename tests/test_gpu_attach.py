"""gpu_check.attach: the probes on models the project does not otherwise use, in a user's own
training loop -- the registry's identities hold at equality on each, the training is bitwise
unchanged by probing, and bad input is refused by name."""
import io
import json
import os
import random
import subprocess
import time
import sys

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import gpu_check
from gpu_check import records
from gpu_check.summary import summarise_probes
from theory import report
from theory.statements import BY_ID

pytestmark = pytest.mark.usefixtures("one_cpu_thread")


# ---------------------------------------------------------------------------------------------
# Models the project does not otherwise use
# ---------------------------------------------------------------------------------------------

class ResidualBlock(nn.Module):
    def __init__(self, c_in, c_out, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=2, dilation=2, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.short = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x):
        h = F.relu(self.bn1(self.conv1(x)), inplace=True)
        return F.relu(self.bn2(self.conv2(h)) + self.short(x))


class ResidualCNN(nn.Module):
    """A small ResNet: BatchNorm2d after bias-free convolutions (strided, dilated, grouped), a
    residual sum, and one BatchNorm on that sum (no convolution feeds it: lambda unknown there)."""

    def __init__(self, classes=5):
        super().__init__()
        self.stem = nn.Conv2d(3, 6, 3, padding=1, bias=False)
        self.stem_bn = nn.BatchNorm2d(6)
        self.block = ResidualBlock(6, 8, stride=2)
        self.grouped = nn.Conv2d(8, 8, 3, padding=1, groups=2, bias=False)
        self.grouped_bn = nn.BatchNorm2d(8)
        self.post_sum_bn = nn.BatchNorm2d(8)
        self.head = nn.Linear(8, classes)

    def forward(self, x):
        h = F.relu(self.stem_bn(self.stem(x)))
        h = self.block(h)
        h = self.post_sum_bn(h + F.relu(self.grouped_bn(self.grouped(h))))
        return self.head(h.mean((2, 3)))


class MLP(nn.Module):
    def __init__(self, d=6, width=12, out=3, affine=True, dropout=0.2):
        super().__init__()
        self.fc1 = nn.Linear(d, width)
        self.bn1 = nn.BatchNorm1d(width, affine=affine, momentum=0.3)
        self.drop = nn.Dropout(dropout)
        self.fc2 = nn.Linear(width, width, bias=False)
        self.bn2 = nn.BatchNorm1d(width, affine=affine)
        self.out = nn.Linear(width, out)

    def forward(self, x):
        return self.out(F.relu(self.bn2(self.fc2(self.drop(F.relu(self.bn1(self.fc1(x))))))))


class SharedBN(nn.Module):
    """One BatchNorm1d called twice in a forward pass, after two different Linear layers."""

    def __init__(self, d=5, width=7):
        super().__init__()
        self.fc1 = nn.Linear(d, width)
        self.fc2 = nn.Linear(width, width)
        self.bn = nn.BatchNorm1d(width)
        self.out = nn.Linear(width, 1)

    def forward(self, x):
        return self.out(torch.tanh(self.bn(self.fc2(torch.tanh(self.bn(self.fc1(x)))))))


def image_data(n=32, classes=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, 8, 8, generator=g), torch.randint(0, classes, (n,), generator=g)


def vector_data(n=32, d=6, out=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g)
    return x, x[:, :out] ** 2 + 0.1 * torch.randn(n, out, generator=g)


def train_with_probe(model, x, t, loss_fn, out, steps=4, every=2, channels=3):
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    with gpu_check.attach(model, out=str(out), every=every, channels=channels, seed=0) as probe:
        for step in range(steps):
            probe.step(step, lambda m: loss_fn(m(x), t))
            loss = loss_fn(model(x), t)
            loss.backward()
            opt.step()
            opt.zero_grad()
    return probe


def trajectory_report(run_dir) -> list:
    out, err = io.StringIO(), io.StringIO()
    assert report.run(["--trajectory", str(run_dir), "--format", "json"], stdout=out, stderr=err) == 0, err.getvalue()
    return json.loads(out.getvalue())["rows"]


CASES = {
    "residual-cnn": (ResidualCNN, image_data, F.cross_entropy),
    "mlp-bn1d": (MLP, vector_data, F.mse_loss),
    "mlp-affine-false": (lambda: MLP(affine=False), vector_data, F.mse_loss),
    "bn-called-twice": (SharedBN, lambda: vector_data(d=5, out=1), F.mse_loss),
}


@pytest.fixture(scope="module")
def probed_runs(tmp_path_factory):
    torch.set_num_threads(1)
    runs = {}
    for name, (make, data, loss_fn) in CASES.items():
        torch.manual_seed(0)
        model = make()
        x, t = data()
        run_dir = tmp_path_factory.mktemp(name)
        train_with_probe(model, x, t, loss_fn, run_dir)
        runs[name] = run_dir
    return runs


@pytest.mark.parametrize("case", list(CASES))
def test_the_exact_gradient_identity_holds_at_equality_at_every_layer_and_nothing_disagrees(probed_runs, case):
    rows = trajectory_report(probed_runs[case])
    assert rows
    assert not [r for r in rows if r["agreement"] == "DISAGREE"]
    layers = {r["layer"] for r in rows}
    exact = {r["layer"]: r for r in rows if (r["id"], r["variant"]) == ("thm-4.1", "exact-epsilon")}
    assert set(exact) == layers
    assert all(r["verdict"] == "equality" and r["instances"] > 0 for r in exact.values())
    # every identity for eps > 0 the registry holds for the Hessian (Theorem 4.2) likewise
    hessian_exact = [v.name for v in BY_ID["thm-4.2"].variants
                     if v.relation == "==" and v.epsilon == "positive" and v.constraint is None]
    for name in hessian_exact:
        assert all(r["verdict"] == "equality" for r in rows if (r["id"], r["variant"]) == ("thm-4.2", name))


def test_the_residual_cnn_measures_lambda_where_a_convolution_feeds_batchnorm_and_says_why_not_elsewhere(probed_runs):
    rows = trajectory_report(probed_runs["residual-cnn"])
    weight_space = {r["layer"]: r for r in rows if (r["id"], r["variant"]) == ("thm-4.4", "exact-epsilon")}
    fed = {"stem_bn", "block.bn1", "block.bn2", "block.short.1", "grouped_bn"}
    assert set(weight_space) == fed | {"post_sum_bn"}
    assert all(weight_space[k]["verdict"] == "equality" for k in fed)
    na = weight_space["post_sum_bn"]
    assert na["verdict"] == "n/a" and na["agreement"] == "n/a"
    assert "post_sum_bn is not the output of a Linear or Conv layer" in na["note"]


def test_a_batchnorm_called_twice_is_probed_as_two_sites_each_with_its_own_input_layer(probed_runs):
    rows = summarise_probes(str(probed_runs["bn-called-twice"]))
    assert {r["layer"] for r in rows} == {"bn#1", "bn#2"}
    lam = {r["layer"]: r["verdict"] for r in rows if (r["id"], r["variant"]) == ("thm-4.4", "exact-epsilon")}
    assert lam == {"bn#1": "equality", "bn#2": "equality"}


def test_affine_false_is_probed_as_gamma_one_beta_zero(probed_runs):
    probes = records.read_jsonl(os.path.join(probed_runs["mlp-affine-false"], records.PROBES))
    assert {p["layer"] for p in probes} == {"bn1", "bn2"}
    assert all(p["verdict"] != "violated" for p in probes if p["relation"] == "==" and p["statement"] == "thm-4.1")


def test_the_run_directory_records_format_version_git_revision_model_and_probe_costs(probed_runs):
    run_dir = probed_runs["mlp-bn1d"]
    with open(os.path.join(run_dir, records.CONFIG)) as f:
        meta = json.load(f)
    assert records.format_version(meta) == records.FORMAT_VERSION == meta["format_version"]
    assert "revision" in meta["git"]
    model = meta["model"]
    assert model["class"].endswith("MLP") and model["parameters"] == sum(p.numel() for p in MLP().parameters())
    assert [(n["name"], n["num_features"], n["eps"], n["momentum"]) for n in model["normalisations"]] == \
        [("bn1", 12, 1e-5, 0.3), ("bn2", 12, 1e-5, 0.1)]
    assert meta["config"]["probe_every"] == 2 and meta["config"]["probe_channels"] == 3
    events = records.read_jsonl(os.path.join(run_dir, records.EVENTS))
    probes = [e for e in events if e["event"] == "probe"]
    assert [e["step"] for e in probes] == [0, 2] and all(e["seconds"] > 0 for e in probes)
    assert [s["layer"] for s in probes[0]["sites"]] == ["bn1", "bn2"]
    assert set(probes[0]["site_seconds"]) == {"bn1", "bn2"} and all(v > 0 for v in probes[0]["site_seconds"].values())
    # F.relu and dropout between its layers: not a chain of modules, so Hessian-vector products
    assert all(e["hessian"].startswith("Hessian-vector products: ") and "sweep_audit" not in e for e in probes)
    assert events[0]["event"] == "start" and events[-1]["event"] == "close"
    # what probing cost this run: the probes' seconds over the wall seconds from attach to close
    close = events[-1]
    assert close["probe_seconds"] == pytest.approx(sum(e["seconds"] for e in probes))
    assert close["wall_seconds"] > close["probe_seconds"] > 0
    assert close["probe_share"] == pytest.approx(close["probe_seconds"] / close["wall_seconds"])
    steps = {p["step"] for p in records.read_jsonl(os.path.join(run_dir, records.PROBES))}
    assert steps == {0, 2}


def test_the_plots_command_reads_an_attach_run_directory(probed_runs, tmp_path):
    from gpu_check import plots

    assert plots.main([str(probed_runs["mlp-bn1d"]), "--out", str(tmp_path / "figs")]) == 0


# ---------------------------------------------------------------------------------------------
# Probing changes nothing of the training
# ---------------------------------------------------------------------------------------------

def train_mlp(out=None, epochs=2):
    """An MLP with dropout and BatchNorm momentum trained from a shuffling DataLoader (with SGD
    momentum), with Python and numpy draws in the loop; probed every 3 steps when ``out``."""
    torch.manual_seed(1)
    np.random.seed(1)
    random.seed(1)
    model = MLP(dropout=0.3)
    x, t = vector_data(n=48)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, t), batch_size=12, shuffle=True)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    probe = gpu_check.attach(model, out=str(out), every=3, channels=2, seed=0) if out else None
    draws, step = [], 0
    for _ in range(epochs):
        for xb, tb in loader:
            opt.zero_grad()
            if probe:
                probe.step(step, lambda m: F.mse_loss(m(xb), tb))
            loss = F.mse_loss(model(xb), tb)
            loss.backward()
            opt.step()
            draws.append((np.random.rand(), random.random()))
            step += 1
    if probe:
        probe.close()
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    return model, grads, draws, step


def test_training_with_and_without_probing_is_bitwise_identical(tmp_path):
    plain, plain_grads, plain_draws, steps = train_mlp()
    probed, probed_grads, probed_draws, _ = train_mlp(tmp_path / "probed")
    assert steps == 8 and len(records.read_jsonl(str(tmp_path / "probed" / records.PROBES))) > 0
    a, b = plain.state_dict(), probed.state_dict()
    assert a.keys() == b.keys()
    assert "bn1.running_mean" in a and "bn1.num_batches_tracked" in a
    for k in a:
        assert torch.equal(a[k], b[k]), k                 # weights, running statistics, batch counts
    for k in plain_grads:
        assert torch.equal(plain_grads[k], probed_grads[k]), k
    assert plain_draws == probed_draws
    assert probed.training and all(m.training for m in probed.modules())


def test_a_probe_leaves_eval_submodules_their_mode_and_the_model_its_dtype(tmp_path):
    model = MLP()
    model.bn2.eval()                                     # a frozen BatchNorm: not a training-mode map
    x, t = vector_data()
    probe = gpu_check.attach(model, out=str(tmp_path / "r"), every=1, channels=2)
    rows = probe.step(0, lambda m: F.mse_loss(m(x), t))
    probe.close()
    assert {r["layer"] for r in rows} == {"bn1"}
    assert not model.bn2.training and model.bn1.training
    assert all(p.dtype == torch.float32 for p in model.parameters())


# ---------------------------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------------------------

def test_a_model_without_a_batchnorm_module_is_refused_and_functional_batch_norm_named(tmp_path):
    class Functional(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(3, 3)

        def forward(self, x):
            return F.batch_norm(self.fc(x), None, None, training=True)

    with pytest.raises(ValueError, match="has no BatchNorm module.*functional.batch_norm cannot be hooked"):
        gpu_check.attach(Functional(), out=str(tmp_path / "r"))


@pytest.mark.parametrize("every, channels, match", [(0, 4, "every = 0"), (-5, 4, "every = -5"),
                                                    (10, 0, "channels = 0"), (2.5, 4, "every = 2.5")])
def test_non_positive_intervals_and_channel_counts_are_refused(tmp_path, every, channels, match):
    with pytest.raises(ValueError, match=match):
        gpu_check.attach(MLP(), out=str(tmp_path / "r"), every=every, channels=channels)


def test_an_out_directory_holding_another_run_is_refused(tmp_path):
    gpu_check.attach(MLP(), out=str(tmp_path / "r")).close()
    with pytest.raises(ValueError, match="already holds a run"):
        gpu_check.attach(MLP(), out=str(tmp_path / "r"))


def test_an_eval_mode_model_a_non_scalar_or_non_finite_loss_and_a_closure_calling_the_original_are_refused(tmp_path):
    model = MLP()
    x, t = vector_data()
    probe = gpu_check.attach(model, out=str(tmp_path / "r"), every=1)
    with pytest.raises(ValueError, match="not a scalar loss"):
        probe.step(0, lambda m: (m(x) - t) ** 2)
    with pytest.raises(ValueError, match="the loss is nan"):
        probe.step(0, lambda m: F.mse_loss(m(x), t) * float("nan"))
    with pytest.raises(ValueError, match="not a torch.Tensor"):
        probe.step(0, lambda m: 1.0)
    with pytest.raises(ValueError, match="called the original model"):
        probe.step(0, lambda m: F.mse_loss(model(x), t))
    model.eval()
    with pytest.raises(ValueError, match="eval mode at probe step 0"):
        probe.step(0, lambda m: F.mse_loss(m(x), t))
    model.train()
    assert probe.step(1, lambda m: F.mse_loss(m(x), t))     # and it still probes afterwards
    probe.close()
    assert model.bn1.num_batches_tracked.item() == 0        # the refused closures moved nothing


def test_the_share_is_the_probes_seconds_over_the_seconds_since_attach(tmp_path):
    x, t = vector_data()
    probe = gpu_check.attach(MLP(), out=str(tmp_path / "r"), every=1)
    assert probe.share() == 0.0                               # nothing probed yet
    probe.step(0, lambda m: F.mse_loss(m(x), t))
    first = probe.share()
    assert 0.0 < first <= 1.0
    time.sleep(0.2)                                           # training time without probes ...
    assert probe.share() < first                              # ... lowers the share
    probe.close()


def test_probe_step_returns_at_once_when_not_due(tmp_path):
    calls = []
    probe = gpu_check.attach(MLP(), out=str(tmp_path / "r"), every=5)
    assert probe.step(3, lambda m: calls.append(1)) == [] and calls == []
    probe.close()


def test_import_gpu_check_does_not_load_torch():
    code = "import sys, gpu_check; assert 'torch' not in sys.modules; gpu_check.attach; assert 'torch' in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=os.path.dirname(os.path.dirname(__file__)))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_the_probe_runs_on_cuda_with_a_float64_shadow_on_the_models_device(tmp_path):
    model = ResidualCNN().cuda()
    x, t = (a.cuda() for a in image_data())
    probe = gpu_check.attach(model, out=str(tmp_path / "r"), every=1, channels=2)
    rows = probe.step(0, lambda m: F.cross_entropy(m(x), t))
    probe.close()
    assert probe.core.shadow.stem.weight.device.type == "cuda"
    assert probe.core.shadow.stem.weight.dtype == torch.float64
    exact = [r for r in rows if (r["statement"], r["variant"]) == ("thm-4.1", "exact-epsilon")]
    assert exact and all(r["verdict"] == "equality" for r in exact)


def test_the_probe_benchmark_refuses_unknown_models_and_a_run_without_a_directory(capsys):
    from gpu_check import probe_bench

    assert probe_bench.main(["--models", "alexnet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "invalid choice: 'alexnet'" in err and err.count("\n") == 1
    assert probe_bench.main(["--models", "resnet", "--run", "smoke"]) == 2
    assert "--run needs --out" in capsys.readouterr().err


def test_a_sync_batchnorm_in_a_single_process_is_probed_like_batchnorm(tmp_path):
    model = nn.Sequential(nn.Linear(4, 5), nn.SyncBatchNorm(5), nn.Tanh(), nn.Linear(5, 1))
    x, t = vector_data(d=4, out=1)
    with gpu_check.attach(model, out=str(tmp_path / "r"), every=1, channels=2) as probe:
        rows = probe.step(0, lambda m: F.mse_loss(m(x), t))
    exact = [r for r in rows if (r["statement"], r["variant"]) == ("thm-4.1", "exact-epsilon")]
    assert {r["layer"] for r in exact} == {"1"} and all(r["verdict"] == "equality" for r in exact)


class ScaledBN(nn.Module):
    """A custom layer implementing gpu_check.probes.ProbeableNormalisation: training-mode
    BatchNorm through F.batch_norm, then a fixed affine map the statements treat as downstream."""

    is_batchnorm = True

    def __init__(self, c, eps=1e-3):
        super().__init__()
        self.weight, self.bias = nn.Parameter(torch.rand(c) + 0.5), nn.Parameter(torch.randn(c))
        self.num_features, self.eps, self.probe_site = c, eps, None

    @property
    def gamma(self):
        return self.weight

    @property
    def beta(self):
        return self.bias

    def forward(self, y):
        if self.probe_site is not None:
            y = self.probe_site("y", y)
        z = F.batch_norm(y, None, None, self.weight, self.bias, training=True, eps=self.eps)
        if self.probe_site is not None:
            z = self.probe_site("z", z)
        return 2 * z + 1


def test_a_custom_module_implementing_the_protocol_is_probed_at_its_batchnorm_map(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), ScaledBN(6), nn.Tanh(), nn.Linear(6, 1))
    x, t = vector_data(d=4, out=1)
    with gpu_check.attach(model, out=str(tmp_path / "r"), every=1, channels=3) as probe:
        rows = probe.step(0, lambda m: F.mse_loss(m(x), t))
    exact = [r for r in rows if (r["statement"], r["variant"]) in (("thm-4.1", "exact-epsilon"),
                                                                   ("thm-4.4", "exact-epsilon"))]
    assert len(exact) == 6 and {r["layer"] for r in exact} == {"1"}
    assert all(r["verdict"] == "equality" for r in exact)
    assert model[1].probe_site is None                   # the user's module is not hooked


def test_the_benchmark_schedule_and_budget_arithmetic_on_hand_checked_numbers():
    from gpu_check import probe_bench as pb

    # probes at 0, 2500, 5000, 7500, 10000; at 0, 3000, 6000, 9000 and the last step 10000
    assert pb.probes_per_run(10_000, 2500) == 5 and pb.probes_per_run(10_000, 3000) == 5
    assert pb.probes_per_run(10_000, 10_000) == 2 and pb.probes_per_run(12, 4) == 4
    assert list(pb.probes_per_run(10, np.array([1, 3, 10]))) == [11, 5, 2]
    # 100 steps of 1 s and 2 probes of 2.5 s: 5 / 105
    assert pb.estimated_share(100, 1.0, 2.5, 2) == pytest.approx(5 / 105)
    # the longest probe is the one whose share is exactly the budget
    p = pb.probe_seconds_within(0.05, 10_000, 0.0087, 5)
    assert pb.estimated_share(10_000, 0.0087, p, 5) == pytest.approx(0.05)
    # 100 steps of 1 s, probes of 1 s: every 20 gives 6 probes (6/106 > 5%), every 21 gives
    # 0, 21, 42, 63, 84, 100 (6 as well), every 25 gives 5 (5/105 = 4.76%), every 24 gives 6
    assert pb.interval_within(0.05, 100, 1.0, 1.0) == 25
    # the first and last probe alone (2 x 3 s of 103 s) exceed 5%: no interval
    assert pb.interval_within(0.05, 100, 1.0, 3.0) is None
    # ... and the benchmark's lines say it: 2.7x over at 5 probes, and no interval for 2.466 s
    text = pb.describe([pb.ProbeCost("dln-paper", 24, 6, 0.00853, 2.466, 0.0171, 5, 10_000, 0.126, {},
                                     pb.probe_seconds_within(0.05, 10_000, 0.00853, 5), None)])
    assert "may take 0.898 s (2.7x less than now); no probe interval keeps this probe within it: the probes " \
           "at the first and last step alone take 5.5%" in text
    # a sweeping probe is compared with Hessian-vector products timed in the same rounds
    text = pb.describe([pb.ProbeCost("dln-paper", 24, 6, 0.00853, 0.5, 0.0035, 5, 10_000, 0.028, {}, 0.898, 1429,
                                     "chain sweep", 2.5)])
    assert "dln-paper: Hessian forms by chain sweep; by Hessian-vector products 2.500 s a probe in the same " \
           "rounds, 5.0x the sweep's" in text
