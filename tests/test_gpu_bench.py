"""python -m gpu_check.bench: rows of the documented shape, both sides on the same points."""
import json

from gpu_check import bench, run

ROW = {"preset", "norm", "k", "separate_steps_per_s", "fast_steps_per_s", "speedup", "route", "compile_s"}


def test_json_rows_have_exactly_the_documented_fields(capsys, one_cpu_thread):
    assert bench.main(["--json", "--norm", "bn", "l1", "--k", "1", "4", "--steps", "2"]) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert [(r["norm"], r["k"]) for r in rows] == [("bn", 1), ("bn", 4), ("l1", 1), ("l1", 4)]
    for r in rows:
        assert set(r) == ROW
        assert r["separate_steps_per_s"] > 0 and r["fast_steps_per_s"] > 0
        assert abs(r["speedup"] - r["fast_steps_per_s"] / r["separate_steps_per_s"]) < 1e-9 * r["speedup"]
    assert [r["route"] for r in rows] == ["moments", "moments", "separate", "batched"]


def test_the_default_norms_are_those_the_presets_grid_trains(capsys, one_cpu_thread, monkeypatch):
    """`python -m gpu_check.bench --json` (the sweeps issue's acceptance command) times every norm
    the DLN grid trains; noisy-none, a VGG claim, diverges on the DLN at step 2 and would end it."""
    from gpu_check import readings
    assert bench.default_norms("dln-paper") == list(readings.DLN_NORMS) and "noisy-none" not in readings.DLN_NORMS
    assert "noisy-none" in bench.default_norms("smoke")
    timed = []
    monkeypatch.setattr(bench, "run", lambda preset, norms, ks, steps: timed.append(list(norms)) or [])
    assert bench.main(["--json"]) == 0
    assert timed == [list(readings.DLN_NORMS)]
    monkeypatch.undo()
    capsys.readouterr()
    assert bench.main(["--json", "--norm", "noisy-none", "--k", "1", "--steps", "3"]) == 2   # asked for: one line
    err = capsys.readouterr().err
    assert err.startswith("error: benchmark run dln-paper/noisy-none") and "diverged" in err and err.count("\n") == 1


def test_bad_k_is_one_line_exit_2(capsys):
    assert bench.main(["--k", "0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1


def test_run_lr_sets_every_network_and_refuses_a_bad_rate(tmp_path, capsys, one_cpu_thread):
    d = str(tmp_path / "r")
    assert run.main(["--preset", "smoke", "--norm", "none", "--out", d, "--steps", "2", "--lr", "0.02",
                     "--quiet"]) == 0
    with open(f"{d}/config.json") as f:
        cfg = json.load(f)["config"]
    assert cfg["dln"]["lr"] == cfg["vgg"]["lr"] == 0.02
    assert run.main(["--preset", "smoke", "--norm", "none", "--out", str(tmp_path / "x"), "--lr", "-1"]) == 2
    assert "learning rate" in capsys.readouterr().err
