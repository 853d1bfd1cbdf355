"""Summaries of a run's probes, for the trajectory report (theory.report --trajectory).

    summarise_probes(run_dir) -> [row, ...], one row per (statement, variant, layer)

A probe is *violated* when ``theory.vocab.Relation.classify`` says so of its slack and the
rounding tolerance recorded with it (the slack rule and its verdicts live there).
"""
from __future__ import annotations

import math
import os

import numpy as np

from gpu_check import records
from theory.vocab import Relation, Verdict


# The fields of a probe record (gpu_check.probes.probe_rows) that a summary reads.
PROBE_FIELDS = frozenset({"statement", "variant", "layer", "relation", "verdict", "step", "slack", "rel_slack",
                          "tolerance"})


# The fields of a 'not applicable' probe record (no sides, no slack: a note says why).
NOT_APPLICABLE_FIELDS = frozenset({"statement", "variant", "layer", "relation", "verdict", "step", "note"})


def _number(x) -> float:
    """A probe field as a float ("nan"/"inf"/"-inf" strings are how records store non-finite)."""
    return float(x) if x is not None else math.nan


def summarise_probes(run_dir: str) -> list:
    """Rows, in the order statements, variants and layers first appear in probes.jsonl, keyed
    in the vocabulary of theory.report_rows:

    id (statement ID), variant, relation, layer ('dln/fc03', 'vgg/conv01'), network,
    instances (the number of probes: channels x probed steps), violations, non_finite,
    first_step, last_step, min_slack, median_slack, max_slack, min_rel_slack, verdict
    (Verdict.VIOLATED if any probe is, else Verdict.EQUALITY if every probe was recorded
    within rounding of 0, else Verdict.HOLDS); and one Verdict.NOT_APPLICABLE row, with its
    ``note``, per (statement, variant, layer) the probes recorded as not applicable there (e.g.
    Theorem 4.4 where no layer input X is known)

    Quantiles are over the finite slacks of all probed steps and channels; ``non_finite``
    counts the probes whose slack is NaN or infinite (never silently dropped); layers that could
    not be evaluated at a step are listed by ``probe_errors``, not here.  A run directory
    without probes.jsonl (a run without BatchNorm layers, or with probes off) gives [].
    """
    if not os.path.isdir(run_dir):
        raise FileNotFoundError(f"run directory {run_dir!r} does not exist")
    groups, not_applicable = {}, {}
    path = os.path.join(run_dir, records.PROBES)
    for n, r in enumerate(records.read_jsonl(path), 1):
        if "error" in r:
            continue      # a layer the numeric layer rejected at that step: see probe_errors
        if r.get("verdict") == Verdict.NOT_APPLICABLE:   # a variant the probe could not apply there, and why
            missing = NOT_APPLICABLE_FIELDS.difference(r)
            if missing:
                raise ValueError(f"{path}: probe record {n} lacks the field(s) {', '.join(sorted(missing))}")
            not_applicable.setdefault((r["statement"], r["variant"], r["layer"]), (r, []))[1].append(int(r["step"]))
            continue
        missing = PROBE_FIELDS.difference(r)
        if missing:
            raise ValueError(f"{path}: probe record {n} lacks the field(s) {', '.join(sorted(missing))}")
        key = (r["statement"], r["variant"], r["layer"])
        g = groups.setdefault(key, {"relation": Relation(r["relation"]), "network": r.get("network"),
                                    "steps": [], "slack": [], "rel": [], "tol": [], "verdicts": set()})
        g["verdicts"].add(Verdict(r["verdict"]))
        g["steps"].append(int(r["step"]))
        g["slack"].append(_number(r["slack"]))
        g["rel"].append(_number(r["rel_slack"]))
        g["tol"].append(_number(r["tolerance"]))
    rows = []
    for (statement, variant, layer), g in groups.items():
        slack, rel, tol = np.array(g["slack"]), np.array(g["rel"]), np.array(g["tol"])
        finite = np.isfinite(slack)
        fin_rel = rel[np.isfinite(rel)]
        violations = int(np.sum(g["relation"].classify(slack[finite], tol[finite]) == Verdict.VIOLATED))
        rows.append({
            "id": statement, "variant": variant, "relation": g["relation"],
            "layer": layer, "network": g["network"],
            "instances": int(slack.size),
            "violations": violations,
            "non_finite": int(np.sum(~finite)),
            "first_step": min(g["steps"]), "last_step": max(g["steps"]),
            "min_slack": float(slack[finite].min()) if finite.any() else math.nan,
            "median_slack": float(np.median(slack[finite])) if finite.any() else math.nan,
            "max_slack": float(slack[finite].max()) if finite.any() else math.nan,
            "min_rel_slack": float(fin_rel.min()) if fin_rel.size else math.nan,
            "verdict": (Verdict.VIOLATED if violations else
                        Verdict.EQUALITY if g["verdicts"] == {Verdict.EQUALITY} else Verdict.HOLDS),
        })
    for (statement, variant, layer), (r, steps) in not_applicable.items():
        if (statement, variant, layer) not in groups:
            rows.append({"id": statement, "variant": variant, "relation": Relation(r["relation"]), "layer": layer,
                         "network": r.get("network"), "instances": 0, "violations": 0, "non_finite": 0,
                         "first_step": min(steps), "last_step": max(steps), "min_slack": math.nan,
                         "median_slack": math.nan, "max_slack": math.nan, "min_rel_slack": math.nan,
                         "verdict": Verdict.NOT_APPLICABLE, "note": r["note"]})
    return rows


def probe_errors(run_dir: str) -> list:
    """The probes that could not be evaluated (rows with an 'error': the numeric layer refused
    the measured quantities, e.g. a constant channel under eps = 0 or NaN activations)."""
    return [r for r in records.read_jsonl(os.path.join(run_dir, records.PROBES)) if "error" in r]
