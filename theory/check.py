"""Check one statement variant on numbers you bring, in exact arithmetic.

    python -m theory.check ID[/VARIANT] --input FILE.json|- [--format text|json]

The input is a JSON object with the keys of the report's counterexamples: y, g, gamma, beta
(default 0), eps (default 0), H, lambda for a BatchNorm channel and the weight-space statements;
X, t, W0 for Lemma 4.5.  Numbers are read exactly: a JSON number as the decimal it is written
as (0.1 is 1/10), a string as an exact decimal or ratio ("1/3").  A report counterexample, or
its "inputs" object, can be fed back as it is.  Without /VARIANT every variant of the ID is
checked.  Prints LHS, RHS, slack (RHS - LHS; -|LHS - RHS| for an identity), the verdict and
how it was certified (exact, or 60-digit interval arithmetic).

Exit status: 0 when checked (whatever the verdict), 2 on bad input (one line on stderr).
"""
from __future__ import annotations

import json
import sys
from fractions import Fraction

from numeric.check import CheckInputError, check, exact_number
from theory import cli
from theory.statements import UnknownStatementError, get
from theory.report_formats import legend_lines

FORMATS = ("text", "json")


def _no_constant(name):
    raise CheckInputError(f"{name} is not a finite number")


def _json_number(text: str) -> Fraction:
    return exact_number(text, f"the JSON number {text[:40]}")


def parse_input_text(text: str) -> dict:
    """JSON with every number kept exact (a JSON number becomes the Fraction of its decimal text)."""
    try:
        return json.loads(text, parse_float=_json_number, parse_int=_json_number, parse_constant=_no_constant)
    except json.JSONDecodeError as err:
        raise CheckInputError(f"input is not JSON: {err.msg} at line {err.lineno} column {err.colno}") from None
    except RecursionError:
        raise CheckInputError("input is not a checkable JSON object: nested too deeply") from None


def read_input(path: str) -> dict:
    try:
        if path == "-":
            return parse_input_text(sys.stdin.read())
        with open(path, encoding="utf-8") as f:
            return parse_input_text(f.read())
    except UnicodeDecodeError as err:
        raise CheckInputError(f"{'stdin' if path == '-' else path}: not UTF-8 text ({err.reason} at byte "
                              f"{err.start})") from None


def format_text(results) -> str:
    lines = []
    for r in results:
        lines.append(f"{r.statement_id}/{r.variant}  ({r.relation})  {r.verdict}  [{r.method}]")
        if r.verdict.decided:
            lines.append(f"  lhs   = {r.exact.get('lhs', r.lhs)}")
            lines.append(f"  rhs   = {r.exact.get('rhs', r.rhs)}")
            lines.append(f"  slack = {r.slack}")
            if "lhs_minus_rhs" in r.exact:
                lines.append(f"  lhs - rhs = ({', '.join(r.exact['lhs_minus_rhs'])})")
        if r.detail:
            lines.append(f"  note: {r.detail}")
    return "\n".join(lines + legend_lines()) + "\n"


def main(argv=None) -> int:
    parser = cli.parser("python -m theory.check", __doc__)
    parser.add_argument("target", metavar="ID[/VARIANT]", help="a statement ID, optionally with /VARIANT")
    parser.add_argument("--input", required=True, metavar="FILE", help="JSON file of inputs, or - for stdin")
    parser.add_argument("--format", choices=FORMATS, default="text")

    def body(args):
        statement_id, _, variant = args.target.partition("/")
        statement = get(statement_id)
        if variant:
            statement.variant(variant)
        results = check(statement, read_input(args.input), variant or None)
        if args.format == "json":
            print(json.dumps({"results": [r.to_dict() for r in results]}, indent=2))
        else:
            sys.stdout.write(format_text(results))
        return cli.EXIT_OK

    return cli.run(parser, body, argv, bad_input=(CheckInputError, UnknownStatementError))


if __name__ == "__main__":
    sys.exit(main())
