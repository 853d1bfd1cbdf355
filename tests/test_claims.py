"""gpu_check.claims: every implemented criterion says reproduced, not-reproduced and inconclusive
on constructed run summaries; readings, the paper's procedure and the missing claims."""
import math

import pytest

from gpu_check import claims as C
from gpu_check import readings as R
from gpu_check.run_summary import SUMMARY_FORMAT
from theory.vocab import ClaimVerdict as V

LR = {"dln": 1e-6, "vgg": 0.1}
STEPS = {"dln": 10_000, "vgg": 15_000}
PRESET = {"dln": "dln-paper", "vgg": "vgg-paper"}


def summary(network, norm, seed, lr=None, *, mean=1.0, final=1.0, initial=10.0, reach=1000, acc=0.9, test=0.8,
            cos=(0.5, 0.5), live=0, land=1.0, beta_lr=1.0, grad=1.0, change=1.0, status="complete",
            dataset="CIFAR-10"):
    """A run summary with the given statistics.  ``cos`` is (before ``live``, from ``live`` on);
    ``reach``: the step at which the loss curve gets to ``final``."""
    lr = LR[network] if lr is None else lr
    T = STEPS[network]
    return {"format": SUMMARY_FORMAT, "code_version": "test", "git": {"revision": "test", "dirty": False},
            "run": {"network": network, "preset": PRESET[network], "norm": norm, "lr": lr, "lr_text": R.lr_text(lr),
                    "seed": seed, "steps": T, "status": status, "next_step": T + 1, "dataset": dataset,
                    "device": "test"},
            "config": {},
            "loss": {"window": 1, "initial": initial, "final": final, "mean": mean, "live_from": live,
                     "live_fraction": 0.95,
                     "curve": {"steps": [0, reach, T - 1], "loss": [initial, final, final]}},
            "accuracy": {"final_train": acc, "final_test": test},
            "ics": [{"step": s, "cos": cos[0] if s < live else cos[1], "rel": 0.1} for s in range(0, T, T // 10)],
            "landscape": [{"step": s, "loss_range": land, "grad_change_max": land, "beta_eff": beta_lr / lr,
                           "grad_norm": grad, "lr": lr, "random_loss_range": land, "random_grad_change_max": land,
                           "random_beta_eff": beta_lr / lr} for s in range(0, T, T // 10)],
            "distributions": {("output" if norm == "none" else "pre-norm"):
                              [{"step": s, "d_mean": change, "d_var": change} for s in range(0, T, T // 10)]}}


# For each claim: the statistics per norm of a seed where the claim holds, and where it fails.
CASES = {
    "fig1a": ({"none": dict(mean=2.0), "bn": dict(mean=1.0)}, {"none": dict(mean=1.0), "bn": dict(mean=2.0)}),
    "fig1b": ({"none": dict(test=0.7), "bn": dict(test=0.8)}, {"none": dict(test=0.8), "bn": dict(test=0.7)}),
    "fig1c": ({"none": dict(change=1.0), "bn": dict(change=1.2)}, {"none": dict(change=1.0), "bn": dict(change=10.0)}),
    "fig2-similar": ({"bn": dict(acc=0.91), "noisy-bn": dict(acc=0.9)}, {"bn": dict(acc=0.9), "noisy-bn": dict(acc=0.5)}),
    "fig2-better": ({"none": dict(acc=0.5), "noisy-bn": dict(acc=0.9)}, {"none": dict(acc=0.5), "noisy-bn": dict(acc=0.4)}),
    "fig2-noise-standard": ({"noisy-none": dict(final=9.0, initial=10.0)}, {"noisy-none": dict(final=1.0, initial=10.0)}),
    "fig2-stability": ({"none": dict(change=1.0), "noisy-bn": dict(change=10.0)},
                       {"none": dict(change=1.0), "noisy-bn": dict(change=0.1)}),
    "fig3-vgg": ({"none": dict(cos=(0.9, 0.9)), "bn": dict(cos=(0.5, 0.5))},
                 {"none": dict(cos=(0.5, 0.5)), "bn": dict(cos=(0.99, 0.99))}),
    "fig3-dln": ({"none": dict(cos=(0.9, 0.9)), "bn": dict(cos=(0.5, 0.5))},
                 {"none": dict(cos=(0.5, 0.5)), "bn": dict(cos=(0.99, 0.99))}),
    # the dead start: cos ~ 1 for both before step 3000; only the live part decides
    "fig3-vgg-live": ({"none": dict(cos=(1.0, 0.9), live=3000), "bn": dict(cos=(1.0, 0.5), live=100)},
                      {"none": dict(cos=(1.0, 0.3), live=3000), "bn": dict(cos=(1.0, 0.9), live=100)}),
    "fig3-dln-none": ({"none": dict(cos=(0.99, 0.99))}, {"none": dict(cos=(0.5, 0.5))}),
    "fig3-dln-bn": ({"bn": dict(cos=(0.1, 0.1))}, {"bn": dict(cos=(0.9, 0.9))}),
    "grad-magnitude-vgg": ({"none": dict(grad=10.0), "bn": dict(grad=1.0)}, {"none": dict(grad=1.0), "bn": dict(grad=10.0)}),
    "grad-magnitude-dln": ({"none": dict(grad=10.0), "bn": dict(grad=1.0)}, {"none": dict(grad=1.0), "bn": dict(grad=10.0)}),
    "lp-train-vgg": ({"bn": dict(mean=1.0), "l1": dict(mean=1.2), "l2": dict(mean=0.8), "linf": dict(mean=1.5)},
                     {"bn": dict(mean=1.0), "l1": dict(mean=1.2), "l2": dict(mean=0.8), "linf": dict(mean=5.0)}),
    "lp-train-dln": ({"bn": dict(reach=1000), "l1": dict(reach=900), "l2": dict(reach=1100), "linf": dict(reach=1500)},
                     {"bn": dict(reach=1000), "l1": dict(reach=900), "l2": dict(reach=1100), "linf": dict(reach=9000)}),
    "lp-l1-dln": ({"bn": dict(reach=1000), "l1": dict(reach=500)}, {"bn": dict(reach=1000), "l1": dict(reach=2000)}),
    "fig6": ({"none": dict(change=1.0), "l1": dict(change=10.0), "l2": dict(change=5.0), "linf": dict(change=3.0)},
             {"none": dict(change=1.0), "l1": dict(change=10.0), "l2": dict(change=5.0), "linf": dict(change=0.1)}),
}
for _net in ("vgg", "dln"):
    CASES[f"lp-smooth-{_net}"] = ({"none": dict(land=10.0, beta_lr=1.0), **{p: dict(land=1.0, beta_lr=0.1) for p in C.LP_NORMS}},
                                  {"none": dict(land=10.0, beta_lr=1.0), "l1": dict(land=1.0, beta_lr=0.1),
                                   "l2": dict(land=20.0, beta_lr=0.1), "linf": dict(land=1.0, beta_lr=0.1)})
for _claim in ("fig4a-vgg", "fig4b-vgg", "fig4c-vgg", "fig10a-dln", "fig10b-dln", "fig10c-dln",
               "random-directions-vgg", "random-directions-dln"):
    CASES[_claim] = ({"none": dict(land=10.0, beta_lr=1.0), "bn": dict(land=1.0, beta_lr=0.1)},
                     {"none": dict(land=1.0, beta_lr=0.1), "bn": dict(land=10.0, beta_lr=1.0)})


def claim(cid):
    return next(c for c in C.CLAIMS if c.id == cid)


def seeds_summaries(c, per_seed_case):
    """Summaries of the judged seeds; ``per_seed_case(seed)`` gives {norm: statistics}; a 1% spread
    over seeds keeps the t-interval honest."""
    out = []
    for seed in R.JUDGED_SEEDS[c.network]:
        for norm, kw in per_seed_case(seed).items():
            kw = dict(kw)
            for k in ("mean", "land", "grad", "change"):
                if k in kw:
                    kw[k] = kw[k] * (1 + 0.01 * seed)
            out.append(summary(c.network, norm, seed, **kw))
    return out


def printed_reading(c):
    return next(r for r in R.readings_for(c.network, c.norms) if r.lr == LR[c.network])


def verdict(c, summaries):
    return C.judge_reading(c, printed_reading(c), C.SummaryIndex.of(summaries)).verdict


def test_every_implemented_claim_has_a_case_and_every_claim_id_is_unique():
    ids = [c.id for c in C.CLAIMS]
    assert len(ids) == len(set(ids))
    implemented = {c.id for c in C.CLAIMS if c.criterion is not None and not c.lr_grid}
    assert implemented == set(CASES)


@pytest.mark.parametrize("cid", sorted(CASES))
def test_each_criterion_is_reproduced_when_the_claim_holds_on_every_seed(cid):
    c = claim(cid)
    good, _ = CASES[cid]
    assert verdict(c, seeds_summaries(c, lambda s: good)) is V.REPRODUCED


@pytest.mark.parametrize("cid", sorted(CASES))
def test_each_criterion_is_not_reproduced_when_the_claim_fails_on_every_seed(cid):
    c = claim(cid)
    _, bad = CASES[cid]
    assert verdict(c, seeds_summaries(c, lambda s: bad)) is V.NOT_REPRODUCED


@pytest.mark.parametrize("cid", sorted(CASES))
def test_each_criterion_is_inconclusive_when_the_seeds_disagree(cid):
    c = claim(cid)
    good, bad = CASES[cid]
    assert verdict(c, seeds_summaries(c, lambda s: good if s % 2 == 0 else bad)) is V.INCONCLUSIVE


def test_too_few_seeds_leave_a_clear_claim_inconclusive():
    c = claim("fig1a")
    good, _ = CASES["fig1a"]
    few = [s for s in seeds_summaries(c, lambda s: good) if s["run"]["seed"] < 2]
    assert verdict(c, few) is V.INCONCLUSIVE


def test_fig10c_is_inconclusive_when_both_networks_sit_at_the_edge_of_stability():
    c = claim("fig10c-dln")
    pinned = {"none": dict(beta_lr=2.2), "bn": dict(beta_lr=1.9)}
    r = C.judge_reading(c, printed_reading(c), C.SummaryIndex.of(seeds_summaries(c, lambda s: pinned)))
    assert r.interval.low > 0 and r.verdict is V.INCONCLUSIVE and "edge of stability" in r.note


def test_a_diverged_standard_network_counts_against_it_in_the_training_speed_claim():
    c = claim("fig1a")
    case = {"none": dict(mean=float("inf"), final=float("inf"), status="diverged"), "bn": dict(mean=1.0)}
    summaries = seeds_summaries(c, lambda s: case)
    for s in summaries:
        if s["run"]["norm"] == "none":
            s["loss"]["mean"] = "inf"                 # as written by run_summary (strict JSON)
    assert verdict(c, summaries) is V.REPRODUCED


@pytest.mark.parametrize("cid", ["lr-range-vgg", "lr-range-dln"])
def test_the_learning_rate_range_counts_the_rates_at_which_each_network_trains(cid):
    c = claim(cid)

    def grid(bn_diverges_at_top):
        out = []
        lrs = R.lrs_of(c.network, "none")
        for seed in R.JUDGED_SEEDS[c.network]:
            for lr in lrs:
                top = lr == lrs[-1]
                for norm in ("none", "bn"):
                    fails = top and ((norm == "bn") == bn_diverges_at_top(seed))
                    out.append(summary(c.network, norm, seed, lr, final=float("inf") if fails else 1.0,
                                       status="diverged" if fails else "complete"))
        return out

    judge = lambda s: C.judge_claim(c, C.SummaryIndex.of(s)).verdict  # noqa: E731
    assert judge(grid(lambda seed: False)) is V.REPRODUCED        # none diverges at the top rate, bn trains
    assert judge(grid(lambda seed: True)) is V.NOT_REPRODUCED
    assert judge(grid(lambda seed: seed % 2 == 0)) is V.INCONCLUSIVE


def test_the_paper_procedure_picks_each_norms_lr_on_selection_seeds_only():
    c = claim("fig1a")
    out = []
    for seed in R.SELECTION_SEEDS["vgg"]:
        for lr, loss, bn_loss in ((0.05, 0.5, 0.05), (0.1, 0.3, 0.03), (0.5, float("inf"), 0.01)):
            out.append(summary("vgg", "none", seed, lr, final=loss, status="diverged" if loss == float("inf")
                               else "complete"))
            out.append(summary("vgg", "bn", seed, lr, final=bn_loss))
    for seed in R.JUDGED_SEEDS["vgg"]:
        out.append(summary("vgg", "none", seed, 0.1, mean=2.0 * (1 + 0.01 * seed)))
        out.append(summary("vgg", "bn", seed, 0.5, mean=1.0))
        # the judged seeds at other rates would say the opposite: the procedure must not look at them
        out.append(summary("vgg", "none", seed, 0.05, final=0.01, mean=0.5))
    index = C.SummaryIndex.of(out)
    assert C.chosen_lrs(index, "vgg", ("none", "bn")) == {"none": 0.1, "bn": 0.5}
    res = C.judge_claim(c, index)
    proc = next(r for r in res.readings if r.reading.name == R.PAPER_PROCEDURE)
    assert proc.verdict is V.REPRODUCED and res.verdict is V.REPRODUCED and "none 1e-1, bn 5e-1" in proc.setting


def test_the_paper_procedure_takes_a_single_candidate_lr_without_selection_runs():
    # noisy-bn's VGG grid has one lr (the printed 0.1): nothing to select.  none's has three: with
    # no selection-seed run the procedure has not chosen, and says so.
    assert not R.selection_needed("vgg", "noisy-bn") and R.selection_needed("vgg", "none")
    index = C.SummaryIndex.of([summary("vgg", n, seed, 0.1, final=0.3)
                               for n in ("none", "noisy-bn") for seed in R.JUDGED_SEEDS["vgg"]])
    assert C.chosen_lrs(index, "vgg", ("noisy-bn", "none")) == {"noisy-bn": 0.1, "none": None}


def test_the_cpu_plan_runs_no_selection_seed_where_there_is_nothing_to_select():
    vgg_grids = [g for g in R.paper_plan("cpu") if g.preset == "vgg-cpu"]
    for g in vgg_grids:
        needs = any(R.selection_needed("vgg", n) for n in g.norms)
        assert set(R.SELECTION_SEEDS["vgg"]) <= set(g.seeds) if needs else not set(R.SELECTION_SEEDS["vgg"]) & set(g.seeds)


def test_runs_below_the_presets_scale_are_not_counted():
    c = claim("fig1a")
    good, _ = CASES["fig1a"]
    short = seeds_summaries(c, lambda s: good)
    for s in short:
        s["run"]["steps"] = 1000
    assert C.judge_reading(c, printed_reading(c), C.SummaryIndex.of(short)).seeds == ()


def test_a_cifar_claim_on_synthetic_data_is_not_testable_here_and_names_cifar():
    c = claim("fig1b")
    good, _ = CASES["fig1b"]
    synthetic = [dict(s, run=dict(s["run"], dataset="synthetic-cifar10-like(seed=0; NOT CIFAR-10)"))
                 for s in seeds_summaries(c, lambda s: good)]
    res = C.judge_claim(c, C.SummaryIndex.of(synthetic))
    assert res.verdict is V.NOT_TESTABLE_HERE and "CIFAR-10" in res.why


def test_every_claim_has_a_measurement_now():
    assert [c.id for c in C.CLAIMS if c.criterion is None] == []


def test_dln_claims_carry_every_learning_rate_reading_and_the_paper_procedure():
    names = [r.name for r in R.readings_for("dln", ("none", "bn"))]
    assert names == [f"dln-lr{R.lr_text(lr)}" for lr in R.DLN_LRS + R.DLN_ABOVE_PRINTED_LRS] + [R.PAPER_PROCEDURE]
    # the rates above the printed one are trained for none and bn only: an l_p claim never reads them
    names = [r.name for r in R.readings_for("dln", ("bn", "l1"))]
    assert names == [f"dln-lr{R.lr_text(lr)}" for lr in R.DLN_LRS] + [R.PAPER_PROCEDURE]
    assert [(r.name, r.lr) for r in R.readings_for("vgg", ("none", "l1"))] == [
        ("vgg-lr1e-1", 0.1), ("vgg-digits-lr1e-1", 0.1), (R.PAPER_PROCEDURE, None)]


def digits(s):
    """The summary as a vgg-digits run (scikit-learn's real digits)."""
    return dict(s, run=dict(s["run"], preset="vgg-digits", steps=R.preset_steps("vgg-digits"),
                            dataset="sklearn-digits(real 8x8 handwritten digits; NOT CIFAR-10), 1500 train / 297 test"))


def test_the_digits_family_is_a_reading_of_its_own_and_never_mixes_with_the_synthetic_runs():
    c = claim("fig1a")
    good, bad = CASES["fig1a"]
    runs = seeds_summaries(c, lambda s: good) + [digits(s) for s in seeds_summaries(c, lambda s: bad)]
    res = {r.reading.name: r for r in C.judge_claim(c, C.SummaryIndex.of(runs)).readings}
    assert res["vgg-lr1e-1"].verdict is V.REPRODUCED
    assert res["vgg-digits-lr1e-1"].verdict is V.NOT_REPRODUCED
    assert "vgg-digits" in res["vgg-digits-lr1e-1"].setting and "NOT CIFAR-10" in res["vgg-digits-lr1e-1"].setting
    only_digits = C.judge_claim(c, C.SummaryIndex.of([digits(s) for s in seeds_summaries(c, lambda s: good)]))
    by = {r.reading.name: r.verdict for r in only_digits.readings}
    assert by["vgg-digits-lr1e-1"] is V.REPRODUCED and by["vgg-lr1e-1"] is V.INCONCLUSIVE


def test_real_digits_do_not_stand_in_for_cifar10():
    c = claim("fig1b")
    good, _ = CASES["fig1b"]
    res = C.judge_claim(c, C.SummaryIndex.of([digits(s) for s in seeds_summaries(c, lambda s: good)]))
    assert res.verdict is V.NOT_TESTABLE_HERE and "CIFAR-10" in res.why


def test_a_change_of_layer_inputs_below_float32_resolution_is_undefined_not_a_value():
    c = claim("fig1c")
    rounding = {"none": dict(change=1.0), "bn": dict(change=1e-9)}
    r = C.judge_reading(c, printed_reading(c), C.SummaryIndex.of(seeds_summaries(c, lambda s: rounding)))
    assert r.verdict is V.INCONCLUSIVE and r.interval.undefined == len(R.JUDGED_SEEDS["vgg"])
    assert "undefined" in r.note


def test_a_worst_case_over_the_lp_norms_is_undefined_when_one_comparison_is():
    # l1 reaches the level, bn, l2 and linf never do (the DLN at 1e-8, still descending): l1 vs bn is
    # -inf but l2 vs bn and linf vs bn are inf/inf, undefined.  Python's max kept the first value
    # and called the seed a win for the l_p norms; the worst case over the three is undefined.
    c = claim("lp-train-dln")
    runs = {"bn": summary("dln", "bn", 0, final=2.0, reach=9000), "l1": summary("dln", "l1", 0, final=1.0, reach=500),
            "l2": summary("dln", "l2", 0, final=2.0, reach=9000), "linf": summary("dln", "linf", 0, final=3.0, reach=9000)}
    assert math.isnan(c.per_seed(runs))
    assert max([-math.inf, math.nan, math.nan]) == -math.inf                  # what the old statistic returned
    assert math.isnan(C.most([-math.inf, math.nan])) and math.isnan(C.least([math.nan, 1.0]))
    assert C.most([1.0, -math.inf, 3.0]) == 3.0 and C.least([1.0, -math.inf]) == -math.inf
