"""gpu_check.grid: canonical learning-rate names, grid validation, grid.json, point states and the
run-directory lock."""
import json
import os
import socket
import subprocess
import sys
import time

import pytest

from gpu_check import grid as G
from gpu_check.config import ConfigError, preset, with_learning_rate


@pytest.mark.parametrize("a, b, name", [(1e-3, "0.001", "1e-3"), (2e-7, "2.0e-7", "2e-7"), (0.1, "1e-1", "1e-1"),
                                        (0.05, "5e-2", "5e-2"), (1.5e-6, "0.0000015", "1.5e-6"), (3, "3.0", "3e0")])
def test_equal_learning_rates_have_one_canonical_name(a, b, name):
    assert G.lr_name(a) == G.lr_name(b) == name


def test_different_learning_rates_have_different_names():
    assert G.lr_name(1e-3) != G.lr_name(1.0000001e-3)


@pytest.mark.parametrize("lr", [0, -1e-3, float("nan"), float("inf"), "abc"])
def test_a_learning_rate_that_is_not_finite_and_positive_is_refused(lr):
    with pytest.raises(ConfigError, match="learning rate"):
        G.lr_name(lr)


def test_lr_sets_every_network_of_the_preset():
    c = with_learning_rate(preset("smoke"), 0.02)
    assert c.dln.lr == c.vgg.lr == 0.02
    assert with_learning_rate(preset("smoke"), None) == preset("smoke")


@pytest.mark.parametrize("kwargs, message", [
    (dict(presets=["nope"]), "unknown preset 'nope'"),
    (dict(norms=["bn", "nope"]), "unknown norm 'nope'"),
    (dict(lrs=[]), "empty grid: no lr"),
    (dict(seeds=[]), "empty grid: no seed"),
    (dict(lrs=["1e-3", 0.001]), "1e-3 and 0.001 are the same point"),
    (dict(seeds=[0, 0]), "duplicate seed 0"),
    (dict(norms=["bn", "bn"]), "duplicate norm 'bn'"),
    (dict(seeds=[-1]), "seed -1"),
    (dict(options={"lr": 1}), "unknown grid option"),
    (dict(options={"steps": 0}), "steps = 0"),
])
def test_bad_grids_are_refused_naming_the_value(kwargs, message):
    args = dict(presets=["smoke"], norms=["bn"], lrs=[1e-3], seeds=[0], options={})
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        G.make_grid(args["presets"], args["norms"], args["lrs"], args["seeds"], args["options"])


def test_points_are_the_product_of_the_axes_under_canonical_directories():
    g = G.make_grid(["smoke"], ["none", "bn"], ["1e-3", 2e-3], [0, 1], {"steps": 3})
    names = [p.name for p in g.points()]
    assert len(names) == 8 and len(set(names)) == 8
    assert "smoke/bn/lr2e-3/seed1" in names
    c = g.config(g.points()[-1])
    assert (c.norm, c.seed, c.dln.lr, c.vgg.lr, c.steps) == ("bn", 1, 2e-3, 2e-3, 3)


def test_an_out_with_another_grids_options_is_refused_and_one_with_the_same_is_extended(tmp_path):
    g = G.make_grid(["smoke"], ["bn"], [1e-3], [0], {"steps": 3})
    out = str(tmp_path / "g")
    assert G.check_out(g, out) == []
    G.write_grid(g, out, [], ["cmd"])
    more = G.make_grid(["smoke"], ["bn"], [1e-3], [0, 1], {"steps": 3})
    earlier = G.check_out(more, out)
    G.write_grid(more, out, earlier, ["cmd"])
    with open(os.path.join(out, G.GRID_FILE)) as f:
        assert [p["dir"] for p in json.load(f)["points"]] == ["smoke/bn/lr1e-3/seed0", "smoke/bn/lr1e-3/seed1"]
    with pytest.raises(G.GridError, match="different grid"):
        G.check_out(G.make_grid(["smoke"], ["bn"], [1e-3], [0], {"steps": 4}), out)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "x").write_text("")
    with pytest.raises(G.GridError, match="not empty"):
        G.check_out(g, str(tmp_path / "other"))


