"""The formats of the bound-slack report (text, Markdown, JSON, CSV, LaTeX) and the errata
document: pure functions of the rows (theory.report_rows) and the run's ``meta`` dictionary.
"""
from __future__ import annotations

import csv
import io
import json
import textwrap

from theory.report_rows import COLUMNS, EXTRA_COLUMNS, Agreement, Row
from theory.vocab import VERDICT_LEGEND


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
    return [row.id, layer, str(row.verdict),
            str(row.symbolic_verdict) + (" !" if row.agreement is Agreement.DISAGREE else ""),
            str(row.instances), str(row.violations), _num(row.min_slack), _num(row.median_slack), _num(row.max_slack),
            _num(row.min_rel_slack), _num(row.refined_min_rel_slack)]


HEADERS = ["id", "variant", "verdict", "symbolic", "instances", "violations", "min slack", "median slack",
           "max slack", "min rel", "refined rel"]
# The text report fits TEXT_WIDTH columns unless asked for its full width (--wide): the columns
# below are left out, in this order, until the table fits (--wide and the other formats keep them),
# and the lines under the table are wrapped.
TEXT_WIDTH = 100
OPTIONAL_COLUMNS = ("max slack", "median slack", "refined rel")
NARROW_HEADERS = {"instances": "n", "violations": "viol"}


def footer(meta) -> str:
    """What the report was made from: a training run's directory and config, or the seed and
    instances of a random sweep."""
    if "run" in meta:
        told = ", ".join(f"{k} {meta[k]}" for k in ("preset", "norm", "model", "seed") if meta.get(k) is not None)
        source = f"run {meta['run']}" + (f" ({told})" if told else "")
        revision = meta.get("run_git_revision") or meta["git_revision"]
    else:
        source = f"seed {meta['seed']}, >= {meta['instances']} instances per group"
        revision = meta["git_revision"]
    return f"{source}, {meta['seconds']:.1f} s, git {str(revision)[:12]}"


def legend_lines() -> list:
    """The verdict words and what each means (theory.vocab.VERDICT_LEGEND)."""
    width = max(len(str(v)) for v in VERDICT_LEGEND)
    return ["verdicts:"] + [f"  {str(v).ljust(width)}  {why}" for v, why in VERDICT_LEGEND.items()]


def _wrap(text: str, width, indent: str) -> list:
    if width is None or len(text) <= width:
        return [text]
    return textwrap.wrap(text, width, subsequent_indent=indent + "    ", break_on_hyphens=False) or [text]


def _table(cells, width) -> list:
    """Lines of the table of `cells` (headers first; id and variant first).  To fit `width`:
    short headers (NARROW_HEADERS), then OPTIONAL_COLUMNS left out; a row whose variant (at a
    layer) is still too long has its id and variant on a line of their own above its numbers."""
    if width is not None:
        cells = [[NARROW_HEADERS.get(h, h) for h in cells[0]]] + cells[1:]
    keep = list(range(len(cells[0])))

    def widths(name_cap=None):
        w = [max(len(c[i]) for c in cells) for i in keep]
        if name_cap is not None:
            w[1] = max([len(cells[0][1])] + [len(c[1]) for c in cells[1:] if len(c[1]) <= name_cap])
        return w

    def total(w):
        return sum(w) + 2 * (len(w) - 1)
    for name in OPTIONAL_COLUMNS:
        if width is None or total(widths()) <= width:
            break
        keep.remove(HEADERS.index(name))
    w = widths()
    if width is not None and total(w) > width:
        w = widths(name_cap=w[1] - (total(w) - width))
    lines = []
    for k, c in enumerate(cells):
        row = [c[i] for i in keep]
        if len(row[1]) > w[1]:
            lines.append(f"{row[0]}  {row[1]}")
            row[0] = row[1] = ""
        lines.append("  ".join(x.ljust(wi) for x, wi in zip(row, w)).rstrip())
        if k == 0:
            lines.append("  ".join("-" * wi for wi in w))
    return lines


