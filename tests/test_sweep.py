"""python -m gpu_check.sweep: a grid completes, a rerun does no work, partial points resume,
diverged ones are an outcome, bad input is one line and writes nothing, and the other tools read
the grid's runs."""
import json
import os
import subprocess
import sys

import pytest

from gpu_check import grid as G
from gpu_check import plots, records, sweep
from gpu_check.train import SimulatedInterruption, run_training

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WALL_CLOCK = ("step_time_s", "probe_time_s")
# smoke: both networks, separate runs; dln-paper with probes off: a moment-route stack
SMALL = ["--preset", "smoke", "dln-paper", "--norm", "none", "bn", "--lr", "1e-7", "--seed", "0",
         "--steps", "6", "--probe-every", "0", "--quiet"]


def comparable(run_dir, name):
    return [{k: v for k, v in r.items() if k not in WALL_CLOCK}
            for r in records.read_jsonl(os.path.join(run_dir, name))]


def events(run_dir):
    return [e["event"] for e in records.read_jsonl(os.path.join(run_dir, records.EVENTS))]


@pytest.fixture(scope="module")
def small_grid(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("grid") / "g")
    assert sweep.main(SMALL + ["--out", out]) == 0
    return out


def test_a_grid_writes_one_ordinary_run_per_point_and_grid_json(small_grid):
    with open(os.path.join(small_grid, G.GRID_FILE)) as f:
        g = json.load(f)
    dirs = [p["dir"] for p in g["points"]]
    assert dirs == ["smoke/none/lr1e-7/seed0", "smoke/bn/lr1e-7/seed0",
                    "dln-paper/none/lr1e-7/seed0", "dln-paper/bn/lr1e-7/seed0"]
    assert g["options"] == {"probe_every": 0, "steps": 6} and g["lrs"] == ["1e-7"]
    for d in dirs:
        run = os.path.join(small_grid, d)
        with open(os.path.join(run, records.SUMMARY)) as f:
            assert json.load(f)["status"] == "complete"
        with open(os.path.join(run, records.CONFIG)) as f:
            cfg = json.load(f)["config"]
        assert cfg["steps"] == 6 and all(cfg[n]["lr"] == 1e-7 for n in ("dln", "vgg") if cfg[n])
    start = records.read_jsonl(os.path.join(small_grid, "dln-paper/bn/lr1e-7/seed0", records.EVENTS))[0]
    assert start["route"] == "moments(K=1)"


def test_a_rerun_does_no_work(small_grid, capsys):
    stamps = {d: os.path.getmtime(os.path.join(small_grid, d, records.METRICS)) for d in G.grid_run_dirs(small_grid)}
    assert sweep.main(SMALL + ["--out", small_grid]) == 0
    out = capsys.readouterr().out
    assert "(0 tasks, 4 skipped as done)" in out and "skipped-complete" in out
    assert stamps == {d: os.path.getmtime(os.path.join(small_grid, d, records.METRICS)) for d in stamps}


def test_the_end_table_names_status_loss_and_path_and_the_bar_goes_to_stderr(tmp_path, capsys):
    out = str(tmp_path / "g")
    argv = ["--preset", "smoke", "--norm", "none", "--lr", "3e-4", "--seed", "0", "--steps", "3", "--out", out]
    assert sweep.main(argv) == 0
    cap = capsys.readouterr()
    assert "smoke/none/lr3e-4/seed0" in cap.out and "complete" in cap.out
    assert os.path.join(out, "smoke/none/lr3e-4/seed0") in cap.out
    assert "grid" in cap.err and "1/1" in cap.err


def test_a_partial_point_resumes_and_a_diverging_one_is_an_outcome(tmp_path, capsys):
    out = str(tmp_path / "g")
    grid = G.make_grid(["smoke"], ["none"], [3e-4, 1e3], [0], {"steps": 8, "checkpoint_every": 4})
    partial = os.path.join(out, grid.points()[0].name)
    with pytest.raises(SimulatedInterruption):
        run_training(grid.config(grid.points()[0]), partial, progress=False, stop_after=6)
    G.write_grid(grid, out, [], ["test"])
    argv = ["--preset", "smoke", "--norm", "none", "--lr", "3e-4", "1e3", "--seed", "0", "--steps", "8",
            "--checkpoint-every", "4", "--out", out, "--quiet"]
    assert sweep.main(argv) == 0
    table = capsys.readouterr().out
    assert events(partial) == ["start", "resume", "complete"]
    diverged = os.path.join(out, grid.points()[1].name)
    assert events(diverged)[-1] == "diverged"
    assert "smoke/none/lr1e3/seed0" in table and "diverged" in table
    assert sweep.main(argv) == 0                      # neither is run again
    assert "skipped-diverged" in capsys.readouterr().out
    whole = str(tmp_path / "whole")
    run_training(grid.config(grid.points()[0]), whole, progress=False)
    assert comparable(whole, records.METRICS) == comparable(partial, records.METRICS)


def test_two_local_jobs_write_the_same_records_as_one(tmp_path, small_grid):
    out = str(tmp_path / "g")
    assert sweep.main(SMALL + ["--out", out, "--jobs", "2"]) == 0
    for d in G.grid_run_dirs(small_grid):
        other = os.path.join(out, os.path.relpath(d, small_grid))
        for name in (records.METRICS, records.PROBES):
            assert comparable(d, name) == comparable(other, name)


