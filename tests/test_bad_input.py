"""Bad input gets an error that names the problem and the value: in the numeric layer an
exception naming it, at every command line one line 'error: ...' and exit status 2."""
import ast
import importlib
import io
from pathlib import Path

import numpy as np
import pytest

from numeric.quantities import bn_channel_quantities
from theory import cli
from theory.bn import BatchNormInputError
from theory.lemma45 import ToyModelError, exact_optima, toy_quantities_numpy


def test_batch_of_size_one_is_rejected():
    with pytest.raises(BatchNormInputError, match="batch of size 1: BatchNorm needs m >= 2"):
        bn_channel_quantities(np.ones((3, 1)), np.ones((3, 1)), 1.0)


def test_constant_batch_with_zero_epsilon_is_rejected_but_allowed_with_epsilon():
    y = np.array([[2.0, 2.0, 2.0]])
    with pytest.raises(BatchNormInputError, match="constant batch .* epsilon = 0"):
        bn_channel_quantities(y, np.ones((1, 3)), 1.0, eps=0.0)
    q = bn_channel_quantities(y, np.ones((1, 3)), 1.0, eps=1e-5)
    assert np.all(q.y_hat == 0)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_or_inf_is_rejected_with_its_position(bad):
    y = np.zeros((2, 4))
    y[1, 2] = bad
    with pytest.raises(BatchNormInputError, match=r"y\[1, 2\] = .*must be finite"):
        bn_channel_quantities(y + np.arange(4), np.ones((2, 4)), 1.0)


def test_mismatched_shapes_are_rejected():
    with pytest.raises(BatchNormInputError, match=r"g has shape \(2, 3\), expected \(2, 4\)"):
        bn_channel_quantities(np.random.default_rng(0).normal(size=(2, 4)), np.ones((2, 3)), 1.0)
    with pytest.raises(BatchNormInputError, match="H has shape"):
        bn_channel_quantities(np.random.default_rng(0).normal(size=(2, 4)), np.ones((2, 4)), 1.0, H=np.eye(3))


def test_negative_epsilon_and_zero_gamma_are_rejected():
    y = np.random.default_rng(0).normal(size=(2, 4))
    with pytest.raises(BatchNormInputError, match="epsilon must be finite and >= 0"):
        bn_channel_quantities(y, y, 1.0, eps=-1.0)
    with pytest.raises(BatchNormInputError, match="gamma = 0"):
        bn_channel_quantities(y, y, 0.0)


def test_toy_model_rejects_degenerate_data():
    with pytest.raises(ToyModelError, match="singular"):
        exact_optima([[1, 1], [2, 2], [3, 3]], [0, 1, 0])
    with pytest.raises(ToyModelError, match="expected"):
        toy_quantities_numpy(np.zeros((2, 3)), np.zeros((2, 3)), np.zeros((2, 2)))


# ---------------------------------------------------------------------------------------------
# Command lines: every CLI answers bad input with one line 'error: ...' and exit 2 (theory.cli)
# ---------------------------------------------------------------------------------------------

ROOT = Path(__file__).resolve().parent.parent


def _entry_points() -> list:
    """Every module of the three packages with an ``if __name__ == "__main__":`` guard: a CLI."""
    found = []
    for path in sorted(p for layer in ("theory", "numeric", "gpu_check") for p in (ROOT / layer).glob("*.py")):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.If) and "__main__" in ast.unparse(node.test) and "__name__" in ast.unparse(node.test):
                found.append(".".join(path.relative_to(ROOT).with_suffix("").parts))
    return found


CLIS = _entry_points()


def test_every_command_line_is_found():
    assert {"theory.statements", "theory.docs", "theory.report", "numeric.families", "numeric.bench", "gpu_check.run",
            "gpu_check.plots", "gpu_check.reproduce"} <= set(CLIS)


def _main(module):
    return importlib.import_module(module).main


def _call(capsys, module, argv):
    code = _main(module)(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize("module", CLIS)
def test_an_unknown_option_is_one_error_line_and_exit_2(capsys, module):
    code, out, err = _call(capsys, module, ["--frobnicate", "7"])
    assert (code, out) == (2, "")
    assert err.startswith("error: ") and err.count("\n") == 1 and err.endswith("\n")
    # the unknown option, or first the required arguments it lacks
    assert "unrecognized arguments: --frobnicate" in err or "the following arguments are required" in err


@pytest.mark.parametrize("module", CLIS)
def test_help_exits_0_and_offers_no_negated_flag(capsys, module):
    code, out, err = _call(capsys, module, ["--help"])
    assert code == 0 and err == "" and out.startswith("usage: python -m " + module)
    assert "--no-" not in out and "--skip-" not in out


@pytest.mark.parametrize("module, argv, message", [
    ("theory.report", ["--seed", "4294967296"], "error: argument --seed: must be an integer in [0, 2^32), got 4294967296"),
    ("theory.report", ["--symbolic", "auto"], "error: argument --symbolic: invalid choice: 'auto'"),
    ("theory.statements", ["thm-9.9"], "error: unknown statement ID 'thm-9.9'"),
    ("numeric.bench", ["--sizes", "1"], "error: argument --sizes: must be an integer >= 2 (BatchNorm needs m >= 2)"),
    ("numeric.bench", ["--seed", "-1"], "error: argument --seed: must be an integer in [0, 2^32), got -1"),
    ("gpu_check.run", ["--preset", "smoke", "--norm", "bn"], "error: the following arguments are required: --out"),
    ("gpu_check.reproduce", ["--out", "r.md", "--device", "tpu"], "error: argument --device: invalid choice: 'tpu'"),
    ("gpu_check.reproduce", ["--out", "r.md", "--jobs", "0"], "error: argument --jobs: must be a positive integer, got 0"),
])
def test_a_bad_value_is_named_in_one_error_line(capsys, module, argv, message):
    code, out, err = _call(capsys, module, argv)
    assert (code, out) == (2, "") and err.startswith(message) and err.count("\n") == 1


def test_choices_come_from_the_owning_config():
    from gpu_check.config import DEVICES, NORMS, PRESETS
    from theory.report_formats import FORMATS
    parsers = {"theory.report": importlib.import_module("theory.report").build_parser(),
               "gpu_check.run": importlib.import_module("gpu_check.run").parser()}
    choices = {(m, a.dest): tuple(a.choices) for m, p in parsers.items() for a in p._actions if a.choices}
    assert choices[("theory.report", "format")] == tuple(FORMATS)
    assert choices[("gpu_check.run", "device")] == tuple(DEVICES)
    assert choices[("gpu_check.run", "norm")] == tuple(NORMS)
    assert choices[("gpu_check.run", "preset")] == tuple(PRESETS)


def test_the_cli_helper_puts_a_multi_line_message_on_one_line():
    err = io.StringIO()

    def body(args):
        raise cli.InputError("first line\n   second line")
    assert cli.run(cli.parser("prog", "d"), body, [], stderr=err) == cli.EXIT_BAD_INPUT
    assert err.getvalue() == "error: first line second line\n"


def test_the_cli_helper_turns_ctrl_c_into_one_line_and_exit_130():
    err = io.StringIO()

    def body(args):
        raise KeyboardInterrupt
    assert cli.run(cli.parser("prog", "d"), body, [], stderr=err) == cli.EXIT_INTERRUPTED == 130
    assert err.getvalue() == "interrupted\n"


def test_the_cli_helper_lets_a_bug_raise():
    def body(args):
        raise KeyError("a bug, not bad input")
    with pytest.raises(KeyError):
        cli.run(cli.parser("prog", "d"), body, [], stderr=io.StringIO())
