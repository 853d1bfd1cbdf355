"""The measurements as options of a run: recorded in the run directory, costed in the summary,
and invisible to the training trajectory (also across an interruption and --resume)."""
import json
import os

import pytest

from gpu_check import records, run
from gpu_check.config import MEASUREMENTS, ConfigError, preset, with_overrides
from gpu_check.train import SimulatedInterruption, run_training

FILES = {"ics": "ics.jsonl", "landscape": "landscape.jsonl", "distributions": "distributions.jsonl"}
WALL_CLOCK = ("step_time_s", "probe_time_s")
# noisy-bn: its noise makes every record depend on the step the network believes it is at
CONFIG = with_overrides(preset("smoke"), norm="noisy-bn", steps=10, checkpoint_every=4, measure_every=3)


def comparable(run_dir, name):
    return [{k: v for k, v in r.items() if k not in WALL_CLOCK}
            for r in records.read_jsonl(os.path.join(run_dir, name))]


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("measured"))
    summary = run_training(with_overrides(CONFIG, measure=MEASUREMENTS), d, progress=False)
    return d, summary


def test_measurements_do_not_change_the_training_trajectory(measured, tmp_path):
    plain = str(tmp_path)
    run_training(CONFIG, plain, progress=False)
    assert comparable(measured[0], records.METRICS) == comparable(plain, records.METRICS)
    assert comparable(measured[0], records.PROBES) == comparable(plain, records.PROBES)
    assert not any(os.path.exists(os.path.join(plain, f)) for f in FILES.values())


def test_a_measured_run_records_its_options_and_every_measurement_at_its_steps(measured):
    d, _ = measured
    with open(os.path.join(d, records.CONFIG)) as f:
        config = json.load(f)["config"]
    assert config["measure"] == list(MEASUREMENTS) and config["measure_every"] == 3
    assert sorted({r["step"] for r in records.read_jsonl(os.path.join(d, FILES["ics"]))}) == [0, 3, 6, 9, 10]
    assert sorted({r["step"] for r in records.read_jsonl(os.path.join(d, FILES["landscape"]))}) == [0, 3, 6, 9, 10]
    assert sorted({r["step"] for r in records.read_jsonl(os.path.join(d, FILES["distributions"]))}) \
        == [0, 1, 3, 4, 6, 7, 9, 10]


def test_the_summary_states_the_cost_of_each_measurement(measured):
    d, summary = measured
    with open(os.path.join(d, records.SUMMARY)) as f:
        cost = json.load(f)["measure_cost"]
    assert set(cost) == set(MEASUREMENTS) == set(summary.measure_cost)
    for name, c in cost.items():
        assert c["seconds"] > 0 and c["share_of_step"] > 0 and 0 < c["share_of_run"] < 1, name
        assert c["calls"] == 2 * c["measured_steps"]                     # both networks of the smoke run
        assert c["per_step_s"] == pytest.approx(c["seconds"] / c["measured_steps"])


def test_an_interrupted_measured_run_resumes_to_the_same_records(measured, tmp_path):
    d = str(tmp_path)
    config = with_overrides(CONFIG, measure=MEASUREMENTS)
    with pytest.raises(SimulatedInterruption):
        run_training(config, d, progress=False, stop_after=7)
    run_training(config, d, resume=True, progress=False)
    for name in FILES.values():
        assert comparable(d, name) == comparable(measured[0], name), name


def test_the_command_line_takes_a_list_of_measurements_and_prints_their_cost(tmp_path, capsys):
    out = str(tmp_path / "r")
    assert run.main(["--preset", "smoke", "--norm", "bn", "--steps", "3", "--out", out, "--quiet",
                     "--measure", "ics, distributions"]) == 0
    printed = capsys.readouterr().out
    assert "measure ics:" in printed and "measure distributions:" in printed and "landscape:" not in printed
    assert os.path.exists(os.path.join(out, FILES["ics"])) and not os.path.exists(os.path.join(out, FILES["landscape"]))


def test_an_unknown_measurement_is_refused_with_the_valid_names(tmp_path, capsys):
    assert run.main(["--preset", "smoke", "--norm", "bn", "--out", str(tmp_path / "r"), "--measure", "ics,hessian"]) == 2
    assert "unknown or repeated measurement ['hessian']; measurements are: ics, landscape, distributions" \
        in capsys.readouterr().err
    with pytest.raises(ConfigError, match="measure_every = -1"):
        with_overrides(preset("smoke"), measure_every=-1)


def test_every_configured_measurement_has_exactly_one_hook():
    from gpu_check.measure import HOOKS
    assert sorted(HOOKS) == sorted(MEASUREMENTS)
    assert all(HOOKS[name].name == name for name in HOOKS)
