"""The README's examples print what the README shows.

Every ``$ command`` in a fenced ``text`` block of README.md is either run here, in the block's
order and in a fresh directory, and its shown output compared with what it prints now, or its
block is listed in NOT_RUN with the reason.  A new example has to be put in one or the other.

How shown and printed output are compared (``shown_output_matches``): the shown lines, cut at
``...`` lines into segments, must each appear as consecutive printed lines, in order.  Before the
comparison both sides are normalised (``normalised``) where the README shows one machine's run
and another run may print other digits without anything being wrong:

* wall times, the probe share and the git revision (they are the machine's and the moment's);
* in the rows of a report table, the numbers of a row whose verdict is ``equality`` (the residue
  of an identity: float64 rounding, which depends on the NumPy/BLAS build and the order of its
  sums) and any number below ``ROUNDING_LEVEL`` in magnitude (the same residue in a ``holds``
  row).  The columns that carry the verdict -- verdict, symbolic verdict, instances, violations
  -- are compared as printed (same seed, same rows);

and every other number with a decimal point or exponent is compared within ``number_tolerance``
of the shown one: one unit of its last shown digit (the README shows rounded values; a value
just across a rounding boundary prints its neighbour) or ``FLOAT32_DRIFT`` of it, whichever is
larger (the networks train in float32, and another CPU's kernels round differently).
"""
from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
ELISION = "..."
# A float64 residue: a relative slack of an identity is a few ulps (1e-16 .. 1e-12 here), and
# an absolute one scales with the instance; 1e-9 is far above the first and far below any
# number the README shows for a bound that fails or holds with room.
ROUNDING_LEVEL = 1e-9
# Training runs in float32 (eps 6e-8); a few SGD steps on another CPU's kernels carry a different
# rounding to about 1e-6 .. 1e-5 relative in a loss or a probed value; 1e-4 leaves a margin and is
# far below any change of a bound the README shows to three digits.
FLOAT32_DRIFT = 1e-4

# The blocks not run, by their first command, with the reason.
NOT_RUN = {
    "python -m numeric.bench": "times of one machine; tests/test_bench.py checks the benchmark's rows",
    "python -m gpu_check.probe_bench": "times of one machine and a 10,000-step run (minutes); "
                                       "tests/test_gpu_bench.py checks the benchmark",
    "python -m gpu_check.run --preset smoke --norm bn --out /tmp/m --measure": "shows no output; "
                                       "tests/test_plots.py draws the figures of such runs",
    "python -m gpu_check.sweep": "eight 300-step runs (about a minute) whose table shows wall times; "
                                 "tests/test_sweep.py checks the sweep",
}
# Blocks whose commands read what the README's Python example wrote (runs/mine).
AFTER_PYTHON_EXAMPLE = ("python -m theory.report --trajectory runs/mine",)

_FLOAT = re.compile(r"-?(?:\d+\.\d*(?:e[+-]?\d+)?|\d+e[+-]?\d+)")
# A number inside a line: not part of a word or name (thm-4.2, fc01, 8x8)
_NUMBER_IN_TEXT = re.compile(r"(?<![\w.\-])(" + _FLOAT.pattern + r")(?![\w.])")
_VERDICTS = ("holds", "equality", "violated", "conditional", "undetermined", "undefined", "n/a",
             "definition")
_TABLE_ROW = re.compile(r"^\S+\s+\S+\s+(" + "|".join(re.escape(v) for v in _VERDICTS) + r")(\s|$)")


@dataclass(frozen=True)
class Example:
    command: str          # as shown, without the '$ '
    shown: tuple          # the output lines shown under it


def fenced_blocks(text: str) -> list:
    """(language, lines) of every fenced block of a Markdown text."""
    return [(m.group(1), m.group(2).split("\n")[:-1])
            for m in re.finditer(r"^```(\w*)\n(.*?)^```", text, re.S | re.M)]


def examples_of(lines) -> list:
    """The ``$ command`` lines of a block (a trailing backslash continues one) and the output
    lines shown under each."""
    out, command, shown, continued = [], None, [], False
    for line in lines:
        if continued:
            command += "\n" + line
            continued = line.endswith("\\")
        elif line.startswith("$ "):
            if command is not None:
                out.append(Example(command, tuple(shown)))
            command, shown, continued = line[2:], [], line.endswith("\\")
        elif command is not None:
            shown.append(line)
    if command is not None:
        out.append(Example(command, tuple(shown)))
    return out


