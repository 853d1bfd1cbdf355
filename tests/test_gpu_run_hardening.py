"""gpu_check.run from a user's hands (issue 13): one run per directory (items 3), a run killed
before its first checkpoint resumes (4), a resume over a missing or corrupt config.json or a cut
record file is one error line (5, 7), a bad seed leaves no directory behind (7, 13), Ctrl-C
leaves an 'interrupted' event (13), the status line and the first ETA read right (13)."""
import io
import json
import os
import subprocess
import sys

import pytest
from tqdm import tqdm

from gpu_check import records, train
from gpu_check.config import preset, with_overrides
from gpu_check.grid import LOCK_FILE, RunLock
from gpu_check.run import main
from gpu_check.train import SimulatedInterruption, run_training

SMOKE = ["--preset", "smoke", "--norm", "bn", "--quiet"]
WALL_CLOCK = ("step_time_s", "probe_time_s")


def run_cli(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def comparable(run_dir, name=records.METRICS):
    return [{k: v for k, v in r.items() if k not in WALL_CLOCK}
            for r in records.read_jsonl(os.path.join(run_dir, name))]


# --------------------------------------------------------------------------------------- item 3

def test_a_second_run_in_a_directory_in_use_exits_2_naming_the_holder(tmp_path, capsys):
    out = str(tmp_path / "r")
    with RunLock(out):                           # a live run holds the directory
        code, stdout, err = run_cli(capsys, *SMOKE, "--out", out, "--steps", "2")
    assert (code, stdout) == (2, "") and err.count("\n") == 1
    assert err.startswith(f"error: --out {out}: directory in use by another run") and f":{os.getpid()}" in err
    assert records.occupied_by(out) == []        # the second run wrote nothing


def test_the_lock_of_a_dead_process_is_recognised_and_broken(tmp_path, capsys):
    out = tmp_path / "r"
    out.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (out / LOCK_FILE).write_text(json.dumps({"host": os.uname().nodename, "pid": dead.pid, "token": "x",
                                             "since": 0}))
    code, _, err = run_cli(capsys, *SMOKE, "--out", str(out), "--steps", "2")
    assert code == 0, err
    assert not (out / LOCK_FILE).exists()        # released at the end


# --------------------------------------------------------------------------------------- item 4

def test_a_run_killed_before_its_first_checkpoint_resumes_from_step_0_and_matches(tmp_path, capsys):
    config = with_overrides(preset("smoke"), norm="bn", steps=6, checkpoint_every=4)
    whole, killed = str(tmp_path / "whole"), str(tmp_path / "killed")
    run_training(config, whole, progress=False)
    with pytest.raises(SimulatedInterruption):
        run_training(config, killed, progress=False, stop_after=2)
    assert not os.path.exists(os.path.join(killed, records.CHECKPOINT))
    code, _, err = run_cli(capsys, *SMOKE, "--out", killed, "--steps", "6", "--checkpoint-every", "4", "--resume")
    assert code == 0, err
    assert "no checkpoint yet" in err and "starting from step 0" in err
    assert comparable(killed) == comparable(whole)
    assert comparable(killed, records.PROBES) == comparable(whole, records.PROBES)


# ------------------------------------------------------------------------------------ items 5, 7

@pytest.fixture
def interrupted(tmp_path):
    """A run with a checkpoint at step 4, killed at step 6."""
    config = with_overrides(preset("smoke"), norm="bn", steps=8, checkpoint_every=4)
    d = str(tmp_path / "run")
    with pytest.raises(SimulatedInterruption):
        run_training(config, d, progress=False, stop_after=6)
    return d


def _write(path, text):
    with open(path, "w") as f:
        f.write(text)


RESUME = [*SMOKE, "--steps", "8", "--checkpoint-every", "4", "--resume"]


@pytest.mark.parametrize("damage, says", [
    (os.remove, "is missing"),
    (lambda p: _write(p, '{"config": '), "is not valid JSON"),
    (lambda p: _write(p, "[]"), "is not a run's config"),
], ids=["missing", "torn", "not-a-run-config"])
def test_resume_over_a_missing_or_corrupt_config_json_exits_2_naming_it(interrupted, capsys, damage, says):
    path = os.path.join(interrupted, records.CONFIG)
    damage(path)
    code, out, err = run_cli(capsys, *RESUME, "--out", interrupted)
    assert (code, out) == (2, "") and err.count("\n") == 1 and path in err and says in err


def test_resume_after_the_metrics_were_cut_below_the_checkpoint_exits_2(interrupted, capsys):
    path = os.path.join(interrupted, records.METRICS)
    with open(path, "r+") as f:
        f.truncate(10)
    code, out, err = run_cli(capsys, *RESUME, "--out", interrupted)
    assert (code, out) == (2, "") and err.count("\n") == 1 and err.startswith("error: cannot resume: ")
    assert "fewer than" in err


@pytest.mark.parametrize("seed", ["4294967296", "-1", "99999999999999999999"])
def test_a_seed_out_of_range_is_one_line_and_leaves_no_directory(tmp_path, capsys, seed):
    out = tmp_path / "r"
    code, _, err = run_cli(capsys, *SMOKE, "--out", str(out), "--seed", seed)
    assert code == 2 and err.startswith("error: argument --seed: must be an integer in [0, 2^32)")
    assert not out.exists()


def test_an_error_after_the_directory_was_made_leaves_no_empty_directory(tmp_path, capsys):
    out = tmp_path / "r"
    code, _, err = run_cli(capsys, *SMOKE, "--out", str(out), "--resume")    # nothing to resume
    assert code == 2 and "no checkpoint" in err
    assert not out.exists()


# -------------------------------------------------------------------------------------- item 13

def test_ctrl_c_during_a_run_writes_an_interrupted_event(tmp_path, capsys, monkeypatch):
    real = train.train_step
    calls = []
    per_step = len(preset("smoke").networks())

    def interrupt_at_step_3(net, inputs, target):
        calls.append(1)
        if len(calls) > 3 * per_step:             # steps 0, 1, 2 trained
            raise KeyboardInterrupt
        return real(net, inputs, target)
    monkeypatch.setattr(train, "train_step", interrupt_at_step_3)
    out = str(tmp_path / "r")
    code, _, err = run_cli(capsys, *SMOKE, "--out", out, "--steps", "6")
    assert code == 130 and err.count("\n") == 1 and "--resume" in err
    events = records.read_jsonl(os.path.join(out, records.EVENTS))
    assert events[-1]["event"] == "interrupted" and events[-1]["step"] == 3


def test_the_status_line_of_a_complete_run_counts_its_steps(tmp_path, capsys):
    code, out, _ = run_cli(capsys, *SMOKE, "--out", str(tmp_path / "r"), "--steps", "3")
    assert code == 0 and out.splitlines()[0] == "status: complete (3 of 3 steps)"


def test_the_first_step_does_not_enter_the_rate_of_the_progress_bar():
    bar = tqdm(total=100, file=io.StringIO(), mininterval=0)
    bar.update(1)
    bar.start_t -= 100.0                          # step 0 took 100 s (the step-0 probe)
    train._restart_clock(bar)
    bar.start_t -= 1.0                            # the next 10 steps take 1 s
    bar.update(10)
    d = bar.format_dict
    assert d["n"] == 11 and d["elapsed"] < 5
    rate = (d["n"] - d["initial"]) / d["elapsed"]
    assert rate > 5                               # ~10 steps/s, not 11 steps in 101 s
    bar.close()
