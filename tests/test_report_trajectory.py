"""theory.report --trajectory: rows from the probes of a training run (gpu_check.trajectory_report),
with their layer and source 'trajectory', in every format, and the trajectory agreement rule."""
import io
import json
import subprocess
import sys

import pytest

from gpu_check import records
from theory import report


def probe(step, layer, slack, statement="thm-4.1", variant="printed", relation="<=", tol=1e-12):
    verdict = "violated" if slack < -tol else ("equality" if abs(slack) <= tol else "holds")
    return {"step": step, "network": layer.split("/")[0], "layer": layer, "channel": 0, "statement": statement,
            "variant": variant, "relation": relation, "lhs": 1.0, "rhs": 1.0 + slack, "slack": slack,
            "rel_slack": slack / 2, "tolerance": tol, "verdict": verdict}


def as_run(run_dir, **config):
    """Make `run_dir` a run: the config.json gpu_check.run writes first (the fields the report reads)."""
    config = {"preset": "smoke", "norm": "bn", "seed": 0, "probe_every": 1, "dln": {"depth": 3}, "vgg": None, **config}
    records.atomic_write_json(str(run_dir / records.CONFIG), {"config": config, "seed": config["seed"],
                                                              "git": {"revision": "0123456789abcdef", "dirty": False}})
    return run_dir


@pytest.fixture
def run_dir(tmp_path):
    """A run directory whose probes.jsonl holds: thm-4.1/printed violated at every probe of
    dln/fc03 (and one NaN slack), thm-4.1/drop-correlation holding, lemma-4.5 (filtered out by
    --only thm-4.1)."""
    rows = [probe(s, "dln/fc03", -1.0 - s) for s in range(3)] + [probe(3, "dln/fc03", float("nan"))]
    rows += [probe(s, "dln/fc03", 0.5, variant="drop-correlation") for s in range(2)]
    rows += [probe(0, "x", 1.0, statement="lemma-4.5", relation="==")]
    records.append_records(str(tmp_path / records.PROBES), rows)
    return as_run(tmp_path)


