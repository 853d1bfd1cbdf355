"""gpu_check.plots: the paper's figures from run directories, PNG and SVG, titled with their runs."""
import os

import pytest

from gpu_check import plots
from gpu_check.config import MEASUREMENTS, preset, with_overrides
from gpu_check.train import run_training

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def smoke_runs(tmp_path_factory):
    """Smoke runs (both networks) with every measurement on, for bn and none."""
    root = tmp_path_factory.mktemp("runs")
    dirs = {}
    for norm in ("bn", "none"):
        dirs[norm] = str(root / norm)
        run_training(with_overrides(preset("smoke"), norm=norm, measure=MEASUREMENTS), dirs[norm], progress=False)
    return dirs


def test_the_plot_command_on_a_smoke_run_writes_non_empty_png_and_svg_files(smoke_runs, tmp_path, capsys):
    out = str(tmp_path / "figs")
    assert plots.main([smoke_runs["bn"], "--out", out]) == 0
    printed = capsys.readouterr().out
    expected = [f"{name}_{net}" for net in ("dln", "vgg")
                for name in ("training", "ics", "landscape", "predictiveness", "distributions", "moments", "slack")]
    for name in expected:
        for fmt in ("png", "svg"):
            path = os.path.join(out, f"{name}.{fmt}")
            assert os.path.getsize(path) > 1000, path
        with open(os.path.join(out, f"{name}.png"), "rb") as f:
            assert f.read(8) == PNG_MAGIC
        with open(os.path.join(out, f"{name}.svg"), encoding="utf-8") as f:
            assert "<svg" in f.read(2000)
        assert name in printed
    assert "skipped lp_dln: no run with an l_p normalisation" in printed


def test_several_runs_are_overlaid_and_every_title_names_runs_preset_and_data(smoke_runs, tmp_path):
    drawn, _ = plots.make_figures([smoke_runs["bn"], smoke_runs["none"]], str(tmp_path), only=("ics",),
                                  formats=("png",))
    by_name = {f.name: f for f in drawn}
    assert set(by_name) == {"ics_dln", "ics_vgg"}
    vgg = by_name["ics_vgg"].title
    assert "bn" in vgg and "none" in vgg and "preset smoke" in vgg
    assert "SYNTHETIC images, not CIFAR-10" in vgg                       # the embedded default says so
    assert "dln-gaussian" in by_name["ics_dln"].title


def test_data_labels_mark_the_synthetic_stand_in_and_leave_cifar_alone():
    assert plots.data_label("synthetic-cifar10-like(seed=0; NOT CIFAR-10)").startswith("SYNTHETIC")
    assert plots.data_label("cifar-10(/data/cifar)") == "cifar-10(/data/cifar)"


def test_slack_series_is_the_minimum_relative_slack_per_step():
    probes = [{"network": "vgg", "statement": "thm-4.1", "variant": "epsilon", "step": s, "rel_slack": v}
              for s, v in ((0, 0.5), (0, -0.25), (4, "nan"), (4, 0.125))]
    probes.append({"network": "dln", "statement": "thm-4.1", "variant": "epsilon", "step": 0, "rel_slack": -9.0})
    probes.append({"network": "vgg", "layer": "vgg/conv01", "step": 4, "error": "gamma = 0"})
    probes.append({"network": "vgg", "statement": "thm-4.4", "variant": "exact-epsilon", "step": 4, "verdict": "n/a",
                   "note": "not applicable: no layer input X"})
    assert plots.slack_series(probes, "vgg") == {("thm-4.1", "epsilon"): {0: -0.25, 4: 0.125}}


def test_a_directory_that_is_not_a_run_is_a_clear_error(tmp_path, capsys):
    assert plots.main([str(tmp_path), "--out", str(tmp_path / "f")]) == 2
    assert "is not a run directory: it has no config.json" in capsys.readouterr().err


def test_a_run_of_gpu_check_attach_draws_its_slack_figure_under_the_models_name(tmp_path):
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    import gpu_check

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8, bias=False), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 1))
    x, t = torch.randn(16, 4), torch.randn(16, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    with gpu_check.attach(model, out=str(tmp_path / "run"), every=2, channels=2) as probe:
        for step in range(4):
            probe.step(step, lambda m: F.mse_loss(m(x), t))
            opt.zero_grad()
            F.mse_loss(model(x), t).backward()
            opt.step()
    run = plots.load_run(str(tmp_path / "run"))
    assert run.networks == (plots.ATTACHED,)
    drawn, skipped = plots.make_figures([str(tmp_path / "run")], str(tmp_path / "figs"), formats=("png",))
    assert [f.name for f in drawn] == ["slack_model"] and "gpu_check.attach" in drawn[0].title
    assert "training_model: no run holds its records" in skipped