def readme_example_blocks() -> list:
    """The README's text blocks that hold commands, as lists of Examples."""
    blocks = [examples_of(lines) for lang, lines in fenced_blocks(README.read_text(encoding="utf-8"))
              if lang == "text"]
    return [b for b in blocks if b]


def python_example() -> str:
    """The README's Python example (its first python block: "Probe your own model")."""
    return next(lines for lang, lines in fenced_blocks(README.read_text(encoding="utf-8")) if lang == "python")


def reason_not_run(block) -> str:
    first = block[0].command
    return next((why for prefix, why in NOT_RUN.items() if first.startswith(prefix)), "")


def normalised(line: str) -> str:
    """The line with what may differ between two correct runs masked (module docstring)."""
    line = " ".join(line.split())          # column widths follow the widest entry printed
    if line and set(line) <= {"-", " "}:
        return "<rule>"
    if line.startswith("time: "):
        return "time: <wall times>"
    if line.startswith("probe share: "):
        return re.sub(r"probe share: [\d.]+%", "probe share: <share>%", line)
    line = re.sub(r", [\d.]+ s, git [0-9a-f]+$", ", <seconds>, git <revision>", line)
    row = _TABLE_ROW.match(line)
    if row:
        identity = row.group(1) == "equality"
        line = " ".join("<residue>" if _FLOAT.fullmatch(t) and (identity or abs(float(t)) < ROUNDING_LEVEL)
                        else t for t in line.split(" "))
    return line


def number_tolerance(shown: str) -> float:
    """How far a printed number may be from the shown one (module docstring)."""
    mantissa, _, exponent = shown.lower().lstrip("-").partition("e")
    decimals = len(mantissa.partition(".")[2])
    last_digit = 10.0 ** (int(exponent or 0) - decimals)
    return max(last_digit, FLOAT32_DRIFT * abs(float(shown)))


def same_line(shown: str, printed: str) -> bool:
    """Two normalised lines agree: the same text between their numbers, and each printed number
    within number_tolerance of the shown one."""
    a, b = _NUMBER_IN_TEXT.split(shown), _NUMBER_IN_TEXT.split(printed)
    if len(a) != len(b) or a[0::2] != b[0::2]:
        return False
    # (1 + 1e-9): the decimal difference of two printed numbers, e.g. 32.5 - 32.4, is itself rounded
    return all(abs(float(x) - float(y)) <= number_tolerance(x) * (1 + 1e-9) for x, y in zip(a[1::2], b[1::2]))


def shown_output_matches(shown, printed) -> str:
    """'' when the shown lines appear in the printed ones (module docstring), else why not."""
    printed = [normalised(p) for p in printed]
    segments, current = [], []
    for line in list(shown) + [ELISION]:
        if line.strip() == ELISION:
            if current:
                segments.append([normalised(s) for s in current])
            current = []
        else:
            current.append(line)
    at = 0
    for segment in segments:
        found = next((i for i in range(at, len(printed) - len(segment) + 1)
                      if all(same_line(s, p) for s, p in zip(segment, printed[i:i + len(segment)]))), None)
        if found is None:
            near = next((i for i in range(at, len(printed)) if same_line(segment[0], printed[i])), at)
            return ("these shown lines are not printed (in this order):\n  " + "\n  ".join(segment)
                    + "\nprinted from there:\n  " + "\n  ".join(printed[near:near + len(segment) + 3]))
        at = found + len(segment)
    return ""


