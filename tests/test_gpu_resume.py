"""Checkpoints and --resume: an interrupted run, resumed, writes the same records as an
uninterrupted one -- bitwise on the CPU -- and ends with the same weights."""
import os
import subprocess
import sys

import pytest
import torch

from gpu_check import checkpoint, records
from gpu_check.config import preset, with_overrides
from gpu_check.train import SimulatedInterruption, run_training

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# noisy-bn: its noise and the probes make the records depend on every piece of restored state
CONFIG = with_overrides(preset("smoke"), norm="noisy-bn", steps=10, checkpoint_every=4, probe_every=3)
WALL_CLOCK = ("step_time_s", "probe_time_s")        # the only fields allowed to differ


def comparable(run_dir, name):
    return [{k: v for k, v in r.items() if k not in WALL_CLOCK}
            for r in records.read_jsonl(os.path.join(run_dir, name))]


def final_weights(run_dir):
    return checkpoint.load(os.path.join(run_dir, records.CHECKPOINT))["networks"]


def assert_same_run(a, b):
    for name in (records.METRICS, records.PROBES):
        assert comparable(a, name) == comparable(b, name), name
    wa, wb = final_weights(a), final_weights(b)
    for net in wa:
        for k, v in wa[net]["model"].items():
            assert torch.equal(v, wb[net]["model"][k]), (net, k)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("whole"))
    run_training(CONFIG, d, progress=False)
    return d


def test_a_run_interrupted_between_checkpoints_resumes_to_the_same_records(tmp_path, uninterrupted):
    d = str(tmp_path)
    with pytest.raises(SimulatedInterruption):
        run_training(CONFIG, d, progress=False, stop_after=7)      # last checkpoint: before step 4
    assert max(r["step"] for r in comparable(d, records.METRICS)) == 6   # records past the checkpoint
    summary = run_training(CONFIG, d, resume=True, progress=False)
    assert summary.status == "complete"
    assert_same_run(uninterrupted, d)


def test_a_torn_last_record_is_dropped_on_resume(tmp_path, uninterrupted):
    d = str(tmp_path)
    with pytest.raises(SimulatedInterruption):
        run_training(CONFIG, d, progress=False, stop_after=5)
    whole = records.read_jsonl(os.path.join(d, records.PROBES))
    with open(os.path.join(d, records.PROBES), "a") as f:
        f.write('{"step": 5, "network": "dln", "lay')                  # killed mid-append
    assert records.read_jsonl(os.path.join(d, records.PROBES)) == whole   # not a record
    run_training(CONFIG, d, resume=True, progress=False)
    assert_same_run(uninterrupted, d)


def test_a_killed_command_line_run_resumes_to_the_same_records(tmp_path, uninterrupted):
    d = str(tmp_path / "r")
    base = [sys.executable, "-m", "gpu_check.run", "--preset", "smoke", "--norm", "noisy-bn", "--steps", "10",
            "--checkpoint-every", "4", "--probe-every", "3", "--out", d, "--quiet"]
    killed = subprocess.run(base + ["--stop-after", "6"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert killed.returncode == 137, killed.stderr                   # died with no clean-up
    assert not os.path.exists(os.path.join(d, records.SUMMARY))
    resumed = subprocess.run(base + ["--resume"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    assert_same_run(uninterrupted, d)                                # and across processes


def test_resuming_a_complete_run_changes_nothing(tmp_path):
    d = str(tmp_path)
    config = with_overrides(CONFIG, steps=2)
    run_training(config, d, progress=False)
    names = (records.METRICS, records.PROBES, records.EVENTS, records.SUMMARY, records.CHECKPOINT)
    before = {n: (tmp_path / n).read_bytes() for n in names}
    said = []
    summary = run_training(config, d, resume=True, progress=False, log=said.append)
    assert summary.status == "complete" and "already complete" in said[0]
    assert before == {n: (tmp_path / n).read_bytes() for n in names}


def test_the_checkpoint_holds_model_optimiser_every_rng_and_the_data_order(tmp_path):
    d = str(tmp_path)
    run_training(with_overrides(CONFIG, steps=5), d, progress=False)
    ck = torch.load(os.path.join(d, records.CHECKPOINT), weights_only=True)   # no pickled code
    assert ck["next_step"] == 6 and ck["config"]["norm"] == "noisy-bn"
    assert set(ck["rng"]) == {"torch", "cuda", "numpy", "python"}
    vgg = ck["networks"]["vgg"]
    assert {"model", "optimizer", "data_order"} <= set(vgg)
    assert "features.0.norm.running_mean" in vgg["model"]
    assert sorted(vgg["data_order"]["permutation"].tolist()) == list(range(CONFIG.vgg.n_train))
    assert ck["networks"]["dln"]["data_order"] == {"full_batch": True}
    assert set(ck["file_sizes"]) >= {records.METRICS, records.PROBES, records.EVENTS}


def test_an_unreadable_checkpoint_is_a_clear_error(tmp_path):
    (tmp_path / records.CHECKPOINT).write_bytes(b"garbage")
    with pytest.raises(checkpoint.CheckpointError, match="is not a complete checkpoint"):
        run_training(CONFIG, str(tmp_path), resume=True, progress=False)


def test_a_half_written_checkpoint_is_named_as_incomplete_in_one_line(tmp_path):
    path = tmp_path / records.CHECKPOINT
    run_training(CONFIG, str(tmp_path), progress=False)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(checkpoint.CheckpointError) as err:
        checkpoint.load(str(path))
    message = str(err.value)
    assert "not a complete checkpoint" in message and str(path) in message and "\n" not in message
    assert "Errno" not in message


def test_a_checkpoint_with_foreign_objects_is_refused_without_advising_unsafe_loading(tmp_path):
    import datetime
    path = tmp_path / records.CHECKPOINT
    torch.save({"format": checkpoint.FORMAT, "when": datetime.date(2020, 1, 1)}, path)
    with pytest.raises(checkpoint.CheckpointError) as err:
        checkpoint.load(str(path))
    message = str(err.value)
    assert "refusing" in message and "weights_only" not in message and "\n" not in message
