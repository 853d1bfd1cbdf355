"""The reproduction document: each experimental claim of Sections 2-3 and Appendix B judged over
seeds and readings, from run summaries.

    python -m gpu_check.reproduce --from-summaries [DIR] --out docs/reproduction.md
    python -m gpu_check.reproduce --runs DIR [DIR ...] --out docs/reproduction.md
    python -m gpu_check.reproduce --scale smoke|cpu|paper [--plan] [--work DIR] [--jobs K]
        [--data DIR] [--device D] --out docs/reproduction.md

There is one path from runs to verdicts: a run is summarised (gpu_check.run_summary, a small
canonical JSON file under ``<out without .md>/summaries``), every claim of gpu_check.claims is
judged from the summaries under every reading of gpu_check.readings, and gpu_check.reproduction_doc
writes the Markdown document, its JSON twin and the seed-band figures.

* ``--from-summaries [DIR]``: no runs; the documents from the summaries in DIR (default
  ``<out without .md>/summaries``, e.g. the committed docs/reproduction/summaries).
* ``--runs DIR ...``: summarise these finished run directories (a grid directory of
  gpu_check.sweep stands for its runs) into the summaries directory, then write the documents.
* ``--scale S``: print the grid of scale S (gpu_check.readings.paper_plan: runs and estimated
  time), then run it through gpu_check.sweep in ``--work`` (default runs/reproduction-<S>;
  complete points are skipped, partial ones resumed, so an interrupted call continues), summarise
  it and write the documents.  ``smoke``: the smoke preset, every norm, one seed (a minute; it
  exercises the pipeline, and no claim is judged at that scale); ``cpu``: Appendix A's DLN grid,
  the VGG at vgg-cpu on the synthetic stand-in and vgg-digits on scikit-learn's real digits;
  ``paper``: the same with the paper-width VGG (vgg-paper; CIFAR-10 through --data; a GPU).
  ``--plan`` prints the grid and stops.
"""
from __future__ import annotations

import os
import subprocess
import sys

from gpu_check import readings, records, reproduction_doc, run_summary
from gpu_check.config import DEVICES, config_from_dict
from gpu_check.data import DataError, check_source
from gpu_check.grid import expand_runs
from theory import cli
from theory.fileio import check_writable

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def check_run_dirs(run_dirs) -> None:
    """cli.InputError naming the first directory that is not a readable run."""
    for d in run_dirs:
        try:
            config_from_dict(records.read_run_meta(d)["config"])
        except (ValueError, KeyError, TypeError) as err:
            raise cli.InputError(f"{d!r} is not a readable run directory: {err}") from None


def summaries_dir(out: str) -> str:
    return reproduction_doc.paths(out)[1]


def summarise_and_write(run_dirs, out: str) -> list:
    """Summarise ``run_dirs`` into the summaries directory of ``out``, then write the documents."""
    run_summary.write_summaries(run_dirs, summaries_dir(out))
    return reproduction_doc.write(out)


def run_grid(plan, work: str, *, jobs: int, device, log) -> list:
    """Run each sub-grid of ``plan`` through gpu_check.sweep (a subprocess each); returns the grid
    directories.  RuntimeError when a sweep fails (its exit status)."""
    for cmd in readings.sweep_commands(plan, work, sys.executable, device, jobs=jobs):
        log(f"running {' '.join(cmd[1:])}")
        done = subprocess.run(cmd, cwd=REPO)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd[1:])} exited with status {done.returncode}")
    return sorted({os.path.join(work, g.out) for g in plan})


def _report(results, out: str) -> None:
    for r in results:
        print(f"{r.claim.id:22s} {r.verdict}")
    print(f"wrote {out} and {reproduction_doc.paths(out)[0]}")


def _reproduce(args) -> int:
    if os.path.isdir(args.out):
        raise cli.InputError(f"--out {args.out!r} is a directory; give the Markdown file to write")
    if os.path.isdir(os.path.dirname(os.path.abspath(args.out))):
        check_writable(args.out)
    try:
        check_source(args.data)
    except DataError as e:
        raise cli.InputError(str(e)) from None
    chosen = [name for name, given in (("--from-summaries", args.from_summaries is not None),
                                       ("--runs", bool(args.runs)), ("--scale", args.scale is not None)) if given]
    if len(chosen) != 1:
        raise cli.InputError(f"give exactly one of --from-summaries, --runs and --scale (got {', '.join(chosen) or 'none'})")
    if args.plan and args.scale is None:
        raise cli.InputError("--plan prints the grid of a --scale")
    if args.from_summaries is not None:
        _report(reproduction_doc.write(args.out, args.from_summaries or None), args.out)
        return 0
    if args.runs:
        dirs = expand_runs(args.runs)
        check_run_dirs(dirs)
        _report(summarise_and_write(dirs, args.out), args.out)
        return 0
    plan = readings.paper_plan(args.scale, args.data)
    for device in ("cpu", "cuda"):
        print(readings.plan_text(plan, device))
    if args.plan:
        return 0
    work = args.work or os.path.join("runs", f"reproduction-{args.scale}")
    dirs = run_grid(plan, work, jobs=args.jobs, device=args.device, log=lambda m: print(m, file=sys.stderr))
    _report(summarise_and_write(expand_runs(dirs), args.out), args.out)
    return 0


def main(argv=None) -> int:
    p = cli.parser("python -m gpu_check.reproduce", __doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="the Markdown document to write (its JSON, summaries and figures "
                   "go beside it)")
    p.add_argument("--from-summaries", nargs="?", const="", metavar="DIR",
                   help="write the documents from the run summaries in DIR (default: <out without .md>/summaries); "
                   "no runs")
    p.add_argument("--runs", nargs="+", metavar="DIR", help="finished run directories to summarise and judge (no new "
                   "runs); a grid directory of gpu_check.sweep stands for its runs")
    p.add_argument("--scale", choices=readings.SCALES, help="run the grid of this scale (gpu_check.readings), then "
                   "summarise and judge it: smoke (a minute, exercises the pipeline), cpu (this machine), paper "
                   "(paper-width VGG: a GPU and CIFAR-10)")
    p.add_argument("--plan", action="store_true", help="with --scale: print the grid (runs, estimated time) and stop")
    p.add_argument("--work", help="directory of the grid's runs (default runs/reproduction-<scale>)")
    p.add_argument("--jobs", type=cli.positive_int, default=1, help="grid points run in parallel (gpu_check.sweep)")
    p.add_argument("--data", help="CIFAR-10 directory for the VGG runs of --scale (default: synthetic stand-in)")
    p.add_argument("--device", choices=DEVICES)
    # RuntimeError: a sweep this command started failed; SummaryError: a run that cannot be
    # summarised; RunConfigError: a directory that is not a run
    return cli.run(p, _reproduce, argv, bad_input=(RuntimeError, run_summary.SummaryError, records.RunConfigError))


if __name__ == "__main__":
    sys.exit(main())
