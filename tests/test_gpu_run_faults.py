"""Fault test for training runs: a run killed (SIGKILL, no clean-up) at a point drawn at random
-- before its first checkpoint, halfway through writing a checkpoint, halfway through writing a
probe record -- is completed by ``--resume`` to exactly the run that was never interrupted: the
same metrics and probe records and the same final weights (issue 13).

The kill is injected in a child process by a small driver (DRIVER below) that wraps one function
of gpu_check and sends itself SIGKILL at the chosen call.  The points are drawn from a seeded
generator (FAULT_SEED), so the suite sees the same points every time and a failure reproduces.
"""
import os
import random
import subprocess
import sys

import pytest
import torch

from gpu_check import checkpoint, records
from gpu_check.config import preset, with_overrides
from gpu_check.run import main
from gpu_check.train import run_training

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# noisy-bn: its noise and the probes make the records depend on every piece of restored state
STEPS, CHECKPOINT_EVERY, PROBE_EVERY = 8, 3, 2
CONFIG = with_overrides(preset("smoke"), norm="noisy-bn", steps=STEPS, checkpoint_every=CHECKPOINT_EVERY,
                        probe_every=PROBE_EVERY)
ARGS = ["--preset", "smoke", "--norm", "noisy-bn", "--steps", str(STEPS), "--checkpoint-every",
        str(CHECKPOINT_EVERY), "--probe-every", str(PROBE_EVERY), "--quiet"]
WALL_CLOCK = ("step_time_s", "probe_time_s")
FAULT_SEED = 13
NETWORKS = len(CONFIG.networks())
# calls of the wrapped function in an uninterrupted run: training steps (each network), checkpoint
# saves (steps 3, 6, 8 and the final one), probe record writes (steps 0, 2, 4, 6, 8, each network)
CALLS = {"step": STEPS * NETWORKS, "checkpoint": len(range(CHECKPOINT_EVERY, STEPS, CHECKPOINT_EVERY)) + 2,
         "probe": len(range(0, STEPS + 1, PROBE_EVERY)) * NETWORKS}

DRIVER = r'''
import os, signal, sys
from gpu_check import records, train
from gpu_check.run import main

mode, at = sys.argv[1], int(sys.argv[2])
count = [0]


def die():
    os.kill(os.getpid(), signal.SIGKILL)


if mode == "step":                 # a kill between two records
    real_step = train.train_step

    def step(*args):
        count[0] += 1
        if count[0] == at:
            die()
        return real_step(*args)
    train.train_step = step
elif mode == "checkpoint":         # a kill with half of a checkpoint in its temporary file
    real_write = records.atomic_write_bytes

    def write(path, data):
        if path.endswith(records.CHECKPOINT):
            count[0] += 1
            if count[0] == at:
                with open(path + ".dying.tmp", "wb") as f:
                    f.write(data[: len(data) // 2])
                    f.flush()
                    os.fsync(f.fileno())
                die()
        return real_write(path, data)
    records.atomic_write_bytes = write
elif mode == "probe":              # a kill with half a probe record line in probes.jsonl
    real_records = records.RecordWriter.write

    def write(self, name, rows):
        if name == records.PROBES and rows:
            count[0] += 1
            if count[0] == at:
                text = "".join(records.dumps(r) + "\n" for r in rows)
                f = self.files[name]
                f.write(text[: len(text) // 2])
                f.flush()
                die()
        return real_records(self, name, rows)
    records.RecordWriter.write = write
sys.exit(main(sys.argv[3:]))
'''


def _points():
    rng = random.Random(FAULT_SEED)
    before_first = rng.randint(1, (CHECKPOINT_EVERY - 1) * NETWORKS)       # no checkpoint yet
    return [("step", before_first), ("step", rng.randint(CHECKPOINT_EVERY * NETWORKS + 1, CALLS["step"])),
            ("checkpoint", rng.randint(1, CALLS["checkpoint"])), ("probe", rng.randint(1, CALLS["probe"]))]


def comparable(run_dir, name):
    return [{k: v for k, v in r.items() if k not in WALL_CLOCK}
            for r in records.read_jsonl(os.path.join(run_dir, name))]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("whole"))
    run_training(CONFIG, d, progress=False)
    return d


@pytest.mark.parametrize("mode, at", _points(), ids=lambda x: str(x))
def test_a_run_killed_at_a_random_point_resumes_to_the_uninterrupted_run(tmp_path, capsys, uninterrupted,
                                                                          mode, at):
    d = str(tmp_path / "run")
    killed = subprocess.run([sys.executable, "-c", DRIVER, mode, str(at), *ARGS, "--out", d], cwd=REPO,
                            capture_output=True, text=True, timeout=300,
                            env=dict(os.environ, PYTHONPATH=REPO))
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert not os.path.exists(os.path.join(d, records.SUMMARY))          # it did not finish
    code = main([*ARGS, "--out", d, "--resume"])
    err = capsys.readouterr().err
    assert code == 0, err
    for name in (records.METRICS, records.PROBES):
        assert comparable(d, name) == comparable(uninterrupted, name), name
    done, whole = (checkpoint.load(os.path.join(x, records.CHECKPOINT))["networks"] for x in (d, uninterrupted))
    for net in whole:
        for k, v in whole[net]["model"].items():
            assert torch.equal(v, done[net]["model"][k]), (net, k)