def test_two_sweeps_that_read_the_grid_before_either_wrote_it_keep_both_their_points(tmp_path):
    # the interleaving of two concurrent invocations into one DIR (say seeds 0 and 1 started on
    # two machines): both check_out before either writes; the later write once dropped the
    # earlier one's point, because each wrote what it had read plus its own
    out = str(tmp_path / "g")
    first = G.make_grid(["smoke"], ["bn"], [1e-3], [0], {"steps": 3})
    second = G.make_grid(["smoke"], ["bn"], [1e-3], [1], {"steps": 3})
    earlier_first, earlier_second = G.check_out(first, out), G.check_out(second, out)
    G.write_grid(first, out, earlier_first, ["cmd"])
    G.write_grid(second, out, earlier_second, ["cmd"])
    with open(os.path.join(out, G.GRID_FILE)) as f:
        assert [p["dir"] for p in json.load(f)["points"]] == ["smoke/bn/lr1e-3/seed0", "smoke/bn/lr1e-3/seed1"]
    assert not os.path.exists(os.path.join(out, G.GRID_LOCK_FILE))      # released


def test_the_grid_lock_is_held_while_grid_json_is_rewritten(tmp_path, monkeypatch):
    out = str(tmp_path / "g")
    held = []
    real = G.records.atomic_write_json
    monkeypatch.setattr(G.records, "atomic_write_json",
                        lambda path, d: (held.append(os.path.exists(os.path.join(out, G.GRID_LOCK_FILE))),
                                         real(path, d)))
    G.write_grid(G.make_grid(["smoke"], ["bn"], [1e-3], [0], {"steps": 3}), out, [], ["cmd"])
    assert held == [True]
    # a first invocation that finds only another's grid lock in DIR is not told DIR is not empty
    other = str(tmp_path / "h")
    os.makedirs(other)
    open(os.path.join(other, G.GRID_LOCK_FILE), "w").close()
    assert G.check_out(G.make_grid(["smoke"], ["bn"], [1e-3], [0], {"steps": 3}), other) == []


def test_toml_grid_file(tmp_path):
    f = tmp_path / "g.toml"
    f.write_text('preset = "smoke"\nnorm = ["none", "bn"]\nlr = [1e-3]\nseed = [0, 1]\n[options]\nsteps = 3\n')
    spec = G.load_toml(str(f))
    assert spec == {"preset": ["smoke"], "norm": ["none", "bn"], "lr": [1e-3], "seed": [0, 1], "options": {"steps": 3}}
    f.write_text('presets = ["smoke"]\n')
    with pytest.raises(G.GridError, match="unknown key"):
        G.load_toml(str(f))
    f.write_text('preset = [\n')
    with pytest.raises(G.GridError, match="not valid TOML"):
        G.load_toml(str(f))


# ---------------------------------------------------------------------------------------------
# The lock
# ---------------------------------------------------------------------------------------------

def test_the_lock_is_exclusive_and_released(tmp_path):
    d = str(tmp_path)
    with G.RunLock(d):
        with pytest.raises(G.LockedError, match="being run by"):
            G.RunLock(d, wait_s=0.2).acquire()
    assert not os.path.exists(os.path.join(d, G.LOCK_FILE))
    with G.RunLock(d, wait_s=0.2):
        pass


def test_a_lock_of_a_dead_process_on_this_host_is_taken_over(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)
    with open(tmp_path / G.LOCK_FILE, "w") as f:
        json.dump({"host": socket.gethostname(), "pid": pid, "token": "x"}, f)
    with G.RunLock(str(tmp_path), wait_s=0.2):
        with open(tmp_path / G.LOCK_FILE) as f:
            assert json.load(f)["pid"] == os.getpid()


def test_a_lock_of_another_host_holds_while_its_heartbeat_is_fresh_and_is_broken_when_stale(tmp_path):
    with open(tmp_path / G.LOCK_FILE, "w") as f:
        json.dump({"host": "another-node", "pid": 1, "token": "y"}, f)
    with pytest.raises(G.LockedError, match="another-node"):
        G.RunLock(str(tmp_path), wait_s=0.2, stale_s=60).acquire()
    old = time.time() - 120
    os.utime(tmp_path / G.LOCK_FILE, (old, old))
    with G.RunLock(str(tmp_path), wait_s=0.2, stale_s=60):
        pass


def test_the_holder_keeps_its_lock_fresh(tmp_path):
    lock = G.RunLock(str(tmp_path), heartbeat_s=0.05).acquire()
    try:
        old = time.time() - 1000
        os.utime(tmp_path / G.LOCK_FILE, (old, old))
        time.sleep(0.3)
        assert time.time() - os.path.getmtime(tmp_path / G.LOCK_FILE) < 5
    finally:
        lock.release()


