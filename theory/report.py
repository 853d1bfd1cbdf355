"""The bound-slack report: per statement and variant, does it hold, by how much, and if not, a
certified counterexample anyone can recompute by hand.

    python -m theory.report [--format text|markdown|json|csv|latex] [--instances N] [--seed S]
                            [--only ID ...] [--out FILE] [--trajectory DIR] [--errata FILE]

One row per registry variant (theory.statements): the numeric verdict, the symbolic verdict
(theory.verdicts, from its cache), instances, violations, min/median/max slack, min relative
slack, the smallest relative slack adversarial refinement reached, and the minimised certified
counterexample.  Slack = RHS - LHS for LHS <= RHS (negative means violated); for identities it is
-|LHS - RHS|; relative slack = slack/(|LHS| + |RHS|) (theory.evaluate).

Numeric verdict of a row (instances from numeric.families, numeric.dln, theory.lemma45):

    violated      at least one float violation survives exact re-evaluation (numeric.certify)
    holds         no violation; at least one instance certified with strictly positive slack
    equality      every instance within rounding of 0 (an identity, or an inequality met with equality)
    undetermined  no instance applies, or float violations that exact re-evaluation could not decide
    definition    a definition (Definition 2.1): the row reports the measured quantity instead

Where the symbolic and numeric verdicts contradict each other, the row says DISAGREE (and the
text format prints a banner).  --trajectory DIR reports, instead of random instances, the rows
measured along a training run (gpu_check.summary.summarise_probes), one per statement variant and
layer, with ``layer`` and ``source: trajectory``; there only a measured violation of a statement
the symbolic layer proves can count as a disagreement.  --errata FILE
writes the errata document (docs/errata.md: `python -m theory.report --errata docs/errata.md`).

Exit status 2, with one line on stderr and no traceback, for bad input (unknown ID, N <= 0, an
--out that cannot be written); --out is written atomically or not at all.
"""
from __future__ import annotations

import os

# Batched small-matrix LAPACK calls (eigh of (N, 32, 32)) run 10-200x slower with OpenBLAS's
# threads than with one on this 2-core machine (measured: 1.5 s vs 8 ms for 100 eighs at m = 32):
# the report pins one BLAS thread unless the caller chose otherwise.  Set before numpy loads.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import csv  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_INSTANCES = 10_000
# Kept instances re-evaluated exactly per variant (most violated / most held first): up to
# CERTIFY_TRIES each, stopping once CERTIFY_ENOUGH certificates say so.
CERTIFY_TRIES = 4
CERTIFY_ENOUGH = {"violated": 2, "holds": 1}
# Wall-clock budget for the counterexample minimiser of one variant (seconds).
MINIMISE_BUDGET_S = 2.0
PROGRESS_AFTER_S = 2.0
COLUMNS = ("id", "variant", "verdict", "symbolic_verdict", "instances", "violations", "min_slack",
           "median_slack", "max_slack", "min_rel_slack", "counterexample")
EXTRA_COLUMNS = ("relation", "agreement", "refined_min_rel_slack", "certified", "rounding", "undefined",
                 "note", "source", "layer")
SYMBOLIC_CACHE = ROOT / "theory" / "data" / "symbolic_verdicts.json"


class ReportInputError(ValueError):
    """Bad input to the report (exit status 2)."""


@dataclass
class Row:
    id: str
    variant: str
    verdict: str
    symbolic_verdict: str
    instances: int
    violations: int
    min_slack: object
    median_slack: object
    max_slack: object
    min_rel_slack: object
    counterexample: object
    relation: str = ""
    agreement: str = "n/a"
    refined_min_rel_slack: object = None
    certified: str = ""
    rounding: int = 0
    undefined: int = 0
    note: str = ""
    source: str = "numeric"
    layer: object = None
    symbolic_reason: str = field(default="", repr=False)

    def to_dict(self) -> dict:
        d = {k: getattr(self, k) for k in COLUMNS + EXTRA_COLUMNS}
        if d["layer"] is None:
            del d["layer"]
        return d


# ---------------------------------------------------------------------------------------------
# Verdicts
# ---------------------------------------------------------------------------------------------

