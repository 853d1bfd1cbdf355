"""A run's small summary: what the reproduction's criteria read, and where it came from.

    python -m gpu_check.run_summary DIR [DIR ...] --out docs/reproduction/summaries [--finished-only]

DIR is a run directory of gpu_check.run or a grid directory of gpu_check.sweep (its runs).
For every network a run trains, one JSON file

    OUT/<network>/<preset>/<norm>/lr<LR>/seed<S>.json

holds the run's configuration, seed, git revision (from its config.json) and code version, its
status (complete or diverged: a diverged run is an outcome and is summarised like any other),
and the statistics the criteria need -- not the raw records:

* loss: initial (mean of the first WINDOW steps), final (mean of the last FINAL_FRACTION of the
  steps), mean over the run, the first step of the *live* phase (the dead-start rule: the first
  step at which the WINDOW-step mean of the loss is below LIVE_FRACTION of the initial value),
  and the WINDOW-step mean at about CURVE_POINTS steps (both ends included); a diverged run's
  final and mean loss are +inf;
* accuracy (VGG): final training accuracy (mean of the last FINAL_FRACTION), last test accuracy;
* per measured step: the median over layers 2..k of cos(G, G') and ||G - G'|| / ||G|| (layer 1's
  ICS is 0 by definition); the landscape's loss range, largest gradient change, effective beta,
  gradient norm and learning rate; and for the activations a layer receives ('output') and a
  normalisation receives ('pre-norm'), the median over sampled units of |d mean| / std and
  |d var| / var between steps t and t + 1.

Numbers are written to SIGNIFICANT digits, keys sorted, no timestamps and no machine paths, so a
summary is a function of the run alone.
"""
from __future__ import annotations

import json
import math
import os
import sys
from importlib import metadata

import numpy as np

from gpu_check import records
from gpu_check.data import DIGITS
from gpu_check.grid import expand_runs
from gpu_check.measure_distributions import moment_changes
from gpu_check.readings import lr_text
from theory import cli
from theory.fileio import atomic_write_text

SUMMARY_FORMAT = 1
SIGNIFICANT = 6                 # digits kept: the criteria compare ratios and medians, not ulps
FINAL_FRACTION = 0.1            # "final": the last 10% of the recorded steps
CURVE_POINTS = 200              # samples of the windowed loss curve (linear and geometric in step)
# The window over which a minibatch loss is averaged (1% of the run): a single SGD batch's loss
# is too noisy to date an event; the DLN is full-batch (deterministic), window 1.
WINDOW_FRACTION = 0.01
# The dead-start rule (fixed before any run was read): training is *live* from the first step at
# which the windowed loss is below 95% of its initial value.
LIVE_FRACTION = 0.95
FULL_BATCH_NETWORKS = ("dln",)


class SummaryError(ValueError):
    """A run that cannot be summarised (not finished, no loss recorded) or a summary file of
    another format; the message names the directory or file."""


def code_version() -> str:
    try:
        return f"bnverify {metadata.version('bnverify')}"
    except metadata.PackageNotFoundError:
        return "bnverify (not installed)"


def _round(x):
    if x is None:
        return None
    x = float(x)
    if not math.isfinite(x):
        return records.jsonable(x)
    return float(f"{x:.{SIGNIFICANT}g}")


def _median(values) -> float:
    v = [float(x) for x in values if x is not None and math.isfinite(float(x))]
    return float(np.median(v)) if v else math.nan


def window_of(network: str, steps: int) -> int:
    return 1 if network in FULL_BATCH_NETWORKS else max(1, int(steps * WINDOW_FRACTION))


