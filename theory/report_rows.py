"""The rows of the bound-slack report, and the merging of a row's numeric (or trajectory) verdict
with the symbolic layer's verdict of the same variant.

A row is one registry variant (or, for a training run, one variant at one layer).  Its verdicts
are ``theory.vocab.Verdict`` members: ``verdict`` from the evidence of the row (random instances
and certification: numeric.report; probes along a run: gpu_check.trajectory_report),
``symbolic_verdict`` from theory.verdicts (its cache, written by ``python -m theory.docs``).
``agreement`` says whether the two contradict each other (``DISAGREE``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from theory import verdicts as symbolic_layer
from theory.vocab import Relation, Verdict

COLUMNS = ("id", "variant", "verdict", "symbolic_verdict", "instances", "violations", "min_slack",
           "median_slack", "max_slack", "min_rel_slack", "counterexample")
# ``undefined`` counts the instances whose verdict is Verdict.UNDEFINED (a side is 0/0).
EXTRA_COLUMNS = ("relation", "agreement", "refined_min_rel_slack", "certified", "rounding", Verdict.UNDEFINED.value,
                 "note", "source", "layer")


class Source(str, Enum):
    """Where a row's evidence comes from."""
    NUMERIC = "numeric"          # random and adversarial instances (numeric.sweep), certified
    TRAJECTORY = "trajectory"    # probes along a training run (gpu_check.probes)

    def __str__(self) -> str:
        return self.value


class Agreement(str, Enum):
    """The agreement column: does the row's verdict contradict the symbolic verdict?"""
    AGREE = "agree"
    DISAGREE = "DISAGREE"
    NOT_COMPARABLE = Verdict.NOT_APPLICABLE.value        # one side undetermined, or the symbolic layer off
    HOLDS_ON_RUN = f"{Verdict.NOT_APPLICABLE.value} (holds on this run)"   # false in general, not violated here

    def __str__(self) -> str:
        return self.value


class SymbolicSource(str, Enum):
    """Where the symbolic column comes from (``--symbolic``)."""
    CACHED = "cached"    # theory/data/symbolic_verdicts.json, written by python -m theory.docs
    LIVE = "live"        # recomputed by theory.verdicts (about 40 s of SymPy)
    OFF = "off"          # not consulted: every row says UNDETERMINED, with that reason

    def __str__(self) -> str:
        return self.value


SYMBOLIC_OFF_REASON = "symbolic layer not consulted (--symbolic off)"


class MissingSymbolicVerdictError(LookupError):
    """The symbolic layer has no verdict for a row's variant (a stale cache, or an unknown variant)."""


@dataclass
class Row:
    id: str
    variant: str
    verdict: Verdict
    instances: int
    violations: int
    min_slack: object
    median_slack: object
    max_slack: object
    min_rel_slack: object
    counterexample: object
    relation: Relation = None
    symbolic_verdict: Verdict = Verdict.UNDETERMINED
    agreement: Agreement = Agreement.NOT_COMPARABLE
    refined_min_rel_slack: object = None
    certified: str = ""
    rounding: int = 0
    undefined: int = 0
    note: str = ""
    source: Source = Source.NUMERIC
    layer: object = None
    symbolic_reason: str = field(default="", repr=False)

    def to_dict(self) -> dict:
        d = {k: getattr(self, k) for k in COLUMNS + EXTRA_COLUMNS}
        if d["layer"] is None:
            del d["layer"]
        return d


def join_notes(a: str, b: str) -> str:
    return f"{a}; {b}" if a else b


# Symbolic verdict -> row verdicts that contradict it, on random instances: the symbolic verdict
# is a statement about every instance, so any instance of the other kind contradicts it.
CONTRADICTIONS = {
    Verdict.EQUALITY: {Verdict.VIOLATED, Verdict.HOLDS},
    Verdict.HOLDS: {Verdict.VIOLATED},
    Verdict.VIOLATED: {Verdict.HOLDS, Verdict.EQUALITY},
    Verdict.DEFINITION: {Verdict.VIOLATED, Verdict.HOLDS, Verdict.EQUALITY},
}
# Along a training trajectory only a measured violation can contradict the exact verdict: a
# statement that is false in general (VIOLATED: a counterexample exists) may well hold at every
# probe of one run.
TRAJECTORY_CONTRADICTIONS = {Verdict.EQUALITY: {Verdict.VIOLATED}, Verdict.HOLDS: {Verdict.VIOLATED}}
# Verdicts that leave nothing to compare.
_NOT_COMPARABLE = (Verdict.UNDETERMINED, Verdict.UNDEFINED, Verdict.NOT_APPLICABLE)


def agreement(symbolic: Verdict, row: Verdict, source: Source = Source.NUMERIC) -> Agreement:
    """Whether the row's verdict ``row`` contradicts the symbolic verdict of its variant."""
    symbolic, row = Verdict(symbolic), Verdict(row)
    if symbolic in _NOT_COMPARABLE or row in _NOT_COMPARABLE:
        return Agreement.NOT_COMPARABLE
    table = TRAJECTORY_CONTRADICTIONS if source is Source.TRAJECTORY else CONTRADICTIONS
    if row in table.get(symbolic, set()):
        return Agreement.DISAGREE
    if source is Source.TRAJECTORY and symbolic is Verdict.VIOLATED and row is not Verdict.VIOLATED:
        return Agreement.HOLDS_ON_RUN
    return Agreement.AGREE


def symbolic_table(statements, source: SymbolicSource) -> dict:
    """{(id, variant): (Verdict, reason)} of the variants of ``statements``; None for
    SymbolicSource.OFF.  Raises MissingSymbolicVerdictError when a variant has no verdict."""
    source = SymbolicSource(source)
    if source is SymbolicSource.OFF:
        return None
    table = (symbolic_layer.load_symbolic_verdicts() if source is SymbolicSource.CACHED
             else symbolic_layer.symbolic_verdicts())
    out = {}
    for s in statements:
        for v in s.variants:
            if (s.id, v.name) not in table:
                raise MissingSymbolicVerdictError(
                    f"no symbolic verdict for {s.id}/{v.name} ({source} symbolic verdicts): regenerate the cache "
                    "with python -m theory.docs")
            sv = table[(s.id, v.name)]
            out[(s.id, v.name)] = (Verdict(sv.verdict), sv.reason)
    return out


def attach_symbolic(rows, table) -> None:
    """Fill each row's symbolic verdict, its reason and the agreement column from ``table``
    (symbolic_table's output; None when the symbolic layer was not consulted)."""
    for row in rows:
        if table is None:
            verdict, reason = Verdict.UNDETERMINED, SYMBOLIC_OFF_REASON
        elif (row.id, row.variant) in table:
            verdict, reason = table[(row.id, row.variant)]
        else:
            raise MissingSymbolicVerdictError(f"no symbolic verdict for {row.id}/{row.variant}: the registry has "
                                              "no such variant, or the cache is stale (python -m theory.docs)")
        row.symbolic_verdict = Verdict(verdict)
        row.symbolic_reason = reason
        row.agreement = agreement(row.symbolic_verdict, row.verdict, row.source)


@dataclass(frozen=True)
class Erratum:
    """A statement whose printed form fails: its failing printed variants with their certified
    counterexamples, and the symbolic verdicts of its other variants."""
    statement: object
    failures: tuple        # ((Variant, counterexample dict), ...)
    symbolic: dict         # {variant name: Verdict} of the statement's corrected variants (not 'printed*')
