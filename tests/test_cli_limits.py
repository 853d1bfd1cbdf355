"""A request the machine cannot serve is refused up front in one line; an accepted long one shows
progress with the time left; a CLI whose optional dependency is missing says which extra
installs it (issue 13, items 7 and 8)."""
import io
import sys
import time

import pytest

from theory import cli, report


def _run(capsys, main, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize("instances", ["1000000000000", "99999999999999999999999999", "9" * 400])
def test_a_request_estimated_beyond_an_hour_is_refused_at_once_naming_the_estimate(capsys, instances):
    start = time.monotonic()
    code, out, err = _run(capsys, report.main, "--instances", instances)
    assert time.monotonic() - start < 5.0                       # refused before any work
    assert (code, out) == (2, "") and err.count("\n") == 1
    assert err.startswith(f"error: --instances {instances}: estimated ") and "years" in err


def test_a_request_within_the_hour_is_accepted():
    assert report.estimated_seconds(report.DEFAULT_INSTANCES) < report.MAX_ESTIMATED_S
    assert report.estimated_seconds(1_000_000) < report.MAX_ESTIMATED_S


def test_progress_shows_the_time_left_and_ends_at_100_percent(monkeypatch):
    monkeypatch.setattr(report, "PROGRESS_AFTER_S", 0.0)
    stream = io.StringIO()
    progress = report.Progress(stream)
    progress.start -= 10                                        # 10 s into the sweep
    progress(250, 1000)
    progress(500, 1000)                                         # within 2 s of the last line: not shown
    progress(1000, 1000)
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("report: 250/1000 instances (25%), 10 s, about 30 s left")
    assert lines[1].startswith("report: 1000/1000 instances (100%)")
    assert lines[2] == "report: sweep done; certifying kept instances and searching counterexamples"
    progress.finish()
    assert len(stream.getvalue().splitlines()) == 3


def test_a_missing_optional_dependency_names_the_extra_to_install(capsys, monkeypatch):
    from numeric import bench
    monkeypatch.setitem(sys.modules, "torch", None)             # as in a venv with `pip install -e .` only
    code, out, err = _run(capsys, bench.main, "--quick", "--sizes", "3")
    assert (code, out) == (2, "")
    assert err == "error: this command needs torch, which is not installed: pip install -e '.[test]'\n"


def test_a_missing_module_that_is_not_an_extra_is_a_bug_and_raises():
    def body(args):
        import no_such_module_of_this_project  # noqa: F401
    with pytest.raises(ModuleNotFoundError):
        cli.run(cli.parser("prog", "d"), body, [], stderr=io.StringIO())


@pytest.mark.parametrize("module, missing", [("gpu_check.run", "torch"), ("gpu_check.plots", "matplotlib"),
                                             ("gpu_check.sweep", "torch")])
def test_a_gpu_check_command_without_its_extra_names_it_in_one_line(tmp_path, module, missing):
    import os
    import subprocess
    from pathlib import Path
    root = Path(__file__).resolve().parent.parent
    # a package of that name that cannot be imported, first on the path: as if it were not installed
    (tmp_path / missing).mkdir()
    (tmp_path / missing / "__init__.py").write_text(
        f"raise ModuleNotFoundError({f'No module named {missing!r}'!r}, name={missing!r})\n")
    proc = subprocess.run([sys.executable, "-m", module, "--help"], cwd=root, capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), str(root)])), timeout=120)
    assert (proc.returncode, proc.stdout) == (2, "")
    assert proc.stderr == f"error: python -m {module}: this command needs {missing}, which is not installed: " \
                          "pip install -e '.[test]'\n"