# Symbolic verdict -> numeric verdicts that contradict it.
CONTRADICTIONS = {
    "equality": {"violated", "holds"},
    "holds": {"violated"},
    "violated": {"holds", "equality"},
    "definition": {"violated", "holds", "equality"},
}


# Along a training trajectory only a measured violation can contradict the exact verdict: a
# statement that is false in general ('violated' = a counterexample exists) may well hold at
# every probe of one run.
TRAJECTORY_CONTRADICTIONS = {"equality": {"violated"}, "holds": {"violated"}}


def agreement(symbolic: str, numeric: str, source: str = "numeric") -> str:
    if symbolic in ("pending", "undetermined", "", None) or numeric in ("undetermined",):
        return "n/a"
    table = TRAJECTORY_CONTRADICTIONS if source == "trajectory" else CONTRADICTIONS
    if numeric in table.get(symbolic, set()):
        return "DISAGREE"
    if source == "trajectory" and symbolic == "violated" and numeric != "violated":
        return "n/a (holds on this run)"
    return "agree"


def symbolic_column(statements, mode: str) -> dict:
    """{(id, variant): (verdict, reason)}: 'pending' until theory.verdicts exists; its cache when
    present (fast); computed live only with mode 'live' (about a minute of SymPy)."""
    try:
        from theory import verdicts
    except ImportError:
        return {}
    if mode == "off":
        return {}
    if mode == "auto" and not SYMBOLIC_CACHE.exists():
        return {}
    loader = getattr(verdicts, "load_symbolic_verdicts", None) if mode == "auto" else None
    table = loader() if loader is not None else verdicts.symbolic_verdicts()
    wanted = {(s.id, v.name) for s in statements for v in s.variants}
    return {k: (sv.verdict, sv.reason) for k, sv in table.items() if k in wanted}


def numeric_verdict(variant, summary, certs_violated, certs_held) -> tuple:
    """(verdict, note) from the sweep summary and the certificates of its kept instances."""
    if variant.relation == "definition":
        return "definition", ""
    if summary.instances == 0:
        return "undetermined", "no instance meets the variant's hypotheses"
    if any(c.verdict == "violated" for c in certs_violated):
        return "violated", ""
    if summary.violations:
        tried = len(certs_violated)
        refuted = sum(c.verdict in ("undecided", "equality", "holds", "not-applicable") for c in certs_violated)
        if tried and refuted == tried and summary.violations <= tried:
            return ("equality" if variant.relation == "==" or not summary.holds else "holds",
                    f"{summary.violations} float violation(s) not confirmed by exact re-evaluation (rounding)")
        return "undetermined", (f"{summary.violations} float violation(s), none certified "
                                f"({refuted}/{tried} re-evaluated exactly were not violations)")
    if variant.relation == "==":
        return "equality", ""
    if summary.holds and any(c.verdict == "holds" for c in certs_held):
        return "holds", ""
    note = "strict '<' not established: every instance is equal within rounding" if variant.relation == "<" else ""
    return "equality", note


# ---------------------------------------------------------------------------------------------
# Building the rows
# ---------------------------------------------------------------------------------------------

def _finite(x):
    return None if x is None or (isinstance(x, float) and not math.isfinite(x)) else float(x)


def _certify_kept(statement, variant, kept, verdict):
    from numeric.certify import certify

    out = []
    for k in kept:
        if len(out) >= CERTIFY_TRIES or sum(c.verdict == verdict for c in out) >= CERTIFY_ENOUGH[verdict]:
            break
        if k.verdict != verdict:
            continue
        try:
            out.append(certify(statement, variant, k.setting, k.inputs))
        except (ValueError, ArithmeticError, ZeroDivisionError):
            continue
    return out


