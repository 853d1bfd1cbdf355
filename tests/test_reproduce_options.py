"""gpu_check.reproduce checks every option before any work (issue 13, item 6; its --out, item 7);
reusing only runs made with the same options is gpu_check.sweep's (a grid directory holding another
grid is refused there: tests/test_sweep.py)."""

import pytest

from gpu_check import reproduce


def _call(capsys, *argv):
    code = reproduce.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_a_bad_data_directory_is_refused_before_any_work(capsys, tmp_path):
    code, _, err = _call(capsys, "--out", str(tmp_path / "r.md"), "--scale", "smoke", "--work", str(tmp_path / "w"),
                         "--data", str(tmp_path / "no-such-cifar"))
    assert code == 2 and err.startswith("error: --data ") and "no such directory" in err
    assert not (tmp_path / "w").exists()


def test_an_out_that_is_a_directory_or_in_a_read_only_place_is_refused_first(capsys, tmp_path):
    code, _, err = _call(capsys, "--out", str(tmp_path), "--scale", "smoke", "--work", str(tmp_path / "w"))
    assert code == 2 and "is a directory" in err and not (tmp_path / "w").exists()
    code, _, err = _call(capsys, "--out", "/proc/r.md", "--scale", "smoke", "--work", str(tmp_path / "w"))
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
