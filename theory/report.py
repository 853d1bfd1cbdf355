"""The bound-slack report: per statement and variant, does it hold, by how much, and if not, a
certified counterexample anyone can recompute by hand.

    python -m theory.report [--format text|markdown|json|csv|latex] [--instances N] [--seed S]
                            [--only ID ...] [--out FILE] [--trajectory DIR] [--errata FILE]
                            [--symbolic cached|live|off] [--counterexamples search|skip]

One row per registry variant (theory.statements): the numeric verdict, the symbolic verdict
(theory.verdicts, from its cache), instances, violations, min/median/max slack, min relative
slack, the smallest relative slack adversarial refinement reached, and the smallest certified
counterexample (numeric.counterexample, the one the docs and the errata show).  Slack = RHS - LHS for LHS <= RHS (negative means violated); for identities it
is -|LHS - RHS|; relative slack = slack/(|LHS| + |RHS|) (theory.vocab.Relation).

Where the symbolic and numeric verdicts contradict each other, the row says DISAGREE (and the
text format prints a banner).  --trajectory DIR reports, instead of random instances, the rows
measured along a training run, one per statement variant and layer; there only a measured
violation of a statement the symbolic layer proves can count as a disagreement.  --errata FILE
writes the errata document (python -m theory.report --errata docs/errata.md).

Exit status 2, with one line on stderr and no traceback, for bad input (unknown ID, N <= 0, an
--out that cannot be written); --out is written atomically or not at all.

This module is the command line only: the rows come from numeric.report (random instances,
errata) or gpu_check.trajectory_report (a training run); their formats from
theory.report_formats.
"""
from __future__ import annotations

import os

# Batched small-matrix LAPACK calls (eigh of (N, 32, 32)) run 10-200x slower with OpenBLAS's
# threads than with one on this 2-core machine (measured: 1.5 s vs 8 ms for 100 eighs at m = 32):
# the report pins one BLAS thread unless the caller chose otherwise.  Set before numpy loads.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import sys  # noqa: E402
import time  # noqa: E402

from gpu_check.trajectory_report import trajectory_report  # noqa: E402
from numeric.report import NumericRequest, errata, numeric_report  # noqa: E402
from theory import cli  # noqa: E402
from theory.bn import BatchNormInputError  # noqa: E402
from theory.fileio import atomic_write_text, check_writable  # noqa: E402
from theory.provenance import git_revision, package_versions  # noqa: E402
from theory.report_formats import FORMATS, errata_markdown  # noqa: E402
from theory.report_rows import MissingSymbolicVerdictError, SymbolicSource  # noqa: E402
from theory.statements import UnknownStatementError, resolve  # noqa: E402

DEFAULT_INSTANCES = NumericRequest.instances
PROGRESS_AFTER_S = 2.0
# --counterexamples: search the smallest certified counterexample of each violated row, or not.
COUNTEREXAMPLES = ("search", "skip")


def build_parser():
    p = cli.parser("python -m theory.report", __doc__.split("\n\n")[0])
    p.add_argument("--format", choices=tuple(FORMATS), default="text")
    p.add_argument("--instances", type=cli.positive_int, default=DEFAULT_INSTANCES,
                   help=f"instances per group of families (default {DEFAULT_INSTANCES})")
    p.add_argument("--seed", type=cli.seed, default=0)
    p.add_argument("--only", nargs="+", metavar="ID", default=[], help="statement IDs (default: all)")
    p.add_argument("--out", metavar="FILE", help="write the report to FILE (atomically) instead of stdout")
    p.add_argument("--trajectory", metavar="DIR",
                   help="report the probes of a gpu_check training run instead of random instances")
    p.add_argument("--errata", metavar="FILE", help="write the errata document (docs/errata.md) and exit")
    p.add_argument("--symbolic", choices=tuple(s.value for s in SymbolicSource), default=SymbolicSource.CACHED.value,
                   help="symbolic column: cached verdicts (python -m theory.docs writes them), recomputed "
                        "(live, ~1 min), or not consulted (off)")
    p.add_argument("--counterexamples", choices=COUNTEREXAMPLES, default="search",
                   help="search the smallest certified counterexample of each violated row (search), or not (skip)")
    return p


class Progress:
    """Progress on stderr once a run has lasted PROGRESS_AFTER_S: a line rewritten in place on a
    terminal (every 0.25 s), a new line every 2 s otherwise."""

    def __init__(self, stream):
        self.stream = stream
        self.start = time.monotonic()
        self.last = float("-inf")
        self.shown = False
        self.tty = hasattr(stream, "isatty") and stream.isatty()

    def __call__(self, done, total):
        now = time.monotonic()
        if now - self.start < PROGRESS_AFTER_S or now - self.last < (0.25 if self.tty else 2.0):
            return
        self.last = now
        self.shown = True
        text = f"report: {done}/{total} instances ({100 * done // max(total, 1)}%), {now - self.start:.0f} s"
        self.stream.write(f"\r{text}" if self.tty else f"{text}\n")
        self.stream.flush()

    def finish(self):
        if self.shown and self.tty:
            self.stream.write("\n")
            self.stream.flush()


def _report(args, stdout, stderr) -> int:
    statements = resolve(args.only)
    target = args.errata or args.out
    if target:
        try:
            check_writable(target)
        except OSError as err:
            raise cli.InputError(f"cannot write {target!r}: {err.strerror or err}") from None
    if args.errata:
        atomic_write_text(args.errata, errata_markdown(errata(statements)))
        return cli.EXIT_OK
    start = time.perf_counter()
    if args.trajectory:
        rows = trajectory_report(args.trajectory, statements, SymbolicSource(args.symbolic))
    else:
        progress = Progress(stderr)
        request = NumericRequest(instances=args.instances, seed=args.seed, symbolic=SymbolicSource(args.symbolic),
                                 counterexamples=args.counterexamples == "search")
        rows = numeric_report(statements, request, progress=progress,
                              warn=lambda message: stderr.write(f"warning: {cli.one_line(message)}\n"))
        progress.finish()
    meta = {"seed": args.seed, "instances": args.instances, "versions": package_versions(),
            "git_revision": git_revision(), "seconds": round(time.perf_counter() - start, 3)}
    text = FORMATS[args.format](rows, meta)
    if args.out:
        atomic_write_text(args.out, text)
    else:
        stdout.write(text)
    return cli.EXIT_OK


def run(argv=None, stdout=None, stderr=None) -> int:
    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    return cli.run(build_parser(), lambda args: _report(args, stdout, stderr), argv, stderr=stderr,
                   bad_input=(UnknownStatementError, BatchNormInputError, MissingSymbolicVerdictError))


def main(argv=None) -> int:
    return run(argv)


if __name__ == "__main__":
    sys.exit(main())