def numeric_rows(statements, instances, seed, progress=None, minimise=True, workers=None) -> list:
    from numeric import minimise as minimiser
    from numeric.refine import refine_variant
    from numeric.sweep import run_sweep

    from numeric.sweep import default_workers
    sweep = run_sweep(statements=statements, instances=instances, seed=seed, progress=progress,
                      workers=default_workers() if workers is None else workers)
    rows = []
    for s in statements:
        for v in s.variants:
            summary = sweep[(s.id, v.name)]
            certs_v = _certify_kept(s, v, summary.most_violated, "violated")
            certs_h = _certify_kept(s, v, summary.most_held, "holds") \
                if v.relation in ("<=", "<") and summary.holds else []
            verdict, note = numeric_verdict(v, summary, certs_v, certs_h)
            counterexample = None
            # Float violations whose kept instances exact arithmetic did not confirm (e.g. a
            # constraint met only to rounding) still get the minimiser, which builds exact inputs:
            # a certified counterexample from it settles the row as violated.
            if minimise and (verdict == "violated" or (verdict == "undetermined" and summary.violations)):
                counterexample = minimiser.minimal_counterexample(
                    s, v, seed=seed, deadline=time.monotonic() + MINIMISE_BUDGET_S)
                if counterexample is None and verdict == "violated":
                    note = _join(note, "no short counterexample within the budget; a certified float instance exists")
                elif counterexample is not None and verdict != "violated":
                    verdict = "violated"
                    note = _join(note, "certified by the minimiser's exact counterexample")
            refined = None
            if v.relation in ("<=", "<"):
                r = refine_variant(s, v, summary.most_violated)
                refined = None if r is None else r.min_rel_slack
            if summary.rounding:
                note = _join(note, f"{summary.rounding} instance(s) within rounding (conditioning)")
            if summary.undefined:
                note = _join(note, f"{summary.undefined} instance(s) where the formula is undefined (0/0)")
            if v.relation == "definition" and summary.lhs_summary:
                lo, med, hi = summary.lhs_summary
                note = _join(note, f"measured over {summary.instances} networks: min {lo:.3g}, median {med:.3g}, "
                                   f"max {hi:.3g}")
            if s.setting == "toy-regression" and summary.instances == 0:
                from numeric.sweep import toy_available
                if not toy_available():
                    note = _join(note, "pending: theory.lemma45 is not available")
            certified = f"{sum(c.verdict == 'violated' for c in certs_v)}/{len(certs_v)}" if certs_v else ""
            rows.append(Row(s.id, v.name, verdict, "pending", summary.instances, summary.violations,
                            _finite(summary.min_slack), _finite(summary.median_slack), _finite(summary.max_slack),
                            _finite(summary.min_rel_slack), counterexample, relation=v.relation,
                            refined_min_rel_slack=_finite(refined), certified=certified, rounding=summary.rounding,
                            undefined=summary.undefined, note=note))
    return rows


def _join(a, b):
    return f"{a}; {b}" if a else b


def trajectory_rows(run_dir: str, statements) -> list:
    """Rows measured along a training run: gpu_check.summary.summarise_probes, lazily imported."""
    if not os.path.isdir(run_dir):
        raise ReportInputError(f"--trajectory {run_dir!r}: no such directory")
    try:
        from gpu_check.summary import summarise_probes
    except ImportError as err:
        raise ReportInputError(f"--trajectory needs gpu_check.summary ({err})") from None
    wanted = {s.id for s in statements}
    rows = []
    for d in summarise_probes(run_dir):
        sid = d.get("id", d.get("statement_id"))
        if sid not in wanted:
            continue
        rows.append(Row(sid, d.get("variant", ""), d.get("verdict", "undetermined"), "pending",
                        int(d.get("instances", d.get("n", 0)) or 0), int(d.get("violations", 0) or 0),
                        _finite(d.get("min_slack")), _finite(d.get("median_slack")), _finite(d.get("max_slack")),
                        _finite(d.get("min_rel_slack")), d.get("counterexample"),
                        relation=d.get("relation", ""), note=d.get("note", ""), source="trajectory",
                        undefined=int(d.get("non_finite", 0) or 0), layer=d.get("layer")))
    return rows


def attach_symbolic(rows, symbolic: dict) -> None:
    for row in rows:
        verdict, reason = symbolic.get((row.id, row.variant), ("pending", ""))
        row.symbolic_verdict = verdict
        row.symbolic_reason = reason
        row.agreement = agreement(verdict, row.verdict, row.source)


# ---------------------------------------------------------------------------------------------
# Formats
# ---------------------------------------------------------------------------------------------

def _num(x, digits=3):
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:.{digits}g}"
    return str(x)


