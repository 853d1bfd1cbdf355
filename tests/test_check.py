"""numeric.check / theory.check: a statement variant on the user's own numbers, exactly."""
import json
from fractions import Fraction

import pytest

from numeric.check import CheckInputError, check, exact_number
from theory.statements import get
from theory.vocab import Verdict

PSD_PART2 = {"y": [0, 0, 1], "g": [-1, 0, -1], "H": [[1, 0, 0], [0, 1, 0], [0, 0, 1]], "gamma": 1}
LEMMA = {"X": [[0, 0], [0, 1], [1, 0]], "t": [1, 0, 1], "W0": [1, "-1/2"]}


def test_thm_4_2_second_display_is_violated_on_the_psd_example_with_slack_minus_9_8():
    (r,) = check(get("thm-4.2"), PSD_PART2, "printed-part2")
    assert r.verdict is Verdict.VIOLATED and r.method == "exact" and r.slack == "-9/8"


def test_thm_4_2_first_display_holds_with_equality_on_the_same_instance():
    (r,) = check(get("thm-4.2"), PSD_PART2, "printed")
    assert r.verdict is Verdict.EQUALITY and r.slack == "0"


def test_lemma_4_5_printed_is_violated_with_lhs_1_and_rhs_1_4_where_the_optimum_is_attained():
    by_name = {r.variant: r for r in check(get("lemma-4.5"), LEMMA)}
    printed = by_name["printed"]
    assert printed.verdict is Verdict.VIOLATED
    assert (printed.lhs, printed.rhs, printed.slack) == ("1", "1/4", "-3/4")
    assert by_name["ray"].verdict is Verdict.EQUALITY


def test_thm_4_1_printed_is_violated_and_the_exact_form_holds_with_equality():
    by_name = {r.variant: r for r in check(get("thm-4.1"), {"y": [0, 0, 1], "g": [-1, 0, 0], "gamma": 1})}
    assert by_name["printed"].verdict is Verdict.VIOLATED
    assert by_name["printed"].slack == "3/4 - 3*sqrt(3)/4"
    assert by_name["exact"].verdict is Verdict.EQUALITY
    assert by_name["epsilon"].verdict is Verdict.NOT_APPLICABLE      # eps = 0 instance, eps > 0 variant


def test_json_numbers_are_read_as_the_decimal_they_spell():
    assert exact_number(Fraction("0.1"), "x") == Fraction(1, 10)
    assert exact_number("1/3", "x") == Fraction(1, 3)
    assert exact_number("1e-3", "x") == Fraction(1, 1000)
    with pytest.raises(CheckInputError, match="binary float"):
        exact_number(0.1, "x")


def test_every_report_counterexample_fed_back_gives_the_same_verdict_and_slack():
    from numeric.counterexample import Counterexample, smallest_counterexample
    checked = 0
    for statement in (get("thm-4.1"), get("thm-4.2"), get("thm-4.4"), get("lemma-4.5")):
        for variant in statement.variants:
            cx = smallest_counterexample(statement, variant)
            if not isinstance(cx, Counterexample):
                continue
            shown = cx.to_dict()
            (r,) = check(statement, json.loads(json.dumps(shown)), variant.name)
            assert r.verdict is Verdict.VIOLATED, (statement.id, variant.name, r)
            want = shown.get("exact", {}).get("slack", shown["slack"])
            assert r.slack == want, (statement.id, variant.name, r.slack, want)
            checked += 1
    assert checked >= 6


@pytest.mark.parametrize("inputs, message", [
    ({"y": [0, 0, 1], "g": [-1, 0, -1], "gamma": 1}, "missing key 'H'"),
    ({**PSD_PART2, "y": [0, 1]}, "same length"),
    ({**PSD_PART2, "y": [1], "g": [1], "H": [[1]]}, "m >= 2"),
    ({**PSD_PART2, "y": [2, 2, 2]}, "zero batch variance"),
    ({**PSD_PART2, "gamma": "nan"}, "not a finite number"),
    ({**PSD_PART2, "H": [[1, 0], [0, 1]]}, "expected 3 x 3"),
    ({**PSD_PART2, "H": [[1, 2, 0], [0, 1, 0], [0, 0, 1]]}, "not symmetric"),
    ({**PSD_PART2, "mu": 1}, "unknown key 'mu'"),
    ({**PSD_PART2, "eps": -1}, "must be >= 0"),
])
def test_bad_input_is_an_error_naming_the_problem(inputs, message):
    with pytest.raises(CheckInputError, match=message):
        check(get("thm-4.2"), inputs, "printed-part2")


def test_a_statement_about_a_whole_network_is_refused_by_name():
    with pytest.raises(CheckInputError, match="whole network"):
        check(get("def-2.1"), {})


def test_the_cli_prints_the_exact_slack_and_exits_0(tmp_path, capsys):
    from theory import check as check_cli
    path = tmp_path / "ex.json"
    path.write_text(json.dumps(PSD_PART2))
    assert check_cli.main(["thm-4.2/printed-part2", "--input", str(path), "--format", "json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)["results"]
    assert (row["verdict"], row["slack"], row["certified"]) == ("violated", "-9/8", "exact")


def test_the_cli_reads_json_numbers_exactly(tmp_path, capsys):
    from theory import check as check_cli
    path = tmp_path / "ex.json"
    path.write_text('{"X": [[0, 0], [0, 1], [1, 0]], "t": [1, 0, 1], "W0": [1, -0.5]}')
    assert check_cli.main(["lemma-4.5/printed", "--input", str(path), "--format", "json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)["results"]
    assert (row["lhs"], row["rhs"], row["slack"]) == ("1", "1/4", "-3/4")


@pytest.mark.parametrize("argv, text, message", [
    (["nope", "--input", "-"], "{}", "unknown statement ID 'nope'"),
    (["thm-4.2/nope", "--input", "-"], "{}", "has no variant 'nope'"),
    (["thm-4.2", "--input", "-"], '{"y": [1], "g": [1], "gamma": 1, "H": [[1]]}', "m >= 2"),
    (["thm-4.2", "--input", "-"], '{"y": [0, 1], "g": [1, NaN], "gamma": 1, "H": [[1, 0], [0, 1]]}', "NaN is not a finite number"),
    (["thm-4.2", "--input", "-"], "[1, 2", "input is not JSON"),
    (["thm-4.2", "--input", "/no/such/file.json"], "", "No such file"),
])
def test_the_cli_answers_bad_input_with_one_line_and_exit_2(argv, text, message, capsys, monkeypatch):
    import io
    from theory import check as check_cli
    monkeypatch.setattr("sys.stdin", io.StringIO(text))
    assert check_cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and message in err
