"""The Ray executor on a real local Ray instance (2 CPUs): a tiny grid completes although a worker
is killed in the middle of a run; the retried task resumes from the checkpoint (its events log
says so); the records equal those of the local executor, timing fields aside."""
import json
import os
import signal
import threading
import time

import pytest

from gpu_check import grid as G
from gpu_check import records, sweep

pytest.importorskip("ray", reason="Ray is the optional 'cluster' extra (installed by the 'test' extra)")

WALL_CLOCK = ("step_time_s", "probe_time_s")
# smoke (both networks; separate runs): 40 steps with a checkpoint every 8 last a few seconds, long
# enough to be caught between two checkpoints
GRID = G.make_grid(["smoke"], ["none", "bn"], [3e-4], [0], {"steps": 40, "checkpoint_every": 8})
KILL_WAIT_S = 120


def comparable(run_dir, name):
    return [{k: v for k, v in r.items() if k not in WALL_CLOCK}
            for r in records.read_jsonl(os.path.join(run_dir, name))]


def kill_a_worker_mid_run(out: str, killed: dict, stop: threading.Event) -> None:
    """SIGKILL the process holding the lock of a run that has a checkpoint and no summary."""
    deadline = time.monotonic() + KILL_WAIT_S
    while not stop.is_set() and time.monotonic() < deadline:
        for p in GRID.points():
            d = os.path.join(out, p.name)
            lock = os.path.join(d, G.LOCK_FILE)
            if not (os.path.isfile(os.path.join(d, records.CHECKPOINT)) and os.path.isfile(lock)):
                continue
            if os.path.isfile(os.path.join(d, records.SUMMARY)):
                continue
            try:
                with open(lock) as f:
                    pid = json.load(f)["pid"]
            except (OSError, ValueError):
                continue
            if pid == os.getpid():
                continue
            os.kill(pid, signal.SIGKILL)
            killed.update(run=d, pid=pid)
            return
        time.sleep(0.05)


@pytest.fixture(scope="module")
def ray():
    ray = sweep.start_ray(None, show_logs=False, num_cpus=2)
    yield ray
    ray.shutdown()


def test_a_killed_worker_is_retried_and_the_grid_equals_the_local_executor(ray, tmp_path):
    out = str(tmp_path / "ray")
    G.write_grid(GRID, out, [], ["test"])
    tasks, _ = G.plan(GRID, out)
    killed, stop, results = {}, threading.Event(), []
    killer = threading.Thread(target=kill_a_worker_mid_run, args=(out, killed, stop))
    killer.start()
    try:
        sweep.run_ray(ray, tasks, results.append)
    finally:
        stop.set()
        killer.join()
    assert killed, "no worker was caught mid-run"
    assert sorted(r.status for r in results) == ["complete", "complete"]
    evs = [e["event"] for e in records.read_jsonl(os.path.join(killed["run"], records.EVENTS))]
    assert evs[0] == "start" and "resume" in evs and evs[-1] == "complete"

    local = str(tmp_path / "local")
    G.write_grid(GRID, local, [], ["test"])
    for task in G.plan(GRID, local)[0]:
        G.run_task(task)
    for p in GRID.points():
        for name in (records.METRICS, records.PROBES):
            assert comparable(os.path.join(out, p.name), name) == comparable(os.path.join(local, p.name), name)


def test_the_cli_runs_a_grid_on_ray_and_keeps_rays_logs_off_the_terminal(ray, tmp_path, capfd):
    out = str(tmp_path / "g")
    argv = ["--preset", "smoke", "--norm", "none", "--lr", "3e-4", "--seed", "0", "1", "--steps", "3",
            "--executor", "ray", "--out", out, "--quiet"]
    assert sweep.main(argv) == 0
    cap = capfd.readouterr()
    assert cap.err == ""
    assert cap.out.count("complete") == 2