def format_text(rows, meta, width=TEXT_WIDTH) -> str:
    """The text report; `width` None: every column and unwrapped lines (--wide)."""
    cells = [HEADERS] + [_table_cells(r) for r in rows]
    lines = []
    disagree = [r for r in rows if r.agreement is Agreement.DISAGREE]
    if disagree:
        lines += _wrap("!!! SYMBOLIC AND NUMERIC VERDICTS DISAGREE: "
                       + ", ".join(f"{r.id}/{r.variant} (symbolic {r.symbolic_verdict}, numeric {r.verdict})"
                                   for r in disagree) + " !!!", width, "")
    lines += _table(cells, width)
    lines.append("")
    for r in rows:
        if r.counterexample or r.note:
            lines.append(f"{r.id}/{r.variant}{'@' + str(r.layer) if r.layer is not None else ''}:")
            if r.counterexample:
                lines += _wrap(f"  counterexample: {counterexample_line(r.counterexample)}", width, "  ")
            if r.note:
                lines += _wrap(f"  note: {r.note}", width, "  ")
    lines.append("")
    lines += legend_lines()
    lines.append("")
    lines += _wrap(footer(meta), width, "")
    return "\n".join(lines) + "\n"


def _md_escape(s: str) -> str:
    return s.replace("|", "\\|")


def format_markdown(rows, meta) -> str:
    lines = []
    disagree = [r for r in rows if r.agreement is Agreement.DISAGREE]
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
    notes = [r for r in rows if r.note]
    if notes:
        lines += ["", "Notes:", ""]
        lines += [f"- `{r.id}/{r.variant}{'@' + str(r.layer) if r.layer is not None else ''}`: {_md_escape(r.note)}"
                  for r in notes]
    lines += ["", "Verdicts: " + "; ".join(f"**{v}**: {why}" for v, why in VERDICT_LEGEND.items()) + ".", ""]
    lines.append(footer(meta) + ".")
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
    lines += [r"\bottomrule", r"\end{tabular}", ""]
    for r in rows:
        if r.counterexample or r.note:
            name = f"{r.id}/{r.variant}{'@' + str(r.layer) if r.layer is not None else ''}"
            lines.append(r"\noindent\texttt{" + _tex(name) + "}:" + r" \\")
            if r.counterexample:
                lines.append(r"counterexample: \texttt{" + _tex(counterexample_line(r.counterexample)) + "}" + r" \\")
            if r.note:
                lines.append("note: " + _tex(r.note) + r" \\")
            lines.append("")
    lines.append(r"\noindent " + _tex(footer(meta)))
    return "\n".join(lines) + "\n"


FORMATS = {"text": format_text, "markdown": format_markdown, "json": format_json, "csv": format_csv,
           "latex": format_latex}


def compact_json(d: dict) -> str:
    """A JSON object with one top-level key per line and compact values (vectors on one line)."""
    return "{\n" + ",\n".join(f"  {json.dumps(k)}: {json.dumps(v)}" for k, v in d.items()) + "\n}"


def errata_markdown(errata) -> str:
    """docs/errata.md: each printed statement that fails, its certified counterexample, the exact form."""
    out = ["# Errata", "",
           "<!-- generated by `python -m theory.report --errata docs/errata.md`; do not edit -->", "",
           "Each printed statement below fails on a certified counterexample: its inputs are exact (short decimals or "
           "p/q), and exact re-evaluation (rational arithmetic, or interval arithmetic at 60 digits; `certified`) "
           "gives the slack shown (RHS - LHS, negative: violated).  Beside it, the variants of the registry that do "
           "hold, and the most likely cause of the misprint.  Reproduce a row with "
           "`python -m theory.report --only ID --format json`.", ""]
    for e in errata:
        s = e.statement
        out += [f"## {s.id}: {s.title}", "", f"Source: {s.source}.", "", "As printed:", "", f"$$ {s.printed_latex} $$", ""]
        for v, ce in e.failures:
            out += [f"**Variant `{v.name}`** ({v.note}) fails:", "", f"$$ {v.latex} $$", "",
                    "```json", compact_json(ce), "```", ""]
        others = [v for v in s.variants if v.name in e.symbolic]
        if others:
            out += ["Other forms in the registry (with the symbolic layer's verdict where it is cached):", ""]
            for v in others:
                out.append(f"- `{v.name}` ({v.relation}, {e.symbolic[v.name]}): {v.note}.  $ {v.latex} $")
            out.append("")
        for remark in s.remarks:
            out += [f"{remark.title}: {remark.text}", "", f"$$ {remark.latex} $$", ""]
        for cause in dict.fromkeys(v.cause for v, _ in e.failures if v.cause):
            out += [f"Most likely cause: {cause}", ""]
    return "\n".join(out).rstrip() + "\n"
