"""Every command line, fuzzed in-process: hypothesis builds argument lists (valid and invalid
values, odd paths, huge and negative numbers, repeated flags, stray tokens) and calls each CLI's
``main``.  Every outcome must be an exit status the CLI documents -- 0; 2 with exactly one line
``error: ...`` on stderr and nothing on stdout; the few others a CLI names (theory.docs --check:
1; gpu_check.run: see RUN_CODES) -- never a traceback, and nothing half-written: no temporary
file left behind, and after a failure every file that was there is unchanged and nothing new
exists.

Work is capped so that the whole module runs in about half a minute (it is part of the default
suite): the report is asked for a handful of instances of one cheap statement (or a request it
refuses up front), the benchmark for m = 3 at --quick, a training run for the smoke preset with
a few steps; theory.docs is only given argument lists with at least one bad token (a valid run
rewrites the committed docs or takes a minute).  The examples are derandomized: the suite sees
the same argument lists every time (a failure reproduces), and a new CLI must be added to
CATALOG (a test checks that every CLI is).
"""
from __future__ import annotations

import contextlib
import importlib
import io
import json
import os
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from gpu_check.config import config_to_dict, preset, with_overrides
from tests.test_bad_input import CLIS

# torch.func scripts a helper on first use and warns that torch.jit.script is deprecated (torch's
# own code, as in tests/test_bench.py)
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")

# --------------------------------------------------------------------------------------------
# Values
# --------------------------------------------------------------------------------------------

BAD_INTS = ["0", "-1", "-7", "4294967296", "99999999999999999999999999", "1e3", "0x10", "", "abc", " 5", "3.5",
            "nan"]
SEEDS = st.sampled_from(["0", "7", "4294967295"] + BAD_INTS)
# statements whose report at a few instances takes well under a second
CHEAP_IDS = ["fact-c1", "fact-c2", "hessian-c", "obs-4.3", "lemma-4.5", "def-2.1", "thm-4.1", "thm-4.4"]
IDS = st.sampled_from(CHEAP_IDS + ["thm-9.9", "", "THM-4.1", "thm-4.1 ", "--", "fact-c1,fact-c2"])
# placeholders, replaced by paths in each example's sandbox (see _sandbox)
PATHS = st.sampled_from(["{new}", "{file}", "{dir}", "{run}", "{missing}/x", "{link}", "{dir}/", "/dev/null",
                         "/proc/version", "", "-"])
JUNK = st.sampled_from(["--frobnicate", "-x", "stray", "--", "--help=1", "-", "\x00", "é", "--format"])
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=False) | st.text(max_size=8)
    | st.sampled_from(["1/3", "0.1", "1e-3", "1e999999", "nan", "-inf", "1/0"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["y", "g", "gamma", "beta", "eps", "H", "lambda", "X", "t", "W0", "inputs", "m"]), inner,
        max_size=6),
    max_leaves=20)


def _opt(name, values):
    return st.tuples(st.just(name), values).map(list)


def _flag(name):
    return st.just([name])


def _argv(groups, prefix=(), suffix=st.just([])):
    return st.tuples(st.lists(st.one_of(groups + [JUNK.map(lambda j: [j])]), max_size=5), suffix).map(
        lambda p: list(prefix) + [token for group in p[0] for token in group] + p[1])


REPORT = _argv([
    _opt("--instances", st.sampled_from(["1", "5", "12", "1000000000000"] + BAD_INTS)),
    _opt("--seed", SEEDS),
    _opt("--format", st.sampled_from(["text", "markdown", "json", "csv", "latex", "xml", ""])),
    _opt("--only", IDS),
    st.tuples(st.just("--only"), IDS, IDS).map(list),
    _opt("--out", PATHS),
    _opt("--trajectory", PATHS),
    _opt("--errata", PATHS),
    _opt("--symbolic", st.sampled_from(["cached", "off", "auto"])),
    _opt("--counterexamples", st.sampled_from(["search", "skip", "none"])),
    _flag("--wide"),
], prefix=["--only", "obs-4.3", "--instances", "5"])

STATEMENTS = _argv([_opt("--format", st.sampled_from(["text", "json", "yaml"])), _flag("--wide"),
                    IDS.map(lambda i: [i])])

CHECK = _argv([
    _opt("--input", st.sampled_from(["{json}", "{file}", "{dir}", "{missing}/x", "-", "/dev/null", ""])),
    _opt("--format", st.sampled_from(["text", "json", "csv"])),
    st.sampled_from(["thm-4.1", "thm-4.1/printed", "thm-4.1/nope", "obs-4.3", "lemma-4.5/printed", "nope", "/",
                     ""]).map(lambda t: [t]),
])

