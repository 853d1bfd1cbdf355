"""theory.report --trajectory: rows from gpu_check.summary.summarise_probes, with their layer and
source 'trajectory', in every format."""
import io
import json
import sys
import types

import pytest

from theory import report


@pytest.fixture
def fake_summary(monkeypatch, tmp_path):
    module = types.ModuleType("gpu_check.summary")
    module.summarise_probes = lambda run_dir: [
        {"id": "thm-4.1", "variant": "printed", "relation": "<=", "layer": "dln/fc03", "network": "dln",
         "instances": 40, "violations": 40, "non_finite": 1, "min_slack": -2.0, "median_slack": -1.0,
         "max_slack": -0.5, "min_rel_slack": -0.3, "verdict": "violated"},
        {"id": "lemma-4.5", "variant": "printed", "layer": "x", "instances": 1, "violations": 0, "verdict": "holds"},
    ]
    monkeypatch.setitem(sys.modules, "gpu_check.summary", module)
    return tmp_path


@pytest.mark.parametrize("fmt", ["json", "csv", "text", "markdown", "latex"])
def test_trajectory_rows_carry_layer_and_source(fake_summary, fmt):
    out, err = io.StringIO(), io.StringIO()
    code = report.run(["--instances", "20", "--only", "thm-4.1", "--format", fmt, "--trajectory", str(fake_summary),
                       "--no-minimise"], stdout=out, stderr=err)
    assert code == 0, err.getvalue()
    text = out.getvalue()
    assert "dln/fc03" in text
    if fmt == "json":
        rows = [r for r in json.loads(text)["rows"] if r["source"] == "trajectory"]
        assert len(rows) == 1 and rows[0]["layer"] == "dln/fc03" and rows[0]["undefined"] == 1
        assert rows[0]["symbolic_verdict"] == "violated" or rows[0]["symbolic_verdict"] == "pending"


def test_trajectory_report_of_a_real_smoke_run_has_only_probe_rows_and_no_false_disagreement(tmp_path):
    import json
    import subprocess
    import sys
    run_dir = tmp_path / "smoke"
    subprocess.run([sys.executable, "-m", "gpu_check.run", "--preset", "smoke", "--norm", "bn", "--out", str(run_dir)],
                   check=True, capture_output=True)
    out = subprocess.run([sys.executable, "-m", "theory.report", "--trajectory", str(run_dir), "--format", "json"],
                         check=True, capture_output=True, text=True).stdout
    rows = json.loads(out)["rows"]
    assert rows and all(r["source"] == "trajectory" and r["layer"] for r in rows)
    # Theorem 4.1 as torch computes it (eps > 0) is violated at every probe of a real network ...
    assert any(r["id"] == "thm-4.1" and r["variant"] == "epsilon" and r["verdict"] == "violated" for r in rows)
    # ... and a statement that is false in general but holds on this run is not a disagreement
    for r in rows:
        if r["symbolic_verdict"] == "violated" and r["verdict"] != "violated":
            assert r["agreement"] != "DISAGREE"
        if r["symbolic_verdict"] == "equality":
            assert r["verdict"] == "equality", r
