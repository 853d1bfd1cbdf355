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
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert {(r["m"], r["case"]) for r in rows} == {(m, c) for m in (8, 16) for c in ("grad-norm", "hessian-forms")}
    for r in rows:
        assert {"m", "case", "ours_us", "torch_func_us", "speedup"} <= set(r)
        assert r["ours_us"] > 0 and r["torch_func_us"] > 0 and r["max_rel_diff"] < bench.AGREEMENT


def test_text_output_states_the_growth_of_our_cost(capsys):
    assert bench.main(["--quick", "--sizes", "8", "32"]) == 0
    assert "growth of ours, hessian-forms" in capsys.readouterr().out


def test_a_wrong_closed_form_is_caught_before_any_timing(monkeypatch):
    original = bench.ours_hessian_forms
    monkeypatch.setattr(bench, "ours_hessian_forms", lambda *a: tuple(np.asarray(x) * 1.001 for x in original(*a)))
    with pytest.raises(AssertionError, match="differ"):
        bench.run(sizes=(8,), quick=True)


def test_bad_size_exits_2_with_one_line(capsys):
    assert bench.main(["--sizes", "1"]) == 2
    assert capsys.readouterr().err == \
        "error: argument --sizes: must be an integer >= 2 (BatchNorm needs m >= 2), got 1\n"
