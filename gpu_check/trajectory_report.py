"""Orchestration of the trajectory report: the rows of ``python -m theory.report --trajectory DIR``.

    trajectory_report(run_dir, statements, symbolic) -> [Row]

One row per statement variant and layer probed along the training run in ``run_dir``
(gpu_check.summary.summarise_probes), with ``source`` TRAJECTORY and its ``layer``; the symbolic
column and the agreement rule for trajectories come from theory.report_rows.  Needs no torch.
"""
from __future__ import annotations

import math
import os

from gpu_check.summary import summarise_probes
from theory.cli import InputError
from theory.report_rows import Row, Source, SymbolicSource, attach_symbolic, symbolic_table
from theory.vocab import Relation, Verdict


def _finite(x):
    return None if x is None or (isinstance(x, float) and not math.isfinite(x)) else float(x)


def trajectory_report(run_dir: str, statements, symbolic: SymbolicSource = SymbolicSource.CACHED) -> list:
    """Rows measured along the training run in ``run_dir``, for the variants of ``statements``."""
    if not os.path.isdir(run_dir):
        raise InputError(f"--trajectory {run_dir!r}: no such directory")
    table = symbolic_table(statements, symbolic)
    wanted = {s.id for s in statements}
    try:
        summary = summarise_probes(run_dir)
    except ValueError as err:      # a probes.jsonl that is not what gpu_check.probes writes
        raise InputError(f"--trajectory {run_dir!r}: {err}") from None
    rows = [Row(d["id"], d["variant"], Verdict(d["verdict"]), d["instances"], d["violations"],
                _finite(d["min_slack"]), _finite(d["median_slack"]), _finite(d["max_slack"]),
                _finite(d["min_rel_slack"]), None, relation=Relation(d["relation"]), source=Source.TRAJECTORY,
                undefined=d["non_finite"], layer=d["layer"], note=d.get("note", ""))
            for d in summary if d["id"] in wanted]
    attach_symbolic(rows, table)
    return rows
