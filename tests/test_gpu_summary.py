"""gpu_check.summary.summarise_probes: per (statement, variant, layer) counts and slack quantiles."""
import math

import pytest

from gpu_check import records
from gpu_check.summary import summarise_probes


def probe(step, layer, slack, tol=1e-12, statement="thm-4.1", variant="printed", rel=None, channel=0):
    return {"step": step, "network": layer.split("/")[0], "layer": layer, "channel": channel,
            "statement": statement, "variant": variant, "relation": "<=", "lhs": 1.0, "rhs": 1.0 + slack,
            "slack": slack, "rel_slack": slack if rel is None else rel, "tolerance": tol,
            "verdict": "violated" if slack < -tol else ("equality" if abs(slack) <= tol else "holds")}


def write(tmp_path, rows, tail=""):
    records.append_records(str(tmp_path / records.PROBES), rows)
    if tail:
        with open(tmp_path / records.PROBES, "a") as f:
            f.write(tail)


def test_within_rounding_everywhere_is_called_equality(tmp_path):
    write(tmp_path, [probe(s, "vgg/conv01", -1e-14, tol=1e-12) for s in range(2)])
    [row] = summarise_probes(str(tmp_path))
    assert (row["violations"], row["verdict"]) == (0, "equality")


def test_a_statement_that_holds_along_the_trajectory_has_no_violations(tmp_path):
    write(tmp_path, [probe(s, "vgg/conv01", 0.5 + s) for s in range(3)])
    [row] = summarise_probes(str(tmp_path))
    assert (row["id"], row["variant"], row["layer"]) == ("thm-4.1", "printed", "vgg/conv01")
    assert (row["instances"], row["violations"], row["first_step"], row["last_step"]) == (3, 0, 0, 2)
    assert (row["min_slack"], row["median_slack"], row["max_slack"], row["min_rel_slack"]) == (0.5, 1.5, 2.5, 0.5)
    assert row["verdict"] == "holds"


def test_a_violation_is_a_negative_slack_beyond_its_recorded_tolerance(tmp_path):
    write(tmp_path, [probe(0, "dln/fc01", -1e-13, tol=1e-12),    # within rounding: not violated
                     probe(1, "dln/fc01", -2e-12, tol=1e-12),    # violated
                     probe(2, "dln/fc01", -0.3, tol=1e-12)])     # violated
    [row] = summarise_probes(str(tmp_path))
    assert row["violations"] == 2 and row["min_slack"] == -0.3 and row["verdict"] == "violated"


def test_rows_are_split_by_statement_variant_and_layer_in_order_of_appearance(tmp_path):
    write(tmp_path, [probe(0, "dln/fc02", 1.0), probe(0, "dln/fc01", 1.0),
                     probe(0, "dln/fc02", 1.0, variant="exact"), probe(0, "dln/fc02", 1.0, statement="fact-c1"),
                     probe(4, "dln/fc02", 2.0, channel=3)])
    keys = [(r["id"], r["variant"], r["layer"], r["instances"]) for r in summarise_probes(str(tmp_path))]
    assert keys == [("thm-4.1", "printed", "dln/fc02", 2), ("thm-4.1", "printed", "dln/fc01", 1),
                    ("thm-4.1", "exact", "dln/fc02", 1), ("fact-c1", "printed", "dln/fc02", 1)]


def test_non_finite_slacks_are_counted_not_dropped_or_called_violations(tmp_path):
    write(tmp_path, [probe(0, "vgg/conv01", float("nan")), probe(1, "vgg/conv01", -1.0)])
    [row] = summarise_probes(str(tmp_path))
    assert (row["instances"], row["non_finite"], row["violations"], row["median_slack"]) == (2, 1, 1, -1.0)


def test_a_torn_final_line_is_not_a_probe_but_a_malformed_complete_line_is_an_error(tmp_path):
    write(tmp_path, [probe(0, "vgg/conv01", 1.0)], tail='{"step": 1, "lay')
    assert summarise_probes(str(tmp_path))[0]["instances"] == 1
    with open(tmp_path / records.PROBES, "a") as f:
        f.write("\n")
    with pytest.raises(ValueError, match=r"probes.jsonl:2: not a JSON record"):
        summarise_probes(str(tmp_path))


def test_a_run_without_probes_summarises_to_nothing_and_a_missing_run_is_an_error(tmp_path):
    assert summarise_probes(str(tmp_path)) == []
    with pytest.raises(FileNotFoundError, match="does not exist"):
        summarise_probes(str(tmp_path / "missing"))


def test_all_slacks_non_finite_gives_nan_quantiles(tmp_path):
    write(tmp_path, [probe(0, "vgg/conv01", float("inf"), rel=float("nan"))])
    [row] = summarise_probes(str(tmp_path))
    assert math.isnan(row["min_slack"]) and math.isnan(row["min_rel_slack"]) and row["non_finite"] == 1


def test_a_layer_the_numeric_layer_rejected_is_listed_as_an_error_not_summarised(tmp_path):
    from gpu_check.summary import probe_errors

    error = {"step": 3, "network": "dln", "layer": "dln/fc02", "error": "instance 0 is a constant batch"}
    write(tmp_path, [probe(0, "dln/fc02", 1.0), error])
    assert [r["instances"] for r in summarise_probes(str(tmp_path))] == [1]
    assert probe_errors(str(tmp_path)) == [error]
