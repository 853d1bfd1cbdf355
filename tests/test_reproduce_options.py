"""gpu_check.reproduce reuses only runs made with the options it is asked for, and checks every
option before any work (issue 13, item 6; its --out, item 7)."""
import os

import pytest

from gpu_check import reproduce
from gpu_check.config import preset, with_overrides
from gpu_check.train import run_training


def _call(capsys, *argv):
    code = reproduce.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def short_smoke_run(tmp_path_factory):
    """A work directory whose first smoke run (norm none) was made with 3 steps, not the preset's 12."""
    work = tmp_path_factory.mktemp("work")
    config = with_overrides(preset("smoke"), norm="none", steps=3, measure=tuple(reproduce.MEASURE_ALL.split(",")))
    run_training(config, str(work / "smoke-none"), progress=False)
    return work


def test_a_held_run_made_with_other_options_is_not_reused(capsys, tmp_path, short_smoke_run):
    code, out, err = _call(capsys, "--out", str(tmp_path / "r.md"), "--work", str(short_smoke_run))
    assert (code, out) == (2, "") and err.count("\n") == 1
    assert f"{short_smoke_run / 'smoke-none'} holds a run made with other options (steps: " in err
    assert not (tmp_path / "r.md").exists() and sorted(os.listdir(short_smoke_run)) == ["smoke-none"]


def test_a_bad_data_directory_is_refused_even_when_runs_exist(capsys, tmp_path, short_smoke_run):
    code, _, err = _call(capsys, "--out", str(tmp_path / "r.md"), "--work", str(short_smoke_run),
                         "--data", str(tmp_path / "no-such-cifar"))
    assert code == 2 and err.startswith("error: --data ") and "no such directory" in err


@pytest.mark.parametrize("flag", ["--vgg-steps", "--dln-steps"])
def test_step_overrides_the_smoke_scale_cannot_honour_are_refused(capsys, tmp_path, flag):
    code, _, err = _call(capsys, "--out", str(tmp_path / "r.md"), "--work", str(tmp_path / "w"), flag, "5")
    assert code == 2 and "the smoke preset trains both networks for its own 12 steps" in err
    assert not (tmp_path / "w").exists()


def test_an_out_that_is_a_directory_or_in_a_read_only_place_is_refused_first(capsys, tmp_path):
    code, _, err = _call(capsys, "--out", str(tmp_path), "--work", str(tmp_path / "w"))
    assert code == 2 and "is a directory" in err and not (tmp_path / "w").exists()
    code, _, err = _call(capsys, "--out", "/proc/r.md", "--work", str(tmp_path / "w"))
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1 and not (tmp_path / "w").exists()


@pytest.mark.parametrize("config", ['{"config": {"norm": "bn"}}', '{"config": ', "[]", '{"config": {"preset": 1}}'],
                         ids=["fields-missing", "torn", "not-an-object", "wrong-kinds"])
@pytest.mark.parametrize("cli", ["gpu_check.plots", "gpu_check.reproduce"])
def test_a_run_directory_whose_config_is_not_a_runs_is_one_error_line(capsys, tmp_path, config, cli):
    import importlib
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(config)
    out = ["--out", str(tmp_path / "figs")] if cli == "gpu_check.plots" else ["--out", str(tmp_path / "r.md"),
                                                                                 "--runs"]
    code = importlib.import_module(cli).main(out + [str(run)])
    captured = capsys.readouterr()
    assert (code, captured.out) == (2, "") and captured.err.count("\n") == 1
    assert captured.err.startswith(f"error: {str(run)!r} is not a readable run directory")


def test_plots_out_at_a_file_is_one_error_line(capsys, tmp_path):
    from gpu_check import plots
    (tmp_path / "f").write_text("keep")
    code = plots.main(["--out", str(tmp_path / "f"), str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1
    assert (tmp_path / "f").read_text() == "keep"
