"""Orchestration of the bound-slack report over random and adversarial instances, and of the
errata: the numeric layer's evidence for every registry variant, merged with the symbolic layer.

    numeric_report(statements, request) -> [Row]    python -m theory.report
    errata(statements) -> [Erratum]                 python -m theory.report --errata FILE

Per variant: the sweep (numeric.sweep), exact re-evaluation of its kept instances
(numeric.certify.certify_kept), the smallest non-degenerate certified counterexample
(numeric.counterexample, the one the docs and the errata show), adversarial refinement
(numeric.refine); then the row's verdict (``numeric_verdict``) and the symbolic column
(theory.report_rows).  A failure of certification or of the search goes in the row's note and
to ``warn``; it never reads as "no counterexample".

Numeric verdict of a row:

    violated      at least one float violation survives exact re-evaluation
    holds         no violation; at least one instance certified with strictly positive slack
    equality      every instance within rounding of 0 (an identity, or an inequality met with equality)
    undetermined  no instance applies, or float violations that exact re-evaluation could not decide
    definition    a definition (Definition 2.1): the row reports the measured quantity instead
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from numeric.certify import certify_kept
from numeric.counterexample import SearchFailure, smallest_counterexample
from numeric.refine import refine_variant
from numeric.sweep import default_workers, run_sweep
from theory.report_rows import Erratum, Row, SymbolicSource, attach_symbolic, join_notes, symbolic_table
from theory.vocab import Relation, Verdict

# Kept instances re-evaluated exactly per variant (most violated / most held first): up to
# CERTIFY_TRIES each, stopping once CERTIFY_ENOUGH certificates say so.
CERTIFY_TRIES = 4
CERTIFY_ENOUGH = {Verdict.VIOLATED: 2, Verdict.HOLDS: 1}


@dataclass(frozen=True)
class NumericRequest:
    """What ``python -m theory.report`` asks of the numeric layer."""
    instances: int = 10_000
    seed: int = 0
    counterexamples: bool = True        # search the smallest certified counterexample of violated rows
    symbolic: SymbolicSource = SymbolicSource.CACHED
    workers: int = None                 # sweep processes (None: numeric.sweep.default_workers())


def _certify(statement, variant, kept, want: Verdict):
    return certify_kept(statement, variant, kept, want, CERTIFY_TRIES, CERTIFY_ENOUGH[want])


def numeric_verdict(variant, summary, certs_violated, certs_held) -> tuple:
    """(Verdict, note) from the sweep summary and the certificates of its kept instances."""
    relation = Relation(variant.relation)
    if relation is Relation.DEFINITION:
        return Verdict.DEFINITION, ""
    if summary.instances == 0:
        return Verdict.UNDETERMINED, "no instance meets the variant's hypotheses"
    if any(c.verdict == Verdict.VIOLATED for c in certs_violated):
        return Verdict.VIOLATED, ""
    if summary.violations:
        tried = len(certs_violated)
        # an exact re-evaluation that found no violation (and a defined formula) refutes the float one
        refuted = sum(c.verdict not in (Verdict.VIOLATED, Verdict.UNDEFINED) for c in certs_violated)
        if tried and refuted == tried and summary.violations <= tried:
            return (Verdict.EQUALITY if relation is Relation.EQ or not summary.holds else Verdict.HOLDS,
                    f"{summary.violations} float violation(s) not confirmed by exact re-evaluation (rounding)")
        return Verdict.UNDETERMINED, (f"{summary.violations} float violation(s), none certified "
                                      f"({refuted}/{tried} re-evaluated exactly were not violations)")
    if relation is Relation.EQ:
        return Verdict.EQUALITY, ""
    if summary.holds and any(c.verdict == Verdict.HOLDS for c in certs_held):
        return Verdict.HOLDS, ""
    note = "strict '<' not established: every instance is equal within rounding" if relation is Relation.LT else ""
    return Verdict.EQUALITY, note


def _finite(x):
    return None if x is None or (isinstance(x, float) and not math.isfinite(x)) else float(x)


def _variant_row(statement, variant, summary, request: NumericRequest, warn) -> Row:
    relation = Relation(variant.relation)
    violated = _certify(statement, variant, summary.most_violated, Verdict.VIOLATED)
    held = _certify(statement, variant, summary.most_held, Verdict.HOLDS) \
        if relation.is_inequality and summary.holds else None
    verdict, note = numeric_verdict(variant, summary, violated.certificates, held.certificates if held else ())
    for failure in violated.failures + (held.failures if held else ()):
        note = join_notes(note, f"exact re-evaluation failed: {failure.message}")
        warn(f"{statement.id}/{variant.name}: exact re-evaluation failed: {failure.message}")
    counterexample = None
    # Float violations whose kept instances exact arithmetic did not confirm (e.g. a constraint
    # met only to rounding) still get the search, which builds exact inputs: a certified
    # counterexample from it settles the row as violated.
    if request.counterexamples and (verdict is Verdict.VIOLATED or
                                    (verdict is Verdict.UNDETERMINED and summary.violations)):
        found = smallest_counterexample(statement, variant)
        if isinstance(found, SearchFailure):
            note = join_notes(note, str(found))
            warn(str(found))
        elif found is None and verdict is Verdict.VIOLATED:
            note = join_notes(note, "no counterexample in the search space; a certified float instance exists")
        elif found is not None:
            counterexample = found.to_dict()
            if verdict is not Verdict.VIOLATED:
                verdict = Verdict.VIOLATED
                note = join_notes(note, "certified by the search's exact counterexample")
    refined = None
    if relation.is_inequality:
        r = refine_variant(statement, variant, summary.most_violated)
        refined = None if r is None else r.min_rel_slack
    if summary.rounding:
        note = join_notes(note, f"{summary.rounding} instance(s) within rounding (conditioning)")
    if summary.undefined:
        note = join_notes(note, f"{summary.undefined} instance(s) where the formula is undefined (0/0)")
    if relation is Relation.DEFINITION and summary.lhs_summary:
        lo, med, hi = summary.lhs_summary
        note = join_notes(note, f"measured over {summary.instances} networks: min {lo:.3g}, median {med:.3g}, "
                                f"max {hi:.3g}")
    certs = violated.certificates
    certified = f"{sum(c.verdict == Verdict.VIOLATED for c in certs)}/{len(certs)}" if certs else ""
    return Row(statement.id, variant.name, verdict, summary.instances, summary.violations,
               _finite(summary.min_slack), _finite(summary.median_slack), _finite(summary.max_slack),
               _finite(summary.min_rel_slack), counterexample, relation=relation,
               refined_min_rel_slack=_finite(refined), certified=certified, rounding=summary.rounding,
               undefined=summary.undefined, note=note)


def _ignore(message: str) -> None:
    pass


def numeric_report(statements, request: NumericRequest = NumericRequest(), progress=None, warn=_ignore) -> list:
    """One Row per variant of ``statements``: the numeric evidence and verdict, the symbolic
    verdict and their agreement.  ``progress(done, total)`` is called as the sweep advances;
    ``warn(message)`` with each failure of certification or search (also in the row's note)."""
    symbolic = symbolic_table(statements, request.symbolic)
    sweep = run_sweep(statements=statements, instances=request.instances, seed=request.seed, progress=progress,
                      workers=default_workers() if request.workers is None else request.workers)
    rows = [_variant_row(s, v, sweep[(s.id, v.name)], request, warn) for s in statements for v in s.variants]
    attach_symbolic(rows, symbolic)
    return rows


def errata(statements) -> list:
    """Erratum of each statement whose printed variant(s) fail on a certified counterexample."""
    symbolic = symbolic_table(statements, SymbolicSource.CACHED)
    out = []
    for s in statements:
        printed = [v for v in s.variants if v.name.startswith("printed") and v.relation != Relation.DEFINITION]
        found = []
        for v in printed:
            ce = smallest_counterexample(s, v)
            if isinstance(ce, SearchFailure):
                raise RuntimeError(str(ce))
            if ce is not None:
                found.append((v, ce.to_dict()))
        if found:
            corrected = {v.name: symbolic[(s.id, v.name)][0] for v in s.variants if not v.name.startswith("printed")}
            out.append(Erratum(s, tuple(found), corrected))
    return out