def counterexample_line(ce) -> str:
    """One line: the inputs of a counterexample and its slack."""
    if not ce:
        return "-"
    if isinstance(ce, str):
        return ce
    inputs = ce.get("inputs", {})

    def show(v):
        if isinstance(v, list):
            return "(" + ", ".join(show(x) for x in v) + ")"
        return str(v)
    parts = [f"m={ce.get('m')}"] + [f"{k}={show(v)}" for k, v in inputs.items()]
    return " ".join(parts) + f" -> slack {ce.get('slack')} [{ce.get('certified')}]"


def _table_cells(row: Row) -> list:
    layer = f"{row.variant}@{row.layer}" if row.layer is not None else row.variant
    return [row.id, layer, row.verdict, row.symbolic_verdict + (" !" if row.agreement == "DISAGREE" else ""),
            str(row.instances), str(row.violations), _num(row.min_slack), _num(row.median_slack), _num(row.max_slack),
            _num(row.min_rel_slack), _num(row.refined_min_rel_slack)]


HEADERS = ["id", "variant", "verdict", "symbolic", "instances", "violations", "min slack", "median slack",
           "max slack", "min rel", "refined rel"]


def format_text(rows, meta) -> str:
    cells = [HEADERS] + [_table_cells(r) for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(HEADERS))]
    lines = []
    disagree = [r for r in rows if r.agreement == "DISAGREE"]
    if disagree:
        lines.append("!!! SYMBOLIC AND NUMERIC VERDICTS DISAGREE: "
                     + ", ".join(f"{r.id}/{r.variant} (symbolic {r.symbolic_verdict}, numeric {r.verdict})"
                                 for r in disagree) + " !!!")
    lines.append("  ".join(h.ljust(w) for h, w in zip(HEADERS, widths)))
    lines.append("  ".join("-" * w for w in widths))
    for c in cells[1:]:
        lines.append("  ".join(x.ljust(w) for x, w in zip(c, widths)).rstrip())
    lines.append("")
    for r in rows:
        if r.counterexample or r.note:
            lines.append(f"{r.id}/{r.variant}{'@' + str(r.layer) if r.layer is not None else ''}:")
            if r.counterexample:
                lines.append(f"  counterexample: {counterexample_line(r.counterexample)}")
            if r.note:
                lines.append(f"  note: {r.note}")
    lines.append("")
    lines.append(f"seed {meta['seed']}, >= {meta['instances']} instances per group, {meta['seconds']:.1f} s, "
                 f"git {meta['git_revision'][:12]}")
    return "\n".join(lines) + "\n"


def _md_escape(s: str) -> str:
    return s.replace("|", "\\|")


def format_markdown(rows, meta) -> str:
    lines = []
    disagree = [r for r in rows if r.agreement == "DISAGREE"]
    if disagree:
        lines.append("> **Symbolic and numeric verdicts disagree:** "
                     + ", ".join(f"`{r.id}/{r.variant}`" for r in disagree))
        lines.append("")
    lines.append("| " + " | ".join(HEADERS + ["counterexample"]) + " |")
    lines.append("|" + "---|" * (len(HEADERS) + 1))
    for r in rows:
        cells = _table_cells(r)
        cells[3] = cells[3].replace(" !", " **DISAGREE**")
        ce = counterexample_line(r.counterexample)
        lines.append("| " + " | ".join(_md_escape(c) for c in cells + [f"`{ce}`" if ce != "-" else "-"]) + " |")
    lines.append("")
    lines.append(f"Seed {meta['seed']}, at least {meta['instances']} instances per group, git `{meta['git_revision'][:12]}`.")
    return "\n".join(lines) + "\n"


def format_json(rows, meta) -> str:
    return json.dumps({"meta": meta, "rows": [r.to_dict() for r in rows]}, indent=2) + "\n"


def format_csv(rows, meta) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    cols = COLUMNS + EXTRA_COLUMNS
    w.writerow(cols)
    for r in rows:
        d = r.to_dict()
        w.writerow([json.dumps(d.get(c), separators=(",", ":")) if isinstance(d.get(c), (dict, list))
                    else "" if d.get(c) is None else d.get(c) for c in cols])
    return buf.getvalue()


