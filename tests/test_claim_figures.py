"""gpu_check.claim_figures: standard and BatchNorm side by side with a 95% band over seeds."""
import numpy as np

from gpu_check import readings as R
from gpu_check.claim_figures import claim_figure, seed_band
from gpu_check.reproduction_doc import figures_of
from test_claims import summary


def test_the_band_is_the_t_interval_over_seeds_at_the_steps_every_seed_has():
    steps, mean, low, high = seed_band([[(0, 1.0), (10, 2.0)], [(0, 3.0), (10, 4.0), (20, 9.0)], [(0, 2.0), (10, 3.0)]])
    assert steps.tolist() == [0, 10] and mean.tolist() == [2.0, 3.0]
    assert np.all(low < mean) and np.all(mean < high)


def test_a_figure_is_drawn_for_each_learning_rate_with_both_networks_and_none_without(tmp_path):
    runs = [summary("dln", n, s, land=10.0 if n == "none" else 1.0) for s in R.JUDGED_SEEDS["dln"] for n in ("none", "bn")]
    figures = figures_of(runs)
    assert [name for _f, _lr, name, _s in figures] == ["dln_lr1e-6.png"]
    family, lr, name, judged = figures[0]
    path = claim_figure(judged, family, lr, str(tmp_path))
    assert path.rsplit("/", 1)[-1] == name
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert claim_figure([r for r in runs if r["run"]["norm"] == "none"], "dln", 1e-6, str(tmp_path)) is None
    assert figures_of([r for r in runs if r["run"]["seed"] != 0]) == []      # a judged seed is missing


def test_a_log_quantity_is_banded_in_log_space_so_the_band_stays_positive():
    series = [[(0, 1e-3)], [(0, 1e3)], [(0, 1.0)]]
    steps, mean, low, high = seed_band(series, log=True)
    assert np.isclose(mean[0], 1.0) and 0 < low[0] < 1.0 < high[0]
    _, linear_mean, linear_low, _ = seed_band(series)
    assert linear_low[0] < 0 < linear_mean[0]                 # the linear band would cross zero


def test_a_change_below_float32_resolution_is_rounding_and_not_drawn(tmp_path):
    runs = [summary("dln", n, s, change=1e-4 if n == "none" else 1e-9) for s in R.JUDGED_SEEDS["dln"]
            for n in ("none", "bn")]
    from gpu_check.claim_figures import _inputs
    assert all(np.isnan(v) for _, v in _inputs(runs[1])) and not any(np.isnan(v) for _, v in _inputs(runs[0]))
    assert claim_figure(runs, "dln", 1e-6, str(tmp_path)) is not None


def test_diverged_seeds_are_named_and_the_band_runs_on_over_the_others(tmp_path):
    """A diverged run's curve ends a few steps in with inf: banded with the others it would end the
    band there (the panel empty after step 4); the band is drawn over the seeds that did not diverge."""
    from gpu_check.claim_figures import _loss, split_diverged

    def run(norm, seed, diverged):
        s = summary("dln", norm, seed, status="diverged" if diverged else "complete")
        if diverged:
            s["run"]["next_step"] = 4
            s["loss"]["curve"] = {"steps": [0, 3, 4], "loss": [10.0, 1e12, float("inf")]}
        return s
    runs = [run(n, s, diverged=(n == "none" and s in (0, 3))) for s in R.JUDGED_SEEDS["dln"] for n in ("none", "bn")]
    none = [r for r in runs if r["run"]["norm"] == "none"]
    live, gone = split_diverged(none)
    assert gone == [(0, 4), (3, 4)] and sorted(r["run"]["seed"] for r in live) == [1, 2, 4]
    from gpu_check.claim_figures import _diverged_text
    assert _diverged_text(gone) == "diverged: seeds 0, 3 (step 4)"
    assert _diverged_text([(4, 22)]) == "diverged: seed 4 at step 22"
    assert _diverged_text([(0, 4), (1, 10)]) == "diverged: seeds 0, 1 (steps 4-10)"
    assert seed_band([_loss(r) for r in none], log=True)[0].max() <= 4                # banded with them: ends at 4
    assert seed_band([_loss(r) for r in live], log=True)[0].max() == none[1]["run"]["steps"] - 1
    assert claim_figure(runs, "dln", 1e-6, str(tmp_path)) is not None
    every = [run(n, s, diverged=(n == "none")) for s in R.JUDGED_SEEDS["dln"] for n in ("none", "bn")]
    assert split_diverged([r for r in every if r["run"]["norm"] == "none"])[0] == []
    assert claim_figure(every, "dln", 1e-6, str(tmp_path)) is not None                # "every seed diverged"


def test_an_overlay_is_drawn_where_every_network_it_compares_has_its_judged_seeds(tmp_path):
    from gpu_check.claim_figures import OVERLAYS, overlay_figure
    from gpu_check.reproduction_doc import overlays_of

    lp = next(o for o in OVERLAYS if o.suffix == "lp")
    runs = [summary("dln", n, s) for s in R.JUDGED_SEEDS["dln"] for n in lp.norms]
    found = overlays_of(runs)
    assert [(name, o.suffix) for _f, _lr, name, _s, o in found] == [("dln_lr1e-6_lp.png", "lp")]
    family, lr, name, judged, overlay = found[0]
    path = overlay_figure(judged, family, lr, overlay, str(tmp_path))
    assert path.rsplit("/", 1)[-1] == name
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    # one judged seed of one network missing: no overlay (the comparison would not be over the same seeds)
    short = [r for r in runs if not (r["run"]["norm"] == "l2" and r["run"]["seed"] == 0)]
    assert overlays_of(short) == [] and overlay_figure(short, "dln", lr, overlay, str(tmp_path)) is None


def test_the_noise_overlay_shows_the_accuracy_the_fig2_criteria_judge_with_a_diverged_run_at_chance(tmp_path):
    from gpu_check import claims as C
    from gpu_check.claim_figures import OVERLAYS, overlay_figure

    noise = next(o for o in OVERLAYS if o.suffix == "noise")
    runs = [summary("vgg", n, s, acc=0.9, status="diverged" if n == "noisy-none" else "complete")
            for s in R.JUDGED_SEEDS["vgg"] for n in noise.norms]
    assert {C.train_accuracy(r) for r in runs if r["run"]["norm"] == "noisy-none"} == {C.CHANCE_ACCURACY}
    assert overlay_figure(runs, "vgg", 0.1, noise, str(tmp_path)).endswith("vgg_lr1e-1_noise.png")
