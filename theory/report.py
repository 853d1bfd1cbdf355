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

from gpu_check.trajectory_report import run_meta, trajectory_report  # noqa: E402
from numeric.report import NumericRequest, errata, numeric_report  # noqa: E402
from numeric.sweep import default_workers, estimated_seconds  # noqa: E402
from theory import cli  # noqa: E402
from theory.bn import BatchNormInputError  # noqa: E402
from theory.fileio import atomic_write_text, check_writable  # noqa: E402
from theory.provenance import git_revision, package_versions  # noqa: E402
from theory.report_formats import FORMATS, TEXT_WIDTH, errata_markdown, format_text, legend_lines  # noqa: E402
from theory.report_rows import MissingSymbolicVerdictError, SymbolicSource  # noqa: E402
from theory.statements import UnknownStatementError, resolve  # noqa: E402

DEFAULT_INSTANCES = NumericRequest.instances
# A request whose estimated time (numeric.sweep.estimated_seconds) exceeds this is refused up
# front: an hour on this machine is what a user can be expected to wait for on purpose.
MAX_ESTIMATED_S = 3600.0
PROGRESS_AFTER_S = 2.0
# --counterexamples: search the smallest certified counterexample of each violated row, or not.
COUNTEREXAMPLES = ("search", "skip")


def build_parser():
    p = cli.parser("python -m theory.report", __doc__.split("\n\n")[0], epilog="\n".join(legend_lines()))
    p.add_argument("--format", choices=tuple(FORMATS), default="text")
    p.add_argument("--wide", action="store_true",
                   help=f"text: every column and unwrapped lines (default: fit {TEXT_WIDTH} columns)")
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


def _duration(seconds: float) -> str:
    """'42 s', '3 min 20 s', '2 h 05 min', '3.2 days', '1.4e+05 years'."""
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {int(seconds % 60):02d} s"
    if seconds < 2 * 86400:
        return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min"
    if seconds < 2 * 365 * 86400:
        return f"{seconds / 86400:.1f} days"
    return f"{seconds / (365 * 86400):.2g} years"


class Progress:
    """Progress on stderr once a run has lasted PROGRESS_AFTER_S: a line rewritten in place on a
    terminal (every 0.25 s), a new line every 2 s otherwise; with the time left (ETA) from the
    rate so far, and the last line (100%) always shown once any was."""

    def __init__(self, stream):
        self.stream = stream
        self.start = time.monotonic()
        self.last = float("-inf")
        self.shown = False
        self.tty = hasattr(stream, "isatty") and stream.isatty()
        self.state = self.shown_state = None
        self.finished = False

    def __call__(self, done, total):
        self.state = (done, total)
        if done >= total:
            self.finish("sweep done; certifying kept instances and searching counterexamples")
            return
        now = time.monotonic()
        if now - self.start < PROGRESS_AFTER_S or now - self.last < (0.25 if self.tty else 2.0):
            return
        self.last = now
        self._show(done, total, now)

    def _show(self, done, total, now):
        self.shown = True
        self.shown_state = (done, total)
        elapsed = now - self.start
        eta = f", about {_duration(elapsed / done * (total - done))} left" if 0 < done < total else ""
        text = (f"report: {done}/{total} instances ({100 * done // max(total, 1)}%), "
                f"{_duration(elapsed)}{eta}")
        self.stream.write(f"\r{text}" if self.tty else f"{text}\n")
        self.stream.flush()

    def finish(self, then: str = ""):
        """The sweep is over: its last state (100%) if progress was shown and that line was not,
        then ``then`` (what the report does next)."""
        if not self.shown or self.finished:
            return
        self.finished = True
        if self.state != self.shown_state:
            self._show(*self.state, time.monotonic())
        self.stream.write("\n" if self.tty else "")
        if then:
            self.stream.write(f"report: {then}\n")
        self.stream.flush()


def _warner(stderr):
    """warn(message): one line on stderr, 'warning: ' unless the message says it is a note."""
    def warn(message):
        line = cli.one_line(message)
        stderr.write(line + "\n" if line.startswith("note: ") else f"warning: {line}\n")
    return warn


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
        rows = trajectory_report(args.trajectory, statements, SymbolicSource(args.symbolic), warn=_warner(stderr))
    else:
        estimate = estimated_seconds(args.instances, default_workers())
        if estimate > MAX_ESTIMATED_S:
            raise cli.InputError(f"--instances {args.instances}: estimated {_duration(estimate)} on this machine, "
                                 f"more than the {_duration(MAX_ESTIMATED_S)} this command accepts; "
                                 f"ask for fewer instances")
        progress = Progress(stderr)
        request = NumericRequest(instances=args.instances, seed=args.seed, symbolic=SymbolicSource(args.symbolic),
                                 counterexamples=args.counterexamples == "search")
        rows = numeric_report(statements, request, progress=progress, warn=_warner(stderr))
        progress.finish()
    source = run_meta(args.trajectory) if args.trajectory else {"seed": args.seed, "instances": args.instances}
    meta = {**source, "versions": package_versions(), "git_revision": git_revision(),
            "seconds": round(time.perf_counter() - start, 3)}
    text = format_text(rows, meta, width=None if args.wide else TEXT_WIDTH) if args.format == "text" \
        else FORMATS[args.format](rows, meta)
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