def _report(*argv):
    out, err = io.StringIO(), io.StringIO()
    code = report.run(list(argv), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("fmt", ["json", "csv", "text", "markdown", "latex"])
def test_trajectory_rows_carry_layer_and_source(run_dir, fmt):
    code, text, err = _report("--only", "thm-4.1", "--format", fmt, "--trajectory", str(run_dir))
    assert code == 0, err
    assert "dln/fc03" in text and "lemma-4.5" not in text


def test_trajectory_rows_are_the_summary_with_the_symbolic_verdict_and_agreement(run_dir):
    code, text, err = _report("--only", "thm-4.1", "--format", "json", "--trajectory", str(run_dir))
    assert code == 0, err
    rows = {r["variant"]: r for r in json.loads(text)["rows"]}
    assert set(rows) == {"printed", "drop-correlation"}
    printed = rows["printed"]
    assert (printed["source"], printed["layer"], printed["instances"], printed["violations"], printed["undefined"]) \
        == ("trajectory", "dln/fc03", 4, 3, 1)
    assert (printed["verdict"], printed["symbolic_verdict"], printed["agreement"]) == ("violated", "violated", "agree")
    held = rows["drop-correlation"]
    assert (held["verdict"], held["symbolic_verdict"], held["agreement"]) == ("holds", "holds", "agree")


def test_a_violation_along_a_run_of_a_statement_the_symbolic_layer_proves_is_a_disagreement(tmp_path):
    records.append_records(str(as_run(tmp_path) / records.PROBES),
                           [probe(0, "dln/fc01", -0.5, variant="drop-correlation")])
    code, text, err = _report("--only", "thm-4.1", "--format", "json", "--trajectory", str(tmp_path))
    [row] = json.loads(text)["rows"]
    assert code == 0 and (row["verdict"], row["symbolic_verdict"], row["agreement"]) == ("violated", "holds", "DISAGREE")


def test_a_false_statement_that_holds_along_a_run_is_not_a_disagreement(tmp_path):
    records.append_records(str(as_run(tmp_path) / records.PROBES), [probe(0, "dln/fc01", 0.5)])
    code, text, err = _report("--only", "thm-4.1", "--format", "json", "--trajectory", str(tmp_path))
    [row] = json.loads(text)["rows"]
    assert code == 0 and (row["verdict"], row["symbolic_verdict"]) == ("holds", "violated")
    assert row["agreement"] == "n/a (holds on this run)"


def test_a_probe_record_without_its_fields_is_bad_input_in_one_line(tmp_path):
    records.append_records(str(as_run(tmp_path) / records.PROBES), [{"step": 0, "statement": "thm-4.1"}])
    code, out, err = _report("--trajectory", str(tmp_path))
    assert code == 2 and out == "" and err.count("\n") == 1
    assert err.startswith("error: ") and "probe record 1 lacks the field(s)" in err


def test_trajectory_report_of_a_real_smoke_run_has_only_probe_rows_and_no_false_disagreement(tmp_path):
    run_dir = tmp_path / "smoke"
    subprocess.run([sys.executable, "-m", "gpu_check.run", "--preset", "smoke", "--norm", "bn", "--out", str(run_dir)],
                   check=True, capture_output=True)
    out = subprocess.run([sys.executable, "-m", "theory.report", "--trajectory", str(run_dir), "--format", "json"],
                         check=True, capture_output=True, text=True).stdout
    rows = json.loads(out)["rows"]
    assert rows and all(r["source"] == "trajectory" and r["layer"] for r in rows)
    # Theorem 4.1 as torch computes it (eps > 0) is violated at every probe of a real network ...
    assert any(r["id"] == "thm-4.1" and r["variant"] == "epsilon" and r["verdict"] == "violated" for r in rows)
    # ... no statement the symbolic layer proves is violated along the run ...
    assert [(r["id"], r["variant"], r["layer"]) for r in rows if r["agreement"] == "DISAGREE"] == []
    # ... and every identity the symbolic layer proves is an equality at every probe.
    for r in rows:
        if r["symbolic_verdict"] == "equality":
            assert r["verdict"] == "equality", r


# ---------------------------------------------------------------------------------------------
# What is not a finished run (issue 13, item 9)
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("config", [None, "", "{\n", "[1, 2]", '{"seed": 0}'],
                         ids=["no-config", "empty", "torn", "not-an-object", "no-config-object"])
def test_a_directory_that_is_not_a_run_is_refused_in_one_line(tmp_path, config):
    if config is not None:
        (tmp_path / records.CONFIG).write_text(config)
    records.append_records(str(tmp_path / records.PROBES), [probe(0, "dln/fc01", 0.5)])
    code, out, err = _report("--trajectory", str(tmp_path))
    assert (code, out) == (2, "") and err.count("\n") == 1
    assert err.startswith(f"error: --trajectory {str(tmp_path)!r}: ")
    assert ("is not a run directory: it has no config.json" in err) if config is None else ("is not a run's config" in err)


@pytest.mark.parametrize("norm, probes", [("none", None), ("bn", ""), ("bn", None)],
                         ids=["norm-none", "empty-probes", "no-probes-file"])
def test_a_run_without_probes_is_an_empty_table_with_a_one_line_note(tmp_path, norm, probes):
    as_run(tmp_path, norm=norm)
    if probes is not None:
        (tmp_path / records.PROBES).write_text(probes)
    code, out, err = _report("--trajectory", str(tmp_path), "--format", "json")
    assert code == 0 and json.loads(out)["rows"] == []
    assert err.count("\n") == 1 and err.startswith(f"note: run {tmp_path} has no probes")
    assert ("norm 'none'" in err) == (norm == "none")


def test_a_torn_last_probe_line_is_left_out_with_a_warning_naming_the_file(run_dir):
    path = run_dir / records.PROBES
    with open(path, "a") as f:
        f.write('{"step": 9, "statement": "thm-4.1", "var')
    code, out, err = _report("--only", "thm-4.1", "--format", "json", "--trajectory", str(run_dir))
    assert code == 0 and err == f"warning: {path}: the last line is cut (the run stopped mid-write); it is left out\n"
    rows = {r["variant"]: r for r in json.loads(out)["rows"]}
    assert rows["printed"]["instances"] == 4


def test_meta_and_footer_speak_of_the_run_not_of_a_random_sweep(run_dir):
    code, out, _ = _report("--only", "thm-4.1", "--format", "json", "--trajectory", str(run_dir))
    meta = json.loads(out)["meta"]
    assert code == 0 and "instances" not in meta
    assert {k: meta[k] for k in ("run", "seed", "preset", "norm", "model", "run_git_revision")} == \
        {"run": str(run_dir), "seed": 0, "preset": "smoke", "norm": "bn", "model": "dln",
         "run_git_revision": "0123456789abcdef"}
    code, text, _ = _report("--only", "thm-4.1", "--trajectory", str(run_dir), "--wide")
    footer = text.rstrip().splitlines()[-1]
    assert footer.startswith(f"run {run_dir} (preset smoke, norm bn, model dln, seed 0)") and "git 0123456789ab" in footer
    assert "instances per group" not in text


@pytest.mark.parametrize("line", ['not json at all', '[1, 2, 3]', '7', '{"step": 0}',
                                  json.dumps({**probe(0, "dln/fc01", 0.5), "slack": [1, 2]}),
                                  json.dumps({**probe(0, "dln/fc01", 0.5), "relation": "about"}),
                                  json.dumps({**probe(0, "dln/fc01", 0.5), "step": {"a": 1}})],
                         ids=["garbage", "a-list", "a-number", "missing-fields", "slack-a-list", "bad-relation",
                              "step-an-object"])
def test_a_probes_file_that_gpu_check_did_not_write_is_bad_input_in_one_line(tmp_path, line):
    (as_run(tmp_path) / records.PROBES).write_text(line + "\n")
    code, out, err = _report("--trajectory", str(tmp_path))
    assert (code, out) == (2, "") and err.count("\n") == 1 and err.startswith(f"error: --trajectory {str(tmp_path)!r}: ")