def loss_statistics(losses, window: int, status: str) -> dict:
    """The loss part of the summary from the per-step training losses (in step order)."""
    loss = np.asarray(losses, dtype=np.float64)                     # (T,)
    finite = loss[np.isfinite(loss)]
    if loss.size == 0:
        raise SummaryError("a run with no training loss recorded cannot be summarised")
    initial = float(np.mean(loss[:window]))
    kernel = np.ones(window) / window
    smooth = np.convolve(loss, kernel, mode="valid")                # (T - w + 1,): mean of steps s-w+1..s
    smooth_steps = np.arange(window - 1, loss.size)
    below = np.nonzero(smooth < LIVE_FRACTION * initial)[0]
    live_from = int(smooth_steps[below[0]]) if below.size else None
    n = loss.size
    picks = np.unique(np.concatenate([np.linspace(0, smooth.size - 1, CURVE_POINTS // 2),
                                      np.geomspace(1, smooth.size, CURVE_POINTS // 2) - 1]).round().astype(int))
    diverged = status == "diverged"
    return {"window": window, "initial": _round(initial),
            "final": _round(math.inf if diverged else float(np.mean(loss[-max(1, int(n * FINAL_FRACTION)):]))),
            "mean": _round(math.inf if diverged else float(np.mean(finite))),
            "live_from": live_from, "live_fraction": LIVE_FRACTION,
            "curve": {"steps": [int(smooth_steps[i]) for i in picks], "loss": [_round(smooth[i]) for i in picks]}}


def ics_statistics(rows, network: str) -> list:
    by_step = {}
    for r in rows:
        if r["network"] == network and int(r["index"]) > 1:
            by_step.setdefault(int(r["step"]), []).append(r)
    return [{"step": s, "cos": _round(_median(float(r["ics_cosine"]) for r in rs)),
             "rel": _round(_median(float(r["ics_rel"]) for r in rs))} for s, rs in sorted(by_step.items())]


def landscape_statistics(rows, network: str) -> list:
    """Per measured step: the walk along the gradient, and along the random direction where the
    run recorded it (``random_*``; runs made before that measurement have none)."""
    out = []
    for r in sorted((r for r in rows if r["network"] == network), key=lambda r: int(r["step"])):
        row = {"step": int(r["step"]), "loss_range": _round(float(r["loss_max"]) - float(r["loss_min"])),
               "grad_change_max": _round(r["grad_change_max"]), "beta_eff": _round(r["beta_eff"]),
               "grad_norm": _round(r["grad_norm"]), "lr": _round(r["lr"])}
        if "random_loss_max" in r:
            row.update({"random_loss_range": _round(float(r["random_loss_max"]) - float(r["random_loss_min"])),
                        "random_grad_change_max": _round(r["random_grad_change_max"]),
                        "random_beta_eff": _round(r["random_beta_eff"])})
        out.append(row)
    return out


def distribution_statistics(rows, network: str) -> dict:
    """{where: [{step, d_mean, d_var}]}: medians over units of the scale-free changes t -> t+1."""
    rows = [r for r in rows if r["network"] == network]
    out = {}
    for where in ("output", "pre-norm"):
        var = {(r["layer"], r["unit"], int(r["step"])): float(r["var"]) for r in rows
               if r.get("where", "output") == where}
        by_step = {}
        for c in moment_changes(rows, where):
            v = var[(c["layer"], c["unit"], c["step"])]
            if v > 0:
                by_step.setdefault(c["step"], []).append((abs(c["d_mean"]) / math.sqrt(v), abs(c["d_var"]) / v))
        if by_step:
            out[where] = [{"step": s, "d_mean": _round(_median(x[0] for x in xs)),
                           "d_var": _round(_median(x[1] for x in xs))} for s, xs in sorted(by_step.items())]
    return out


def without_paths(text, data_dir):
    """``text`` with the CIFAR-10 directory ``data_dir`` (a machine path) reduced to its last
    component, so that a summary holds no machine path (gpu_check.data.DIGITS is not a path)."""
    if text is None or not data_dir or data_dir == DIGITS:
        return text
    name = os.path.basename(os.path.normpath(data_dir))
    for path in dict.fromkeys((os.path.abspath(data_dir), data_dir)):      # the longer first
        text = text.replace(path, f".../{name}")
    return text


def summarise_run(run_dir: str) -> list:
    """One summary (a dict) per network the run in ``run_dir`` trains."""
    meta = records.read_run_meta(run_dir)
    path = os.path.join(run_dir, records.SUMMARY)
    if not os.path.isfile(path):
        raise SummaryError(f"{run_dir}: no {records.SUMMARY}: the run has not finished (resume it first)")
    with open(path, encoding="utf-8") as f:
        run = json.load(f)
    if run.get("status") not in ("complete", "diverged"):
        raise SummaryError(f"{run_dir}: status {run.get('status')!r}: only complete or diverged runs are summarised")
    config = meta["config"]
    read = lambda name: records.read_jsonl(os.path.join(run_dir, name))  # noqa: E731
    metrics, ics, land, dist = read(records.METRICS), read("ics.jsonl"), read("landscape.jsonl"), \
        read("distributions.jsonl")
    out = []
    for network in ("dln", "vgg"):
        if config.get(network) is None:
            continue
        train = sorted((m for m in metrics if m["network"] == network and m["split"] == "train"),
                       key=lambda m: int(m["step"]))
        test = [m for m in metrics if m["network"] == network and m["split"] == "test"]
        steps = int(config["steps"])
        acc = [m["accuracy"] for m in train if m.get("accuracy") is not None]
        final_acc = float(np.mean(acc[-max(1, int(len(acc) * FINAL_FRACTION)):])) if acc else None
        lr = float(config[network]["lr"])
        out.append({
            "format": SUMMARY_FORMAT, "code_version": code_version(), "git": meta.get("git", {}),
            "run": {"network": network, "preset": config["preset"], "norm": config["norm"], "lr": _round(lr),
                    "lr_text": lr_text(lr), "seed": int(config["seed"]), "steps": steps,
                    "status": run["status"], "next_step": int(run["next_step"]),
                    "dataset": without_paths(run.get("datasets", {}).get(network, "?"), config.get("data")),
                    "device": str(meta.get("device", "?"))},
            "config": dict(config, data=without_paths(config.get("data"), config.get("data"))),
            "loss": loss_statistics([float(m["loss"]) for m in train], window_of(network, steps), run["status"]),
            "accuracy": {"final_train": _round(final_acc), "final_test": _round(test[-1]["accuracy"]) if test else None},
            "ics": ics_statistics(ics, network),
            "landscape": landscape_statistics(land, network),
            "distributions": distribution_statistics(dist, network),
        })
    return out


def summary_name(s: dict) -> str:
    r = s["run"]
    return f"{r['network']}/{r['preset']}/{r['norm']}/lr{r['lr_text']}/seed{r['seed']}.json"


def dumps(summary: dict) -> str:
    return json.dumps(records.jsonable(summary), indent=1, sort_keys=True, allow_nan=False) + "\n"


def finished(run_dir: str) -> bool:
    """True when the run has ended, complete or diverged (a run still training, or interrupted, has not)."""
    path = os.path.join(run_dir, records.SUMMARY)
    if not os.path.isfile(path):
        return False
    with open(path, encoding="utf-8") as f:
        return json.load(f).get("status") in ("complete", "diverged")


def write_summaries(run_dirs, out_dir: str) -> list:
    """Summarise each run and write it under ``out_dir``; returns the relative names written.
    Every run is read before anything is written: a run that cannot be summarised leaves
    ``out_dir`` as it was."""
    summaries = [s for d in run_dirs for s in summarise_run(d)]
    written = []
    for s in summaries:
        name = summary_name(s)
        path = os.path.join(out_dir, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        atomic_write_text(path, dumps(s))
        written.append(name)
    return written


def load_summaries(directory: str) -> list:
    """Every summary under ``directory`` (sorted by relative path); a file of another format is an error."""
    out = []
    for root, _dirs, files in os.walk(directory):
        for name in files:
            if name.endswith(".json"):
                path = os.path.join(root, name)
                with open(path, encoding="utf-8") as f:
                    s = json.load(f)
                if s.get("format") != SUMMARY_FORMAT:
                    raise SummaryError(f"{path}: summary format {s.get('format')!r}, this code reads {SUMMARY_FORMAT}: "
                                     "regenerate it with python -m gpu_check.run_summary")
                out.append((os.path.relpath(path, directory), s))
    return [s for _, s in sorted(out, key=lambda x: x[0])]


def main(argv=None) -> int:
    p = cli.parser("python -m gpu_check.run_summary", __doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", metavar="DIR", help="run directories, or grid directories of gpu_check.sweep")
    p.add_argument("--out", required=True, metavar="DIR", help="summaries directory (docs/reproduction/summaries)")
    p.add_argument("--finished-only", action="store_true",
                   help="summarise only the runs that have ended, leaving out those still running (a grid in progress) "
                        "instead of stopping at them; they are counted on stderr")

    def body(args):
        runs = expand_runs(args.runs)
        for d in runs:
            if not os.path.isfile(os.path.join(d, records.CONFIG)):
                raise cli.InputError(f"{d!r} is not a run directory: it has no {records.CONFIG}")
        if args.finished_only:
            waiting = [d for d in runs if not finished(d)]
            runs = [d for d in runs if d not in waiting]
            if waiting:
                print(f"run_summary: {len(waiting)} run(s) not finished, left out (first: {waiting[0]})",
                      file=sys.stderr)
        for name in write_summaries(runs, args.out):
            print(name)
        return 0

    return cli.run(p, body, argv, bad_input=(ValueError,))


if __name__ == "__main__":
    sys.exit(main())