def run_shown(command: str, cwd: Path) -> subprocess.CompletedProcess:
    """The command as the README shows it, in bash, with this interpreter for `python` and the
    README's /tmp/ paths moved into ``cwd``."""
    command = command.replace("\\\n", " ").replace("/tmp/", f"{cwd}/")
    command = re.sub(r"(^|\|\s*)python ", lambda m: m.group(1) + shlex.quote(sys.executable) + " ", command)
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run(["bash", "-c", command], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def _block_id(block) -> str:
    return block[0].command.split("\n")[0][:60]


RUN_BLOCKS = [b for b in readme_example_blocks() if not reason_not_run(b)]


def test_every_readme_example_is_run_or_has_a_reason_not_to_be():
    blocks = readme_example_blocks()
    assert len(RUN_BLOCKS) >= 5, [_block_id(b) for b in RUN_BLOCKS]
    unused = [p for p in NOT_RUN if not any(b[0].command.startswith(p) for b in blocks)]
    assert not unused, f"NOT_RUN names blocks the README no longer has: {unused}"


@pytest.mark.parametrize("block", RUN_BLOCKS, ids=_block_id)
def test_readme_example_prints_what_the_readme_shows(block, tmp_path):
    if block[0].command.startswith(AFTER_PYTHON_EXAMPLE):
        (tmp_path / "example.py").write_text("\n".join(python_example()) + "\n", encoding="utf-8")
        done = run_shown("python example.py", tmp_path)
        assert done.returncode == 0, done.stderr[-3000:]
    for example in block:
        done = run_shown(example.command, tmp_path)
        assert done.returncode in (0, 1), f"{example.command}: exit {done.returncode}\n{done.stderr[-3000:]}"
        why = shown_output_matches(example.shown, done.stdout.split("\n"))
        assert not why, f"README example `{example.command}`: {why}"


# The comparison itself, on made-up output: it fails where the README would be wrong.

def test_a_changed_verdict_count_or_bound_is_a_mismatch_and_rounding_residue_is_not():
    shown = ["thm-4.1  printed   violated  violated  22000  20387  -1.5e+16   -1",
             "thm-4.1  exact     equality  equality  22000  0      -4.41      -1.77e-14"]
    same = ["thm-4.1  printed  violated  violated  22000  20387  -1.5e+16  -1",
            "thm-4.1  exact    equality  equality  22000  0      -3.9      -2.1e-14"]
    assert shown_output_matches(shown, same) == ""
    for wrong in (["thm-4.1 printed holds violated 22000 20387 -1.5e+16 -1", same[1]],
                  ["thm-4.1 printed violated violated 22000 20386 -1.5e+16 -1", same[1]],
                  ["thm-4.1 printed violated violated 22000 20387 -1.3e+16 -1", same[1]],
                  [same[0], "thm-4.1 exact violated equality 22000 0 -3.9 -2.1e-14"]):
        assert shown_output_matches(shown, wrong), wrong


def test_a_number_may_differ_by_a_unit_of_its_last_shown_digit_or_float32_drift_and_no_more():
    assert number_tolerance("-1.45e-05") == pytest.approx(1e-7)
    assert number_tolerance("-0.186") == pytest.approx(1e-3)
    assert number_tolerance("-32.4") == pytest.approx(0.1)
    assert number_tolerance("183.54981994628906") == pytest.approx(183.54981994628906e-4)
    line = "  dln: data dln-gaussian(seed=0, n=64, d=4); last train loss 183.54981994628906"
    assert same_line(normalised(line), normalised(line.replace("183.54981994628906", "183.5471")))
    assert not same_line(normalised(line), normalised(line.replace("183.54981994628906", "183.52")))
    assert not same_line(normalised(line), normalised(line.replace("n=64", "n=65")))
    row = "thm-4.4  epsilon@1  violated  violated  4  4  -32.4  -1  -"
    assert same_line(normalised(row), normalised(row.replace("-32.4", "-32.5")))
    assert not same_line(normalised(row), normalised(row.replace("-32.4", "-32.6")))
    assert not same_line(normalised(row), normalised(row.replace("thm-4.4", "thm-4.1")))


def test_elided_lines_may_be_anything_but_the_shown_ones_keep_their_order():
    shown = ["status: complete (12 of 12 steps)", "...", "  probe share: 70.0% of this run's wall time (budget 5%)"]
    printed = ["status: complete (12 of 12 steps)", "  time: 0.2 s wall", "  probe share: 64.1% of this run's wall time (budget 5%)"]
    assert shown_output_matches(shown, printed) == ""
    assert shown_output_matches(shown, printed[::-1])
    assert shown_output_matches(shown[:1] + shown[2:], printed), "without '...' the lines are consecutive"
    assert shown_output_matches(["  probe share: 70.0% of this run's wall time (budget 15%)"], printed)


def test_commands_are_parsed_with_their_continuation_lines():
    block = examples_of(["$ echo '{}' \\", "    | python -m theory.check x --input -", "out 1", "$ true", "out 2"])
    assert block == [Example("echo '{}' \\\n    | python -m theory.check x --input -", ("out 1",)),
                     Example("true", ("out 2",))]
