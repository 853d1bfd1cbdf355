"""numeric.bench: runs on the same instances, agrees with torch.func before timing, JSON shape."""
import json

import numpy as np
import pytest

pytest.importorskip("torch")
from numeric import bench  # noqa: E402

# torch.func scripts a helper on first use and warns that torch.jit.script is deprecated (torch's
# own internals in 2.13, not this project's code).
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")


def test_quick_run_has_the_documented_json_shape(capsys):
    assert bench.main(["--json", "--quick", "--sizes", "8", "16"]) == 0
    report = json.loads(capsys.readouterr().out)
    rows = report["rows"]
    assert report["machine"]["pass"].startswith(("native C", "numpy: "))
    assert {(r["m"], r["case"]) for r in rows} == {(m, c) for m in (8, 16) for c in ("grad-norm", "hessian-forms")}
    for r in rows:
        assert {"m", "case", "ours_us", "torch_func_us", "speedup", "torch_hvp_us", "speedup_vs_hvp",
                "limit_us", "ours_over_limit", "bytes_per_instance"} <= set(r)
        assert r["ours_us"] > 0 and r["torch_func_us"] > 0 and r["max_rel_diff"] < bench.AGREEMENT
        assert r["limit_us"] > 0 and r["ours_over_limit"] == pytest.approx(r["ours_us"] / r["limit_us"])
        # the HVP baseline is a Hessian-vector product: it exists for the Hessian forms only
        assert (r["torch_hvp_us"] is not None) == (r["case"] == "hessian-forms")
        assert (r["numpy_pass_us"] is not None) == (r["case"] == "hessian-forms")


def test_the_memory_bound_counts_the_dense_H_of_every_instance():
    assert bench.bytes_per_instance("hessian-forms", 1024) == 8 * (1024 * 1024 + 2 * 1024 + 2)
    assert bench.bytes_per_instance("grad-norm", 1024) == 8 * (2 * 1024 + 2)


def test_full_runs_stream_a_working_set_larger_than_the_last_level_cache():
    llc = bench.last_level_cache_bytes()
    for m in bench.SIZES:
        n = bench.instance_count("hessian-forms", m, quick=False, llc_bytes=llc)
        assert n * bench.bytes_per_instance("hessian-forms", m) >= bench.WORKING_SET_LLC_MULTIPLE * llc


def test_the_limit_uses_the_highest_read_bandwidth_measured_in_the_run(monkeypatch):
    # one bandwidth per case, measured next to our timing; a contended (low) one must not make
    # the limit slower than the machine allows
    measured = iter([10e9, 40e9, 20e9, 30e9])
    monkeypatch.setattr(bench, "read_bandwidth", lambda llc: next(measured))
    rows, machine = bench.run(sizes=(8, 16), quick=True)
    assert machine["read_bandwidth_gb_s"] == 40.0 and machine["read_bandwidth_gb_s_lowest"] == 10.0
    for r in rows:
        assert r.limit_us == pytest.approx(1e6 * r.bytes_per_instance / 40e9)


def test_text_output_states_the_growth_of_our_cost(capsys):
    assert bench.main(["--quick", "--sizes", "8", "32"]) == 0
    assert "growth of ours, hessian-forms" in capsys.readouterr().out


def test_a_wrong_closed_form_is_caught_before_any_timing(monkeypatch):
    original = bench.ours_hessian_forms
    monkeypatch.setattr(bench, "ours_hessian_forms", lambda *a, **k: tuple(np.asarray(x) * 1.001 for x in original(*a, **k)))
    with pytest.raises(AssertionError, match="differ"):
        bench.run(sizes=(8,), quick=True)


def test_bad_size_exits_2_with_one_line(capsys):
    assert bench.main(["--sizes", "1"]) == 2
    assert capsys.readouterr().err == \
        "error: argument --sizes: must be an integer in [3, 4096] (at m = 2 the gradient through BatchNorm is " \
        "exactly 0, nothing to compare; above 4096 H does not fit), got 1\n"
