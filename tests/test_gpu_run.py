"""gpu_check.run / gpu_check.train: smoke runs end to end, outputs, faults, bad inputs."""
import dataclasses
import json
import os
import subprocess
import sys

import pytest
import torch

from gpu_check import records
from gpu_check.config import NORMS, preset, with_overrides
from gpu_check.run import main
from gpu_check.summary import summarise_probes
from gpu_check.train import run_training

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMOKE = preset("smoke")


def jsonl(path):
    return records.read_jsonl(path)


@pytest.mark.parametrize("norm", NORMS)
def test_a_smoke_run_of_both_networks_writes_config_metrics_and_probes(tmp_path, norm):
    config = with_overrides(SMOKE, norm=norm)
    summary = run_training(config, str(tmp_path), progress=False)
    assert summary.status == "complete" and summary.next_step == config.steps + 1
    meta = json.loads((tmp_path / "config.json").read_text())
    assert meta["config"]["norm"] == norm and meta["seed"] == config.seed
    assert {"torch", "numpy", "python"} <= set(meta["packages"]) and "revision" in meta["git"]
    assert meta["device"].startswith("cpu") and "synthetic" in meta["datasets"]["vgg"]
    train = [r for r in jsonl(tmp_path / "metrics.jsonl") if r["split"] == "train"]
    assert len(train) == config.steps * 2
    assert {(r["network"], r["step"]) for r in train} == {(n, s) for n in ("dln", "vgg") for s in range(config.steps)}
    assert all(r["step_time_s"] > 0 for r in train)
    tests = [r for r in jsonl(tmp_path / "metrics.jsonl") if r["split"] == "test"]
    assert [r["step"] for r in tests] == [0, 6, 12]               # eval_every = 6, and the final state
    probes = jsonl(tmp_path / "probes.jsonl")
    if norm in ("bn", "noisy-bn"):
        steps = sorted({r["step"] for r in probes})
        assert steps == [0, 4, 8, 12]                            # every K = 4 and the final state
        layers = {r["layer"] for r in probes}
        assert layers == {"dln/fc01", "dln/fc02", "dln/fc03", "dln/fc04", "dln/fc05", "vgg/conv01", "vgg/conv02"}
        assert summarise_probes(str(tmp_path))
        # each probe says how it computed its Hessian forms: both networks are chains (noisy-bn's
        # noise after z included), swept, each sweep checked against Hessian-vector products
        events = [e for e in jsonl(tmp_path / "events.jsonl") if e["event"] == "probe"]
        assert sorted((e["network"], e["step"]) for e in events) == [(n, s) for n in ("dln", "vgg") for s in steps]
        for e in events:
            assert e["hessian"] == "chain sweep"
            audit = e["sweep_audit"]
            assert audit["layer"] in layers and 0 <= audit["disagreement"] <= audit["tolerance"]
    else:                                                        # no BatchNorm map to probe
        assert probes == [] and summarise_probes(str(tmp_path)) == []
    saved = json.loads((tmp_path / "summary.json").read_text())
    assert saved["status"] == "complete" and 0 <= saved["probe_share"] <= 1


def test_probes_do_not_change_the_training_trajectory(tmp_path):
    losses = {}
    for k in (0, 1):
        d = tmp_path / f"k{k}"
        run_training(with_overrides(SMOKE, norm="noisy-bn", probe_every=k, steps=5), str(d), progress=False)
        losses[k] = [(r["network"], r["step"], r["loss"]) for r in jsonl(d / "metrics.jsonl") if r["split"] == "train"]
    assert losses[0] == losses[1]                                # bitwise: the same floats


def test_a_diverging_run_stops_with_a_clear_message_and_keeps_its_records(tmp_path):
    config = dataclasses.replace(with_overrides(SMOKE, norm="none"), vgg=None,
                                 dln=dataclasses.replace(SMOKE.dln, lr=10.0))
    summary = run_training(config, str(tmp_path), progress=False)
    assert summary.status == "diverged"
    assert "training diverged: dln loss is" in summary.message and str(tmp_path) in summary.message
    rows = jsonl(tmp_path / "metrics.jsonl")
    assert rows[-1]["loss"] in ("nan", "inf") and all(r["step"] <= rows[-1]["step"] for r in rows)
    assert json.loads((tmp_path / "summary.json").read_text())["status"] == "diverged"


