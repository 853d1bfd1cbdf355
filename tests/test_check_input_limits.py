"""theory.check answers every input in one line, at once: numbers too large for exact arithmetic,
JSON nested beyond the parser, bytes that are not text (issue 13, item 7; found by the CLI fuzz
test's kind of input)."""
import io
import sys
import time

import pytest

from theory import check


def _check(capsys, monkeypatch, text, *argv):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(text if isinstance(text, bytes) else text.encode()),
                                                      encoding="utf-8"))
    start = time.monotonic()
    code = check.main(["thm-4.1/printed", "--input", "-", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err, time.monotonic() - start


@pytest.mark.parametrize("text, says", [
    ('{"y": [1e99999999, 2, 3], "g": [1, 0, 0], "gamma": 1}', "decimal exponent beyond +-1000"),
    ('{"y": ["1e-99999999999999", 2, 3], "g": [1, 0, 0], "gamma": 1}', "decimal exponent beyond +-1000"),
    ('{"y": [' + "7" * 5000 + ', 2, 3], "g": [1, 0, 0], "gamma": 1}', "is not a number"),
    ("[" * 100_000, "nested too deeply"),
    (b'{"y": [1, 2, 3], "g": [1, 0, 0], "gamma": "\xff"}', "not UTF-8 text"),
], ids=["huge-exponent", "huge-exponent-string", "5000-digit-integer", "deep-nesting", "not-utf8"])
def test_input_beyond_what_can_be_checked_is_one_error_line_at_once(capsys, monkeypatch, text, says):
    code, out, err, took = _check(capsys, monkeypatch, text)
    assert (code, out) == (2, "") and err.startswith("error: ") and err.count("\n") == 1 and says in err
    assert took < 5.0


def test_a_large_but_reasonable_exponent_is_still_checked_exactly(capsys, monkeypatch):
    code, out, err, _ = _check(capsys, monkeypatch, '{"y": [1e300, 2, 3], "g": [1, 0, 0], "gamma": 1}',
                               "--format", "json")
    assert code == 0 and '"verdict"' in out
