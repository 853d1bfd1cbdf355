"""gpu_check.reproduce: one path from runs to verdicts (summaries -> gpu_check.claims -> documents),
whichever way the runs arrive: committed summaries, given run directories, or a grid it runs."""
import json
import os

import pytest

from gpu_check import readings as R
from gpu_check import reproduce
from gpu_check.claims import CLAIMS
from gpu_check.config import NORMS
from gpu_check.run_summary import load_summaries


def _call(capsys, *argv):
    code = reproduce.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def smoke_grid(tmp_path_factory):
    """--scale smoke, cut to two norms (the full smoke scale makes one run per norm), run once."""
    root = tmp_path_factory.mktemp("smoke")
    plan = (R.SubGrid("smoke", "smoke", ("none", "bn"), (R.SMOKE_LR,), (0,),
                      (("measure", R.MEASURE), ("probe_every", 0))),)
    mp = pytest.MonkeyPatch()
    mp.setattr(R, "paper_plan", lambda scale, data=None: plan)
    try:
        out = root / "docs" / "reproduction.md"
        assert reproduce.main(["--scale", "smoke", "--out", str(out), "--work", str(root / "runs"), "--jobs", "2"]) == 0
    finally:
        mp.undo()
    return root, out


def test_the_smoke_scale_runs_its_grid_then_summarises_and_judges_it(smoke_grid):
    root, out = smoke_grid
    assert sorted(os.listdir(root / "runs" / "smoke" / "smoke")) == ["bn", "none"]
    summaries = load_summaries(str(root / "docs" / "reproduction" / "summaries"))
    assert {(s["run"]["network"], s["run"]["norm"]) for s in summaries} == {
        (net, norm) for net in ("dln", "vgg") for norm in ("none", "bn")}
    js = json.loads((root / "docs" / "reproduction.json").read_text())
    assert [c["id"] for c in js["claims"]] == [c.id for c in CLAIMS]
    # smoke summaries are below every judged preset's scale: nothing is judged on them
    assert {c["verdict"] for c in js["claims"]} <= {"inconclusive", "not-testable-here"}
    assert "4 run summaries" in out.read_text()


def test_given_runs_take_the_same_path_and_a_second_call_adds_nothing(smoke_grid, capsys, tmp_path):
    root, _ = smoke_grid
    out = tmp_path / "r.md"
    code, text, _ = _call(capsys, "--runs", str(root / "runs" / "smoke"), "--out", str(out))
    assert code == 0 and "wrote" in text
    first = sorted(p.name for p in (tmp_path / "r" / "summaries").rglob("*.json"))
    assert first == ["seed0.json"] * 4
    md = out.read_text()
    assert _call(capsys, "--runs", str(root / "runs" / "smoke"), "--out", str(out))[0] == 0
    assert out.read_text() == md


def test_the_smoke_scale_plans_every_norm_and_prints_it_before_any_run(capsys, tmp_path):
    code, text, _ = _call(capsys, "--scale", "smoke", "--plan", "--out", str(tmp_path / "r.md"))
    assert code == 0 and f"{len(NORMS)} runs; estimated time on cpu" in text
    assert not (tmp_path / "runs").exists() and not (tmp_path / "r.md").exists()


@pytest.mark.parametrize("argv, words", [
    ([], "give exactly one of --from-summaries, --runs and --scale (got none)"),
    (["--scale", "smoke", "--from-summaries"], "(got --from-summaries, --scale)"),
    (["--from-summaries", "--plan"], "--plan prints the grid of a --scale"),
])
def test_one_source_of_runs_at_a_time(capsys, tmp_path, argv, words):
    code, _, err = _call(capsys, "--out", str(tmp_path / "r.md"), *argv)
    assert code == 2 and words in err and err.count("\n") == 1