def test_the_command_line_runs_smoke_end_to_end_with_a_progress_bar_and_a_summary(tmp_path):
    out = tmp_path / "s"
    proc = subprocess.run([sys.executable, "-m", "gpu_check.run", "--preset", "smoke", "--norm", "bn",
                           "--out", str(out), "--steps", "4"], cwd=REPO, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "probe share:" in proc.stdout and "steps/s" in proc.stdout
    assert "smoke/bn" in proc.stderr and "4/4" in proc.stderr          # tqdm on stderr
    assert {"config.json", "metrics.jsonl", "probes.jsonl", "checkpoint.pt", "summary.json"} <= set(os.listdir(out))


def test_a_bad_flag_exits_2_with_one_line_and_no_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "gpu_check.run", "--preset", "smoke", "--norm", "batchnorm",
                           "--out", str(tmp_path)], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert "invalid choice: 'batchnorm'" in proc.stderr


def run_cli(capsys, *argv):
    code = main(list(argv))
    return code, capsys.readouterr().err


@pytest.mark.parametrize("argv, words", [
    (["--preset", "huge", "--norm", "bn"], "invalid choice: 'huge'"),
    (["--preset", "smoke", "--norm", "group"], "invalid choice: 'group'"),
    (["--preset", "smoke", "--norm", "bn", "--steps", "0"], "steps = 0"),
    (["--preset", "smoke", "--norm", "bn", "--data", "/no/such/dir"], "no such directory"),
    (["--preset", "smoke", "--norm", "bn", "--resume"], "no checkpoint"),
])
def test_bad_inputs_exit_2_with_a_message_naming_the_problem(tmp_path, capsys, argv, words):
    code, err = run_cli(capsys, *argv, "--out", str(tmp_path / "r"), "--quiet")
    assert code == 2 and words in err and err.count("\n") == 1 and err.startswith("error: ")


def test_an_occupied_output_directory_needs_resume(tmp_path, capsys):
    out = str(tmp_path / "r")
    assert run_cli(capsys, "--preset", "smoke", "--norm", "l1", "--out", out, "--steps", "2", "--quiet")[0] == 0
    code, err = run_cli(capsys, "--preset", "smoke", "--norm", "l1", "--out", out, "--steps", "2", "--quiet")
    assert code == 2 and "already holds a run" in err


def test_resume_with_a_config_that_does_not_match_the_checkpoint_is_refused(tmp_path, capsys):
    out = str(tmp_path / "r")
    assert run_cli(capsys, "--preset", "smoke", "--norm", "bn", "--out", out, "--steps", "3", "--quiet")[0] == 0
    code, err = run_cli(capsys, "--preset", "smoke", "--norm", "l2", "--out", out, "--steps", "3",
                        "--resume", "--quiet")
    assert code == 2 and "does not match the checkpoint" in err and "norm: checkpoint has 'bn', requested 'l2'" in err


def test_smoke_reads_cifar_from_a_data_directory_and_names_it(tmp_path, capsys):
    from tests.test_gpu_data import write_cifar

    write_cifar(tmp_path / "data", n_per_batch=52, n_test=64)
    out = tmp_path / "r"
    code, err = run_cli(capsys, "--preset", "smoke", "--norm", "bn", "--out", str(out), "--steps", "2",
                        "--data", str(tmp_path / "data"), "--quiet")
    assert code == 0, err
    meta = json.loads((out / "config.json").read_text())
    assert meta["datasets"]["vgg"].startswith("cifar-10(") and meta["config"]["data"] == str(tmp_path / "data")


def test_with_epsilon_zero_the_probes_check_the_statements_as_printed(tmp_path):
    run_training(with_overrides(SMOKE, norm="bn", bn_eps=0.0, steps=2), str(tmp_path), progress=False)
    variants = {(r["statement"], r["variant"]) for r in jsonl(tmp_path / "probes.jsonl")}
    assert ("thm-4.1", "printed") in variants and ("thm-4.1", "epsilon") not in variants


def test_an_output_path_that_is_a_file_exits_2(tmp_path, capsys):
    (tmp_path / "f").write_text("")
    code, err = run_cli(capsys, "--preset", "smoke", "--norm", "bn", "--out", str(tmp_path / "f"), "--quiet")
    assert code == 2 and str(tmp_path / "f") in err and err.count("\n") == 1


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_a_cuda_run_computes_in_float32_with_tf32_off_and_says_so():
    from gpu_check.records import device_description
    from gpu_check.train import resolve_device

    torch.backends.cudnn.allow_tf32 = True          # torch's default for convolutions
    device = resolve_device("cuda")
    assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
    assert device_description(device).endswith("(TF32 off)")
