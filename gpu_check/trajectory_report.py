"""Orchestration of the trajectory report: the rows of ``python -m theory.report --trajectory DIR``.

    trajectory_report(run_dir, statements, symbolic, warn) -> [Row]
    run_meta(run_dir) -> dict        what the report's footer and ``meta`` say of the run

One row per statement variant and layer probed along the training run in ``run_dir``
(gpu_check.summary.summarise_probes), with ``source`` TRAJECTORY and its ``layer``; the symbolic
column and the agreement rule for trajectories come from theory.report_rows.  Needs no torch.

``run_dir`` must be a run: a directory with a readable config.json (gpu_check.run writes it
first), else the report is refused (InputError).  A run without probes (norm 'none', probes off,
a model that never probed) gives no rows and a note through ``warn``; a probes.jsonl whose last
line is cut (the run was killed mid-write) is read without it, with a warning naming the file.
"""
from __future__ import annotations

import math
import os

from gpu_check import records
from gpu_check.summary import summarise_probes
from theory.cli import InputError
from theory.report_rows import Row, Source, SymbolicSource, attach_symbolic, symbolic_table
from theory.vocab import Relation, Verdict


def _finite(x):
    return None if x is None or (isinstance(x, float) and not math.isfinite(x)) else float(x)


def _ignore(message: str) -> None:
    pass


def read_run_config(run_dir: str) -> dict:
    """The parsed config.json of a run directory; InputError when ``run_dir`` is not a run."""
    if not os.path.isdir(run_dir):
        raise InputError(f"--trajectory {run_dir!r}: no such directory")
    try:
        return records.read_run_meta(run_dir)
    except records.RunConfigError as err:
        raise InputError(f"--trajectory {run_dir!r}: {err}") from None


def run_meta(run_dir: str) -> dict:
    """The run's directory and whatever of seed, preset, norm, model and git revision its
    config.json records (keys absent when it does not)."""
    data = read_run_config(run_dir)
    config = data["config"]
    networks = [n for n in ("dln", "vgg") if config.get(n) is not None]
    model = config.get("model") or (" + ".join(networks) if networks else None)
    git = data.get("git")
    revision = git.get("revision") if isinstance(git, dict) else git if isinstance(git, str) else None
    found = {"run": run_dir, "seed": config.get("seed", data.get("seed")), "preset": config.get("preset"),
             "norm": config.get("norm"), "model": model, "run_git_revision": revision}
    return {k: v for k, v in found.items() if v is not None}


def _torn_last_line(path: str) -> bool:
    if not os.path.isfile(path) or os.path.getsize(path) == 0:
        return False
    with open(path, "rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1) != b"\n"


def trajectory_report(run_dir: str, statements, symbolic: SymbolicSource = SymbolicSource.CACHED,
                      warn=_ignore) -> list:
    """Rows measured along the training run in ``run_dir``, for the variants of ``statements``."""
    config = read_run_config(run_dir)["config"]
    probes = os.path.join(run_dir, records.PROBES)
    if _torn_last_line(probes):
        warn(f"{probes}: the last line is cut (the run stopped mid-write); it is left out")
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
    if not summary:
        why = "norm 'none' has no BatchNorm layer to probe" if config.get("norm") == "none" else \
            "probes off" if config.get("probe_every") == 0 else "no probe was recorded"
        warn(f"note: run {run_dir} has no probes ({why}): the table is empty")
    return rows