def test_expand_runs_reads_a_grid_directory_as_its_runs(tmp_path):
    g = G.make_grid(["smoke"], ["bn"], [1e-3], [0, 1], {"steps": 3})
    G.write_grid(g, str(tmp_path), [], ["cmd"])
    for p in g.points()[:1]:
        os.makedirs(tmp_path / p.name)
        (tmp_path / p.name / "config.json").write_text("{}")
    assert G.expand_runs([str(tmp_path), "/some/run"]) == [str(tmp_path / "smoke/bn/lr1e-3/seed0"), "/some/run"]


def test_plan_stacks_dln_points_only_where_a_stack_beats_separate_runs(tmp_path):
    from gpu_check import fast_dln

    def routes(norm, seeds, route="auto"):
        g = G.make_grid(["dln-paper"], [norm], [1e-7], list(range(seeds)), {"steps": 3}, route)
        tasks, _ = G.plan(g, str(tmp_path / f"{norm}{seeds}{route}"))
        return sorted((t.stacked, len(t.points)) for t in tasks)
    assert routes("bn", 1) == [(True, 1)]
    assert routes("l1", fast_dln.MIN_STACK["batched"] - 1) == [(False, 1)] * (fast_dln.MIN_STACK["batched"] - 1)
    assert routes("linf", 4) == [(True, 4)]
    assert routes("noisy-bn", 2) == [(True, 2)]
    assert routes("bn", 3, "separate") == [(False, 1)] * 3
    g = G.make_grid(["smoke"], ["bn"], [1e-3], [0, 1], {"steps": 3})
    assert all(not t.stacked for t in G.plan(g, str(tmp_path / "smoke"))[0])   # a VGG: always separate


def test_a_stack_holds_a_seeds_points_together_and_splits_between_seeds(tmp_path):
    """noisy-bn's noise is drawn once per seed in a stack: plan puts a seed's learning rates side by
    side, and balance halves a stack for idle workers at the seed boundary nearest the middle."""
    g = G.make_grid(["dln-paper"], ["noisy-bn"], [1e-9, 1e-8, 1e-7, 3e-7, 1e-6], [0, 1, 2], {"steps": 3})
    [task], _ = G.plan(g, str(tmp_path))
    assert [p.seed for p in task.points] == [0] * 5 + [1] * 5 + [2] * 5
    halves = G.balance([task], 2)
    assert sorted(len(t.points) for t in halves) == [5, 10]
    assert all(len({p.seed for p in t.points}) == len(t.points) // 5 for t in halves)


def test_longest_first_orders_tasks_by_expected_remaining_seconds(tmp_path):
    """Workers take tasks in order: the longest expected task goes first, a resumed task counts
    only the steps it has left, and equal estimates keep plan's order."""
    g = G.make_grid(["dln-paper"], ["none", "l1"], [1e-7], [0, 1, 2, 3], {"steps": 100})
    tasks, _ = G.plan(g, str(tmp_path))
    cost = {"none": 1.0, "l1": 5.0}
    ordered = G.longest_first(tasks, lambda c: cost[c["norm"]])
    assert [t.configs[0]["norm"] for t in tasks] == ["none", "l1"]           # plan's (grid) order ...
    assert [t.configs[0]["norm"] for t in ordered] == ["l1", "none"]         # ... is not the longest first
    resumed = G.Task(tasks[1].out, tasks[1].points, tasks[1].configs, True, start_step=90)   # l1, 10% to go
    assert [t.start_step for t in G.longest_first([resumed, tasks[0]], lambda c: cost[c["norm"]])] == [0, 90]
    assert G.longest_first(tasks, lambda c: 1.0) == tasks


def test_the_sweeps_cost_model_scales_a_runs_measured_seconds_by_its_steps():
    from gpu_check import readings as R
    full = {"preset": "dln-paper", "norm": "l1", "steps": R.preset_steps("dln-paper"), "device": "auto"}
    assert R.seconds_per_run(full) == R.SECONDS_PER_RUN[("cpu", "dln-paper")]["l1"]
    assert R.seconds_per_run({**full, "steps": full["steps"] // 10}) == R.seconds_per_run(full) / 10
    gpu = {**full, "device": "cuda", "preset": "vgg-paper", "steps": R.preset_steps("vgg-paper")}
    assert R.seconds_per_run(gpu) == R.SECONDS_PER_RUN[("cuda", "vgg-paper")]["l1"]