# theory.docs: always one bad token, so that no example rewrites the committed docs or runs a minute
DOCS = _argv([_flag("--check")], suffix=st.sampled_from(["--frobnicate", "extra", "--check=yes", "-c"]).map(
    lambda t: [t]))

FAMILIES = _argv([_opt("--doc", PATHS)])

BENCH = _argv([
    _opt("--sizes", st.sampled_from(["3"] + BAD_INTS)),
    _flag("--json"),
    _opt("--seed", SEEDS),
], prefix=["--quick", "--sizes", "3"])

# steps and other counts of a training run: only values that are refused or tiny (a valid large
# value would train for hours)
RUN_COUNTS = st.sampled_from(["1", "2", "0", "-1", "-7", "1e3", "abc", "", "3.5", "nan"])
FLOATS = st.sampled_from(["0", "1e-5", "0.1", "-1", "nan", "inf", "-inf", "1e300", "abc", ""])
RUN = _argv([
    _opt("--preset", st.sampled_from(["smoke", "huge", ""])),
    _opt("--norm", st.sampled_from(["bn", "none", "l1", "noisy-bn", "group"])),
    _opt("--out", PATHS),
    _opt("--steps", RUN_COUNTS),
    _opt("--probe-every", RUN_COUNTS),
    _opt("--probe-channels", RUN_COUNTS),
    _opt("--checkpoint-every", RUN_COUNTS),
    _opt("--bn-eps", FLOATS),
    _opt("--lr", FLOATS),
    _opt("--seed", SEEDS),
    _opt("--cpu-threads", st.sampled_from(["1", "0", "-1", "abc"])),
    _opt("--device", st.sampled_from(["cpu", "cuda", "tpu"])),
    _opt("--data", PATHS),
    _opt("--measure", st.sampled_from(["ics", "landscape", "ics,,ics", "nope", ""])),
    _opt("--measure-every", RUN_COUNTS),
    _flag("--resume"),
], prefix=["--preset", "smoke", "--norm", "bn", "--steps", "2", "--quiet", "--out", "{new}"])
# gpu_check.run's documented statuses: 0 done, 2 bad input, 3 diverged (130 Ctrl-C and 137
# --stop-after, a simulated kill that ends the process, are not fuzzed)
RUN_CODES = {0, 2, 3}

PLOTS = _argv([_opt("--out", PATHS), PATHS.map(lambda p: [p])], prefix=["--out", "{new}", "{run}"])
REPRODUCE = _argv([
    _opt("--out", PATHS),
    _opt("--runs", PATHS),
    _opt("--scale", st.sampled_from(["smoke", "cpu", "huge"])),
    _opt("--vgg-steps", st.sampled_from(["0", "-1", "abc"])),
    _opt("--jobs", st.sampled_from(["0", "-1", "abc"])),
    _opt("--data", PATHS),
    _opt("--device", st.sampled_from(["cpu", "tpu"])),
], prefix=["--out", "{new}.md", "--runs", "{run}"])
RUN_SUMMARY = _argv([_opt("--out", PATHS), PATHS.map(lambda p: [p])], prefix=["--out", "{new}", "{run}"])
# these start minutes of work when valid: given at least one bad token
BAD_SUFFIX = st.sampled_from(["--frobnicate", "--jobs=0", "--steps=-1", "--k", "--preset=huge"]).map(lambda t: [t])
SWEEP = _argv([_opt("--preset", st.sampled_from(["smoke", "huge"])), _opt("--norm", st.sampled_from(["bn", "x"])),
               _opt("--lr", FLOATS), _opt("--seed", SEEDS), _opt("--out", PATHS), _opt("--grid", PATHS),
               _opt("--jobs", RUN_COUNTS), _opt("--executor", st.sampled_from(["local", "ray", "mpi"]))],
              suffix=BAD_SUFFIX)
GPU_BENCH = _argv([_opt("--preset", st.sampled_from(["smoke", "huge"])), _opt("--k", RUN_COUNTS),
                   _opt("--steps", RUN_COUNTS), _flag("--json")], suffix=BAD_SUFFIX)
PROBE_BENCH = _argv([_opt("--models", st.sampled_from(["dln", "x"])), _opt("--repeats", RUN_COUNTS),
                     _opt("--run", st.sampled_from(["smoke", "huge"])), _opt("--out", PATHS), _flag("--json")],
                    suffix=BAD_SUFFIX)