def _tex(s: str) -> str:
    for a, b in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("$", r"\$"), ("#", r"\#"),
                 ("_", r"\_"), ("{", r"\{"), ("}", r"\}"), ("~", r"\textasciitilde{}"), ("^", r"\textasciicircum{}")):
        s = s.replace(a, b)
    return s


def format_latex(rows, meta) -> str:
    lines = [r"% generated by python -m theory.report --format latex (needs \usepackage{booktabs})",
             r"\begin{tabular}{llllrrrrrrr}", r"\toprule",
             " & ".join(_tex(h) for h in HEADERS) + r" \\", r"\midrule"]
    for r in rows:
        lines.append(" & ".join(_tex(c) for c in _table_cells(r)) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


FORMATS = {"text": format_text, "markdown": format_markdown, "json": format_json, "csv": format_csv,
           "latex": format_latex}


# ---------------------------------------------------------------------------------------------
# Errata
# ---------------------------------------------------------------------------------------------

# The most likely cause of each misprint, from the proof's own steps (the registry's variant
# notes say the same in one line each).
CAUSES = {
    "thm-4.1": ("The proof's step (8) -> (9) divides <g, y_hat>^2 by ||y_hat|| = sqrt(m) once, where the projection "
                "onto y_hat divides by ||y_hat||^2 = m: the coefficient of <g, y_hat>^2 must be 1/m, not 1/sqrt(m)."),
    "thm-4.2": ("The second display replaces v^T H v by g^T H g using 'H preserves the relative norms of g and v', "
                "which gives v^T H v = (||v||^2/||g||^2) g^T H g: the factor ||v||^2/||g||^2 was dropped."),
    "thm-4.4": ("g_j is already a squared norm, so 'g_j^2' squares it twice; the other terms lose the lambda^2 that "
                "multiplies every term of max ||X^T v||^2 = lambda^2 ||v||^2, and the proof's (17) carries Theorem "
                "4.1's 1/sqrt(m)."),
    "thm-c1": ("The proof evaluates both maxima at X X^T = lambda^2 I (eq. (58)); that S maximises neither side in "
               "general, and the bound inherits Theorem 4.2's second display."),
    "lemma-4.5": ("The proof takes k W* to be an optimum of the BN network; the BN optima form the ray of the centred "
                  "least-squares direction, which differs from W* in general."),
    "obs-4.3": ("With epsilon > 0 the witness must be gamma = sqrt(Var + eps), not the batch standard deviation."),
}


def compact_json(d: dict) -> str:
    """A JSON object with one top-level key per line and compact values (vectors on one line)."""
    return "{\n" + ",\n".join(f"  {json.dumps(k)}: {json.dumps(v)}" for k, v in d.items()) + "\n}"


def errata_markdown(statements, seed: int) -> str:
    """docs/errata.md: each printed statement that fails, its certified counterexample, the exact form."""
    from numeric.minimise import minimal_counterexample

    symbolic = symbolic_column(statements, "auto")
    out = ["# Errata", "",
           "<!-- generated by `python -m theory.report --errata docs/errata.md`; do not edit -->", "",
           "Each printed statement below fails on a certified counterexample: its inputs are exact (short decimals or "
           "p/q), and exact re-evaluation (rational arithmetic, or interval arithmetic at 60 digits; `certified`) "
           "gives the slack shown (RHS - LHS, negative: violated).  Beside it, the variants of the registry that do "
           "hold, and the most likely cause of the misprint.  Reproduce a row with "
           "`python -m theory.report --only ID --format json`.", ""]
    for s in statements:
        printed = [v for v in s.variants if v.name.startswith("printed") and v.relation != "definition"]
        found = []
        for v in printed:
            ce = minimal_counterexample(s, v, seed=seed)
            if ce is not None:
                found.append((v, ce))
        if not found:
            continue
        out += [f"## {s.id}: {s.title}", "", f"Source: {s.source}.", "", "As printed:", "", f"$$ {s.printed_latex} $$", ""]
        for v, ce in found:
            out += [f"**Variant `{v.name}`** ({v.note}) fails:", "", f"$$ {v.latex} $$", "",
                    "```json", compact_json(ce), "```", ""]
        others = [v for v in s.variants if not v.name.startswith("printed")]
        if others:
            out += ["Other forms in the registry (with the symbolic layer's verdict where it is cached):", ""]
            for v in others:
                verdict = symbolic.get((s.id, v.name), ("", ""))[0]
                out.append(f"- `{v.name}` ({v.relation}{', ' + verdict if verdict else ''}): {v.note}.  $ {v.latex} $")
            out.append("")
        for remark in s.remarks:
            out += [f"{remark.title}: {remark.text}", "", f"$$ {remark.latex} $$", ""]
        if s.id in CAUSES:
            out += [f"Most likely cause: {CAUSES[s.id]}", ""]
    return "\n".join(out).rstrip() + "\n"


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------

def git_revision() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              timeout=5).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def versions() -> dict:
    import mpmath
    import numpy
    import scipy
    import sympy
    return {"python": platform.python_version(), "numpy": numpy.__version__, "scipy": scipy.__version__,
            "sympy": sympy.__version__, "mpmath": mpmath.__version__}


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise ReportInputError(message)