@pytest.mark.parametrize("argv, message", [
    (["--preset", "nope", "--norm", "bn", "--lr", "1", "--seed", "0"], "invalid choice: 'nope'"),
    (["--preset", "smoke", "--norm", "nope", "--lr", "1", "--seed", "0"], "invalid choice: 'nope'"),
    (["--preset", "smoke", "--norm", "bn", "--lr", "0", "--seed", "0"], "learning rate '0'"),
    (["--preset", "smoke", "--norm", "bn", "--lr", "inf", "--seed", "0"], "learning rate 'inf'"),
    (["--preset", "smoke", "--norm", "bn", "--lr", "nan", "--seed", "0"], "learning rate 'nan'"),
    (["--preset", "smoke", "--norm", "bn", "--seed", "0"], "empty grid: no lr"),
    (["--preset", "smoke", "--norm", "bn", "bn", "--lr", "1", "--seed", "0"], "duplicate norm 'bn'"),
    (["--preset", "smoke", "--norm", "bn", "--lr", "1e-3", "0.001", "--seed", "0"], "1e-3 and 0.001 are the same point"),
    (["--preset", "smoke", "--norm", "bn", "--lr", "1", "--seed", "0", "--steps", "0"], "--steps"),
    (["--preset", "smoke", "--norm", "bn", "--lr", "1", "--seed", "0", "--executor", "ray",
      "--address", "127.0.0.1:1"], "127.0.0.1:1' is unreachable"),
])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(argv, message, tmp_path, capsys):
    out = str(tmp_path / "g")
    assert sweep.main(argv + ["--out", out]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err
    assert not os.path.exists(out)


def test_an_out_holding_another_grid_is_refused_untouched(small_grid, capsys):
    path = os.path.join(small_grid, G.GRID_FILE)
    with open(path) as f:
        before = f.read()
    assert sweep.main([a if a != "6" else "7" for a in SMALL] + ["--out", small_grid]) == 2
    err = capsys.readouterr().err
    assert "holds a different grid" in err and "steps" in err and err.count("\n") == 1
    with open(path) as f:
        assert f.read() == before


def test_executor_ray_without_ray_installed_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)      # import ray -> ImportError
    out = str(tmp_path / "g")
    assert sweep.main(["--preset", "smoke", "--norm", "bn", "--lr", "1", "--seed", "0", "--executor", "ray",
                       "--out", out]) == 2
    err = capsys.readouterr().err
    assert err == 'error: --executor ray needs Ray: pip install -e ".[cluster]"\n' and not os.path.exists(out)


def test_a_toml_grid_is_the_same_grid_as_its_flags(tmp_path, small_grid):
    f = tmp_path / "g.toml"
    f.write_text('preset = ["smoke", "dln-paper"]\nnorm = ["none", "bn"]\nlr = [1e-7]\nseed = [0]\n'
                 '[options]\nsteps = 6\nprobe_every = 0\n')
    assert sweep.main(["--grid", str(f), "--out", small_grid, "--quiet"]) == 0    # the same grid: all done


def test_the_trajectory_report_reads_a_bn_run_of_a_grid(tmp_path):
    out = str(tmp_path / "g")
    assert sweep.main(["--preset", "smoke", "--norm", "bn", "--lr", "3e-4", "--seed", "0", "--steps", "4",
                       "--out", out, "--quiet"]) == 0
    done = subprocess.run([sys.executable, "-m", "theory.report", "--trajectory",
                           os.path.join(out, "smoke/bn/lr3e-4/seed0"), "--format", "json"],
                          capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stderr
    rows = [r for r in json.loads(done.stdout)["rows"] if r.get("source") == "trajectory"]
    assert rows and {r["layer"].split("/")[0] for r in rows} == {"dln", "vgg"}


def test_plots_read_a_grid_directory(tmp_path, small_grid):
    assert plots.main([small_grid, "--out", str(tmp_path / "fig")]) == 0
    assert os.path.isfile(tmp_path / "fig" / "training_dln.png")


def test_reproduce_reads_a_grid_directory(tmp_path, small_grid):
    from gpu_check import reproduce
    assert reproduce.main(["--runs", small_grid, "--out", str(tmp_path / "r.md")]) == 0
    assert "dln-paper" in (tmp_path / "r.md").read_text()


def test_a_stack_whose_points_stopped_at_different_checkpoints_resumes_each(tmp_path):
    out = str(tmp_path / "g")
    grid = G.make_grid(["dln-paper"], ["bn"], [1e-7], [0, 1], {"steps": 10, "checkpoint_every": 2, "probe_every": 0})
    for point, stop in zip(grid.points(), (7, 5)):             # checkpoints at steps 6 and 4
        with pytest.raises(SimulatedInterruption):
            run_training(grid.config(point), os.path.join(out, point.name), progress=False, stop_after=stop)
    task = G.Task(out, tuple(grid.points()), tuple(G.config_to_dict(grid.config(p)) for p in grid.points()), True)
    results = G.run_task(task)
    assert [r.status for r in results] == ["complete", "complete"] and all(r.resumed for r in results)
    for p in grid.points():
        assert events(os.path.join(out, p.name)) == ["start", "resume", "complete"]