# strategy and the exit statuses each CLI documents
CATALOG = {
    "theory.report": (REPORT, {0, 2}),
    "theory.statements": (STATEMENTS, {0, 2}),
    "theory.check": (CHECK, {0, 2}),
    "theory.docs": (DOCS, {2}),
    "numeric.families": (FAMILIES, {0, 2}),
    "numeric.bench": (BENCH, {0, 2}),
    "gpu_check.run": (RUN, RUN_CODES),
    "gpu_check.plots": (PLOTS, {0, 2}),
    "gpu_check.run_summary": (RUN_SUMMARY, {0, 2}),
    "gpu_check.reproduce": (REPRODUCE, {0, 2}),
    "gpu_check.sweep": (SWEEP, {2}),
    "gpu_check.bench": (GPU_BENCH, {2}),
    "gpu_check.probe_bench": (PROBE_BENCH, {2}),
}
EXAMPLES = {"theory.report": 40, "numeric.bench": 8, "gpu_check.run": 15, "gpu_check.reproduce": 12,
            "gpu_check.plots": 12}


def test_every_command_line_is_fuzzed():
    missing = set(CLIS) - set(CATALOG)
    assert not missing, f"add these CLIs to the fuzz test's CATALOG: {sorted(missing)}"


# --------------------------------------------------------------------------------------------
# One example
# --------------------------------------------------------------------------------------------

SMOKE_CONFIG = config_to_dict(with_overrides(preset("smoke"), norm="bn"))


def _sandbox(root: Path, json_text: str) -> dict:
    """Paths an argument may name: a new file, an existing file, a directory, a finished run
    directory, a missing directory, a symlink to the file, a JSON input."""
    (root / "file.txt").write_text("keep\n")
    (root / "dir").mkdir()
    (root / "link").symlink_to(root / "file.txt")
    (root / "input.json").write_text(json_text)
    run = root / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"config": SMOKE_CONFIG, "git": {"revision": "0" * 40}}))
    (run / "probes.jsonl").write_text(json.dumps({
        "step": 0, "network": "dln", "layer": "dln/fc01", "channel": 0, "statement": "obs-4.3", "variant": "printed",
        "relation": "==", "lhs": 1.0, "rhs": 1.0, "slack": 0.0, "rel_slack": 0.0, "tolerance": 1e-12,
        "verdict": "equality"}) + "\n")
    return {"new": str(root / "new.out"), "file": str(root / "file.txt"), "dir": str(root / "dir"),
            "run": str(run), "missing": str(root / "missing"), "link": str(root / "link"),
            "json": str(root / "input.json")}


def _snapshot(root: Path) -> dict:
    out = {}
    for path in sorted(root.rglob("*")):
        if path.is_symlink():
            out[str(path)] = ("link", os.readlink(path))
        elif path.is_file():
            out[str(path)] = ("file", path.read_bytes())
        else:
            out[str(path)] = ("dir", None)
    return out


@contextlib.contextmanager
def _stdin(text: str):
    saved = sys.stdin
    sys.stdin = io.TextIOWrapper(io.BytesIO(text.encode()), encoding="utf-8")
    try:
        yield
    finally:
        sys.stdin = saved


def _fill(argv, paths):
    out = []
    for token in argv:
        for key, value in paths.items():
            token = token.replace("{" + key + "}", value)
        out.append(token)
    return out


def check_one(module: str, argv: list, json_text: str, documented: set, capsys) -> None:
    main = importlib.import_module(module).main
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        argv = _fill(argv, _sandbox(root, json_text))
        before = _snapshot(root)
        capsys.readouterr()
        with _stdin(json_text):
            code = main(argv)
        out, err = capsys.readouterr()
        after = _snapshot(root)
    where = f"{module} {argv!r}"
    assert code in documented, f"{where}: exit {code} not documented; stderr: {err[-500:]}"
    assert "Traceback" not in err, f"{where}: {err}"
    if code == 2:
        assert out == "", f"{where}: exit 2 with output on stdout"
        assert err.startswith("error: ") and err.count("\n") == 1 and err.endswith("\n"), f"{where}: {err!r}"
    leftovers = [p for p in after if p.endswith(".tmp") or "/.probe-" in p]
    assert not leftovers, f"{where}: temporary files left behind: {leftovers}"
    if code != 0:
        assert after == before, f"{where}: exit {code} changed the files: " \
            f"{sorted(set(after) ^ set(before)) or [p for p in after if after[p] != before.get(p)]}"


@pytest.fixture(autouse=True)
def _one_worker(monkeypatch):
    """The sweep in-process, without forking a pool per example."""
    import numeric.report
    monkeypatch.setattr(numeric.report, "default_workers", lambda: 1)
    from theory import report
    monkeypatch.setattr(report, "default_workers", lambda: 1)


def _fuzz(module):
    strategy, documented = CATALOG[module]

    @settings(max_examples=EXAMPLES.get(module, 25), deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
    @given(argv=strategy, value=JSON_VALUES)
    def fuzz(capsys, argv, value):
        check_one(module, argv, json.dumps(value), documented, capsys)
    return fuzz


@pytest.mark.parametrize("module", sorted(CATALOG))
def test_every_outcome_is_a_documented_exit_status_without_traceback_or_half_written_file(module, capsys):
    _fuzz(module)(capsys)