def _positive_int(text):
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--instances must be a positive integer, got {text!r}") from None
    if n <= 0:
        raise argparse.ArgumentTypeError(f"--instances must be a positive integer, got {n}")
    return n


def build_parser():
    p = _Parser(prog="python -m theory.report", description=__doc__.split("\n")[0])
    p.add_argument("--format", choices=tuple(FORMATS), default="text")
    p.add_argument("--instances", type=_positive_int, default=DEFAULT_INSTANCES,
                   help=f"instances per group of families (default {DEFAULT_INSTANCES})")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--only", nargs="+", metavar="ID", default=[], help="statement IDs (default: all)")
    p.add_argument("--out", metavar="FILE", help="write the report to FILE (atomically) instead of stdout")
    p.add_argument("--trajectory", metavar="DIR", help="report the probes of a gpu_check training run instead of random instances")
    p.add_argument("--errata", metavar="FILE", help="write the errata document (docs/errata.md) and exit")
    p.add_argument("--symbolic", choices=("auto", "live", "off"), default="auto",
                   help="symbolic column: cached verdicts (auto), recomputed (live, ~1 min), or none")
    p.add_argument("--no-minimise", dest="minimise", action="store_false",
                   help="skip the counterexample minimiser")
    return p


class _Progress:
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


def run(argv=None, stdout=None, stderr=None) -> int:
    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    from theory.fileio import atomic_write_text as write_atomically, check_writable
    from theory.bn import BatchNormInputError
    from theory.statements import UnknownStatementError, resolve

    try:
        args = build_parser().parse_args(argv)
        statements = resolve(args.only)
        target = args.errata or args.out
        if target:
            try:
                check_writable(target)
            except OSError as err:
                raise ReportInputError(f"cannot write {target!r}: {err.strerror or err}") from None
        if args.errata:
            write_atomically(args.errata, errata_markdown(statements, args.seed))
            return 0
        if args.trajectory and not os.path.isdir(args.trajectory):
            raise ReportInputError(f"--trajectory {args.trajectory!r}: no such directory")
        start = time.perf_counter()
        if args.trajectory:
            # the probes of a training run, in place of random instances
            rows = trajectory_rows(args.trajectory, statements)
        else:
            progress = _Progress(stderr)
            rows = numeric_rows(statements, args.instances, args.seed, progress=progress, minimise=args.minimise)
            progress.finish()
        attach_symbolic(rows, symbolic_column(statements, args.symbolic))
        meta = {"seed": args.seed, "instances": args.instances, "versions": versions(),
                "git_revision": git_revision(), "seconds": round(time.perf_counter() - start, 3)}
        text = FORMATS[args.format](rows, meta)
        if args.out:
            write_atomically(args.out, text)
        else:
            stdout.write(text)
        return 0
    except (ReportInputError, UnknownStatementError, BatchNormInputError) as err:
        stderr.write(f"error: {err}\n")
        return 2
    except OSError as err:
        stderr.write(f"error: {err.strerror or err}: {getattr(err, 'filename', '')}\n")
        return 2


def main(argv=None) -> int:
    return run(argv)


if __name__ == "__main__":
    sys.exit(main())
