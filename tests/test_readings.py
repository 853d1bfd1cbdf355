"""gpu_check.readings: the readings, the paper's procedure, and the full grid as sweep TOML files."""
import math

from gpu_check import grid as G
from gpu_check import readings as R


def test_the_full_grid_is_valid_sweep_toml_with_every_point_a_valid_run(tmp_path):
    plan = R.paper_plan("paper", data=str(tmp_path))
    files = R.write_grid_files(plan, str(tmp_path / "work"))
    assert [out.rsplit("/", 1)[-1] for _, out in files] == ["dln", "dln", "vgg", "vgg", R.DIGITS_FAMILY]
    points = 0
    for (path, _out), sub in zip(files, plan):
        spec = G.load_toml(path)
        grid = G.make_grid(spec["preset"], spec["norm"], spec["lr"], spec["seed"], spec["options"])
        points += len(grid.points())
        assert dict(grid.options)["probe_every"] == 0 and dict(grid.options)["measure"] == R.MEASURE
        assert [G.lr_name(x) for x in grid.lrs] == [R.lr_text(x) for x in sub.lrs]
    # 210 + 28 DLN (none and bn also above the printed lr) + 24 + 15 VGG (the single-lr norms without
    # a selection seed) + 7 norms x 3 seeds on the
    # real digits (vgg-digits, no data option)
    assert points == sum(g.runs for g in plan) == 298
    assert plan[-1].preset == "vgg-digits" and "data" not in dict(plan[-1].options)
    # the seeds: >= 5 judged for the DLN, >= 3 for VGG, and selection seeds apart
    assert len(R.JUDGED_SEEDS["dln"]) >= 5 and len(R.JUDGED_SEEDS["vgg"]) >= 3
    for net in ("dln", "vgg"):
        assert not set(R.JUDGED_SEEDS[net]) & set(R.SELECTION_SEEDS[net])


def test_the_dln_readings_span_the_printed_lr_on_the_mean_and_on_the_summed_loss():
    assert min(R.DLN_LRS) == 1e-9 and max(R.DLN_LRS) == 1e-6
    assert R.lrs_of("dln", "bn") == R.lrs_of("dln", "none") == R.DLN_LRS + R.DLN_ABOVE_PRINTED_LRS
    assert R.lrs_of("dln", "l1") == R.DLN_LRS and min(R.DLN_ABOVE_PRINTED_LRS) > max(R.DLN_LRS)
    names = {r.name: r for r in R.READINGS}
    assert "mean loss" in names["dln-lr1e-9"].support and "summed loss" in names["dln-lr1e-6"].support


def test_the_papers_procedure_takes_the_lowest_median_loss_and_never_a_diverging_lr():
    assert R.select_lr({1e-7: [5.0, 7.0], 1e-6: [math.inf, 1.0], 1e-8: [9.0, 9.0]}) == 1e-7
    assert R.select_lr({0.1: [0.3], 0.5: [0.3]}) == 0.1          # a tie: the smaller rate
    assert R.select_lr({0.1: []}) is None


def test_the_estimate_says_when_the_paper_width_vgg_needs_a_gpu():
    text = R.plan_text(R.paper_plan("paper"), "cpu")
    assert "needs a GPU" in text and "measured s/run" in text
    assert "h (measured s/run)" in R.plan_text(R.paper_plan("cpu"), "cpu")
